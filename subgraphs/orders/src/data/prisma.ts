import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from './generated/prisma/client.js';

export type OrdersPrisma = PrismaClient;

/** The orders database, through the `pg` driver adapter (no Prisma engine binary). */
export function connectOrdersDatabase(databaseUrl: string, poolSize = 10): OrdersPrisma {
  return new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl, max: poolSize }) });
}
