import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrismaPg } from '@prisma/adapter-pg';
import { createLogger, newId, PersonalDataCipher } from '@food/platform';
import { testSecrets } from '@food/platform/testing';
import { createTestDatabase, createTestDatabaseAt, withPostgres } from '@food/prisma/testing';
import { PrismaClient } from './generated/prisma/client.js';
import { PrismaOrdersStore } from './orders-store.js';
import {
  ensurePartitions,
  maintainPartitions,
  monthStart,
  partitionName,
  PARTITIONED_TABLES,
  v7Bound,
} from './partitions.js';
import { connectOrdersDatabase, type OrdersPrisma } from './prisma.js';
import { loadOrdersConfig } from '../config.js';

const logger = createLogger('partitions-test', 'silent');
const cipher = new PersonalDataCipher(new Map([['test', Buffer.alloc(32, 2)]]), 'test');
const CUSTOMER = '30000000-0000-4000-8000-000000000001';

/** A UUIDv7 of the instant `at` (random tail), as the app would have made then. */
const v7At = (at: Date) => {
  const id = newId();
  const hex = at.getTime().toString(16).padStart(12, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8)}${id.slice(13)}`;
};
/** A UUIDv4-shaped id with the given first 8 hex digits (where a legacy id falls is its prefix). */
const v4With = (prefix: string, n: number) => `${prefix}-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

