import { z } from 'zod';
import {
  badInput,
  decodeCursor,
  DomainError,
  ErrorCode,
  newEvent,
  notFound,
  pageSize,
  parseInput,
  requireStaff,
  toConnection,
  type Caller,
  type DomainEvent,
} from '@food/platform';

/** The 14 allergens EU law requires a menu to declare. */
export const ALLERGENS = [
  'CELERY',
  'GLUTEN',
  'CRUSTACEANS',
  'EGGS',
  'FISH',
  'LUPIN',
  'MILK',
  'MOLLUSCS',
  'MUSTARD',
  'TREE_NUTS',
  'PEANUTS',
  'SESAME',
  'SOY',
  'SULPHITES',
] as const;
export type Allergen = (typeof ALLERGENS)[number];

export interface Category {
  id: string;
  name: string;
  description: string;
  sortOrder: number;
  createdAt: Date;
}

/** A meal; prices are integer minor units of `currency`. */
export interface Meal {
  id: string;
  categoryId: string;
  name: string;
  description: string;
  priceAmount: number;
  currency: string;
  available: boolean;
  /** Increases with every change of the meal's own fields (not of its add-ons). */
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

/** An add-on as stored: it has no currency of its own. */
export interface StoredAddon {
  id: string;
  mealId: string;
  name: string;
  priceAmount: number;
  maxQuantity: number;
  available: boolean;
}

/** An add-on as the domain hands it out: priced in its meal's currency. */
export interface MealAddon extends StoredAddon {
  currency: string;
}

export interface MealComponent {
  id: string;
  mealId: string;
  name: string;
  allergens: Allergen[];
}

export interface MealFilter {
  categoryId?: string;
  available?: boolean;
  search?: string;
}

/** Where a page starts: after this meal, in (name, id) order. */
export interface MealAnchor {
  id: string;
  name: string;
}

export interface NewMeal {
  categoryId: string;
  name: string;
  description: string;
  priceAmount: number;
  currency: string;
  available: boolean;
  components: { name: string; allergens: Allergen[] }[];
}

export type MealChanges = Partial<Pick<Meal, 'categoryId' | 'name' | 'description' | 'priceAmount' | 'available'>>;

/** A change of a meal, applied only while the meal is still at `expectedVersion`. */
export interface MealUpdate {
  id: string;
  expectedVersion: number;
  changes: MealChanges;
  /** Written to the outbox in the same transaction as the change. */
  events: DomainEvent[];
}
export type AddonChanges = Partial<Pick<StoredAddon, 'name' | 'priceAmount' | 'maxQuantity' | 'available'>>;

/** The persistence the meals domain needs; implemented over Prisma in ../data. */
export interface MealsStore {
  /** Meals matching the filter, after the anchor, in (name, id) order, at most `limit`. */
  listMeals(filter: MealFilter, after: MealAnchor | null, limit: number): Promise<Meal[]>;
  findMealsByIds(ids: readonly string[]): Promise<Meal[]>;
  listCategories(): Promise<Category[]>;
  findCategoriesByIds(ids: readonly string[]): Promise<Category[]>;
  findAddonsByMealIds(mealIds: readonly string[]): Promise<StoredAddon[]>;
  findComponentsByMealIds(mealIds: readonly string[]): Promise<MealComponent[]>;
  /** Appends the category at the end of the menu. Throws CategoryNameTakenError on a duplicate name. */
  createCategory(category: { name: string; description: string }): Promise<Category>;
  /** Writes the meal and its components atomically. */
  createMeal(meal: NewMeal): Promise<Meal>;
  /**
   * Applies the changes, increments the version by one and writes the events, all in one
   * transaction; null (nothing written) when the meal is not, or no longer, at `expectedVersion`.
   */
  updateMeal(update: MealUpdate): Promise<Meal | null>;
  createAddon(addon: Omit<StoredAddon, 'id' | 'available'>): Promise<StoredAddon>;
  /** Null when there is no such add-on. */
  updateAddon(id: string, changes: AddonChanges): Promise<StoredAddon | null>;
}

export class CategoryNameTakenError extends Error {}

const MAX_IDS = 100;
const id = z.uuid({ error: 'must be a UUID' });
const name = z.string().trim().min(1, 'must not be empty').max(100, 'must be at most 100 characters');
const description = z.string().trim().max(1000, 'must be at most 1000 characters');
const mealPrice = z
  .number()
  .int('must be an integer')
  .min(0, 'must be at least 0')
  .max(1_000_000, 'must be at most 1000000');
const addonPrice = z
  .number()
  .int('must be an integer')
  .min(0, 'must be at least 0')
  .max(100_000, 'must be at most 100000');
const maxQuantity = z.number().int('must be an integer').min(1, 'must be at least 1').max(20, 'must be at most 20');
const allergens = z
  .array(z.enum(ALLERGENS))
  .transform((list) => [...new Set(list)])
  .default([]);

export const ZMealFilter = z
  .object({
    categoryId: id.nullish(),
    available: z.boolean().nullish(),
    search: z.string().trim().max(100, 'must be at most 100 characters').nullish(),
  })
  .nullish();
export const ZMealIds = z.array(id).max(MAX_IDS, `must have at most ${MAX_IDS} ids`);
export const ZCreateCategoryInput = z.object({ name, description: description.nullish() });
export const ZCreateMealInput = z.object({
  categoryId: id,
  name,
  description: description.nullish(),
  priceAmount: mealPrice,
  available: z.boolean().nullish(),
  components: z.array(z.object({ name, allergens })).max(50, 'must have at most 50 components').nullish(),
});
export const ZUpdateMealInput = z.object({
  categoryId: id.nullish(),
  name: name.nullish(),
  description: description.nullish(),
  priceAmount: mealPrice.nullish(),
  available: z.boolean().nullish(),
});
export const ZCreateMealAddonInput = z.object({ mealId: id, name, priceAmount: addonPrice, maxQuantity });
export const ZUpdateMealAddonInput = z.object({
  name: name.nullish(),
  priceAmount: addonPrice.nullish(),
  maxQuantity: maxQuantity.nullish(),
  available: z.boolean().nullish(),
});

const PAGE = { fallback: 20, max: 100 };
/** Tries of an update whose meal keeps changing under it before it is refused with CONFLICT. */
const UPDATE_ATTEMPTS = 3;
const isUuid = (value: string) => id.safeParse(value).success;

/** Every allergen of every component, once each, sorted. */
export const allergensOf = (components: readonly MealComponent[]): Allergen[] =>
  [...new Set(components.flatMap((component) => component.allergens))].sort();

/**
 * What subscribers of a meal's availability hear of a change: one event when its availability or
 * price changes (with both as they will be, and the version the change gives the meal), none when
 * both stay as they are.
 */
export function availabilityEventsOf(meal: Meal, changes: MealChanges): DomainEvent[] {
  const available = changes.available ?? meal.available;
  const priceAmount = changes.priceAmount ?? meal.priceAmount;
  if (available === meal.available && priceAmount === meal.priceAmount) return [];
  return [
    newEvent('meal.availability_changed', meal.id, {
      mealId: meal.id,
      available,
      price: { amount: priceAmount, currency: meal.currency },
      version: meal.version + 1,
    }),
  ];
}

/** Drops absent and null fields: in an update, both mean "leave it as it is". */
function present<T extends Record<string, unknown>>(changes: T): { [K in keyof T]?: Exclude<T[K], null> } {
  return Object.fromEntries(Object.entries(changes).filter(([, value]) => value !== undefined && value !== null)) as {
    [K in keyof T]?: Exclude<T[K], null>;
  };
}

/** The menu: every rule about categories, meals, add-ons and components lives here. */
export class MealsService {
  constructor(
    private readonly store: MealsStore,
    private readonly options: { currency: string },
  ) {}

