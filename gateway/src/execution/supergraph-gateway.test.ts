import { Supergraph } from '@apollo/federation-internals';
import { ApolloGateway } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SupergraphGateway } from './supergraph-gateway.js';
import { fixtureDataSources, fixtureSupergraphSdl, type Tamper } from './testing/fixture-subgraphs.js';

/**
 * Our executor against @apollo/gateway's on the same supergraph and subgraphs: every response, data
 * and errors (messages, codes, paths) and key order included, must be the same bytes. The fixtures
 * (testing/fixture-subgraphs.ts) cover keys, @requires, @provides, interfaces, @interfaceObject,
 * unions, lists of lists, aliases, @skip/@include, fragments, mutations, introspection, subgraph
 * errors at every depth, and subgraphs that answer wrongly or not at all.
 */

const supergraphSdl = fixtureSupergraphSdl();
const tamper: { current?: Tamper } = {};
let stock: ApolloServer;
let ours: ApolloServer;

beforeAll(async () => {
  const stockSources = fixtureDataSources(tamper);
  stock = new ApolloServer({
    gateway: new ApolloGateway({ supergraphSdl, buildService: ({ name }) => stockSources.get(name)! }),
    includeStacktraceInErrorResponses: false,
  });
  ours = new ApolloServer({
    gateway: new SupergraphGateway({
      supergraph: Supergraph.build(supergraphSdl),
      supergraphSdl,
      services: fixtureDataSources(tamper),
    }),
    includeStacktraceInErrorResponses: false,
  });
  await Promise.all([stock.start(), ours.start()]);
});
afterAll(async () => {
  await Promise.all([stock?.stop(), ours?.stop()]);
});

async function answer(
  server: ApolloServer,
  query: string,
  variables?: Record<string, unknown>,
  operationName?: string,
) {
  const { body } = await server.executeOperation({ query, variables, operationName });
  if (body.kind !== 'single') throw new Error('expected a single result');
  return body.singleResult;
}

/** Both executors' answers, which must be identical; ours is returned for further checks. */
async function same(query: string, variables?: Record<string, unknown>, operationName?: string) {
  const expected = await answer(stock, query, variables, operationName);
  const actual = await answer(ours, query, variables, operationName);
  expect(JSON.stringify(actual)).toBe(JSON.stringify(expected));
  return actual as { data?: any; errors?: any[]; extensions?: any };
}

