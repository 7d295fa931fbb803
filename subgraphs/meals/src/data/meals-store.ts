import { writeOutbox } from '@food/platform';
import { Prisma } from './generated/prisma/client.js';
import type { MealsPrisma } from './prisma.js';
import {
  CategoryNameTakenError,
  type AddonChanges,
  type Category,
  type Meal,
  type MealAnchor,
  type MealComponent,
  type MealFilter,
  type MealsStore,
  type MealUpdate,
  type NewMeal,
  type StoredAddon,
} from '../domain/meals.js';

const categoryColumns = { id: true, name: true, description: true, sortOrder: true, createdAt: true } as const;
const mealColumns = {
  id: true,
  categoryId: true,
  name: true,
  description: true,
  priceAmount: true,
  currency: true,
  available: true,
  version: true,
  createdAt: true,
  updatedAt: true,
} as const;
const addonColumns = {
  id: true,
  mealId: true,
  name: true,
  priceAmount: true,
  maxQuantity: true,
  available: true,
} as const;
const componentColumns = { id: true, mealId: true, name: true, allergens: true } as const;

const isKnownError = (error: unknown, code: string) =>
  error instanceof Prisma.PrismaClientKnownRequestError && error.code === code;

/** LIKE treats % and _ as wildcards; a search for "50%" means the text "50%". */
const escapeLike = (text: string) => text.replace(/[\\%_]/g, (char) => `\\${char}`);

export class PrismaMealsStore implements MealsStore {
  constructor(private readonly prisma: MealsPrisma) {}

  listMeals(filter: MealFilter, after: MealAnchor | null, limit: number): Promise<Meal[]> {
    const conditions: Prisma.MealWhereInput[] = [];
    if (filter.categoryId) conditions.push({ categoryId: filter.categoryId });
    if (filter.available !== undefined) conditions.push({ available: filter.available });
    if (filter.search) {
      const contains = escapeLike(filter.search);
      conditions.push({
        OR: [{ name: { contains, mode: 'insensitive' } }, { description: { contains, mode: 'insensitive' } }],
      });
    }
    // Keyset pagination on (name, id): stable and index-backed however deep the page.
    if (after) conditions.push({ OR: [{ name: { gt: after.name } }, { name: after.name, id: { gt: after.id } }] });
    return this.prisma.meal.findMany({
      where: { AND: conditions },
      orderBy: [{ name: 'asc' }, { id: 'asc' }],
      take: limit,
      select: mealColumns,
    });
  }

  findMealsByIds(ids: readonly string[]): Promise<Meal[]> {
    return this.prisma.meal.findMany({ where: { id: { in: [...ids] } }, select: mealColumns });
  }

  listCategories(): Promise<Category[]> {
    return this.prisma.category.findMany({ orderBy: [{ sortOrder: 'asc' }, { name: 'asc' }], select: categoryColumns });
  }

  findCategoriesByIds(ids: readonly string[]): Promise<Category[]> {
    return this.prisma.category.findMany({ where: { id: { in: [...ids] } }, select: categoryColumns });
  }

  findAddonsByMealIds(mealIds: readonly string[]): Promise<StoredAddon[]> {
    return this.prisma.mealAddon.findMany({
      where: { mealId: { in: [...mealIds] } },
      orderBy: [{ name: 'asc' }, { id: 'asc' }],
      select: addonColumns,
    });
  }

  findComponentsByMealIds(mealIds: readonly string[]): Promise<MealComponent[]> {
    return this.prisma.mealComponent.findMany({
      where: { mealId: { in: [...mealIds] } },
      orderBy: [{ name: 'asc' }, { id: 'asc' }],
      select: componentColumns,
    });
  }

  async createCategory(category: { name: string; description: string }): Promise<Category> {
    try {
      return await this.prisma.$transaction(async (tx) => {
        const { _max } = await tx.category.aggregate({ _max: { sortOrder: true } });
        return tx.category.create({
          data: { ...category, sortOrder: (_max.sortOrder ?? 0) + 1 },
          select: categoryColumns,
        });
      });
    } catch (error) {
      if (isKnownError(error, 'P2002')) throw new CategoryNameTakenError();
      throw error;
    }
  }

  createMeal({ components, ...meal }: NewMeal): Promise<Meal> {
    // A nested create is one statement batch in one transaction: the meal never exists without its parts.
    return this.prisma.meal.create({
      data: { ...meal, components: { create: components } },
      select: mealColumns,
    });
  }

  async updateMeal({ id, expectedVersion, changes, events }: MealUpdate): Promise<Meal | null> {
    try {
      return await this.prisma.$transaction(async (tx) => {
        // The conditional update is the lock: of two concurrent changes at one version, one matches.
        const meal = await tx.meal.update({
          where: { id, version: expectedVersion },
          data: { ...changes, version: { increment: 1 } },
          select: mealColumns,
        });
        await writeOutbox(tx, events);
        return meal;
      });
    } catch (error) {
      if (isKnownError(error, 'P2025')) return null;
      throw error;
    }
  }

  createAddon(addon: Omit<StoredAddon, 'id' | 'available'>): Promise<StoredAddon> {
    return this.prisma.mealAddon.create({ data: addon, select: addonColumns });
  }

  async updateAddon(id: string, changes: AddonChanges): Promise<StoredAddon | null> {
    try {
      return await this.prisma.mealAddon.update({ where: { id }, data: changes, select: addonColumns });
    } catch (error) {
      if (isKnownError(error, 'P2025')) return null;
      throw error;
    }
  }
}
