import { createHash } from 'node:crypto';
import pg from 'pg';
import type { PersonalDataCipher } from '@food/platform';
import { sqlFunctions, type SeedSizes } from './seed.js';

/**
 * The volume run's orders (issue 15): millions of orders with their items and status history,
 * written server-side (`INSERT ... SELECT generate_series`) into the partitioned orders tables, with
 * UUIDv7 ids spread over the past year so that every month's rows land in that month's partition, as
 * a database a year into v7 ids has them. Sizes grow in place: 100k, then the next 900k, and so on.
 *
 * Order i (1-based) is a pure function of i, so the bench knows every order's id, customer and status
 * without reading them back:
 * - its time: `base - ((i - 1) * step mod maxOrders) * span / maxOrders`, a permutation of the slots of
 *   the year, so that every size (not only the largest) is spread over all of its months;
 * - its id: that millisecond (48 bits), version 7, then bits from md5('order-' || i);
 * - its customer: 1 + (i - 1) mod customers (each customer's orders span the year);
 * - its status as the base seed has it (i % 20: 10 % PAID, the kitchen's queue; most DELIVERED).
 */

export const VOLUME_SPAN_MS = 365 * 86_400_000;
/**
 * Distinct delivery addresses, each sealed once with the orders service's key and shared by every
 * order with that number mod this (as bench/src/seed.ts): rows are seeded as the service writes them,
 * not in plaintext that its worker would re-encrypt during the measurements.
 */
const SEALED_ADDRESSES = 1_000;
/** Orders written per statement: small enough to report progress, large enough to stay fast. */
const CHUNK = 500_000;

