import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from './generated/prisma/client.js';

export type PaymentsPrisma = PrismaClient;

/** The payments database, through the `pg` driver adapter (no Prisma engine binary). */
export function connectPaymentsDatabase(databaseUrl: string, poolSize = 10): PaymentsPrisma {
  return new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl, max: poolSize }) });
}
