import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ApolloServer } from '@apollo/server';
import { PrismaPg } from '@prisma/adapter-pg';
import { DomainError, InternalTokens, newEvent, parseEvent, type Caller } from '@food/platform';
import { errorCodes, execute, startTestSubgraphServer, testSecrets } from '@food/platform/testing';
import { createTestDatabaseClient, withPostgres, type TestDatabaseClient } from '@food/prisma/testing';
import { loadMealsConfig, type MealsConfig } from './config.js';
import { createContext, type SubgraphContext } from './context.js';
import { MealsService, type Meal } from './domain/meals.js';
import { PrismaMealsStore } from './data/meals-store.js';
import { PrismaClient } from './data/generated/prisma/client.js';
import { mealsTypeDefs, startMealsSubgraph } from './app.js';
import { resolvers } from './resolvers/index.js';
import { demoMenu, seedMeals } from './seed.js';

let database: TestDatabaseClient<PrismaClient<'query'>>;
let prisma: PrismaClient<'query'>;
let sqlQueries: string[];
let config: MealsConfig;
let meals: MealsService;
let server: ApolloServer<SubgraphContext>;

beforeAll(async () => {
  database = await createTestDatabaseClient('meals', PrismaClient, PrismaPg);
  ({ prisma, sqlQueries } = database);
  config = loadMealsConfig({ ...testSecrets, MEALS_DATABASE_URL: database.url, LOG_LEVEL: 'silent' });
  meals = new MealsService(new PrismaMealsStore(prisma), { currency: config.MEALS_CURRENCY });
  server = await startTestSubgraphServer<SubgraphContext>({ typeDefs: mealsTypeDefs, resolvers });
});

afterAll(async () => {
  await server?.stop();
  await database?.close();
});

const run = (caller: Caller, query: string, variables?: Record<string, unknown>) =>
  execute<Record<string, any>, SubgraphContext>(server, createContext(caller, meals), query, variables);

const anonymous: Caller = { kind: 'anonymous' };
const customer: Caller = { kind: 'user', userId: '00000000-0000-4000-8000-000000000001', role: 'CUSTOMER' };
const staff: Caller = { kind: 'user', userId: '00000000-0000-4000-8000-000000000002', role: 'STAFF' };
const ordersService: Caller = { kind: 'service', service: 'orders' };
const UNKNOWN_ID = '99999999-9999-4999-8999-999999999999';

/** Queries the log shows against one table. */
const queriesOn = (table: string) => sqlQueries.filter((sql) => new RegExp(`FROM "public"\\."${table}"`).test(sql));

const CREATE_CATEGORY = `mutation ($input: CreateCategoryInput!) { createCategory(input: $input) { id name description } }`;
const CREATE_MEAL = `mutation ($input: CreateMealInput!) { createMeal(input: $input) {
  id name description available price { amount currency } category { id name } components { name allergens } allergens } }`;
const UPDATE_MEAL = `mutation ($id: ID!, $input: UpdateMealInput!) { updateMeal(id: $id, input: $input) {
  id name description available price { amount currency } category { id } } }`;
const CREATE_ADDON = `mutation ($input: CreateMealAddonInput!) { createMealAddon(input: $input) {
  id name maxQuantity available price { amount currency } } }`;
const UPDATE_ADDON = `mutation ($id: ID!, $input: UpdateMealAddonInput!) { updateMealAddon(id: $id, input: $input) {
  id name maxQuantity available price { amount currency } } }`;
const MEALS = `query ($first: Int, $after: String, $filter: MealFilter) {
  meals(first: $first, after: $after, filter: $filter) { edges { cursor node { id name } } pageInfo { hasNextPage endCursor } } }`;

const counts = async () => ({
  categories: await prisma.category.count(),
  meals: await prisma.meal.count(),
  components: await prisma.mealComponent.count(),
  addons: await prisma.mealAddon.count(),
});

const ids: Record<string, string> = {};
const names = (result: { data: Record<string, any> | null | undefined }) =>
  result.data!.meals.edges.map((edge: { node: { name: string } }) => edge.node.name);

