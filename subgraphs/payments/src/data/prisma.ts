import { PrismaPg } from '@prisma/adapter-pg';
import { TRANSACTION_OPTIONS, withReadReplicas, type ReadReplicaSettings } from '@food/platform';
import { PrismaClient } from './generated/prisma/client.js';

export type PaymentsPrisma = PrismaClient;

/** Where a replica's reads are allowed: `<SERVICE>_DATABASE_REPLICA_URLS` and the lag bound. */
export type PaymentsReplicas = Pick<ReadReplicaSettings<PaymentsPrisma>, 'replicaUrls' | 'maxLagSeconds' | 'logger'>;

/**
 * The payments database, through the `pg` driver adapter (no Prisma engine binary); with replicas, its
 * reads outside transactions may go to them (withReadReplicas), writes stay on the primary.
 */
export function connectPaymentsDatabase(
  databaseUrl: string,
  poolSize = 10,
  replicas?: PaymentsReplicas,
): PaymentsPrisma {
  const connect = (url: string, pool = {}) =>
    new PrismaClient({
      adapter: new PrismaPg({ connectionString: url, max: poolSize, ...pool }),
      transactionOptions: TRANSACTION_OPTIONS,
    });
  const primary = connect(databaseUrl);
  return replicas
    ? withReadReplicas(primary, { ...replicas, database: 'payments', primaryUrl: databaseUrl, connect })
    : primary;
}
