import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse, type GraphQLSchema } from 'graphql';

/**
 * The four-subgraph shape of the public gateway benchmarks (accounts, inventory, products, reviews),
 * written here: the same schema (keys, `@requires`, `@provides`, the nested query below) and data of
 * the same shape (6 users, 9 products, 11 reviews on 4 of them), answered from memory. The bench runs
 * them in a process of their own, each call held for a fixed delay, so that what is measured is the
 * gateway in front of them.
 */

const FEDERATION =
  'extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key", "@external", "@requires", "@provides", "@shareable"])';

export const overheadSubgraphNames = ['accounts', 'inventory', 'products', 'reviews'] as const;
export type OverheadSubgraph = (typeof overheadSubgraphNames)[number];

interface User {
  id: string;
  name: string;
  username: string;
  birthday: number;
}
interface Product {
  upc: string;
  name: string;
  price: number;
  weight: number;
}
interface Review {
  id: string;
  body: string;
  upc: string;
  authorId: string;
}

const users: User[] = [
  ['Ada Lovelace', 'ada'],
  ['Alan Turing', 'alan'],
  ['Grace Hopper', 'grace'],
  ['Edsger Dijkstra', 'edsger'],
  ['Barbara Liskov', 'barbara'],
  ['Donald Knuth', 'donald'],
].map(([name, username], k) => ({ id: String(k + 1), name: name!, username: username!, birthday: 1_234_567_890 }));

const products: Product[] = [
  ['Table', 899, 100],
  ['Couch', 1299, 1000],
  ['Glass', 15, 20],
  ['Chair', 499, 100],
  ['TV', 1299, 1000],
  ['Lamp', 6999, 300],
  ['Grill', 3999, 2000],
  ['Fridge', 100000, 6000],
  ['Sofa', 9999, 800],
].map(([name, price, weight], k) => ({
  upc: String(k + 1),
  name: name as string,
  price: price as number,
  weight: weight as number,
}));

const inStock = new Set(['1', '5', '6', '7', '9']);

/** Review bodies of the reference's lengths (about 140 to 900 characters). */
const sentence = 'The delivery was quick, the build quality is solid and it looks exactly as pictured. ';
const bodyOf = (length: number) => sentence.repeat(Math.ceil(length / sentence.length)).slice(0, length);
const reviews: Review[] = [
  ['1', 450],
  ['1', 300],
  ['1', 280],
  ['1', 140],
  ['2', 450],
  ['2', 300],
  ['2', 280],
  ['2', 140],
  ['3', 140],
  ['4', 140],
  ['4', 900],
].map(([upc, length], k) => ({
  id: String(k + 1),
  body: bodyOf(length as number),
  upc: upc as string,
  authorId: String((k % users.length) + 1),
}));

const userById = new Map(users.map((user) => [user.id, user]));
const productByUpc = new Map(products.map((product) => [product.upc, product]));
const reviewById = new Map(reviews.map((review) => [review.id, review]));
const reviewsOfUser = (id: string) => reviews.filter((review) => review.authorId === id);
const reviewsOfProduct = (upc: string) => reviews.filter((review) => review.upc === upc);

const sdl: Record<OverheadSubgraph, string> = {
  accounts: `${FEDERATION}
    type Query { me: User  user(id: ID!): User  users: [User] }
    type User @key(fields: "id") { id: ID!  name: String  username: String @shareable  birthday: Int }`,
  inventory: `${FEDERATION}
    type Product @key(fields: "upc") {
      upc: String!
      weight: Int @external
      price: Int @external
      inStock: Boolean
      shippingEstimate: Int @requires(fields: "price weight")
    }`,
  products: `${FEDERATION}
    type Query { topProducts(first: Int = 5): [Product] }
    type Product @key(fields: "upc") { upc: String!  name: String  price: Int  weight: Int }`,
  reviews: `${FEDERATION}
    type Review @key(fields: "id") { id: ID!  body: String  product: Product  author: User @provides(fields: "username") }
    type User @key(fields: "id") { id: ID!  username: String @external  reviews: [Review] }
    type Product @key(fields: "upc") { upc: String!  reviews: [Review] }`,
};

type Reference<K extends string> = { [key in K]: string } & Record<string, unknown>;

const resolvers = {
  accounts: {
    Query: {
      me: () => users[0],
      user: (_: unknown, { id }: { id: string }) => userById.get(id) ?? null,
      users: () => users,
    },
    User: { __resolveReference: ({ id }: Reference<'id'>) => userById.get(id) ?? null },
  },
  inventory: {
    Product: {
      __resolveReference: (reference: Reference<'upc'> & { price?: number; weight?: number }) => ({
        ...reference,
        inStock: inStock.has(reference.upc),
      }),
      shippingEstimate: ({ price, weight }: { price?: number; weight?: number }) =>
        price === undefined || weight === undefined ? null : price > 1000 ? 0 : Math.round(weight / 2),
    },
  },
  products: {
    Query: { topProducts: (_: unknown, { first }: { first: number }) => products.slice(0, first) },
    Product: { __resolveReference: ({ upc }: Reference<'upc'>) => productByUpc.get(upc) ?? null },
  },
  reviews: {
    Review: {
      __resolveReference: ({ id }: Reference<'id'>) => reviewById.get(id) ?? null,
      product: (review: Review) => ({ upc: review.upc }),
      author: (review: Review) => ({ id: review.authorId, username: userById.get(review.authorId)!.username }),
    },
    User: { reviews: ({ id }: { id: string }) => reviewsOfUser(id) },
    Product: { reviews: ({ upc }: { upc: string }) => reviewsOfProduct(upc) },
  },
};

export const overheadSdl = (name: OverheadSubgraph) => sdl[name];

export function overheadSchema(name: OverheadSubgraph): GraphQLSchema {
  return buildSubgraphSchema({ typeDefs: parse(sdl[name]), resolvers: resolvers[name] as never });
}

/** The public benchmarks' query: every subgraph, entities at four levels, `@requires` and `@provides`. */
export const OVERHEAD_QUERY = `fragment User on User { id username name }
fragment Review on Review { id body }
fragment Product on Product { inStock name price shippingEstimate upc weight }
query TestQuery {
  users { ...User reviews { ...Review product { ...Product reviews { ...Review author { ...User reviews { ...Review product { ...Product } } } } } } }
  topProducts { ...Product reviews { ...Review author { ...User reviews { ...Review product { ...Product } } } } }
}`;
