import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ApolloGateway } from '@apollo/gateway';
import type { GraphQLSchema } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { supergraphPath } from '../compose/compose.js';
import { GraphQLError, parse, validate } from '../graphql-js.js';
import { planSubscription, shapeResult, type SubscribeRequest, type SubscriptionPlan } from './operation.js';

/** The API schema exactly as the gateway gets it: @apollo/gateway loading the committed supergraph. */
let schema: GraphQLSchema;
let gateway: ApolloGateway;
beforeAll(async () => {
  gateway = new ApolloGateway({ supergraphSdl: readFileSync(fileURLToPath(supergraphPath), 'utf8') });
  schema = (await gateway.load()).schema;
});
afterAll(async () => {
  await gateway?.stop();
});

const ORDER_ID = '5b4f4c52-2f0e-4a8e-9d7c-1f2a3b4c5d6e';

function plan(request: SubscribeRequest): SubscriptionPlan {
  const result = planSubscription(schema, request);
  if (Array.isArray(result)) throw new Error(result.map((error) => error.message).join('; '));
  return result;
}

function refusal(request: SubscribeRequest): { message: string; code: unknown }[] {
  const result = planSubscription(schema, request);
  if (!Array.isArray(result)) throw new Error('expected the subscription to be refused');
  for (const error of result) expect(error).toBeInstanceOf(GraphQLError);
  return result.map((error) => ({ message: error.message, code: error.extensions.code }));
}

describe('planSubscription: the query that resolves a subscription', () => {
  it('rewrites orderStatusChanged into order(id:) with the same variables, alias and fragments', () => {
    const p = plan({
      query: `
        subscription Track($id: ID!, $withItems: Boolean!) {
          watch: orderStatusChanged(orderId: $id) {
            id
            state: status
            ...Money
            ... on Order { v: version items @include(if: $withItems) { meal { name } } }
          }
        }
        fragment Money on Order { total { amount } status version }
        query Other { meals(first: 1) { edges { node { ...Unused } } } }
        fragment Unused on Meal { name }`,
      operationName: 'Track',
      variables: { id: ORDER_ID, withItems: true, extra: 'ignored' },
    });
    expect(p.field).toBe('orderStatusChanged');
    expect(p.responseKey).toBe('watch');
    expect(p.orderId).toBe(ORDER_ID);
    const query = parse(p.query);
    expect(validate(schema, query)).toEqual([]);
    expect(p.query).toContain('query Track($id: ID!, $withItems: Boolean!)');
    expect(p.query).toContain('watch: order(id: $id)');
    expect(p.query).toContain('fragment Money on Order');
    expect(p.query).not.toContain('Unused');
    expect(p.query).not.toMatch(/\bsubscription\b/);
    expect(p.query).toContain(`${p.hiddenStatusKey}: status`);
    expect(p.query).toContain(`${p.hiddenVersionKey}: version`);
    expect([...p.statusKeys].sort()).toEqual(['state', 'status']);
    expect([...p.versionKeys].sort()).toEqual(['v', 'version']);
    expect(p.variables(ORDER_ID)).toEqual({ id: ORDER_ID, withItems: true });
  });

  it('keeps a literal order id as it is', () => {
    const p = plan({ query: `subscription { orderStatusChanged(orderId: "${ORDER_ID}") { status } }` });
    expect(p.query).toContain(`orderStatusChanged: order(id: "${ORDER_ID}")`);
    expect(p.orderId).toBe(ORDER_ID);
    expect(p.variables(ORDER_ID)).toEqual({});
  });

  it('gives orderUpdates a generated order id variable that collides with nothing', () => {
    const p = plan({
      query: `subscription ($subscriptionOrderId: Boolean!) {
        orderUpdates { id subscriptionStatus: id customer @include(if: $subscriptionOrderId) { name } }
      }`,
      variables: { subscriptionOrderId: true },
    });
    expect(p.field).toBe('orderUpdates');
    expect(p.orderId).toBeUndefined();
    expect(p.query).toContain('$subscriptionOrderId2: ID!');
    expect(p.query).toContain('orderUpdates: order(id: $subscriptionOrderId2)');
    expect(p.hiddenStatusKey).toBe('subscriptionStatus2');
    expect(validate(schema, parse(p.query))).toEqual([]);
    expect(p.variables(ORDER_ID)).toEqual({ subscriptionOrderId: true, subscriptionOrderId2: ORDER_ID });
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

describe('shapeResult: what a subscriber gets', () => {
  const p = () =>
    plan({
      query: `subscription { o: orderStatusChanged(orderId: "${ORDER_ID}") {
        state: status status version ...F customer { name } } }
        fragment F on Order { again: version }`,
    });

  it('puts the change status and version at every key they were selected at, and hides its own keys', () => {
    const shaped = p();
    const result = shapeResult(
      shaped,
      {
        data: {
          o: {
            state: 'PAID',
            status: 'PAID',
            version: 2,
            again: 2,
            customer: { name: 'Ada' },
            [shaped.hiddenStatusKey]: 'PREPARING',
            [shaped.hiddenVersionKey]: 4,
          },
        },
      },
      { status: 'ACCEPTED', version: 3 },
    );
    expect(result).toEqual({
      result: {
        data: { o: { state: 'ACCEPTED', status: 'ACCEPTED', version: 3, again: 3, customer: { name: 'Ada' } } },
      },
      status: 'PREPARING',
      version: 4,
    });
  });

  it('answers data null with the errors when the order did not resolve', () => {
    const errors = [{ message: 'Order x was not found', extensions: { code: 'NOT_FOUND' } }];
    expect(shapeResult(p(), { data: null, errors })).toEqual({
      result: { data: null, errors },
      status: null,
      version: null,
    });
  });
});
