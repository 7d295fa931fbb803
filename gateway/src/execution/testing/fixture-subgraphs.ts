import { composeServices } from '@apollo/composition';
import type { GraphQLDataSource, GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { buildSubgraphSchema } from '@apollo/subgraph';
import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper/resolverMap.js';
import type { GraphQLSchema } from 'graphql';
import { executeGraphQL, GraphQLError, parse } from '../../graphql-js.js';

/**
 * Four small subgraphs that between them use every federation feature an executor must handle:
 * entities and their keys across subgraphs, `@requires` (with a type condition and an argument),
 * `@provides`, interfaces implemented in one subgraph and extended by entity in another,
 * `@interfaceObject`, a union, lists of lists, mutations across subgraphs, subgraph errors at
 * every depth and nulls where a subgraph breaks its own contract. Tests run the same operations
 * through @apollo/gateway and through our executor and compare the responses byte for byte.
 */

const LINK = `extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key", "@shareable", "@external", "@requires", "@provides", "@interfaceObject"])`;

const forbidden = (message: string) => new GraphQLError(message, { extensions: { code: 'FORBIDDEN' } });

const accountsSdl = `${LINK}
type Query {
  me: User
  users: [User!]!
  user(id: ID!): User
  accounts: [Account!]!
  failing: String
  failingNonNull: String!
}
type Mutation { rename(id: ID!, name: String!): User }
enum Role { ADMIN CUSTOMER }
type User @key(fields: "id") {
  id: ID!
  name: String
  username: String @shareable
  birthYear: Int
  role: Role!
  "Refused for every user but the first."
  secret: String
}
interface Account @key(fields: "id") { id: ID! handle: String! }
type PersonalAccount implements Account @key(fields: "id") { id: ID! handle: String! owner: User }
type BusinessAccount implements Account @key(fields: "id") { id: ID! handle: String! company: String }
`;
const productsSdl = `${LINK}
type Query {
  topProducts(first: Int = 5): [Product!]!
  product(upc: String!): Product
  search(term: String!): [SearchResult!]!
  media: [Media!]!
}
type Product @key(fields: "upc") {
  upc: String!
  name: String!
  price: Int
  weight: Int
  category: Category
  tags: [[String]!]!
}
type Category { id: ID! name: String! }
union SearchResult = Product | Category
interface Media { id: ID! title: String! }
type Book implements Media @key(fields: "id") { id: ID! title: String! pages: Int }
type Movie implements Media @key(fields: "id") { id: ID! title: String! minutes: Int }
`;
const inventorySdl = `${LINK}
type Product @key(fields: "upc") {
  upc: String!
  price: Int @external
  weight: Int @external
  inStock: Boolean
  shippingEstimate: Int @requires(fields: "price weight")
  shippingTo(zone: Int!): Int @requires(fields: "weight")
}
`;
const reviewsSdl = `${LINK}
type Query { reviews: [Review!]! brokenReview: Review topReviewers: [User] }
type Mutation { addReview(upc: String!, body: String!): Review! }
type Review @key(fields: "id") {
  id: ID!
  body: String!
  rating: Int!
  author: User @provides(fields: "username")
  product: Product
  media: Book
}
type User @key(fields: "id") { id: ID! username: String @external reviews: [Review] }
type Product @key(fields: "upc") { upc: String! reviews: [Review] reviewCount: Int }
type Book @key(fields: "id") { id: ID! reviews: [Review] }
type Account @key(fields: "id") @interfaceObject { id: ID! reviewCount: Int }
`;

/** Fresh data and resolvers: each executor under test gets its own, so mutations do not leak between them. */
function fixtureResolvers() {
  const users = [
    { id: 'u1', name: 'Ada', username: 'ada', birthYear: 1815, role: 'ADMIN' },
    { id: 'u2', name: 'Brian', username: 'bk', birthYear: 1942, role: 'CUSTOMER' },
    { id: 'u3', name: 'Cleo', username: 'cleo', birthYear: null, role: 'CUSTOMER' },
  ];
  const accounts = [
    { __typename: 'PersonalAccount', id: 'a1', handle: '@ada', owner: 'u1' },
    { __typename: 'BusinessAccount', id: 'a2', handle: '@acme', company: 'ACME' },
    { __typename: 'PersonalAccount', id: 'a3', handle: '@bk', owner: 'u2' },
  ];
  const products = [
    { upc: 'p1', name: 'Table', price: 899, weight: 100, category: 'c1', tags: [['wood', 'oak'], ['big']] },
    { upc: 'p2', name: 'Couch', price: 1299, weight: 1000, category: 'c1', tags: [] },
    { upc: 'p3', name: 'Chair', price: 54, weight: 50, category: null, tags: [['wood'], [], ['small', null]] },
  ];
  const categories = [{ id: 'c1', name: 'Furniture' }];
  const media = [
    { __typename: 'Book', id: 'm1', title: 'Dune', pages: 412 },
    { __typename: 'Movie', id: 'm2', title: 'Alien', minutes: 117 },
    { __typename: 'Book', id: 'm3', title: 'Emma', pages: 474 },
  ];
  const reviews = [
    { id: 'r1', body: 'Love it', author: 'u1', product: 'p1', media: null, rating: 5 },
    { id: 'r2', body: 'Too big', author: 'u2', product: 'p1', media: null, rating: 2 },
    { id: 'r3', body: 'Could be worse', author: 'u2', product: 'p3', media: null, rating: 3 },
    { id: 'r4', body: 'A classic', author: 'u3', product: null, media: 'm1', rating: 4 },
    // Breaks its own schema (rating is Int!): the subgraph nulls the review and reports it.
    { id: 'r5', body: 'Broken', author: 'u3', product: 'p2', media: null, rating: null },
  ];
  const inStock: Record<string, boolean> = { p1: true, p2: false, p3: true };
  let nextReview = 100;

  const accountsResolvers = {
    Query: {
      me: () => users[0],
      users: () => users,
      user: (_: unknown, { id }: { id: string }) => users.find((user) => user.id === id) ?? null,
      accounts: () => accounts,
      failing: () => {
        throw new GraphQLError('failing on purpose', { extensions: { code: 'TEAPOT' } });
      },
      failingNonNull: () => {
        throw new Error('no code on this one');
      },
    },
    Mutation: {
      rename: (_: unknown, { id, name }: { id: string; name: string }) => {
        const user = users.find((candidate) => candidate.id === id);
        if (!user) return null;
        user.name = name;
        return user;
      },
    },
    User: {
      __resolveReference: ({ id }: { id: string }) => users.find((user) => user.id === id) ?? null,
      secret: (user: { id: string }) => {
        if (user.id !== 'u1') throw forbidden(`not yours: ${user.id}`);
        return 'hunter2';
      },
    },
    Account: {
      __resolveReference: ({ id }: { id: string }) => accounts.find((account) => account.id === id) ?? null,
      __resolveType: (account: { __typename: string }) => account.__typename,
    },
    PersonalAccount: {
      __resolveReference: ({ id }: { id: string }) => accounts.find((account) => account.id === id) ?? null,
      owner: (account: { owner?: string }) => users.find((user) => user.id === account.owner) ?? null,
    },
    BusinessAccount: {
      __resolveReference: ({ id }: { id: string }) => accounts.find((account) => account.id === id) ?? null,
    },
  };

  const productsResolvers = {
    Query: {
      topProducts: (_: unknown, { first }: { first: number }) => products.slice(0, first),
      product: (_: unknown, { upc }: { upc: string }) => products.find((product) => product.upc === upc) ?? null,
      search: (_: unknown, { term }: { term: string }) => [
        ...products.filter((product) => product.name.toLowerCase().includes(term.toLowerCase())),
        ...categories.filter((category) => category.name.toLowerCase().includes(term.toLowerCase())),
      ],
      media: () => media,
    },
    Product: {
      __resolveReference: ({ upc }: { upc: string }) => products.find((product) => product.upc === upc) ?? null,
      category: (product: { category: string | null }) => categories.find((c) => c.id === product.category) ?? null,
    },
    SearchResult: { __resolveType: (value: object) => ('upc' in value ? 'Product' : 'Category') },
    Media: { __resolveType: (value: { __typename: string }) => value.__typename },
    Book: { __resolveReference: ({ id }: { id: string }) => media.find((m) => m.id === id) ?? null },
    Movie: { __resolveReference: ({ id }: { id: string }) => media.find((m) => m.id === id) ?? null },
  };

  const inventoryResolvers = {
    Product: {
      __resolveReference: (reference: { upc: string; price?: number; weight?: number }) => ({
        ...reference,
        inStock: inStock[reference.upc] ?? null,
      }),
      shippingEstimate: ({ price, weight }: { price: number | null; weight: number | null }) =>
        price === null || weight === null ? null : price > 1000 ? 0 : Math.round(weight / 2),
      shippingTo: ({ weight }: { weight: number }, { zone }: { zone: number }) => weight * zone,
    },
  };

  const reviewsResolvers = {
    Query: {
      reviews: () => reviews.filter((review) => review.rating !== null),
      brokenReview: () => reviews.find((review) => review.id === 'r5'),
      topReviewers: () => [{ id: 'u2' }, { id: 'missing' }, { id: 'u1' }],
    },
    Mutation: {
      addReview: (_: unknown, { upc, body }: { upc: string; body: string }) => {
        const review = { id: `r${nextReview++}`, body, author: 'u1', product: upc, media: null, rating: 5 };
        reviews.push(review);
        return review;
      },
    },
    Review: {
      __resolveReference: ({ id }: { id: string }) => reviews.find((review) => review.id === id) ?? null,
      author: (review: { author: string }) => {
        const user = users.find((candidate) => candidate.id === review.author)!;
        return { id: user.id, username: user.username };
      },
      product: (review: { product: string | null }) => (review.product ? { upc: review.product } : null),
      media: (review: { media: string | null }) => (review.media ? { id: review.media } : null),
    },
    User: {
      reviews: ({ id }: { id: string }) => reviews.filter((review) => review.author === id),
    },
    Product: {
      reviews: ({ upc }: { upc: string }) => reviews.filter((review) => review.product === upc),
      reviewCount: ({ upc }: { upc: string }) => reviews.filter((review) => review.product === upc).length,
    },
    Book: { reviews: ({ id }: { id: string }) => reviews.filter((review) => review.media === id) },
    Account: { reviewCount: ({ id }: { id: string }) => id.length + (id === 'a2' ? 10 : 0) },
  };
  return {
    accounts: accountsResolvers,
    products: productsResolvers,
    inventory: inventoryResolvers,
    reviews: reviewsResolvers,
  };
}

export const fixtureSubgraphs = [
  { name: 'accounts', url: 'http://accounts.test/graphql', typeDefs: parse(accountsSdl) },
  { name: 'products', url: 'http://products.test/graphql', typeDefs: parse(productsSdl) },
  { name: 'inventory', url: 'http://inventory.test/graphql', typeDefs: parse(inventorySdl) },
  { name: 'reviews', url: 'http://reviews.test/graphql', typeDefs: parse(reviewsSdl) },
] as const;

/** The fixtures' composed supergraph SDL. */
export function fixtureSupergraphSdl(): string {
  const composed = composeServices(fixtureSubgraphs.map(({ name, url, typeDefs }) => ({ name, url, typeDefs })));
  if (composed.errors) throw new Error(composed.errors.map((error) => error.message).join('\n'));
  return composed.supergraphSdl;
}

/** What a test may do to a subgraph's answer on its way back (as a broken or unreachable service would). */
export type Tamper = (subgraph: string, query: string, response: FixtureResponse) => FixtureResponse | Error;
export interface FixtureResponse {
  data?: Record<string, unknown> | null;
  errors?: { message: string; path?: (string | number)[]; extensions?: Record<string, unknown> }[];
}

/**
 * Each fixture subgraph as a data source that executes locally and answers as over HTTP (the
 * result serialised and parsed again, so the executor gets what a real subgraph would send), with
 * `tamper` applied to its answers.
 */
export function fixtureDataSources(tamper?: {
  current?: Tamper;
}): Map<string, GraphQLDataSource<Record<string, unknown>>> {
  const resolvers = fixtureResolvers();
  const schemas = new Map<string, GraphQLSchema>(
    fixtureSubgraphs.map(({ name, typeDefs }) => [
      name,
      buildSubgraphSchema([{ typeDefs, resolvers: resolvers[name] as unknown as GraphQLResolverMap }]),
    ]),
  );
  return new Map(
    [...schemas].map(([name, schema]) => [
      name,
      {
        async process({ request }: GraphQLDataSourceProcessOptions<Record<string, unknown>>) {
          const result = await executeGraphQL({
            schema,
            source: request.query!,
            variableValues: request.variables,
            operationName: request.operationName,
          });
          let response = JSON.parse(JSON.stringify(result)) as FixtureResponse;
          const changed = tamper?.current?.(name, request.query!, response);
          if (changed instanceof Error) throw changed;
          if (changed) response = changed;
          return response as never;
        },
      },
    ]),
  );
}