describe('our executor answers as @apollo/gateway does', () => {
  it('across entities and keys, with @requires and @provides', async () => {
    const result = await same(`{
      users { id name reviews { body rating product { upc name price inStock shippingEstimate } } }
      reviews { id author { id username name birthYear role } }
    }`);
    // Cleo's second review breaks the reviews subgraph's own schema: null there, its error re-pathed here.
    expect(result.errors).toEqual([
      {
        message: 'Cannot return null for non-nullable field Review.rating.',
        path: ['users', 2, 'reviews', 1, 'rating'],
        extensions: { code: 'DOWNSTREAM_SERVICE_ERROR', serviceName: 'reviews' },
      },
    ]);
    expect(result.data.users[2].reviews[1]).toBeNull();
    const ada = result.data.users[0];
    expect(ada.reviews[0].product).toEqual({
      upc: 'p1',
      name: 'Table',
      price: 899,
      inStock: true,
      shippingEstimate: 50,
    });
    expect(result.data.reviews[3].author).toEqual({
      id: 'u3',
      username: 'cleo',
      name: 'Cleo',
      birthYear: null,
      role: 'CUSTOMER',
    });
  });

  it('with aliases, the same field twice with other arguments, and a @requires that takes an argument', async () => {
    const result = await same(`{
      a: product(upc: "p1") { n: name s1: shippingTo(zone: 1) s3: shippingTo(zone: 3) upc }
      b: product(upc: "p3") { name alsoName: name }
      none: product(upc: "nope") { name }
    }`);
    expect(result.data.a).toEqual({ n: 'Table', s1: 100, s3: 300, upc: 'p1' });
    expect(result.data.none).toBeNull();
  });

  it('on a union, interfaces and entities on their implementations', async () => {
    await same(`{
      search(term: "c") { __typename ... on Product { upc name reviews { body author { name } } } ... on Category { id name } }
      media { __typename id title ... on Book { pages reviews { body author { name } } } ... on Movie { minutes } }
    }`);
  });

  it('on @interfaceObject fields of an interface', async () => {
    const result = await same(`{
      accounts { id handle reviewCount __typename ... on PersonalAccount { owner { name } } ... on BusinessAccount { company } }
    }`);
    expect(result.data.accounts.map((account: { reviewCount: number }) => account.reviewCount)).toEqual([2, 12, 2]);
  });

  it('with @skip and @include, by variables and literals, on fields and fragments', async () => {
    const query = `query ($withReviews: Boolean!, $noPrice: Boolean = false) {
      me { name }
      topProducts(first: 2) {
        name
        price @skip(if: $noPrice)
        reviews @include(if: $withReviews) { body author @skip(if: false) { name } }
        ... @include(if: $withReviews) { inStock shippingEstimate }
        ...P @skip(if: $withReviews)
      }
      extra: topProducts(first: 1) @include(if: $withReviews) { upc }
    }
    fragment P on Product { weight }`;
    for (const variables of [
      { withReviews: true },
      { withReviews: false },
      { withReviews: true, noPrice: true },
      { withReviews: false, noPrice: true },
    ]) {
      await same(query, variables);
    }
  });

  it('with named and nested fragments, defaulted variables and a chosen operation', async () => {
    const document = `
      query Users { users { ...U } }
      query Products($first: Int = 2) { topProducts(first: $first) { ...P } }
      fragment U on User { id ... on User { name } reviews { ...R } }
      fragment R on Review { body product { ...P } }
      fragment P on Product { upc name inStock }`;
    await same(document, undefined, 'Users');
    await same(document, undefined, 'Products');
    await same(document, { first: 3 }, 'Products');
  });

  it('on lists of lists with nulls in them', async () => {
    await same('{ topProducts { upc tags } }');
  });

  it('with __typename and introspection', async () => {
    await same('{ __typename users { __typename id } media { __typename } }');
    await same('{ __type(name: "Product") { name fields { name type { name kind ofType { name } } } } }');
    await same('{ __schema { queryType { name } mutationType { name } } me { name } }');
  });

  it('with the errors subgraphs report, at every depth, re-pathed into the response', async () => {
    const result = await same('{ failing me { name } }');
    expect(result.errors?.[0]).toMatchObject({
      path: ['failing'],
      extensions: { code: 'TEAPOT', serviceName: 'accounts' },
    });
    await same('{ failingNonNull me { name } }');
    await same('{ users { id secret } }');
    const entities = await same('{ reviews { id author { id secret } } }');
    expect(entities.errors?.map((error) => error.path)).toEqual([
      ['reviews', 1, 'author', 'secret'],
      ['reviews', 2, 'author', 'secret'],
      ['reviews', 3, 'author', 'secret'],
    ]);
    await same('{ brokenReview { id body rating } }');
    await same('{ topReviewers { id name username } }');
  });

  it('with mutations run in order across subgraphs', async () => {
    await same('mutation { addReview(upc: "p2", body: "new") { id body product { name inStock } author { name } } }');
    await same(
      'mutation { a: rename(id: "u2", name: "B") { name } b: addReview(upc: "p1", body: "x") { id author { name } } }',
    );
  });

  it('with variables that do not fit their definitions refused before anything is fetched', async () => {
    await same('query ($upc: String!) { product(upc: $upc) { name } }', { upc: 42 });
    await same('query ($upc: String!) { product(upc: $upc) { name } }', {});
  });
});

