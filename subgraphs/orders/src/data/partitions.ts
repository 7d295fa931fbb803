import type { Logger } from '@food/platform';
import type { OrdersPrisma } from './prisma.js';

/**
 * Monthly partitions of the orders database (the tables are made partitioned by the migration
 * 20261201000000_time_partitions, read it first).
 *
 * Every table is PARTITION BY RANGE of a UUIDv7, whose first 48 bits are its creation time in ms:
 * the month of 2027-03 is the range [v7Bound(2027-03-01), v7Bound(2027-04-01)). An order, its lines,
 * add-ons and status changes (partitioned by their order's id) are in the same month's partitions,
 * and `order(id)` is one index lookup on one partition (plain range pruning on the id). UUIDv4 ids
 * of rows older than the migration fall where their value says, like any id: mostly in the legacy
 * partitions, a few (those whose first bits read as a time from 2026-12 to 2099) in DEFAULT, from
 * which the month's creation here moves them.
 *
 * Tables in the order every writer locks them (processed events, then the order and its rows, then
 * the outbox), which is also parents before children: the order partitions are attached in it.
 */
export const PARTITIONED_TABLES = [
  { table: 'processed_events', key: 'event_id' },
  { table: 'orders', key: 'id' },
  { table: 'order_items', key: 'order_id' },
  { table: 'order_item_addons', key: 'order_id' },
  { table: 'order_status_changes', key: 'order_id' },
  { table: 'outbox_events', key: 'id' },
] as const;
type PartitionedTable = (typeof PARTITIONED_TABLES)[number]['table'];

/** Children before their parents: the order in which rows leave a partition without cascading. */
const LEAVES_FIRST = [...PARTITIONED_TABLES].reverse();

/** The advisory lock every partition change holds, so several workers at once change nothing twice. */
export const PARTITION_LOCK_KEY = 0x0_0d_e5_15; // "orders, issue 15"

/** The first v7 month and the start of the legacy high range (the migration's bounds). */
const V7_EPOCH = Date.UTC(2026, 11, 1);
const V7_HORIZON = Date.UTC(2100, 0, 1);

/** The first instant of `date`'s month, UTC, `offset` months on. */
export const monthStart = (date: Date, offset = 0) =>
  new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + offset, 1));

/** The smallest UUIDv7 of the millisecond `date`: a partition bound. */
export function v7Bound(date: Date): string {
  const hex = date.getTime().toString(16).padStart(12, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8)}-0000-0000-000000000000`;
}

/** The time a UUIDv7 carries; null for another version (a legacy v4 id). */
export function v7Time(id: string): Date | null {
  if (id[14] !== '7') return null;
  return new Date(parseInt(id.slice(0, 8) + id.slice(9, 13), 16));
}

export const partitionName = (table: PartitionedTable, month: Date) =>
  `${table}_p${month.getUTCFullYear()}_${String(month.getUTCMonth() + 1).padStart(2, '0')}`;

const MONTHLY = /_p(\d{4})_(\d{2})$/;

export interface PartitionReport {
  /** Partitions created, by name. */
  created: string[];
  /** Rows moved out of DEFAULT partitions into the new ones. */
  moved: number;
  /** What is left in each DEFAULT partition: v7 rows (a month with no partition) and legacy ones. */
  defaults: Record<PartitionedTable, { v7: number; legacy: number }>;
}

export interface PartitionMaintenanceOptions {
  /** Partitions are made for the current month and this many after it. */
  monthsAhead: number;
  now?: Date;
  /** How long a change waits for a table lock before giving up until the next run. */
  lockTimeoutMs?: number;
}

type Tx = Parameters<Parameters<OrdersPrisma['$transaction']>[0]>[0];

/**
 * Creates the monthly partitions of every table for the current month and `monthsAhead` months
 * after it, and for any month of v7 rows that sit in a DEFAULT partition (written before their
 * month's partition existed); each month's rows in DEFAULT move into it. Idempotent, and safe with
 * several workers at once: it runs under one advisory lock, and skips what exists.
 */
export async function ensurePartitions(
  prisma: OrdersPrisma,
  { monthsAhead, now = new Date(), lockTimeoutMs = 10_000 }: PartitionMaintenanceOptions,
): Promise<PartitionReport> {
  return prisma.$transaction(
    async (tx) => {
      await lockPartitions(tx, lockTimeoutMs);
      const months = new Map<number, Date>();
      for (let offset = 0; offset <= monthsAhead; offset++) {
        const month = monthStart(now, offset);
        months.set(month.getTime(), month);
      }
      for (const month of await monthsInDefaults(tx)) months.set(month.getTime(), month);
      const existing = await partitionsOf(tx);
      const created: string[] = [];
      let moved = 0;
      for (const month of [...months.values()].sort((a, b) => a.getTime() - b.getTime())) {
        const missing = PARTITIONED_TABLES.filter(({ table }) => !existing.has(partitionName(table, month)));
        if (missing.length === 0) continue;
        const lo = v7Bound(month);
        const hi = v7Bound(monthStart(month, 1));
        // Lock the DEFAULT partitions in writers' order (ATTACH takes them anyway), so no row of the
        // month can arrive in DEFAULT between the move and the attach, and no deadlock with a writer.
        for (const { table } of missing)
          await tx.$executeRawUnsafe(`LOCK TABLE "${table}_default" IN ACCESS EXCLUSIVE MODE`);
        // Each new partition starts as a plain table holding its month's rows from DEFAULT, children
        // first (a parent row leaving DEFAULT would cascade to children still attached). It takes the
        // table's CHECK constraints too: ATTACH requires them.
        for (const { table, key } of LEAVES_FIRST.filter((t) => missing.includes(t))) {
          const name = partitionName(table, month);
          await tx.$executeRawUnsafe(
            `CREATE TABLE "${name}" (LIKE "${table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`,
          );
          moved += await tx.$executeRawUnsafe(
            `WITH moved AS (DELETE FROM "${table}_default" WHERE "${key}" >= $1::uuid AND "${key}" < $2::uuid RETURNING *)
             INSERT INTO "${name}" SELECT * FROM moved`,
            lo,
            hi,
          );
        }
        // Then attached, parents first: each gets the table's indexes, keys and foreign keys.
        for (const { table } of missing) {
          const name = partitionName(table, month);
          await tx.$executeRawUnsafe(
            `ALTER TABLE "${table}" ATTACH PARTITION "${name}" FOR VALUES FROM ('${lo}') TO ('${hi}')`,
          );
          created.push(name);
        }
      }
      return { created, moved, defaults: await defaultRows(tx) };
    },
    { timeout: 120_000, maxWait: 30_000 },
  );
}

