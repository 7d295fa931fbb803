import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginInlineTraceDisabled } from '@apollo/server/plugin/disabled';
import { startStandaloneServer } from '@apollo/server/standalone';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '@food/platform';
import { deleteKeys, redisEnvOf, testRedisTarget, testSecrets } from '@food/platform/testing';
import { startGateway, type RunningGateway } from '../app.js';
import { composeSubgraphs } from '../compose/compose.js';
import { loadGatewayConfig } from '../config.js';

// Two subgraphs of this test's own: one owns a product's price, the other computes its shipping
// from that price (@requires), and Product is in the gateway's shared entity cache.
const LINK =
  'extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key", "@external", "@requires"])';
const PRODUCTS_SDL = `${LINK}
type Query { product(id: ID!): Product }
type Product @key(fields: "id") { id: ID! price: Int! }`;
const SHIPPING_SDL = `${LINK}
type Product @key(fields: "id") { id: ID! price: Int! @external shipping: Int! @requires(fields: "price") }`;

const prices = new Map([['p1', 10]]);
const shippingAsked: unknown[] = [];
const servers: ApolloServer[] = [];
let gateway: RunningGateway;
let supergraphDir: string;
const target = testRedisTarget();
const prefix = `test-requires-${randomUUID()}`;

type Resolvers = Extract<Parameters<typeof buildSubgraphSchema>[0], { resolvers?: unknown }>['resolvers'];

async function serve(sdl: string, resolvers: Resolvers) {
  const server = new ApolloServer({
    schema: buildSubgraphSchema({ typeDefs: parse(sdl), resolvers }),
    plugins: [ApolloServerPluginInlineTraceDisabled()],
  });
  servers.push(server);
  const { url } = await startStandaloneServer(server, { listen: { port: 0, host: '127.0.0.1' } });
  return url;
}

beforeAll(async () => {
  const products = await serve(PRODUCTS_SDL, {
    Query: { product: (_: unknown, { id }: { id: string }) => (prices.has(id) ? { id } : null) },
    Product: {
      __resolveReference: ({ id }: { id: string }) => ({ id }),
      price: ({ id }: { id: string }) => prices.get(id),
    },
  } as Resolvers);
  const shipping = await serve(SHIPPING_SDL, {
    Product: {
      __resolveReference: (reference: { id: string; price: number }) => (shippingAsked.push(reference), reference),
      shipping: ({ price }: { price: number }) => price * 2,
    },
  } as Resolvers);
  supergraphDir = mkdtempSync(join(tmpdir(), 'requires-cache-'));
  const supergraphPath = join(supergraphDir, 'supergraph.graphql');
  writeFileSync(
    supergraphPath,
    composeSubgraphs([
      { name: 'products', sdl: PRODUCTS_SDL, url: products },
      { name: 'shipping', sdl: SHIPPING_SDL, url: shipping },
    ]).supergraphSdl,
  );
  gateway = await startGateway(
    loadGatewayConfig({
      ...testSecrets,
      ...redisEnvOf(target),
      REDIS_KEY_PREFIX: prefix,
      LOG_LEVEL: 'silent',
      GATEWAY_PORT: '0',
      SUPERGRAPH_PATH: supergraphPath,
      ENTITY_CACHE_TYPES: 'Product',
      ENTITY_CACHE_PRIVATE_TYPES: '',
      // No users subgraph here: only anonymous requests, so the keys are never fetched.
      USERS_JWKS_URL: 'http://127.0.0.1:9/.well-known/jwks.json',
    }),
    createLogger('gateway', 'silent'),
  );
});

afterAll(async () => {
  await gateway?.close();
  await Promise.all(servers.map((server) => server.stop()));
  if (supergraphDir) rmSync(supergraphDir, { recursive: true, force: true });
  await deleteKeys(prefix, target);
});

async function product(): Promise<unknown> {
  const response = await fetch(gateway.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'apollo-require-preflight': 'true' },
    body: JSON.stringify({ query: '{ product(id: "p1") { price shipping } }' }),
  });
  return response.json();
}

describe('the entity cache with @requires', () => {
  it('answers a required field’s new value with the answer that depends on it, as stock @apollo/gateway does', async () => {
    expect(await product()).toEqual({ data: { product: { price: 10, shipping: 20 } } });
    // Cached now: the same price is answered without the shipping subgraph.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await product()).toEqual({ data: { product: { price: 10, shipping: 20 } } });
    expect(shippingAsked).toHaveLength(1);

    prices.set('p1', 50);
    expect(await product()).toEqual({ data: { product: { price: 50, shipping: 100 } } });
    expect(shippingAsked).toEqual([
      { __typename: 'Product', id: 'p1', price: 10 },
      { __typename: 'Product', id: 'p1', price: 50 },
    ]);
  });
});
