import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { composeSubgraphs } from '../compose/compose.js';
import { applyAllowList, classifyChanges } from './changes.js';
import { formatReport, runSchemaCheck } from './check.js';
import { conventionProblems } from './lint.js';

const BASE = `
  type Query { meal(id: ID!): Meal }
  "A dish." type Meal { id: ID! name: String! price: Int! allergens: [Allergen!]! }
  enum Allergen { MILK EGGS }
`;

/** The change each fixture makes to BASE, and how it must be classified. */
const fixtures: [string, string, string, string, string][] = [
  ['field removed', BASE.replace(' price: Int!', ''), 'FIELD_REMOVED', 'breaking', 'Meal.price'],
  ['field type changed', BASE.replace('price: Int!', 'price: String!'), 'FIELD_TYPE_CHANGED', 'breaking', 'Meal.price'],
  [
    'required argument added',
    BASE.replace('meal(id: ID!)', 'meal(id: ID!, locale: String!)'),
    'FIELD_ARGUMENT_ADDED',
    'breaking',
    'Query.meal.locale',
  ],
  [
    'optional argument added',
    BASE.replace('meal(id: ID!)', 'meal(id: ID!, locale: String)'),
    'FIELD_ARGUMENT_ADDED',
    'dangerous',
    'Query.meal.locale',
  ],
  ['enum value removed', BASE.replace(' EGGS', ''), 'ENUM_VALUE_REMOVED', 'breaking', 'Allergen.EGGS'],
  ['enum value added', BASE.replace('EGGS', 'EGGS SOY'), 'ENUM_VALUE_ADDED', 'dangerous', 'Allergen.SOY'],
  ['type added', `${BASE} "A menu section." type Category { id: ID! }`, 'TYPE_ADDED', 'safe', 'Category'],
  [
    'description changed',
    BASE.replace('"A dish."', '"A dish on the menu."'),
    'TYPE_DESCRIPTION_CHANGED',
    'safe',
    'Meal',
  ],
];

describe('classifyChanges', () => {
  it.each(fixtures)('%s', async (_name, changed, type, criticality, path) => {
    const changes = await classifyChanges(BASE, changed);
    expect(changes).toContainEqual(expect.objectContaining({ type, criticality, path }));
    // Anything else the fixture changes (a new type's fields, its description) is safe.
    expect(changes.filter((change) => change.type !== type).every((change) => change.criticality === 'safe')).toBe(
      true,
    );
  });

  it('finds no change between equal schemas', async () => {
    expect(await classifyChanges(BASE, BASE)).toEqual([]);
  });

  it('lets a breaking change through only with a listed reason, and reports entries that match nothing', async () => {
    const changes = await classifyChanges(BASE, BASE.replace(' price: Int!', ''));
    const unused = applyAllowList(changes, [
      { path: 'Meal.price', reason: 'no client reads price since app 3.2; see the deprecation of 2026-10' },
      { path: 'Meal.name', reason: 'an entry left over from an earlier change' },
    ]);
    expect(changes[0]!.allowedBecause).toContain('app 3.2');
    expect(unused.map((entry) => entry.path)).toEqual(['Meal.name']);
  });
});

// A two-subgraph supergraph for the whole check.
const link = 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.7", import: ["@key"])';
const mealsSdl = `${link}
"A dish on the menu."
type Meal @key(fields: "id") {
  "Identifier."
  id: ID!
  "Name shown on the menu."
  name: String!
  "Price in cents."
  price: Int!
}
type Query {
  "One meal."
  meal(id: ID!): Meal
}
`;
const ordersSdl = `${link}
"An order."
type Order @key(fields: "id") {
  "Identifier."
  id: ID!
  "What was ordered."
  meal: Meal!
}
"A dish on the menu."
type Meal @key(fields: "id", resolvable: false) {
  "Identifier."
  id: ID!
}
type Query {
  "One order."
  order(id: ID!): Order
}
`;