export interface DetachReport {
  /** Partitions detached (now plain tables, to archive and drop by hand). */
  detached: string[];
  /** Outbox partitions kept although expired: they still hold unpublished events. */
  keptUnpublished: string[];
}

/**
 * Detaches every monthly partition of a month that ended more than `retentionMonths` months before
 * the current one; the detached tables keep their rows, for archiving: nothing is dropped. Legacy and
 * DEFAULT partitions are never detached (their rows' ages are unknown from their ids). An expired
 * outbox partition with unpublished rows stays, so the relay still publishes them.
 *
 * Not `DETACH ... CONCURRENTLY`: PostgreSQL refuses it on a table with a DEFAULT partition (and
 * inside a transaction). A plain DETACH is a catalog change that needs a brief ACCESS EXCLUSIVE lock
 * on the table: it waits at most the lock timeout, then gives up until the next run.
 */
export async function detachExpiredPartitions(
  prisma: OrdersPrisma,
  {
    retentionMonths,
    now = new Date(),
    lockTimeoutMs = 10_000,
  }: { retentionMonths: number; now?: Date; lockTimeoutMs?: number },
): Promise<DetachReport> {
  const cutoff = monthStart(now, -retentionMonths);
  return prisma.$transaction(
    async (tx) => {
      await lockPartitions(tx, lockTimeoutMs);
      const expired = [...(await partitionsOf(tx)).values()].filter(({ month }) => month !== null && month < cutoff);
      const detached: string[] = [];
      const keptUnpublished: string[] = [];
      for (const { table } of LEAVES_FIRST) {
        for (const partition of expired.filter((p) => p.table === table)) {
          if (table === 'outbox_events') {
            const [row] = await tx.$queryRawUnsafe<{ unpublished: boolean }[]>(
              `SELECT EXISTS (SELECT 1 FROM "${partition.name}" WHERE "published_at" IS NULL) AS unpublished`,
            );
            if (row!.unpublished) {
              keptUnpublished.push(partition.name);
              continue;
            }
          }
          await tx.$executeRawUnsafe(`ALTER TABLE "${table}" DETACH PARTITION "${partition.name}"`);
          // A detached child keeps its foreign keys to the partitioned parent, which would then forbid
          // detaching the parent's partition: the archive's rows do not need them.
          const keys = await tx.$queryRawUnsafe<{ conname: string }[]>(
            `SELECT conname::text AS conname FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'f' AND conparentid = 0`,
            partition.name,
          );
          for (const { conname } of keys)
            await tx.$executeRawUnsafe(`ALTER TABLE "${partition.name}" DROP CONSTRAINT "${conname}"`);
          detached.push(partition.name);
        }
      }
      return { detached, keptUnpublished };
    },
    { timeout: 120_000, maxWait: 30_000 },
  );
}

