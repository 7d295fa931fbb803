import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from './generated/prisma/client.js';

export type UsersPrisma = PrismaClient;

/** The users database, through the `pg` driver adapter (no Prisma engine binary). */
export function connectUsersDatabase(databaseUrl: string, poolSize = 10): UsersPrisma {
  return new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl, max: poolSize }) });
}