function operationsDirectory(files: Record<string, string>): string {
  const directory = mkdtempSync(join(tmpdir(), 'operations-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(directory, name), text);
  return directory;
}

const subgraphs = (meals: string) => [
  { name: 'meals', path: 'subgraphs/meals/schema.graphql', sdl: meals },
  { name: 'orders', path: 'subgraphs/orders/schema.graphql', sdl: ordersSdl },
];
const baseApiSchema = composeSubgraphs(subgraphs(mealsSdl)).apiSchemaSdl;
const operations = operationsDirectory({
  'menu.graphql': 'query MealPrice($id: ID!) { meal(id: $id) { ...Priced } } fragment Priced on Meal { price }',
  'orders.graphql': 'query OrderedMeal($id: ID!) { order(id: $id) { meal { name } } }',
});
const check = (meals: string) =>
  runSchemaCheck({
    subgraphs: subgraphs(meals),
    base: { source: 'base fixture', sdl: baseApiSchema },
    operationsDirectory: operations,
    allowList: [],
  });

describe('runSchemaCheck', () => {
  it('passes a pull request that adds a field', async () => {
    const report = await check(
      mealsSdl.replace('  price: Int!', '  price: Int!\n  "Calories per portion."\n  calories: Int'),
    );
    expect(report.ok).toBe(true);
    expect(report.changes).toContainEqual(
      expect.objectContaining({ type: 'FIELD_ADDED', criticality: 'safe', path: 'Meal.calories', operations: [] }),
    );
    expect(report.changes.every((change) => change.criticality === 'safe')).toBe(true);
    expect(report.operations.checked).toBe(2);
  });

  it('fails a pull request that removes a field an operation uses, naming the field and the operation', async () => {
    const report = await check(mealsSdl.replace('  "Price in cents."\n  price: Int!\n', ''));
    expect(report.ok).toBe(false);
    expect(report.changes).toEqual([
      expect.objectContaining({
        type: 'FIELD_REMOVED',
        criticality: 'breaking',
        path: 'Meal.price',
        operations: ['MealPrice'],
      }),
    ]);
    expect(report.operations.problems).toEqual([
      { operation: 'MealPrice', file: 'menu.graphql', message: 'Cannot query field "price" on type "Meal".' },
    ]);
    const text = formatReport(report);
    expect(text).toContain(
      "NOT ALLOWED  Meal.price  Field 'price' was removed from object type 'Meal'  (breaks operations: MealPrice)",
    );
    expect(text).toContain('schema check FAILED');
  });

  it('reports a composition failure with the subgraphs, the type and the field', async () => {
    // orders now defines Meal.name too, without @shareable: two subgraphs resolve the same field.
    const report = await runSchemaCheck({
      subgraphs: [
        { name: 'meals', path: 'meals.graphql', sdl: mealsSdl },
        {
          name: 'orders',
          path: 'orders.graphql',
          sdl: ordersSdl.replace('  id: ID!\n}\ntype Query', '  id: ID!\n  "Name."\n  name: String!\n}\ntype Query'),
        },
      ],
      operationsDirectory: operations,
      allowList: [],
    });
    expect(report.ok).toBe(false);
    expect(report.composition.errors).toEqual([
      expect.objectContaining({
        code: 'INVALID_FIELD_SHARING',
        message: expect.stringMatching(/"Meal\.name".*"meals" and "orders"/),
        locations: ['meals:7', 'orders:14'],
      }),
    ]);
  });
});

describe('schema conventions', () => {
  it('asks for a connection where a root list can grow, and input objects for mutation data', () => {
    const problems = conventionProblems(
      'x.graphql',
      `type Query { meals: [Meal!]! mealsByIds(ids: [ID!]!): [Meal]! tags: [String!]! }
       type Meal { id: ID! }
       input RenameInput { name: String! }
       type Mutation { rename(id: ID!, input: RenameInput!): Meal! retitle(id: ID!, name: String!): Meal! }`,
    );
    expect(problems.map((problem) => `${problem.rule} ${problem.message.split(':')[0]}`)).toEqual([
      'connection-for-growing-lists Query.meals returns a list that can grow',
      'mutation-input-objects Mutation.retitle(name',
    ]);
  });
});