export interface VolumeLayout {
  /** The instant the newest seeded order is placed (ms); the run starts after it. */
  baseMs: number;
  /** The largest size of the run: the number of time slots in the year. */
  maxOrders: number;
  /** Multiplier of the permutation (coprime with maxOrders). */
  step: number;
  customers: number;
  meals: number;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

export function volumeLayout(baseMs: number, maxOrders: number, customers: number, meals: number): VolumeLayout {
  // A prime near the square root of a million: spreads consecutive orders far apart in time.
  const step = [7919, 7927, 7933, 7937].find((p) => gcd(p, maxOrders) === 1)!;
  return { baseMs, maxOrders, step, customers, meals };
}

/** The millisecond order `i` was placed. BigInt: (i * step mod n) * span exceeds 2^53. */
export function orderTime(i: number, layout: VolumeLayout): number {
  const n = BigInt(layout.maxOrders);
  const slot = (BigInt(i - 1) * BigInt(layout.step)) % n;
  return layout.baseMs - Number((slot * BigInt(VOLUME_SPAN_MS)) / n);
}

/** Order `i`'s UUIDv7, the same as `pg_temp.vid(i)` computes. */
export function volumeOrderId(i: number, layout: VolumeLayout): string {
  const ms = orderTime(i, layout).toString(16).padStart(12, '0');
  const h = createHash('md5').update(`order-${i}`).digest('hex');
  return `${ms.slice(0, 8)}-${ms.slice(8, 12)}-7${h.slice(0, 3)}-8${h.slice(3, 6)}-${h.slice(6, 18)}`;
}

/** PAID orders (the kitchen's queue), as the base seed's status rule: i % 20 in {0, 1}. */
export const isPaid = (i: number) => i % 20 <= 1;

// --- Partitions ------------------------------------------------------------------------------------

/** The order tables, parents first (subgraphs/orders/src/data/partitions.ts, PARTITIONED_TABLES). */
const ORDER_TABLES = ['orders', 'order_items', 'order_item_addons', 'order_status_changes'] as const;

const monthStart = (ms: number, offset = 0) => {
  const d = new Date(ms);
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + offset, 1));
};
/** As partitions.ts: the smallest v7 id of a millisecond, and a month's partition name. */
const v7Bound = (date: Date) => {
  const hex = date.getTime().toString(16).padStart(12, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8)}-0000-0000-000000000000`;
};
const partitionName = (table: string, month: Date) =>
  `${table}_p${month.getUTCFullYear()}_${String(month.getUTCMonth() + 1).padStart(2, '0')}`;

/**
 * Makes the monthly partitions of the seeded year, from the first seeded month to the current one.
 *
 * The migration's legacy-low partitions take every id below 2026-12-01 (v7 ids start then), so a
 * v7 id of an earlier month would land there. A database a year into v7 ids has those months'
 * partitions instead: here, in the bench's own fresh database, each (empty) legacy-low partition is
 * remade to end where the first seeded month begins, and the months get partitions named and bounded
 * exactly as the orders worker's `ensurePartitions` makes them (which then finds them and makes only
 * the months ahead). Outbox and processed events keep their partitions: their ids are from now.
 */
export async function preparePartitions(url: string, layout: VolumeLayout): Promise<string[]> {
  const first = monthStart(layout.baseMs - VOLUME_SPAN_MS);
  const months: Date[] = [];
  for (let m = first; m.getTime() <= layout.baseMs; m = monthStart(m.getTime(), 1)) months.push(m);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('BEGIN');
    for (const table of [...ORDER_TABLES].reverse()) {
      await client.query(`ALTER TABLE "${table}" DETACH PARTITION "${table}_legacy_low"`);
      await client.query(`DROP TABLE "${table}_legacy_low"`);
    }
    for (const table of ORDER_TABLES)
      await client.query(
        `CREATE TABLE "${table}_legacy_low" PARTITION OF "${table}" FOR VALUES FROM (MINVALUE) TO ('${v7Bound(first)}')`,
      );
    const existing = new Set(
      (
        await client.query<{ name: string }>(
          `SELECT c.relname::text AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid`,
        )
      ).rows.map((row) => row.name),
    );
    for (const month of months) {
      for (const table of ORDER_TABLES) {
        const name = partitionName(table, month);
        if (existing.has(name)) continue;
        await client.query(
          `CREATE TABLE "${name}" PARTITION OF "${table}" FOR VALUES FROM ('${v7Bound(month)}') TO ('${v7Bound(monthStart(month.getTime(), 1))}')`,
        );
      }
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    await client.end();
  }
  return months.map((month) => partitionName('orders', month));
}

// --- Rows ------------------------------------------------------------------------------------------

function volumeFunctions(layout: VolumeLayout): string {
  const sizes: SeedSizes = { users: layout.customers, meals: layout.meals, orders: layout.maxOrders };
  const fn = (signature: string, returns: string, body: string) =>
    `CREATE FUNCTION pg_temp.${signature} RETURNS ${returns} LANGUAGE sql IMMUTABLE AS $fn$ ${body} $fn$;`;
  return [
    sqlFunctions(sizes, new Date(layout.baseMs).toISOString()),
    fn(
      'vms(i bigint)',
      'bigint',
      `SELECT ${layout.baseMs}::bigint - (((i - 1) * ${layout.step}) % ${layout.maxOrders}) * ${VOLUME_SPAN_MS}::bigint / ${layout.maxOrders}`,
    ),
    fn(
      'vid(i bigint)',
      'uuid',
      `SELECT (lpad(to_hex(pg_temp.vms(i)), 12, '0') || '7' || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid
         FROM (SELECT md5('order-' || i) AS h) x`,
    ),
    fn('vcreated(i bigint)', 'timestamptz', `SELECT to_timestamp(pg_temp.vms(i) / 1000.0)`),
  ].join('\n');
}

/**
 * The orders of one chunk of time slots, newest slot first (so oldest time first: ascending ids),
 * keeping those of the size being added: order i = slot * step^-1 mod maxOrders + 1. Rows go in in id
 * order, so each partition's indexes on the id (and the items' and history's on the order id) grow at
 * their ends and past rows' pages are touched once per chunk, not once per row.
 */
const chunkOrders = (layout: VolumeLayout, hi: number, lo: number, from: number, to: number) =>
  `(SELECT i FROM (SELECT (slot * ${inverse(layout.step, layout.maxOrders)}::bigint % ${layout.maxOrders}) + 1 AS i
                     FROM generate_series(${hi}::bigint, ${lo}::bigint, -1) slot) s
     WHERE i > ${from} AND i <= ${to})`;

/**
 * The three statements of one chunk, one per table, run at once on three connections. Status history
 * is the order's path in short: placed, paid (unless cancelled first), and the step into its current
 * status when it is past PAID: two or three rows an order.
 */
const chunkStatements = (orders: string): string[] => [
  `INSERT INTO orders (id, customer_id, status, currency, subtotal_amount, delivery_fee_amount, total_amount,
                       delivery_address_encrypted, delivery_address_key_id, version, created_at, updated_at)
   SELECT pg_temp.vid(i), pg_temp.customer(i::int), pg_temp.status(i::int)::"OrderStatus", 'EUR',
          pg_temp.subtotal(i::int), 299, pg_temp.subtotal(i::int) + 299, a.sealed, a.key_id,
          pg_temp.version(i::int), pg_temp.vcreated(i), pg_temp.vcreated(i) + interval '30 minutes'
     FROM ${orders} o JOIN pg_temp.sealed_addresses a ON a.k = i % ${SEALED_ADDRESSES}`,
  `INSERT INTO order_items (id, order_id, position, meal_id, meal_name, unit_price_amount, quantity, line_total_amount)
   SELECT gen_random_uuid(), o.id, j, pg_temp.uid('meal-' || pg_temp.item_meal(i::int, j)),
          pg_temp.meal_name(pg_temp.item_meal(i::int, j)), pg_temp.price(pg_temp.item_meal(i::int, j)),
          pg_temp.item_qty(i::int, j), pg_temp.price(pg_temp.item_meal(i::int, j)) * pg_temp.item_qty(i::int, j)
     FROM (SELECT i, pg_temp.vid(i) AS id FROM ${orders} x OFFSET 0) o, generate_series(0, (i % 3)::int) j`,
  `INSERT INTO order_status_changes (id, order_id, from_status, to_status, actor, changed_by, created_at)
   SELECT gen_random_uuid(), o.id,
          (CASE k WHEN 1 THEN NULL WHEN 2 THEN 'PENDING_PAYMENT' ELSE pg_temp.flow(s - 1) END)::"OrderStatus",
          (CASE WHEN k = 1 THEN 'PENDING_PAYMENT' WHEN s = 0 THEN 'CANCELLED' WHEN k = 2 THEN 'PAID'
                ELSE pg_temp.flow(s) END)::"OrderStatus",
          (CASE WHEN k = 1 OR s = 0 THEN 'CUSTOMER' WHEN k = 2 THEN 'SYSTEM' ELSE 'STAFF' END)::"OrderActor",
          CASE WHEN k = 1 OR s = 0 THEN pg_temp.customer(i::int)::text WHEN k = 2 THEN 'payments'
               ELSE pg_temp.uid('user-0')::text END,
          o.created + k * interval '1 minute'
     FROM (SELECT i, pg_temp.vid(i) AS id, pg_temp.vcreated(i) AS created, pg_temp.steps(i::int) AS s
             FROM ${orders} x OFFSET 0) o,
          generate_series(1, CASE WHEN s > 2 THEN 3 ELSE 2 END) k`,
];

/** x with (x * step) mod n = 1 (extended Euclid; step and n coprime). */
function inverse(step: number, n: number): number {
  let [a, b, x0, x1] = [BigInt(step), BigInt(n), 1n, 0n];
  while (b !== 0n) {
    const q = a / b;
    [a, b] = [b, a - q * b];
    [x0, x1] = [x1, x0 - q * x1];
  }
  return Number(((x0 % BigInt(n)) + BigInt(n)) % BigInt(n));
}

/**
 * Adds orders (from, to] with their items and status history, then VACUUM (ANALYZE): the planner's
 * statistics, and the visibility map set now rather than by autovacuum during a measurement. The rows
 * are consistent by construction, so the foreign keys' triggers are off for the seeding sessions
 * (session_replication_role = replica): otherwise every item and history row costs a lookup of its
 * order. `progress` is told after each chunk, with the share of the year done.
 */
export async function seedOrders(
  url: string,
  layout: VolumeLayout,
  from: number,
  to: number,
  ordersCipher: PersonalDataCipher,
  progress: (share: number) => void,
): Promise<void> {
  const clients = await Promise.all(
    [0, 1, 2].map(async () => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      await client.query(`SET session_replication_role = replica`);
      await client.query(volumeFunctions(layout));
      return client;
    }),
  );
  // The orders' statement (on the first connection) joins the sealed addresses.
  await clients[0]!.query(
    `CREATE TEMP TABLE sealed_addresses (k int PRIMARY KEY, sealed text NOT NULL, key_id text NOT NULL)`,
  );
  await clients[0]!.query(
    `INSERT INTO pg_temp.sealed_addresses SELECT k - 1, sealed, $2 FROM unnest($1::text[]) WITH ORDINALITY AS a(sealed, k)`,
    [
      Array.from({ length: SEALED_ADDRESSES }, (_, k) => ordersCipher.encrypt(`${k} Benchmark Street, Berlin`)),
      ordersCipher.activeKeyId,
    ],
  );
  // About CHUNK orders of this size per chunk of slots.
  const slotsPerChunk = Math.max(1, Math.ceil((CHUNK * layout.maxOrders) / (to - from)));
  try {
    for (let hi = layout.maxOrders - 1; hi >= 0; hi -= slotsPerChunk) {
      const lo = Math.max(0, hi - slotsPerChunk + 1);
      const orders = chunkOrders(layout, hi, lo, from, to);
      await Promise.all(chunkStatements(orders).map((sql, k) => clients[k]!.query(sql)));
      progress((layout.maxOrders - lo) / layout.maxOrders);
    }
    await Promise.all(
      ['orders', 'order_items', 'order_status_changes'].map((table, k) =>
        clients[k]!.query(`VACUUM (ANALYZE) ${table}`),
      ),
    );
  } finally {
    await Promise.all(clients.map((client) => client.end()));
  }
}

/** Rows of each order table, and the partitions they are in (for the report). */
export async function tableSizes(
  url: string,
): Promise<{ table: string; rows: number; partitions: number; bytes: number }[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ table: string; rows: string; partitions: string; bytes: string }>(
      `SELECT p.relname::text AS table, sum(c.reltuples)::bigint::text AS rows,
              count(*) FILTER (WHERE c.reltuples > 0)::text AS partitions,
              sum(pg_total_relation_size(c.oid))::bigint::text AS bytes
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname = ANY($1::text[]) AND c.relkind = 'r'
        GROUP BY p.relname ORDER BY p.relname`,
      [['orders', 'order_items', 'order_status_changes']],
    );
    // reltuples is the planner's estimate (off by a few % on partitions): the report counts exactly.
    const exact = new Map<string, number>();
    for (const row of rows) {
      const counted = await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM "${row.table}"`);
      exact.set(row.table, Number(counted.rows[0]!.n));
    }
    return rows.map((row) => ({
      table: row.table,
      rows: exact.get(row.table)!,
      partitions: Number(row.partitions),
      bytes: Number(row.bytes),
    }));
  } finally {
    await client.end();
  }
}