describe('our executor answers as @apollo/gateway does when a subgraph misbehaves', () => {
  const tampered = async (change: Tamper, query: string) => {
    tamper.current = change;
    try {
      return await same(query);
    } finally {
      tamper.current = undefined;
    }
  };

  it('is unreachable: its part is null, with its coded error', async () => {
    const result = await tampered(
      (subgraph, _query, response) =>
        subgraph === 'inventory'
          ? {
              errors: [
                {
                  message: 'The inventory service is unavailable',
                  extensions: { code: 'UPSTREAM_UNAVAILABLE', service: 'inventory' },
                },
              ],
            }
          : response,
      '{ topProducts { name inStock shippingEstimate } }',
    );
    expect(result.data.topProducts[0]).toEqual({ name: 'Table', inStock: null, shippingEstimate: null });
  });

  it('throws in its data source', async () => {
    await tampered(
      (subgraph, _query, response) => (subgraph === 'reviews' ? new Error('socket hang up') : response),
      '{ topProducts { name reviews { body } } }',
    );
  });

  it('answers a value its schema does not allow: reported as value completion', async () => {
    const result = await tampered((subgraph, _query, response) => {
      if (subgraph !== 'accounts') return response;
      const users = (response.data as { users?: { role: string }[] }).users;
      return users
        ? { data: { users: users.map((user, i) => (i === 1 ? { ...user, role: 'OWNER' } : user)) } }
        : response;
    }, '{ users { id role } }');
    expect(result.extensions?.valueCompletion?.[0]?.message).toBe('Invalid value found for field User.role.');
  });

  it('answers null for a non-null field: the null bubbles to the nearest nullable parent', async () => {
    await tampered((subgraph, _query, response) => {
      if (subgraph !== 'products') return response;
      const list = (response.data as { topProducts?: Record<string, unknown>[] }).topProducts;
      return list ? { data: { topProducts: list.map((p, i) => (i === 1 ? { ...p, name: null } : p)) } } : response;
    }, '{ topProducts { upc name } me { name } }');
    await tampered((subgraph, _query, response) => {
      if (subgraph !== 'products') return response;
      const media = (response.data as { media?: Record<string, unknown>[] }).media;
      return media ? { data: { media: media.map((m, i) => (i === 0 ? { ...m, title: null } : m)) } } : response;
    }, '{ media { id title } }');
  });

  it('answers an object of a type the supergraph does not have', async () => {
    await tampered((subgraph, _query, response) => {
      if (subgraph !== 'products') return response;
      const media = (response.data as { media?: Record<string, unknown>[] }).media;
      return media
        ? { data: { media: media.map((m, i) => (i === 2 ? { ...m, __typename: 'Secret' } : m)) } }
        : response;
    }, '{ media { __typename id title } }');
  });

  it('answers fewer entities than it was asked for', async () => {
    await tampered((subgraph, _query, response) => {
      const entities = (response.data as { _entities?: unknown[] } | undefined)?._entities;
      return subgraph === 'accounts' && entities ? { data: { _entities: entities.slice(1) } } : response;
    }, '{ reviews { id author { name } } }');
  });
});

describe('responses our executor reports as keepable (the response cache)', () => {
  const kept: { scope: string; tags: string[] }[] = [];
  let keeping: ApolloServer;
  beforeAll(async () => {
    keeping = new ApolloServer({
      gateway: new SupergraphGateway<Record<string, unknown>>({
        supergraph: Supergraph.build(supergraphSdl),
        supergraphSdl,
        services: fixtureDataSources(tamper),
        // Every query may be kept here, tagged by its users and reviews.
        advice: (document, operation) =>
          operation.operation === 'query'
            ? { scope: 'PRIVATE', tagged: new Set(['User', 'Review']), document, operation }
            : undefined,
        keepable: { mark: () => 7, keep: (_context, answer) => kept.push(answer) },
      }),
      includeStacktraceInErrorResponses: false,
    });
    await keeping.start();
  });
  afterAll(async () => {
    await keeping?.stop();
  });

  it('names every user and review in the answer', async () => {
    kept.length = 0;
    await answer(keeping, '{ user(id: "u2") { id name reviews { id body author { id } } } }');
    expect(kept).toEqual([
      { scope: 'PRIVATE', tags: ['entity:User:u2', 'entity:Review:r2', 'entity:Review:r3'], mark: 7 },
    ]);
  });

  it('reports nothing when a tagged object came without its id, an error was met, or a root is null', async () => {
    kept.length = 0;
    await answer(keeping, '{ user(id: "u2") { name reviews { body } } }');
    await answer(keeping, '{ users { id secret } }');
    await answer(keeping, '{ user(id: "nobody") { id } }');
    await answer(keeping, 'mutation { rename(id: "u2", name: "B") { id } }');
    expect(kept).toEqual([]);
  });
});
