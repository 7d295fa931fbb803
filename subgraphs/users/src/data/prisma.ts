import { PrismaPg } from '@prisma/adapter-pg';
import { TRANSACTION_OPTIONS, withReadReplicas, type ReadReplicaSettings } from '@food/platform';
import { PrismaClient } from './generated/prisma/client.js';

export type UsersPrisma = PrismaClient;

/** Where a replica's reads are allowed: `<SERVICE>_DATABASE_REPLICA_URLS` and the lag bound. */
export type UsersReplicas = Pick<ReadReplicaSettings<UsersPrisma>, 'replicaUrls' | 'maxLagSeconds' | 'logger'>;

/**
 * The users database, through the `pg` driver adapter (no Prisma engine binary); with replicas, its
 * reads outside transactions may go to them (withReadReplicas), writes stay on the primary.
 */
export function connectUsersDatabase(databaseUrl: string, poolSize = 10, replicas?: UsersReplicas): UsersPrisma {
  const connect = (url: string, pool = {}) =>
    new PrismaClient({
      adapter: new PrismaPg({ connectionString: url, max: poolSize, ...pool }),
      transactionOptions: TRANSACTION_OPTIONS,
    });
  const primary = connect(databaseUrl);
  return replicas
    ? withReadReplicas(primary, { ...replicas, database: 'users', primaryUrl: databaseUrl, connect })
    : primary;
}