  /** A page of meals, by name then id. `filter` is client input; it is validated here. */
  async listMeals(args: { first?: number | null; after?: string | null; filter?: unknown }) {
    const size = pageSize(args.first, PAGE);
    const parsed = parseInput(ZMealFilter, args.filter);
    const filter: MealFilter = {};
    if (parsed?.categoryId) filter.categoryId = parsed.categoryId;
    if (parsed?.available != null) filter.available = parsed.available;
    if (parsed?.search) filter.search = parsed.search;
    let anchor: MealAnchor | null = null;
    if (args.after != null) {
      const [meal] = await this.store.findMealsByIds([decodeCursor(args.after)]);
      if (!meal) throw badInput('Invalid cursor', { argument: 'after' });
      anchor = { id: meal.id, name: meal.name };
    }
    return toConnection(await this.store.listMeals(filter, anchor, size + 1), size);
  }

  async meal(mealId: unknown): Promise<Meal | null> {
    const [meal] = await this.store.findMealsByIds([parseInput(id, mealId)]);
    return meal ?? null;
  }

  /** Up to 100 meals in one query, in the order asked; null where an id is unknown. */
  async mealsByIds(ids: unknown): Promise<(Meal | null)[]> {
    const valid = parseInput(ZMealIds, ids);
    return this.byIds(valid);
  }

