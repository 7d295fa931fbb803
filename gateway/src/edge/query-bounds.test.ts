import { describe, expect, it } from 'vitest';
import type { OperationDefinitionNode } from 'graphql';
import { buildSchema, getOperationAST, parse } from '../graphql-js.js';
import { documentTooLarge, exceededBound, measureOperation, type QueryBounds } from './query-bounds.js';

const schema = buildSchema(`
  type Query {
    meals(first: Int = 20, after: String): MealConnection!
    meal(id: ID!): Meal
    orders(last: Int): [Order!]!
  }
  type MealConnection { edges: [MealEdge!]! }
  type MealEdge { node: Meal! }
  type Meal { id: ID! name: String! category: Category! addons: [Addon!]! }
  type Category { name: String! meals(first: Int = 20): MealConnection! }
  type Addon { name: String! }
  type Order { id: ID! meal: Meal! }
`);

const measure = (query: string, variables: Record<string, unknown> = {}) => {
  const document = parse(query);
  return measureOperation(schema, document, getOperationAST(document) as OperationDefinitionNode, variables);
};

const bounds: QueryBounds = { maxDepth: 4, maxAliases: 2, maxRootFields: 2, maxCost: 41, maxDocumentBytes: 100 };

describe('measureOperation', () => {
  it('counts depth as nesting of fields, through fragments and inline fragments', () => {
    expect(measure('{ meal(id: 1) { id } }').depth).toBe(2);
    expect(
      measure('query { meal(id: 1) { ...M } } fragment M on Meal { category { ... on Category { name } } }').depth,
    ).toBe(3);
  });

  it('counts aliases everywhere and root fields at the top, expanded from fragments', () => {
    const measured = measure(
      '{ a: meal(id: 1) { n: name } b: meal(id: 2) { id } ...Q } fragment Q on Query { meal(id: 3) { id } }',
    );
    expect(measured.aliases).toBe(3);
    expect(measured.rootFields).toBe(3);
  });

  it('costs each object field once per item of the lists above it, sized by first/last', () => {
    // 1 (meals) + 20 x (edges + node + category) = 61, with the argument's default of 20.
    expect(measure('{ meals { edges { node { category { name } } } } }').cost).toBe(61);
    expect(measure('{ meals(first: 5) { edges { node { id } } } }').cost).toBe(1 + 5 * 2);
    expect(measure('query ($n: Int) { meals(first: $n) { edges { node { id } } } }', { n: 7 }).cost).toBe(1 + 7 * 2);
    expect(measure('{ orders(last: 3) { meal { id } } }').cost).toBe(1 + 3);
    // Nested pages multiply: 1 + 2 x (edges, node, category, meals) + 2 x 3 x (edges, node).
    expect(
      measure('{ meals(first: 2) { edges { node { category { meals(first: 3) { edges { node { id } } } } } } } }').cost,
    ).toBe(1 + 2 * 4 + 2 * 3 * 2);
  });

  it('leaves introspection and __typename out', () => {
    const measured = measure('{ __typename __schema { types { fields { type { ofType { ofType { name } } } } } } }');
    expect(measured).toEqual({ depth: 0, aliases: 0, rootFields: 0, cost: 0 });
  });
});

describe('exceededBound', () => {
  const check = (query: string, variables?: Record<string, unknown>) =>
    exceededBound(measure(query, variables), bounds)?.extensions;

  it('allows each bound at its maximum and refuses one more, naming the bound and the numbers', () => {
    expect(check('{ meals(first: 1) { edges { node { id } } } }')).toBeUndefined();
    expect(check('{ meals(first: 1) { edges { node { category { name } } } } }')).toEqual({
      code: 'QUERY_LIMIT_EXCEEDED',
      bound: 'maxDepth',
      max: 4,
      actual: 5,
    });

    expect(check('{ a: meal(id: 1) { id } b: meal(id: 2) { id } }')).toBeUndefined();
    expect(check('{ a: meal(id: 1) { x: id } b: meal(id: 2) { id } }')).toMatchObject({
      bound: 'maxAliases',
      max: 2,
      actual: 3,
    });

    expect(check('{ meal(id: 1) { id } orders { id } }')).toBeUndefined();
    expect(check('{ meal(id: 1) { id } orders { id } meals { edges { node { id } } } }')).toMatchObject({
      bound: 'maxRootFields',
      max: 2,
      actual: 3,
    });

    // cost 1 + 20 x 2 = 41 is the maximum; 21 per page is one over.
    expect(check('query ($n: Int) { meals(first: $n) { edges { node { id } } } }', { n: 20 })).toBeUndefined();
    expect(check('query ($n: Int) { meals(first: $n) { edges { node { id } } } }', { n: 21 })).toMatchObject({
      bound: 'maxCost',
      max: 41,
      actual: 43,
    });
  });

  it('measures the document in UTF-8 bytes', () => {
    expect(documentTooLarge('x'.repeat(100), bounds)).toBeUndefined();
    expect(documentTooLarge('x'.repeat(101), bounds)?.extensions).toMatchObject({
      bound: 'maxDocumentBytes',
      actual: 101,
    });
    // 50 two-byte characters are 100 bytes; one more is 102.
    expect(documentTooLarge('é'.repeat(50), bounds)).toBeUndefined();
    expect(documentTooLarge('é'.repeat(51), bounds)?.message).toBe(
      'Document size in bytes 102 exceeds the maximum of 100',
    );
  });
});
