import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ApolloGateway } from '@apollo/gateway';
import type { GraphQLSchema } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { supergraphPath } from '../compose/compose.js';
import { GraphQLError } from '../graphql-js.js';
import { LiveDeclarationError, readLiveFields } from './declarations.js';
import { planSubscription, type SubscribeRequest, type SubscriptionPlan } from './operation.js';

/** The API schema exactly as the gateway gets it: @apollo/gateway loading the committed supergraph. */
let schema: GraphQLSchema;
let gateway: ApolloGateway;
const supergraphSdl = readFileSync(fileURLToPath(supergraphPath), 'utf8');
const liveFields = readLiveFields(supergraphSdl);
beforeAll(async () => {
  gateway = new ApolloGateway({ supergraphSdl });
  schema = (await gateway.load()).schema;
});
afterAll(async () => {
  await gateway?.stop();
});

const ORDER_ID = '5b4f4c52-2f0e-4a8e-9d7c-1f2a3b4c5d6e';

function plan(request: SubscribeRequest): SubscriptionPlan {
  const result = planSubscription(schema, liveFields, request);
  if (Array.isArray(result)) throw new Error(result.map((error) => error.message).join('; '));
  return result;
}

function refusal(request: SubscribeRequest): { message: string; code: unknown }[] {
  const result = planSubscription(schema, liveFields, request);
  if (!Array.isArray(result)) throw new Error('expected the subscription to be refused');
  for (const error of result) expect(error).toBeInstanceOf(GraphQLError);
  return result.map((error) => ({ message: error.message, code: error.extensions.code }));
}

describe('the subscriptions the subgraphs declare (@subscribe in the supergraph)', () => {
  it('reads each declared field: its event, entity key, conditions, fields, version, end and audience', () => {
    const tracking = liveFields.get('orderStatusChanged')!;
    expect(tracking).toMatchObject({
      event: 'order.status_changed',
      entityType: 'Order',
      version: 'version',
      audience: 'CALLER',
    });
    expect([...tracking.key]).toEqual([['id', 'orderId']]);
    expect(tracking.where.map((condition) => [...condition])).toEqual([[['orderId', { argument: 'orderId' }]]]);
    expect([...tracking.fields]).toEqual([
      ['status', 'to'],
      ['version', 'version'],
    ]);
    expect([...tracking.until!]).toEqual([['status', ['DELIVERED', 'CANCELLED', 'REFUNDED']]]);
    expect(liveFields.get('orderUpdates')).toMatchObject({
      audience: 'ROLE',
      scopes: [['STAFF'], ['ADMIN']],
      where: [],
    });
  });

  it('refuses a declaration it cannot read, naming the field', () => {
    const sdl = (args: string) => `
      extend schema @link(url: "https://specs.food-supergraph.dev/live/v0.1", import: ["@subscribe"])
      type Subscription { thing(id: ID!): Thing! @subscribe(${args}) }
      type Thing { id: ID! v: Int! }`;
    expect(() => readLiveFields(sdl('entity: "{ id: thingId }"'))).toThrow(
      /Subscription.thing: @subscribe needs `event`/,
    );
    expect(() => readLiveFields(sdl('event: "e", entity: "{ id: 1 }"'))).toThrow(LiveDeclarationError);
    expect(() => readLiveFields(sdl('event: "e", entity: "{ id: thingId }", version: "v"'))).toThrow(
      /version v must be one of `fields`/,
    );
    expect(() => readLiveFields(sdl('event: "e", entity: "{ id: thingId }", audience: "EVERYONE"'))).toThrow(
      /audience must be one of/,
    );
    expect(() => readLiveFields(sdl('event: "e", entity: "{ id: thingId }", where: "{ id: $id"'))).toThrow(
      /where is not a GraphQL literal/,
    );
  });

  it('finds the directive under the name its @link imports it as', () => {
    const fields = readLiveFields(`
      extend schema @link(url: "https://specs.food-supergraph.dev/live/v0.1", import: [{ name: "@subscribe", as: "@live" }])
      type Subscription { thing: Thing! @live(event: "e", entity: "{ id: thingId }") }
      type Thing { id: ID! }`);
    expect(fields.get('thing')).toMatchObject({ event: 'e', entityType: 'Thing' });
  });
});

describe('planSubscription: what a subscription is checked for', () => {
  it('keeps the document, the declaration, the coerced arguments and the client variables', () => {
    const planned = plan({
      query: 'subscription Track($id: ID!) { o: orderStatusChanged(orderId: $id) { id } }',
      variables: { id: ORDER_ID, other: 1 },
    });
    expect(planned.live.field).toBe('orderStatusChanged');
    expect(planned.args).toEqual({ orderId: ORDER_ID });
    expect(planned.variables).toEqual({ id: ORDER_ID });
  });

  it('refuses a subscription field no subgraph declared with @subscribe', () => {
    const withoutDeclarations = planSubscription(schema, new Map(), { query: 'subscription { orderUpdates { id } }' });
    expect(Array.isArray(withoutDeclarations) && withoutDeclarations[0]!.message).toBe(
      'the gateway cannot serve subscription orderUpdates',
    );
  });

  it('refuses an unknown field with the validation error, at subscribe time', () => {
    expect(refusal({ query: `subscription { orderUpdates { id nope } }` })).toEqual([
      { message: 'Cannot query field "nope" on type "Order".', code: 'GRAPHQL_VALIDATION_FAILED' },
    ]);
  });

  it('refuses a syntax error, two root fields, a root fragment, a query and a missing variable', () => {
    expect(refusal({ query: `subscription { orderUpdates { id ` })[0]!.code).toBe('GRAPHQL_PARSE_FAILED');
    expect(refusal({ query: `subscription { orderUpdates { id } other: orderUpdates { id } }` })[0]).toEqual({
      message: 'Anonymous Subscription must select only one top level field.',
      code: 'GRAPHQL_VALIDATION_FAILED',
    });
    expect(
      refusal({ query: `subscription { ...Root } fragment Root on Subscription { orderUpdates { id } }` })[0]!.code,
    ).toBe('BAD_REQUEST');
    expect(refusal({ query: `{ order(id: "${ORDER_ID}") { id } }` })[0]).toEqual({
      message: 'only subscriptions are served over WebSockets; send a query over HTTP POST to /graphql',
      code: 'BAD_REQUEST',
    });
    expect(refusal({ query: `subscription ($id: ID!) { orderStatusChanged(orderId: $id) { id } }` })[0]!.code).toBe(
      'BAD_USER_INPUT',
    );
    expect(refusal({ query: '' })[0]!.code).toBe('BAD_REQUEST');
  });
});
