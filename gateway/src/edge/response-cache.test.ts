import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Supergraph } from '@apollo/federation-internals';
import { Counter, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { supergraphPath } from '../compose/compose.js';
import { SupergraphGateway } from '../execution/supergraph-gateway.js';
import { getOperationAST, parse, print } from '../graphql-js.js';
import { ResponseCache, responseCachePlanOf, responseCacheRulesOf } from './response-cache.js';

const supergraph = Supergraph.build(readFileSync(fileURLToPath(supergraphPath), 'utf8'));
const rules = responseCacheRulesOf(supergraph);
const schema = new SupergraphGateway({ supergraph, supergraphSdl: '', services: new Map() }).apiSchema;

const planOf = (query: string) => {
  const document = parse(query);
  return responseCachePlanOf(rules, schema, document, getOperationAST(document)!);
};

describe('which queries the response cache may keep', () => {
  it('reads the declarations: entities keyed by id, and their @cacheControl scopes', () => {
    expect([...rules.idEntities]).toEqual(expect.arrayContaining(['Meal', 'Order', 'User', 'Payment']));
    expect(rules.scopes.PUBLIC.has('Meal')).toBe(true);
    expect(rules.scopes.PRIVATE.has('Order')).toBe(true);
  });

  it("keeps a root entity's answers, per caller when anything in them is private, for everyone when all is public", () => {
    expect(planOf('{ me { orders(first: 10) { edges { node { status items { meal { name } } } } } } }')?.scope).toBe(
      'PRIVATE',
    );
    expect(planOf('query ($id: ID!) { order(id: $id) { status payment { status } } }')?.scope).toBe('PRIVATE');
    expect(planOf('query ($id: ID!) { meal(id: $id) { name price { amount } } }')?.scope).toBe('PUBLIC');
  });

  it('keeps no root list, mutation or introspection: no event names their membership', () => {
    expect(planOf('{ meals(first: 5) { edges { node { name } } } }')).toBeUndefined();
    expect(planOf('{ myOrders { edges { node { id } } } }')).toBeUndefined();
    expect(planOf('{ me { name } meals { edges { node { name } } } }')).toBeUndefined();
    expect(planOf('mutation { logOut }')).toBeUndefined();
    expect(planOf('{ __typename }')).toBeUndefined();
    expect(planOf('{ me { name } __schema { queryType { name } } }')).toBeUndefined();
  });

  it("plans with every entity's id, which the client need not have asked for", () => {
    const plan = planOf('{ me { name orders(first: 1) { edges { node { status items { meal { name } } } } } } }')!;
    const printed = print(plan.document);
    expect(printed).toMatch(/me \{\s+name[\s\S]*id\s+\}/);
    expect(printed).toMatch(/meal \{\s+name\s+id\s+\}/);
    expect(printed).toMatch(/node \{[\s\S]*status[\s\S]*id\s+\}/);
  });

  it('refuses a query that uses `id` as the alias of another field (the tags could not be read)', () => {
    expect(planOf('{ me { id: name } }')).toBeUndefined();
  });
});

describe('the response cache store', () => {
  const registry = new Registry();
  const counter = (name: string, labels: string[] = []) =>
    new Counter({ name, help: name, labelNames: labels, registers: [registry] });
  const cache = (maxBytes = 1_000_000, ttlSeconds = 60) =>
    new ResponseCache({
      maxBytes,
      ttlSeconds,
      hits: counter(`hits_${Math.random().toString(36).slice(2)}`, ['scope']),
      misses: counter(`misses_${Math.random().toString(36).slice(2)}`),
      stores: counter(`stores_${Math.random().toString(36).slice(2)}`, ['scope']),
      invalidations: counter(`invalidations_${Math.random().toString(36).slice(2)}`),
    });
  const entry = (text: string, tags: string[]) => ({ body: Buffer.from(text), operationName: 'Q', tags });
  /** Keeps an answer: the second one of a request is kept (the first is only noted). */
  const keep = (
    store: ResponseCache,
    request: string,
    scope: 'PUBLIC' | 'PRIVATE',
    caller: string,
    response: ReturnType<typeof entry>,
  ) => {
    store.set(request, scope, caller, response, store.mark());
    return store.set(request, scope, caller, response, store.mark());
  };

  it('answers a private entry to its caller only, a public one to everyone', () => {
    const store = cache();
    keep(store, 'q1', 'PRIVATE', 'user:a', entry('mine', ['entity:User:a']));
    keep(store, 'q2', 'PUBLIC', 'user:a', entry('menu', ['entity:Meal:m']));
    expect(store.get('q1', 'user:a')?.body.toString()).toBe('mine');
    expect(store.get('q1', 'user:b')).toBeUndefined();
    expect(store.get('q2', 'user:b')?.body.toString()).toBe('menu');
  });

  it('drops every entry that holds a changed entity, and only those', () => {
    const store = cache();
    keep(store, 'q1', 'PRIVATE', 'user:a', entry('a', ['entity:User:a', 'entity:Order:1']));
    keep(store, 'q1', 'PRIVATE', 'user:b', entry('b', ['entity:User:b', 'entity:Order:2']));
    store.invalidate([{ __typename: 'Order', id: '1' }]);
    expect(store.get('q1', 'user:a')).toBeUndefined();
    expect(store.get('q1', 'user:b')?.body.toString()).toBe('b');
  });

  it('keeps the second answer of a request, not the first: what is asked once is never copied', () => {
    const store = cache();
    expect(store.set('q1', 'PRIVATE', 'user:a', entry('first', ['entity:User:a']), store.mark())).toBe(false);
    expect(store.get('q1', 'user:a')).toBeUndefined();
    expect(store.set('q1', 'PRIVATE', 'user:a', entry('second', ['entity:User:a']), store.mark())).toBe(true);
    expect(store.get('q1', 'user:a')?.body.toString()).toBe('second');
    // Another caller's first answer to the same request is its own first.
    expect(store.set('q1', 'PRIVATE', 'user:b', entry('b', ['entity:User:b']), store.mark())).toBe(false);
  });

  it('refuses an answer whose request began before a change to one of its entities', () => {
    const store = cache();
    store.set('q1', 'PRIVATE', 'user:a', entry('first', ['entity:Order:1']), store.mark());
    const mark = store.mark();
    store.invalidate([{ __typename: 'Order', id: '1' }]);
    expect(store.set('q1', 'PRIVATE', 'user:a', entry('stale', ['entity:Order:1']), mark)).toBe(false);
    expect(store.get('q1', 'user:a')).toBeUndefined();
    // A request that began after the change keeps its answer.
    expect(store.set('q1', 'PRIVATE', 'user:a', entry('fresh', ['entity:Order:1']), store.mark())).toBe(true);
    expect(store.get('q1', 'user:a')?.body.toString()).toBe('fresh');
  });

  it('evicts the least recently used past its byte budget, and forgets their tags', () => {
    const store = cache(2_000);
    for (let i = 0; i < 10; i++) keep(store, `q${i}`, 'PUBLIC', '', entry('x'.repeat(500), [`entity:Meal:${i}`]));
    expect(store.size).toBeLessThan(10);
    expect(store.get('q9', '')).toBeDefined();
    expect(store.get('q0', '')).toBeUndefined();
    // Dropping an evicted entity's tag finds nothing to drop.
    store.invalidate([{ __typename: 'Meal', id: '0' }]);
    expect(store.get('q9', '')).toBeDefined();
  });
});