/**
 * The worker's repeatable job: partitions ahead (and out of DEFAULT), then, only when a retention is
 * set, the detaching of expired ones. Unset retention keeps every partition.
 */
export async function maintainPartitions(
  prisma: OrdersPrisma,
  settings: { monthsAhead: number; retentionMonths?: number | undefined; now?: Date },
  logger: Logger,
): Promise<{ ensured: PartitionReport; retention: DetachReport | null }> {
  const ensured = await ensurePartitions(prisma, { monthsAhead: settings.monthsAhead, now: settings.now });
  if (ensured.created.length > 0) logger.info({ created: ensured.created, moved: ensured.moved }, 'created partitions');
  const stranded = Object.entries(ensured.defaults).filter(([, rows]) => rows.v7 > 0);
  if (stranded.length > 0)
    logger.warn({ defaults: Object.fromEntries(stranded) }, 'rows with UUIDv7 ids left in DEFAULT partitions');
  if (settings.retentionMonths === undefined) return { ensured, retention: null };
  const retention = await detachExpiredPartitions(prisma, {
    retentionMonths: settings.retentionMonths,
    now: settings.now,
  });
  if (retention.detached.length > 0)
    logger.info({ detached: retention.detached }, 'detached expired partitions (kept as tables, to archive)');
  if (retention.keptUnpublished.length > 0)
    logger.warn({ kept: retention.keptUnpublished }, 'expired outbox partitions kept: they hold unpublished events');
  return { ensured, retention };
}

async function lockPartitions(tx: Tx, lockTimeoutMs: number) {
  await tx.$executeRawUnsafe(`SET LOCAL lock_timeout = ${Math.trunc(lockTimeoutMs)}`);
  await tx.$queryRawUnsafe(`SELECT pg_advisory_xact_lock(${PARTITION_LOCK_KEY})::text`);
}

interface Partition {
  name: string;
  table: PartitionedTable;
  /** The month of a monthly partition; null for legacy and DEFAULT ones. */
  month: Date | null;
}

/** Every attached partition of the partitioned tables, by name. */
async function partitionsOf(tx: Tx): Promise<Map<string, Partition>> {
  const rows = await tx.$queryRawUnsafe<{ name: string; table: PartitionedTable }[]>(
    `SELECT c.relname::text AS name, p.relname::text AS table
       FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
      WHERE p.relname = ANY($1::text[]) AND p.relnamespace = current_schema()::regnamespace`,
    PARTITIONED_TABLES.map(({ table }) => table),
  );
  return new Map(
    rows.map(({ name, table }) => {
      const match = MONTHLY.exec(name);
      const month = match ? new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, 1)) : null;
      return [name, { name, table, month }];
    }),
  );
}

/** The months of the v7 rows waiting in DEFAULT partitions (their month had no partition yet). */
async function monthsInDefaults(tx: Tx): Promise<Date[]> {
  const months = new Map<number, Date>();
  for (const { table, key } of PARTITIONED_TABLES) {
    const rows = await tx.$queryRawUnsafe<{ key: string }[]>(
      `SELECT DISTINCT "${key}"::text AS key FROM "${table}_default" WHERE substr("${key}"::text, 15, 1) = '7'`,
    );
    for (const row of rows) {
      const time = v7Time(row.key);
      if (!time || time.getTime() < V7_EPOCH || time.getTime() >= V7_HORIZON) continue;
      const month = monthStart(time);
      months.set(month.getTime(), month);
    }
  }
  return [...months.values()];
}

async function defaultRows(tx: Tx): Promise<PartitionReport['defaults']> {
  const defaults: Partial<PartitionReport['defaults']> = {};
  // One query at a time: a transaction is one connection (and PGlite runs one query at a time).
  for (const { table, key } of PARTITIONED_TABLES) {
    const [row] = await tx.$queryRawUnsafe<{ v7: number; legacy: number }[]>(
      `SELECT count(*) FILTER (WHERE substr("${key}"::text, 15, 1) = '7')::int AS v7,
              count(*) FILTER (WHERE substr("${key}"::text, 15, 1) <> '7')::int AS legacy
         FROM "${table}_default"`,
    );
    defaults[table] = row!;
  }
  return defaults as PartitionReport['defaults'];
}