/** The partitions `EXPLAIN` shows a statement reading. */
async function partitionsRead(url: string, sql: string): Promise<string[]> {
  const plan = await withPostgres(url, (client) =>
    client.query<{ 'QUERY PLAN': string }>(`EXPLAIN (COSTS OFF) ${sql}`),
  );
  const lines = plan.rows.map((row) => row['QUERY PLAN']);
  return [...new Set(lines.flatMap((line) => [...line.matchAll(/ on (\w+)/g)].map((match) => match[1]!)))];
}
/** The plan of `sql` as the planner would pick it at volume (tiny test tables would be scanned whole). */
const explainAtVolume = (url: string, sql: string) =>
  withPostgres(url, async (client) => {
    await client.query('SET enable_seqscan = off');
    await client.query('SET enable_bitmapscan = off');
    const plan = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN (COSTS OFF) ${sql}`);
    return plan.rows.map((row) => row['QUERY PLAN']).join('\n');
  });

/** A sort in the plan (a Merge Append's own "Sort Key" merges index orders: not a sort). */
const SORT_NODE = /->\s+(Incremental )?Sort\b/;

const where = (url: string, table: string, column: string, id: string) =>
  withPostgres(url, (client) =>
    client.query<{ partition: string }>(
      `SELECT tableoid::regclass::text AS partition FROM "${table}" WHERE "${column}" = $1`,
      [id],
    ),
  ).then((result) => result.rows.map((row) => row.partition));

describe('the migration to partitioned tables, on a database with rows', () => {
  let database: Awaited<ReturnType<typeof createTestDatabaseAt>>;
  let prisma: OrdersPrisma;
  // Legacy ids in each region: below the v7 epoch, inside the v7 era (2027-01 bits), above the horizon.
  const low = Array.from({ length: 5 }, (_, n) => v4With('00aa0000', n));
  const inEra = Array.from({ length: 3 }, (_, n) => v4With('01a2d000', n)); // 2027-01
  const high = Array.from({ length: 5 }, (_, n) => v4With('ffee0000', n));
  const orders = [...low, ...inEra, ...high];
  let before: Record<string, unknown[]>;
  let firstPage: string[];

  const snapshot = (url: string) =>
    withPostgres(url, async (client) => {
      const rows = async (sql: string) => (await client.query(sql)).rows;
      return {
        // The columns of the partitioning migration's time (later ones add some, and a job fills them).
        orders: await rows(
          `SELECT id, customer_id, status, currency, subtotal_amount, delivery_fee_amount, total_amount,
                  delivery_address, version, created_at, updated_at FROM orders ORDER BY id`,
        ),
        items: await rows('SELECT id, order_id, position, meal_id, meal_name, quantity FROM order_items ORDER BY id'),
        addons: await rows('SELECT id, order_item_id, addon_id, name, quantity FROM order_item_addons ORDER BY id'),
        history: await rows('SELECT * FROM order_status_changes ORDER BY id'),
        outbox: await rows('SELECT * FROM outbox_events ORDER BY sequence'),
        processed: await rows('SELECT * FROM processed_events ORDER BY consumer, event_id'),
      };
    });

  beforeAll(async () => {
    database = await createTestDatabaseAt('orders', '20261125010000_lifecycle_outbox');
    await withPostgres(database.url, async (client) => {
      for (const [n, id] of orders.entries()) {
        const createdAt = new Date(Date.UTC(2026, 0, 1 + n));
        await client.query(
          `INSERT INTO orders (id, customer_id, status, currency, subtotal_amount, delivery_fee_amount, total_amount,
                               delivery_address, created_at, updated_at)
           VALUES ($1, $2, 'PAID', 'EUR', 1000, 299, 1299, 'Main St 1', $3, $3)`,
          [id, CUSTOMER, createdAt],
        );
        for (const position of [0, 1]) {
          const item = v4With('5' + id.slice(1, 8), n * 2 + position);
          await client.query(
            `INSERT INTO order_items (id, order_id, position, meal_id, meal_name, unit_price_amount, quantity, line_total_amount)
             VALUES ($1, $2, $3, $4, 'Pizza', 500, 1, 500)`,
            [item, id, position, v4With('10000000', 1)],
          );
          await client.query(
            `INSERT INTO order_item_addons (id, order_item_id, addon_id, name, unit_price_amount, quantity)
             VALUES ($1, $2, $3, 'Cheese', 100, 1)`,
            [v4With('6' + id.slice(1, 8), n * 2 + position), item, v4With('20000000', 1)],
          );
        }
        await client.query(
          `INSERT INTO order_status_changes (id, order_id, from_status, to_status, changed_by, created_at, actor)
           VALUES ($1, $2, NULL, 'PENDING_PAYMENT', $3, $4, 'CUSTOMER'), ($5, $2, 'PENDING_PAYMENT', 'PAID', 'payments', $4, 'SYSTEM')`,
          [v4With('7' + id.slice(1, 8), n * 2), id, CUSTOMER, createdAt, v4With('7' + id.slice(1, 8), n * 2 + 1)],
        );
        await client.query(
          `INSERT INTO outbox_events (id, stream, type, aggregate_id, payload, published_at)
           VALUES ($1, 'orders', 'order.placed', $2, '{}', $3)`,
          [v4With('8' + id.slice(1, 8), n), id, n % 2 === 0 ? new Date() : null],
        );
        await client.query(`INSERT INTO processed_events (consumer, event_id) VALUES ('orders', $1)`, [
          v4With('9' + id.slice(1, 8), n),
        ]);
      }
      firstPage = (
        await client.query<{ id: string }>(
          'SELECT id FROM orders WHERE customer_id = $1 ORDER BY created_at DESC, id DESC LIMIT 10',
          [CUSTOMER],
        )
      ).rows.map((row) => row.id);
    });
    before = await snapshot(database.url);
    await database.migrateRest();
    prisma = connectOrdersDatabase(database.url, 2);
  });
  afterAll(async () => {
    await prisma?.$disconnect();
    await database?.drop();
  });

  it('keeps every row, and gives each add-on its order id', async () => {
    const after = await snapshot(database.url);
    expect(after).toEqual(before);
    const addons = await withPostgres(database.url, (client) =>
      client.query<{ wrong: number }>(
        `SELECT count(*)::int AS wrong FROM order_item_addons a JOIN order_items i ON i.id = a.order_item_id
          WHERE a.order_id <> i.order_id`,
      ),
    );
    expect(addons.rows[0]!.wrong).toBe(0);
  });

  it('puts legacy ids where their value falls: legacy ranges, or DEFAULT inside the v7 era', async () => {
    expect(await where(database.url, 'orders', 'id', low[0]!)).toEqual(['orders_legacy_low']);
    expect(await where(database.url, 'orders', 'id', high[0]!)).toEqual(['orders_legacy_high']);
    expect(await where(database.url, 'orders', 'id', inEra[0]!)).toEqual(['orders_default']);
    expect(await where(database.url, 'order_items', 'order_id', high[0]!)).toEqual([
      'order_items_legacy_high',
      'order_items_legacy_high',
    ]);
    expect(await where(database.url, 'order_status_changes', 'order_id', low[0]!)).toEqual([
      'order_status_changes_legacy_low',
      'order_status_changes_legacy_low',
    ]);
  });

  it('answers the same reads through the store', async () => {
    const store = new PrismaOrdersStore(prisma, cipher);
    expect((await store.findByIds(orders)).map((order) => order.id).sort()).toEqual([...orders].sort());
    expect((await store.pageOfCustomer(CUSTOMER, 10, null)).map((order) => order.id)).toEqual(firstPage);
    const items = await store.findItems(orders);
    expect(items).toHaveLength(orders.length * 2);
    expect(items.every((item) => item.addons.length === 1)).toBe(true);
    expect(await store.findStatusChanges(orders)).toHaveLength(orders.length * 2);
  });

  it('reads one partition for order(id), for a legacy id too', async () => {
    for (const [id, partition] of [
      [low[1]!, 'orders_legacy_low'],
      [high[1]!, 'orders_legacy_high'],
      [inEra[1]!, 'orders_default'],
    ] as const)
      expect(await partitionsRead(database.url, `SELECT * FROM orders WHERE id = '${id}'`)).toEqual([partition]);
  });

  it('continues the outbox sequence, and the relay still reads unpublished rows in order', async () => {
    const { rows } = await withPostgres(database.url, (client) =>
      client.query<{ sequence: string }>(
        `INSERT INTO outbox_events (id, stream, type, aggregate_id, payload) VALUES ($1, 'orders', 'order.placed', $2, '{}')
         RETURNING sequence`,
        [newId(), orders[0]],
      ),
    );
    expect(Number(rows[0]!.sequence)).toBe(orders.length + 1);
    const unpublished = await withPostgres(database.url, (client) =>
      client.query<{ sequence: string }>(
        'SELECT sequence FROM outbox_events WHERE published_at IS NULL ORDER BY sequence',
      ),
    );
    const sequences = unpublished.rows.map((row) => Number(row.sequence));
    expect(sequences).toEqual([...sequences].sort((a, b) => a - b));
  });

  it('moves legacy rows out of DEFAULT when their month gets its partition, and still finds them', async () => {
    const report = await ensurePartitions(prisma, { monthsAhead: 0, now: new Date(Date.UTC(2027, 0, 15)) });
    expect(report.created).toContain('orders_p2027_01');
    // The order rows of the legacy ids, and the v7 outbox row the test before wrote (this month's,
    // which had no partition either: the job makes one for any month it finds v7 rows of in DEFAULT).
    expect(report.created).toContain(partitionName('outbox_events', monthStart(new Date())));
    expect(report.moved).toBe(inEra.length * (1 + 2 + 2 + 2) + 1);
    expect(await where(database.url, 'orders', 'id', inEra[0]!)).toEqual(['orders_p2027_01']);
    expect(await where(database.url, 'order_item_addons', 'order_id', inEra[0]!)).toEqual([
      'order_item_addons_p2027_01',
      'order_item_addons_p2027_01',
    ]);
    expect(await partitionsRead(database.url, `SELECT * FROM orders WHERE id = '${inEra[0]}'`)).toEqual([
      'orders_p2027_01',
    ]);
    expect(await snapshot(database.url)).toMatchObject({ orders: before.orders, history: before.history });
  });
});

describe('the partition job', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let prisma: OrdersPrisma;
  let other: OrdersPrisma;
  const now = new Date(Date.UTC(2027, 2, 10)); // 2027-03
  const orderId = v7At(now);

  beforeAll(async () => {
    database = await createTestDatabase('orders');
    prisma = connectOrdersDatabase(database.url, 2);
    other = new PrismaClient({ adapter: new PrismaPg({ connectionString: database.url, max: 2 }) });
  });
  afterAll(async () => {
    await prisma?.$disconnect();
    await other?.$disconnect();
    await database?.drop();
  });

  const place = (id: string) =>
    new PrismaOrdersStore(prisma, cipher).create({
      id,
      customerId: CUSTOMER,
      currency: 'EUR',
      subtotalAmount: 1000,
      deliveryFeeAmount: 299,
      totalAmount: 1299,
      deliveryAddress: 'Main St 1',
      status: 'PENDING_PAYMENT',
      changedBy: CUSTOMER,
      lines: [
        {
          mealId: v4With('10000000', 1),
          mealName: 'Pizza',
          unitPriceAmount: 1000,
          quantity: 1,
          lineTotalAmount: 1000,
          addons: [{ addonId: v4With('20000000', 1), name: 'Cheese', unitPriceAmount: 0, quantity: 1 }],
        },
      ],
      events: [],
      idempotency: { key: `partitions-${id}`, requestHash: '0'.repeat(64) },
    });

  it('a write to a month with no partition lands in DEFAULT, not an error', async () => {
    await place(orderId);
    expect(await where(database.url, 'orders', 'id', orderId)).toEqual(['orders_default']);
    expect(await where(database.url, 'order_item_addons', 'order_id', orderId)).toEqual(['order_item_addons_default']);
  });

  it('creates this month and the months ahead once, with two workers at once, moving DEFAULT rows in', async () => {
    const [first, second] = await Promise.all([
      ensurePartitions(prisma, { monthsAhead: 2, now }),
      ensurePartitions(other, { monthsAhead: 2, now }),
    ]);
    const months = [0, 1, 2].map((offset) => monthStart(now, offset));
    const expected = months.flatMap((month) => PARTITIONED_TABLES.map(({ table }) => partitionName(table, month)));
    expect([...first.created, ...second.created].sort()).toEqual(expected.sort());
    expect(first.moved + second.moved).toBe(4); // the order, its line, add-on and first status change
    expect(await where(database.url, 'orders', 'id', orderId)).toEqual(['orders_p2027_03']);
    expect(await where(database.url, 'order_status_changes', 'order_id', orderId)).toEqual([
      'order_status_changes_p2027_03',
    ]);
    expect((await ensurePartitions(prisma, { monthsAhead: 2, now })).created).toEqual([]);
    expect((await ensurePartitions(prisma, { monthsAhead: 2, now })).defaults.orders).toEqual({ v7: 0, legacy: 0 });
    expect(await partitionsRead(database.url, `SELECT * FROM orders WHERE id = '${orderId}'`)).toEqual([
      'orders_p2027_03',
    ]);
    // Prisma's own statement shape, planned once for any id (a generic plan): pruned when it runs.
    const generic = await withPostgres(database.url, async (client) => {
      await client.query('SET plan_cache_mode = force_generic_plan');
      await client.query(`PREPARE by_id(uuid) AS SELECT * FROM "public"."orders" WHERE "public"."orders"."id" IN ($1)`);
      const plan = await client.query<{ 'QUERY PLAN': string }>(
        `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE by_id('${orderId}')`,
      );
      return plan.rows.map((row) => row['QUERY PLAN']).join('\n');
    });
    expect(generic).toMatch(/Subplans Removed/);
    expect([...generic.matchAll(/ on (orders_\w+)/g)].map((match) => match[1])).toEqual(['orders_p2027_03']);
    // Bounds are the v7 ids of the month's first millisecond.
    const bounds = await withPostgres(database.url, (client) =>
      client.query<{ bound: string }>(
        `SELECT pg_get_expr(relpartbound, oid) AS bound FROM pg_class WHERE relname = 'orders_p2027_03'`,
      ),
    );
    expect(bounds.rows[0]!.bound).toBe(`FOR VALUES FROM ('${v7Bound(months[0]!)}') TO ('${v7Bound(months[1]!)}')`);
  });

  it('keeps every partition when no retention is set (the default)', async () => {
    expect(loadOrdersConfig(testEnv()).ORDERS_PARTITION_RETENTION_MONTHS).toBeUndefined();
    const later = new Date(Date.UTC(2029, 0, 1));
    const { retention } = await maintainPartitions(prisma, { monthsAhead: 0, now: later }, logger);
    expect(retention).toBeNull();
    expect(await where(database.url, 'orders', 'id', orderId)).toEqual(['orders_p2027_03']);
  });

  it('detaches partitions past the retention, keeps their rows, and keeps an outbox month with unpublished events', async () => {
    const unpublished = v7At(new Date(Date.UTC(2027, 3, 2))); // 2027-04
    await withPostgres(database.url, (client) =>
      client.query(
        `INSERT INTO outbox_events (id, stream, type, aggregate_id, payload) VALUES ($1, 'orders', 'order.placed', $2, '{}')`,
        [unpublished, orderId],
      ),
    );
    const retentionMonths = loadOrdersConfig({
      ...testEnv(),
      ORDERS_PARTITION_RETENTION_MONTHS: '2',
    }).ORDERS_PARTITION_RETENTION_MONTHS;
    // In 2027-07 with 2 months kept, 2027-03 and 2027-04 are past (2027-05 on are kept).
    const { retention } = await maintainPartitions(
      prisma,
      { monthsAhead: 0, retentionMonths, now: new Date(Date.UTC(2027, 6, 1)) },
      logger,
    );
    expect(retention!.detached).toContain('orders_p2027_03');
    expect(retention!.detached).toContain('order_items_p2027_04');
    expect(retention!.detached).not.toContain('orders_p2027_05');
    expect(retention!.keptUnpublished).toEqual(['outbox_events_p2027_04']);
    expect(await where(database.url, 'orders', 'id', orderId)).toEqual([]);
    const archived = await withPostgres(database.url, (client) =>
      client.query('SELECT id FROM orders_p2027_03 WHERE id = $1', [orderId]),
    );
    expect(archived.rowCount).toBe(1);
    expect(await where(database.url, 'outbox_events', 'id', unpublished)).toEqual(['outbox_events_p2027_04']);
  });

  it('indexes the reads that matter at volume, per partition', async () => {
    await ensurePartitions(prisma, { monthsAhead: 1, now: new Date() });
    const myOrders = await explainAtVolume(
      database.url,
      `SELECT * FROM orders WHERE customer_id = '${CUSTOMER}' ORDER BY created_at DESC, id DESC LIMIT 10`,
    );
    expect(myOrders).toMatch(/Merge Append/);
    expect(myOrders).toMatch(/_customer_id_created_at_id_idx/);
    expect(myOrders).not.toMatch(SORT_NODE);
    const kitchen = await explainAtVolume(
      database.url,
      `SELECT * FROM orders WHERE status = 'PAID' ORDER BY created_at, id LIMIT 50`,
    );
    expect(kitchen).toMatch(/_status_created_at_id_idx/);
    expect(kitchen).not.toMatch(SORT_NODE);
    const relay = await explainAtVolume(
      database.url,
      `SELECT sequence FROM outbox_events WHERE published_at IS NULL ORDER BY sequence LIMIT 100`,
    );
    // Each partition's index yields only unpublished rows, in sequence order: the planner merges
    // them, or (as on these tiny tables) sorts that backlog, never the table.
    expect(relay).toMatch(/_published_at_sequence_idx/);
    expect(relay).toMatch(/Index Cond: \(published_at IS NULL\)/);
    expect(relay).not.toMatch(/Seq Scan/);
  });
});

function testEnv(): Record<string, string> {
  return {
    ORDERS_DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/unused',
    INTERNAL_TOKEN_SECRET: 'x'.repeat(32),
    ORDERS_ENCRYPTION_KEYS: testSecrets.ORDERS_ENCRYPTION_KEYS,
    ORDERS_ENCRYPTION_ACTIVE_KEY_ID: testSecrets.ORDERS_ENCRYPTION_ACTIVE_KEY_ID,
    MEALS_SUBGRAPH_URL: 'http://127.0.0.1:4002/graphql',
  };
}
