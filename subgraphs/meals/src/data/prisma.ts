import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from './generated/prisma/client.js';

export type MealsPrisma = PrismaClient;

/** The meals database, through the `pg` driver adapter (no Prisma engine binary). */
export function connectMealsDatabase(databaseUrl: string, poolSize = 10): MealsPrisma {
  return new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl, max: poolSize }) });
}