describe('meals subgraph', () => {
  describe('categories', () => {
    it('lets only staff create a category', async () => {
      const input = { name: 'Pizzas', description: 'Stone-baked' };
      expect(errorCodes(await run(anonymous, CREATE_CATEGORY, { input }))).toEqual(['UNAUTHENTICATED']);
      expect(errorCodes(await run(customer, CREATE_CATEGORY, { input }))).toEqual(['FORBIDDEN']);
      expect(await prisma.category.count()).toBe(0);
      const created = await run(staff, CREATE_CATEGORY, { input: { name: '  Pizzas ', description: 'Stone-baked' } });
      expect(created.errors).toBeUndefined();
      expect(created.data!.createCategory).toMatchObject({ name: 'Pizzas', description: 'Stone-baked' });
      ids.pizzas = created.data!.createCategory.id;
      const bowls = await run(staff, CREATE_CATEGORY, { input: { name: 'Bowls' } });
      expect(bowls.data!.createCategory.description).toBe('');
      ids.bowls = bowls.data!.createCategory.id;
    });

    it('refuses a duplicate name with CONFLICT and bad input with BAD_USER_INPUT, writing nothing', async () => {
      expect(errorCodes(await run(staff, CREATE_CATEGORY, { input: { name: 'Pizzas' } }))).toEqual(['CONFLICT']);
      expect(errorCodes(await run(staff, CREATE_CATEGORY, { input: { name: '   ' } }))).toEqual(['BAD_USER_INPUT']);
      const long = await run(staff, CREATE_CATEGORY, { input: { name: 'x'.repeat(101) } });
      expect(errorCodes(long)).toEqual(['BAD_USER_INPUT']);
      expect(long.errors![0]!.extensions!.field).toBe('name');
      const description = await run(staff, CREATE_CATEGORY, {
        input: { name: 'Soups', description: 'x'.repeat(1001) },
      });
      expect(errorCodes(description)).toEqual(['BAD_USER_INPUT']);
      expect(await prisma.category.count()).toBe(2);
    });

    it('lists categories in menu order: creation order, then name', async () => {
      const result = await run(anonymous, `{ categories { name } }`);
      expect(result.data!.categories).toEqual([{ name: 'Pizzas' }, { name: 'Bowls' }]);
      // Same sort order: the name decides.
      await prisma.category.create({ data: { name: 'Antipasti', sortOrder: 2 } });
      const again = await run(anonymous, `{ categories { name } }`);
      expect(again.data!.categories.map((c: { name: string }) => c.name)).toEqual(['Pizzas', 'Antipasti', 'Bowls']);
    });
  });

  describe('creating meals', () => {
    const margherita = () => ({
      categoryId: ids.pizzas,
      name: 'Margherita',
      description: 'Tomato and mozzarella',
      priceAmount: 950,
      components: [
        { name: 'Dough', allergens: ['GLUTEN'] },
        { name: 'Mozzarella', allergens: ['MILK'] },
      ],
    });

    it('lets only staff create a meal', async () => {
      expect(errorCodes(await run(anonymous, CREATE_MEAL, { input: margherita() }))).toEqual(['UNAUTHENTICATED']);
      expect(errorCodes(await run(customer, CREATE_MEAL, { input: margherita() }))).toEqual(['FORBIDDEN']);
      expect(await prisma.meal.count()).toBe(0);
    });

    it('creates a meal with its components, priced in the menu currency', async () => {
      const result = await run(staff, CREATE_MEAL, { input: margherita() });
      expect(result.errors).toBeUndefined();
      expect(result.data!.createMeal).toMatchObject({
        name: 'Margherita',
        available: true,
        price: { amount: 950, currency: 'EUR' },
        category: { id: ids.pizzas, name: 'Pizzas' },
        components: [
          { name: 'Dough', allergens: ['GLUTEN'] },
          { name: 'Mozzarella', allergens: ['MILK'] },
        ],
        allergens: ['GLUTEN', 'MILK'],
      });
      ids.margherita = result.data!.createMeal.id;
      expect(await prisma.mealComponent.count({ where: { mealId: ids.margherita } })).toBe(2);
    });

    it.each([
      ['an empty name', { name: '  ' }, 'name'],
      ['a name over 100 characters', { name: 'x'.repeat(101) }, 'name'],
      ['a description over 1000 characters', { description: 'x'.repeat(1001) }, 'description'],
      ['a negative price', { priceAmount: -1 }, 'priceAmount'],
      ['a price over 1,000,000', { priceAmount: 1_000_001 }, 'priceAmount'],
      ['a category id that is no UUID', { categoryId: 'pizzas' }, 'categoryId'],
      [
        'a component without a name',
        { components: [{ name: 'Ok', allergens: [] }, { name: '' }] },
        'components.1.name',
      ],
    ])('refuses %s with BAD_USER_INPUT and writes nothing', async (_label, change, field) => {
      const before = await counts();
      const result = await run(staff, CREATE_MEAL, { input: { ...margherita(), name: 'Invalid', ...change } });
      expect(errorCodes(result)).toEqual(['BAD_USER_INPUT']);
      expect(result.errors![0]!.extensions!.field).toBe(field);
      expect(await counts()).toEqual(before);
    });

    it('refuses an unknown category with NOT_FOUND and writes nothing', async () => {
      const before = await counts();
      const result = await run(staff, CREATE_MEAL, { input: { ...margherita(), categoryId: UNKNOWN_ID } });
      expect(errorCodes(result)).toEqual(['NOT_FOUND']);
      expect(await counts()).toEqual(before);
    });

    it('creates the rest of the test menu', async () => {
      const menu = [
        {
          key: 'diavola',
          categoryId: ids.pizzas,
          name: 'Diavola',
          description: 'Spicy salami',
          priceAmount: 1150,
          components: [
            { name: 'Dough', allergens: ['GLUTEN'] },
            { name: 'Salami', allergens: ['SULPHITES', 'MUSTARD', 'MILK'] },
            { name: 'Mozzarella', allergens: ['MILK'] },
          ],
        },
        { key: 'funghi', categoryId: ids.pizzas, name: 'Funghi', priceAmount: 1050, available: false },
        {
          key: 'poke',
          categoryId: ids.bowls,
          name: 'Poke',
          description: 'Raw SALMON on 100% organic rice',
          priceAmount: 1390,
        },
        { key: 'falafel', categoryId: ids.bowls, name: 'Falafel Bowl', description: 'Chickpeas', priceAmount: 1090 },
        { key: 'twinA', categoryId: ids.bowls, name: 'Twin', priceAmount: 500 },
        { key: 'twinB', categoryId: ids.bowls, name: 'Twin', priceAmount: 600 },
      ];
      for (const { key, ...input } of menu) {
        const result = await run(staff, CREATE_MEAL, { input });
        expect(result.errors).toBeUndefined();
        ids[key] = result.data!.createMeal.id;
      }
      expect(await prisma.meal.count()).toBe(7);
    });
  });

  describe('listing meals', () => {
    const expectedOrder = async () =>
      (await prisma.meal.findMany({ orderBy: [{ name: 'asc' }, { id: 'asc' }], select: { id: true } })).map(
        (m) => m.id,
      );

    it('pages through every meal by name then id, without duplicates', async () => {
      const seen: string[] = [];
      const pages: boolean[] = [];
      let after: string | null = null;
      for (let page = 0; page < 5; page += 1) {
        const result = await run(anonymous, MEALS, { first: 3, after });
        expect(result.errors).toBeUndefined();
        const connection = result.data!.meals;
        seen.push(...connection.edges.map((edge: { node: { id: string } }) => edge.node.id));
        pages.push(connection.pageInfo.hasNextPage);
        expect(connection.pageInfo.endCursor).toBe(connection.edges.at(-1).cursor);
        if (!connection.pageInfo.hasNextPage) break;
        after = connection.pageInfo.endCursor;
      }
      expect(pages).toEqual([true, true, false]);
      expect(new Set(seen).size).toBe(seen.length);
      expect(seen).toEqual(await expectedOrder());
      // The two meals named Twin straddle no gap: the id breaks the tie.
      expect(seen.filter((id) => id === ids.twinA || id === ids.twinB)).toHaveLength(2);
    });

    it('gives an empty last page with a null end cursor', async () => {
      const all = await run(anonymous, MEALS, { first: 100 });
      const last = all.data!.meals.pageInfo.endCursor;
      expect(all.data!.meals.pageInfo.hasNextPage).toBe(false);
      const after = await run(anonymous, MEALS, { first: 5, after: last });
      expect(after.data!.meals).toEqual({ edges: [], pageInfo: { hasNextPage: false, endCursor: null } });
    });

    it('defaults to 20 meals a page', async () => {
      const result = await run(anonymous, `{ meals { edges { node { id } } } }`);
      expect(result.data!.meals.edges).toHaveLength(7);
    });

    it.each([0, -1, 101])('refuses first: %i with BAD_USER_INPUT', async (first) => {
      const result = await run(anonymous, MEALS, { first });
      expect(errorCodes(result)).toEqual(['BAD_USER_INPUT']);
    });

    it('refuses a cursor it did not issue with BAD_USER_INPUT', async () => {
      expect(errorCodes(await run(anonymous, MEALS, { after: 'not-a-cursor' }))).toEqual(['BAD_USER_INPUT']);
      const unknown = Buffer.from(UNKNOWN_ID).toString('base64url');
      expect(errorCodes(await run(anonymous, MEALS, { after: unknown }))).toEqual(['BAD_USER_INPUT']);
    });

    it('filters by category, availability and both', async () => {
      const pizzas = await run(anonymous, MEALS, { filter: { categoryId: ids.pizzas } });
      expect(names(pizzas)).toEqual(['Diavola', 'Funghi', 'Margherita']);
      const unavailable = await run(anonymous, MEALS, { filter: { available: false } });
      expect(names(unavailable)).toEqual(['Funghi']);
      const availablePizzas = await run(anonymous, MEALS, { filter: { categoryId: ids.pizzas, available: true } });
      expect(names(availablePizzas)).toEqual(['Diavola', 'Margherita']);
      const empty = await run(anonymous, MEALS, { filter: { categoryId: UNKNOWN_ID } });
      expect(names(empty)).toEqual([]);
    });

    it('refuses a category filter that is no UUID', async () => {
      const result = await run(anonymous, MEALS, { filter: { categoryId: 'pizzas' } });
      expect(errorCodes(result)).toEqual(['BAD_USER_INPUT']);
      expect(result.errors![0]!.extensions!.field).toBe('categoryId');
    });

    it('searches name and description, case-insensitively, trimmed, with wildcards taken literally', async () => {
      expect(names(await run(anonymous, MEALS, { filter: { search: '  salmon ' } }))).toEqual(['Poke']);
      expect(names(await run(anonymous, MEALS, { filter: { search: 'MARGH' } }))).toEqual(['Margherita']);
      expect(names(await run(anonymous, MEALS, { filter: { search: 'a' } }))).toEqual([
        'Diavola',
        'Falafel Bowl',
        'Margherita',
        'Poke',
      ]);
      expect(names(await run(anonymous, MEALS, { filter: { search: '100%' } }))).toEqual(['Poke']);
      expect(names(await run(anonymous, MEALS, { filter: { search: '%' } }))).toEqual(['Poke']);
      expect(names(await run(anonymous, MEALS, { filter: { search: '_' } }))).toEqual([]);
      expect(
        names(await run(anonymous, MEALS, { filter: { search: 'a', available: true, categoryId: ids.bowls } })),
      ).toEqual(['Falafel Bowl', 'Poke']);
    });

    it('refuses a search over 100 characters', async () => {
      const result = await run(anonymous, MEALS, { filter: { search: 'x'.repeat(101) } });
      expect(errorCodes(result)).toEqual(['BAD_USER_INPUT']);
      expect(result.errors![0]!.extensions!.field).toBe('search');
      const padded = await run(anonymous, MEALS, { filter: { search: ` ${'x'.repeat(100)} ` } });
      expect(padded.errors).toBeUndefined();
    });

    it('pages the meals of one category', async () => {
      const query = `query ($id: ID!, $after: String) { _entities(representations: [{ __typename: "Category", id: $id }]) {
        ... on Category { name meals(first: 2, after: $after) { edges { node { name } } pageInfo { hasNextPage endCursor } } } } }`;
      const first = await run(anonymous, query, { id: ids.pizzas });
      const page1 = first.data!._entities[0].meals;
      expect(page1.edges.map((e: { node: { name: string } }) => e.node.name)).toEqual(['Diavola', 'Funghi']);
      expect(page1.pageInfo.hasNextPage).toBe(true);
      const second = await run(anonymous, query, { id: ids.pizzas, after: page1.pageInfo.endCursor });
      const page2 = second.data!._entities[0].meals;
      expect(page2.edges.map((e: { node: { name: string } }) => e.node.name)).toEqual(['Margherita']);
      expect(page2.pageInfo.hasNextPage).toBe(false);
    });
  });

  describe('looking meals up', () => {
    it('finds one meal, null for an unknown id, BAD_USER_INPUT for a malformed one', async () => {
      const query = `query ($id: ID!) { meal(id: $id) { name price { amount } } }`;
      expect((await run(anonymous, query, { id: ids.poke })).data!.meal).toEqual({
        name: 'Poke',
        price: { amount: 1390 },
      });
      const unknown = await run(anonymous, query, { id: UNKNOWN_ID });
      expect(unknown.errors).toBeUndefined();
      expect(unknown.data!.meal).toBeNull();
      expect(errorCodes(await run(anonymous, query, { id: 'poke' }))).toEqual(['BAD_USER_INPUT']);
    });

    it('returns mealsByIds in the order asked, null where unknown, with one query', async () => {
      const asked = [ids.poke, UNKNOWN_ID, ids.margherita, ids.diavola, ids.poke];
      sqlQueries.length = 0;
      const result = await run(ordersService, `query ($ids: [ID!]!) { mealsByIds(ids: $ids) { id name } }`, {
        ids: asked,
      });
      expect(result.errors).toBeUndefined();
      expect(result.data!.mealsByIds.map((meal: { id: string } | null) => meal?.id ?? null)).toEqual([
        ids.poke,
        null,
        ids.margherita,
        ids.diavola,
        ids.poke,
      ]);
      expect(queriesOn('meals')).toHaveLength(1);
    });

    it('refuses more than 100 ids, or a malformed one', async () => {
      const query = `query ($ids: [ID!]!) { mealsByIds(ids: $ids) { id } }`;
      const tooMany = await run(ordersService, query, { ids: Array.from({ length: 101 }, () => ids.poke) });
      expect(errorCodes(tooMany)).toEqual(['BAD_USER_INPUT']);
      const hundred = await run(ordersService, query, { ids: Array.from({ length: 100 }, () => ids.poke) });
      expect(hundred.data!.mealsByIds).toHaveLength(100);
      const malformed = await run(ordersService, query, { ids: [ids.poke, 'nope'] });
      expect(errorCodes(malformed)).toEqual(['BAD_USER_INPUT']);
      expect(malformed.errors![0]!.extensions!.field).toBe('1');
    });

    it('resolves N Meal and Category references with one query each', async () => {
      const mealIds = [ids.twinB, ids.poke, UNKNOWN_ID, ids.margherita, ids.funghi];
      sqlQueries.length = 0;
      const result = await run(
        anonymous,
        `query ($reps: [_Any!]!) { _entities(representations: $reps) { ... on Meal { id name } ... on Category { id name } } }`,
        {
          reps: [
            ...mealIds.map((id) => ({ __typename: 'Meal', id })),
            { __typename: 'Category', id: ids.bowls },
            { __typename: 'Category', id: ids.pizzas },
          ],
        },
      );
      expect(result.errors).toBeUndefined();
      expect(result.data!._entities.map((e: { id: string } | null) => e?.id ?? null)).toEqual([
        ids.twinB,
        ids.poke,
        null,
        ids.margherita,
        ids.funghi,
        ids.bowls,
        ids.pizzas,
      ]);
      expect(queriesOn('meals')).toHaveLength(1);
      expect(queriesOn('categories')).toHaveLength(1);
    });
  });

  describe('add-ons', () => {
    const extraCheese = () => ({ mealId: ids.margherita, name: 'Extra mozzarella', priceAmount: 150, maxQuantity: 3 });

    it('lets only staff add an add-on', async () => {
      expect(errorCodes(await run(anonymous, CREATE_ADDON, { input: extraCheese() }))).toEqual(['UNAUTHENTICATED']);
      expect(errorCodes(await run(customer, CREATE_ADDON, { input: extraCheese() }))).toEqual(['FORBIDDEN']);
      expect(await prisma.mealAddon.count()).toBe(0);
      const created = await run(staff, CREATE_ADDON, { input: extraCheese() });
      expect(created.errors).toBeUndefined();
      expect(created.data!.createMealAddon).toMatchObject({
        name: 'Extra mozzarella',
        maxQuantity: 3,
        available: true,
        price: { amount: 150, currency: 'EUR' },
      });
      ids.extraCheese = created.data!.createMealAddon.id;
      for (const [mealId, name] of [
        [ids.diavola, 'Chilli oil'],
        [ids.poke, 'Avocado'],
        [ids.margherita, 'Basil'],
      ] as const) {
        const more = await run(staff, CREATE_ADDON, { input: { mealId, name, priceAmount: 100, maxQuantity: 2 } });
        expect(more.errors).toBeUndefined();
      }
    });

    it.each([
      ['a maximum quantity of 0', { maxQuantity: 0 }, 'maxQuantity'],
      ['a maximum quantity over 20', { maxQuantity: 21 }, 'maxQuantity'],
      ['a price over 100,000', { priceAmount: 100_001 }, 'priceAmount'],
      ['a negative price', { priceAmount: -5 }, 'priceAmount'],
      ['an empty name', { name: '' }, 'name'],
      ['a meal id that is no UUID', { mealId: 'margherita' }, 'mealId'],
    ])('refuses %s with BAD_USER_INPUT and writes nothing', async (_label, change, field) => {
      const result = await run(staff, CREATE_ADDON, { input: { ...extraCheese(), ...change } });
      expect(errorCodes(result)).toEqual(['BAD_USER_INPUT']);
      expect(result.errors![0]!.extensions!.field).toBe(field);
      expect(await prisma.mealAddon.count()).toBe(4);
    });

    it('refuses an add-on for an unknown meal with NOT_FOUND', async () => {
      const result = await run(staff, CREATE_ADDON, { input: { ...extraCheese(), mealId: UNKNOWN_ID } });
      expect(errorCodes(result)).toEqual(['NOT_FOUND']);
      expect(await prisma.mealAddon.count()).toBe(4);
    });

    it('updates an add-on, and still lists it when unavailable (orders prices with all of them)', async () => {
      const input = { available: false, priceAmount: 175, name: null };
      expect(errorCodes(await run(customer, UPDATE_ADDON, { id: ids.extraCheese, input }))).toEqual(['FORBIDDEN']);
      expect(errorCodes(await run(staff, UPDATE_ADDON, { id: UNKNOWN_ID, input }))).toEqual(['NOT_FOUND']);
      const invalid = await run(staff, UPDATE_ADDON, { id: ids.extraCheese, input: { maxQuantity: 21 } });
      expect(errorCodes(invalid)).toEqual(['BAD_USER_INPUT']);
      expect(await prisma.mealAddon.findUnique({ where: { id: ids.extraCheese } })).toMatchObject({
        maxQuantity: 3,
        priceAmount: 150,
        available: true,
      });
      const updated = await run(staff, UPDATE_ADDON, { id: ids.extraCheese, input });
      expect(updated.data!.updateMealAddon).toEqual({
        id: ids.extraCheese,
        name: 'Extra mozzarella',
        maxQuantity: 3,
        available: false,
        price: { amount: 175, currency: 'EUR' },
      });
      const read = await run(
        ordersService,
        `query ($ids: [ID!]!) { mealsByIds(ids: $ids) { addons { id available } } }`,
        {
          ids: [ids.margherita],
        },
      );
      expect(read.data!.mealsByIds[0].addons).toEqual(
        expect.arrayContaining([{ id: ids.extraCheese, available: false }]),
      );
      expect(read.data!.mealsByIds[0].addons).toHaveLength(2);
    });

    it("prices an add-on in its meal's currency", async () => {
      await prisma.meal.update({ where: { id: ids.poke }, data: { currency: 'GBP' } });
      const result = await run(
        anonymous,
        `query ($id: ID!) { meal(id: $id) { price { currency } addons { price { currency } } } }`,
        {
          id: ids.poke,
        },
      );
      expect(result.data!.meal).toEqual({ price: { currency: 'GBP' }, addons: [{ price: { currency: 'GBP' } }] });
      await prisma.meal.update({ where: { id: ids.poke }, data: { currency: 'EUR' } });
    });
  });

  describe('a page of meals with everything', () => {
    it('loads categories, add-ons and components with one query each, however many meals', async () => {
      sqlQueries.length = 0;
      const result = await run(
        anonymous,
        `{ meals(first: 100) { edges { node { name category { name } addons { name } components { name } allergens } } } }`,
      );
      expect(result.errors).toBeUndefined();
      expect(result.data!.meals.edges).toHaveLength(7);
      expect(queriesOn('meals')).toHaveLength(1);
      expect(queriesOn('categories')).toHaveLength(1);
      expect(queriesOn('meal_addons')).toHaveLength(1);
      expect(queriesOn('meal_components')).toHaveLength(1);
    });

    it('gives allergens as the sorted, distinct union of the components', async () => {
      const result = await run(anonymous, `query ($id: ID!) { meal(id: $id) { allergens components { name } } }`, {
        id: ids.diavola,
      });
      expect(result.data!.meal.allergens).toEqual(['GLUTEN', 'MILK', 'MUSTARD', 'SULPHITES']);
      expect(result.data!.meal.components).toHaveLength(3);
      const none = await run(anonymous, `query ($id: ID!) { meal(id: $id) { allergens components { name } } }`, {
        id: ids.funghi,
      });
      expect(none.data!.meal).toEqual({ allergens: [], components: [] });
    });
  });

  describe('updating meals', () => {
    it('lets only staff change a meal', async () => {
      const input = { priceAmount: 999 };
      expect(errorCodes(await run(anonymous, UPDATE_MEAL, { id: ids.margherita, input }))).toEqual(['UNAUTHENTICATED']);
      expect(errorCodes(await run(customer, UPDATE_MEAL, { id: ids.margherita, input }))).toEqual(['FORBIDDEN']);
      expect((await prisma.meal.findUnique({ where: { id: ids.margherita } }))!.priceAmount).toBe(950);
    });

    it('changes only the fields given', async () => {
      const result = await run(staff, UPDATE_MEAL, {
        id: ids.funghi,
        input: { available: true, priceAmount: 1100, name: null, categoryId: ids.bowls },
      });
      expect(result.errors).toBeUndefined();
      expect(result.data!.updateMeal).toEqual({
        id: ids.funghi,
        name: 'Funghi',
        description: '',
        available: true,
        price: { amount: 1100, currency: 'EUR' },
        category: { id: ids.bowls },
      });
    });

    it.each([
      ['an unknown meal', () => ({ id: UNKNOWN_ID, input: { priceAmount: 1 } }), 'NOT_FOUND'],
      ['an unknown category', () => ({ id: ids.funghi, input: { categoryId: UNKNOWN_ID } }), 'NOT_FOUND'],
      ['a malformed meal id', () => ({ id: 'funghi', input: { priceAmount: 1 } }), 'BAD_USER_INPUT'],
      ['a price over 1,000,000', () => ({ id: ids.funghi, input: { priceAmount: 1_000_001 } }), 'BAD_USER_INPUT'],
      ['an empty name', () => ({ id: ids.funghi, input: { name: ' ', priceAmount: 1 } }), 'BAD_USER_INPUT'],
    ])('refuses %s and changes nothing', async (_label, variables, code) => {
      const before = await prisma.meal.findMany({ orderBy: { id: 'asc' } });
      expect(errorCodes(await run(staff, UPDATE_MEAL, variables()))).toEqual([code]);
      expect(await prisma.meal.findMany({ orderBy: { id: 'asc' } })).toEqual(before);
    });
  });

  describe('availability and price events', () => {
    let margherita = '';
    let diavola = '';
    let falafel = '';
    beforeAll(() => {
      [margherita, diavola, falafel] = [ids.margherita!, ids.diavola!, ids.falafel!];
    });
    /** The outbox, as the relay will publish it, for one meal: each event's stream and data. */
    const eventsOf = async (mealId: string) =>
      (await prisma.outboxEvent.findMany({ where: { aggregateId: mealId }, orderBy: { sequence: 'asc' } })).map(
        (row) => {
          const event = parseEvent(row.payload);
          expect(event).toMatchObject({ id: row.id, type: row.type, aggregateId: mealId });
          return { stream: row.stream, type: event.type, data: event.data };
        },
      );
    const mealRow = (id: string) => prisma.meal.findUniqueOrThrow({ where: { id } });
    const update = async (id: string, input: Record<string, unknown>) => {
      const result = await run(staff, UPDATE_MEAL, { id, input });
      expect(result.errors).toBeUndefined();
      return result.data!.updateMeal;
    };
    const changed = (mealId: string, available: boolean, amount: number, version: number) => ({
      stream: 'meals',
      type: 'meal.availability_changed',
      data: { mealId, available, price: { amount, currency: 'EUR' }, version },
    });

    it("writes one event per change of a meal's availability or price, with both as they now are", async () => {
      const before = await mealRow(margherita);
      expect(before).toMatchObject({ available: true, priceAmount: 950 });
      expect(await eventsOf(margherita)).toEqual([]);
      const v = before.version;

      await update(margherita, { available: false });
      await update(margherita, { priceAmount: 990 });
      expect(await update(margherita, { available: true, priceAmount: 1000, name: 'Margherita' })).toMatchObject({
        available: true,
        price: { amount: 1000, currency: 'EUR' },
      });
      expect(await eventsOf(margherita)).toEqual([
        changed(margherita, false, 950, v + 1),
        changed(margherita, false, 990, v + 2),
        changed(margherita, true, 1000, v + 3),
      ]);
      // The event's version is the one the change gave the meal.
      expect((await mealRow(margherita)).version).toBe(v + 3);
    });

    it('writes none when availability and price stay as they are, though the meal changes', async () => {
      const before = await mealRow(margherita);
      const events = await eventsOf(margherita);
      await update(margherita, { available: before.available, priceAmount: before.priceAmount });
      await update(margherita, { name: 'Margherita Classica', description: 'Tomato, mozzarella, basil' });
      await update(margherita, { categoryId: ids.bowls, available: null, priceAmount: null });
      await update(margherita, { categoryId: ids.pizzas, name: 'Margherita' });
      expect(await eventsOf(margherita)).toEqual(events);
      expect(await mealRow(margherita)).toMatchObject({
        available: before.available,
        priceAmount: before.priceAmount,
        version: before.version + 4,
      });
    });

    it('writes none for an update that is refused', async () => {
      const count = await prisma.outboxEvent.count();
      const refused = [
        await run(customer, UPDATE_MEAL, { id: diavola, input: { available: false } }),
        await run(staff, UPDATE_MEAL, { id: diavola, input: { available: false, categoryId: UNKNOWN_ID } }),
        await run(staff, UPDATE_MEAL, { id: diavola, input: { priceAmount: 1_000_001 } }),
        await run(staff, UPDATE_MEAL, { id: UNKNOWN_ID, input: { available: false } }),
      ];
      expect(refused.map(errorCodes)).toEqual([['FORBIDDEN'], ['NOT_FOUND'], ['BAD_USER_INPUT'], ['NOT_FOUND']]);
      expect(await prisma.outboxEvent.count()).toBe(count);
      expect(await mealRow(diavola)).toMatchObject({ available: true, priceAmount: 1150 });
    });

    it('writes the change and its event in one transaction: neither is seen without the other', async () => {
      const before = await mealRow(falafel);
      // The change's commit waits for a lock the test holds, so the test can look while it waits.
      await prisma.$executeRawUnsafe(
        `CREATE FUNCTION wait_for_test() RETURNS trigger LANGUAGE plpgsql
           AS $$ BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NULL; END $$`,
      );
      await prisma.$executeRawUnsafe(
        `CREATE CONSTRAINT TRIGGER wait_for_test AFTER UPDATE ON meals DEFERRABLE INITIALLY DEFERRED
           FOR EACH ROW EXECUTE FUNCTION wait_for_test()`,
      );
      try {
        await withPostgres(database.url, async (observer) => {
          await observer.query('SELECT pg_advisory_lock(4242)');
          const updating = run(staff, UPDATE_MEAL, { id: falafel, input: { available: false } });
          await vi.waitFor(async () => {
            const waiting = await observer.query(
              `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
            );
            expect(waiting.rows).toHaveLength(1);
          });
          const seen = await observer.query(
            `SELECT (SELECT available FROM meals WHERE id = $1) AS available,
                    (SELECT count(*)::int FROM outbox_events WHERE aggregate_id = $1) AS events`,
            [falafel],
          );
          expect(seen.rows).toEqual([{ available: true, events: 0 }]);
          await observer.query('SELECT pg_advisory_unlock(4242)');
          expect((await updating).errors).toBeUndefined();
        });
      } finally {
        await prisma.$executeRawUnsafe('DROP TRIGGER wait_for_test ON meals');
        await prisma.$executeRawUnsafe('DROP FUNCTION wait_for_test()');
      }
      expect(await mealRow(falafel)).toMatchObject({ available: false, version: before.version + 1 });
      expect(await eventsOf(falafel)).toEqual([changed(falafel, false, 1090, before.version + 1)]);
    });

    it('writes neither the change nor its event when the event cannot be written', async () => {
      const before = await mealRow(diavola);
      const [written] = await prisma.outboxEvent.findMany({ where: { aggregateId: margherita }, take: 1 });
      // An event whose id is already in the outbox: its insert fails after the meal's update ran.
      const clashing = {
        ...newEvent('meal.availability_changed', diavola, {
          mealId: diavola,
          available: false,
          price: { amount: 1150, currency: 'EUR' },
          version: before.version + 1,
        }),
        id: written!.id,
      };
      const update = { id: diavola, expectedVersion: before.version, changes: { available: false } };
      await expect(new PrismaMealsStore(prisma).updateMeal({ ...update, events: [clashing] })).rejects.toThrow();
      expect(await mealRow(diavola)).toEqual(before);
      expect(await eventsOf(diavola)).toEqual([]);
    });

    it('writes nothing when the meal is no longer at the version the change was decided on', async () => {
      const before = await mealRow(diavola);
      const event = newEvent('meal.availability_changed', diavola, {
        mealId: diavola,
        available: false,
        price: { amount: 1150, currency: 'EUR' },
        version: before.version,
      });
      const stale = { id: diavola, expectedVersion: before.version - 1, changes: { available: false } };
      expect(await new PrismaMealsStore(prisma).updateMeal({ ...stale, events: [event] })).toBeNull();
      expect(await mealRow(diavola)).toEqual(before);
      expect(await eventsOf(diavola)).toEqual([]);
    });

    /** A store where another change of the meal lands between the domain's read and its write. */
    class RacingStore extends PrismaMealsStore {
      races: (() => Promise<unknown>)[] = [];
      override async findMealsByIds(mealIds: readonly string[]): Promise<Meal[]> {
        const found = await super.findMealsByIds(mealIds);
        await this.races.shift()?.();
        return found;
      }
    }

    it('decides on the state a concurrent change left, so no change is missed or told twice', async () => {
      const racing = new RacingStore(prisma);
      const racingMeals = new MealsService(racing, { currency: config.MEALS_CURRENCY });
      const { version: v } = await mealRow(diavola);
      // Staff asks for "available" on a meal that is available; meanwhile someone makes it unavailable.
      racing.races.push(() => meals.updateMeal(staff, diavola, { available: false }));
      expect(await racingMeals.updateMeal(staff, diavola, { available: true })).toMatchObject({ available: true });
      // The second write was decided again on the unavailable meal: a change, told after the other.
      expect(await eventsOf(diavola)).toEqual([
        changed(diavola, false, 1150, v + 1),
        changed(diavola, true, 1150, v + 2),
      ]);
      // The same change made twice at once is told once.
      racing.races.push(() => meals.updateMeal(staff, diavola, { priceAmount: 1200 }));
      await racingMeals.updateMeal(staff, diavola, { priceAmount: 1200 });
      expect((await eventsOf(diavola)).slice(2)).toEqual([changed(diavola, true, 1200, v + 3)]);
      expect(await mealRow(diavola)).toMatchObject({ priceAmount: 1200, version: v + 4 });
    });

    it('refuses with CONFLICT, writing nothing, a change whose meal keeps changing under it', async () => {
      const racing = new RacingStore(prisma);
      const racingMeals = new MealsService(racing, { currency: config.MEALS_CURRENCY });
      const rename = (name: string) => () => meals.updateMeal(staff, diavola, { name });
      racing.races.push(rename('Diavola 1'), rename('Diavola 2'), rename('Diavola'));
      const events = await eventsOf(diavola);
      const { version: v } = await mealRow(diavola);
      const refused = await racingMeals.updateMeal(staff, diavola, { available: false }).catch((error) => error);
      expect(refused).toBeInstanceOf(DomainError);
      expect(refused.code).toBe('CONFLICT');
      expect(await mealRow(diavola)).toMatchObject({ name: 'Diavola', available: true, version: v + 3 });
      expect(await eventsOf(diavola)).toEqual(events);
    });
  });

  describe('configuration and start-up', () => {
    it('fails fast with a clear message on a missing or bad variable', () => {
      expect(() => loadMealsConfig({ ...testSecrets, MEALS_CURRENCY: 'eur' })).toThrow(
        /MEALS_DATABASE_URL: .*required[\s\S]*MEALS_CURRENCY: must be an ISO-4217 code/,
      );
      expect(() => loadMealsConfig({ MEALS_DATABASE_URL: database.url })).toThrow(/INTERNAL_TOKEN_SECRET/);
      expect(config).toMatchObject({ MEALS_PORT: 4002, HOST: '127.0.0.1', MEALS_CURRENCY: 'EUR' });
    });

    it('serves GraphQL over HTTP only with an internal token, and reports the database ready', async () => {
      const subgraph = await startMealsSubgraph({ ...config, MEALS_PORT: 0 });
      try {
        const base = subgraph.url.replace(/\/graphql$/, '');
        const ready = await fetch(`${base}/readyz`);
        expect(ready.status).toBe(200);
        const body = JSON.stringify({ query: '{ categories { name } }' });
        const headers = { 'content-type': 'application/json' };
        const refused = await fetch(subgraph.url, { method: 'POST', headers, body });
        expect(
          ((await refused.json()) as { errors: { extensions: { code: string } }[] }).errors[0]!.extensions.code,
        ).toBe('UNAUTHENTICATED');
        const token = await new InternalTokens(config.INTERNAL_TOKEN_SECRET).sign(anonymous);
        const ok = await fetch(subgraph.url, {
          method: 'POST',
          headers: { ...headers, 'x-internal-token': token },
          body,
        });
        expect(((await ok.json()) as { data: { categories: unknown[] } }).data.categories).toHaveLength(3);
      } finally {
        await subgraph.close();
      }
    });
  });
});

describe('seedMeals', () => {
  let seedDatabase: TestDatabaseClient<PrismaClient<'query'>>;
  let seedPrisma: PrismaClient<'query'>;

  beforeAll(async () => {
    seedDatabase = await createTestDatabaseClient('meals', PrismaClient, PrismaPg);
    seedPrisma = seedDatabase.prisma;
  });

  afterAll(async () => {
    await seedDatabase?.close();
  });

  it('creates the demo menu once, with its fixed ids, and nothing on a second run', async () => {
    const seedConfig = loadMealsConfig({ ...testSecrets, MEALS_DATABASE_URL: seedDatabase.url });
    expect(await seedMeals(seedConfig)).toBe(8);
    expect(await seedMeals(seedConfig)).toBe(0);

    const categories = await seedPrisma.category.findMany({ orderBy: { sortOrder: 'asc' } });
    expect(categories.map((c) => [c.id, c.name])).toEqual(demoMenu.map((c) => [c.id, c.name]));
    expect(categories.map((c) => c.name)).toEqual(['Pizzas', 'Bowls', 'Drinks']);
    const demoMeals = demoMenu.flatMap((c) => c.meals);
    const stored = await seedPrisma.meal.findMany({ include: { addons: true, components: true } });
    expect(stored.map((m) => m.id).sort()).toEqual(demoMeals.map((m) => m.id).sort());
    expect(stored.every((m) => m.currency === 'EUR' && m.description.length > 0 && m.components.length > 0)).toBe(true);
    expect(stored.filter((m) => !m.available)).toHaveLength(1);
    expect(stored.filter((m) => m.addons.length > 0).length).toBeGreaterThanOrEqual(3);
    const addonIds = demoMeals.flatMap((m) => m.addons.map((a) => a.id)).sort();
    expect((await seedPrisma.mealAddon.findMany()).map((a) => a.id).sort()).toEqual(addonIds);
    expect(await seedPrisma.mealAddon.findUnique({ where: { id: addonIds[0]! } })).toMatchObject({
      name: 'Extra mozzarella',
      priceAmount: 150,
      maxQuantity: 3,
    });
    expect(await seedPrisma.mealComponent.count({ where: { allergens: { isEmpty: false } } })).toBeGreaterThan(0);
  });
});