  /** Batched look-up for entity references and loaders: one store call for any number of ids. */
  async byIds(ids: readonly string[]): Promise<(Meal | null)[]> {
    const wanted = [...new Set(ids.filter(isUuid))];
    const found = new Map((wanted.length ? await this.store.findMealsByIds(wanted) : []).map((m) => [m.id, m]));
    return ids.map((mealId) => found.get(mealId) ?? null);
  }

  categories(): Promise<Category[]> {
    return this.store.listCategories();
  }

  async categoriesByIds(ids: readonly string[]): Promise<(Category | null)[]> {
    const wanted = [...new Set(ids.filter(isUuid))];
    const found = new Map((wanted.length ? await this.store.findCategoriesByIds(wanted) : []).map((c) => [c.id, c]));
    return ids.map((categoryId) => found.get(categoryId) ?? null);
  }

  /** Every add-on of each meal, available or not: orders needs them all to price an order. */
  async addonsOf(meals: readonly Meal[]): Promise<MealAddon[][]> {
    const addons = meals.length ? await this.store.findAddonsByMealIds(meals.map((meal) => meal.id)) : [];
    return meals.map((meal) =>
      addons.filter((addon) => addon.mealId === meal.id).map((addon) => ({ ...addon, currency: meal.currency })),
    );
  }

  async componentsOf(mealIds: readonly string[]): Promise<MealComponent[][]> {
    const components = mealIds.length ? await this.store.findComponentsByMealIds(mealIds) : [];
    return mealIds.map((mealId) => components.filter((component) => component.mealId === mealId));
  }

  async createCategory(caller: Caller, input: unknown): Promise<Category> {
    requireStaff(caller);
    const data = parseInput(ZCreateCategoryInput, input);
    try {
      return await this.store.createCategory({ name: data.name, description: data.description ?? '' });
    } catch (error) {
      if (error instanceof CategoryNameTakenError) {
        throw new DomainError(ErrorCode.CONFLICT, `A category named ${data.name} already exists`, { field: 'name' });
      }
      throw error;
    }
  }

  async createMeal(caller: Caller, input: unknown): Promise<Meal> {
    requireStaff(caller);
    const data = parseInput(ZCreateMealInput, input);
    await this.requireCategory(data.categoryId);
    return this.store.createMeal({
      categoryId: data.categoryId,
      name: data.name,
      description: data.description ?? '',
      priceAmount: data.priceAmount,
      currency: this.options.currency,
      available: data.available ?? true,
      components: data.components ?? [],
    });
  }

  async updateMeal(caller: Caller, mealId: unknown, input: unknown): Promise<Meal> {
    requireStaff(caller);
    const target = parseInput(id, mealId);
    const changes = present(parseInput(ZUpdateMealInput, input));
    if (changes.categoryId) await this.requireCategory(changes.categoryId);
    // The events are decided on the meal as it is, and written only if it still is when the change
    // lands; a concurrent change makes the next attempt decide again on the newer state.
    for (let attempt = 1; ; attempt += 1) {
      const [meal] = await this.store.findMealsByIds([target]);
      if (!meal) throw notFound('Meal', target);
      const events = availabilityEventsOf(meal, changes);
      const updated = await this.store.updateMeal({ id: target, expectedVersion: meal.version, changes, events });
      if (updated) return updated;
      if (attempt === UPDATE_ATTEMPTS) {
        throw new DomainError(ErrorCode.CONFLICT, `Meal ${target} kept changing while it was updated; try again`, {
          id: target,
        });
      }
    }
  }

  async createMealAddon(caller: Caller, input: unknown): Promise<MealAddon> {
    requireStaff(caller);
    const data = parseInput(ZCreateMealAddonInput, input);
    const [meal] = await this.store.findMealsByIds([data.mealId]);
    if (!meal) throw notFound('Meal', data.mealId);
    const addon = await this.store.createAddon(data);
    return { ...addon, currency: meal.currency };
  }

  async updateMealAddon(caller: Caller, addonId: unknown, input: unknown): Promise<MealAddon> {
    requireStaff(caller);
    const target = parseInput(id, addonId);
    const changes = present(parseInput(ZUpdateMealAddonInput, input));
    const addon = await this.store.updateAddon(target, changes);
    if (!addon) throw notFound('Add-on', target);
    const [meal] = await this.store.findMealsByIds([addon.mealId]);
    if (!meal) throw notFound('Meal', addon.mealId);
    return { ...addon, currency: meal.currency };
  }

  private async requireCategory(categoryId: string): Promise<void> {
    const [category] = await this.store.findCategoriesByIds([categoryId]);
    if (!category)
      throw new DomainError(ErrorCode.NOT_FOUND, `Category ${categoryId} was not found`, {
        id: categoryId,
        field: 'categoryId',
      });
  }
}
