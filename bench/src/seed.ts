import { createHash } from 'node:crypto';
import { databaseServices, migrateDeploy, type DatabaseService } from '@food/prisma';
import { BlindIndex, PersonalDataCipher } from '@food/platform';
import { withPostgres } from '@food/prisma/testing';
// The users service's own rules for its rows, from its domain modules: importing the package's
// root would load its Prisma client, which a clean clone has not generated before the bench builds.
import { hashPassword } from '@food/users-subgraph/domain/passwords';

/**
 * The bench's data, written straight into each service's own fresh database after the committed
 * migrations: no service code runs here, so seeding 100k orders takes seconds. Ids are derived from
 * numbers (`uid('order-42')`) so that the four databases agree without reading each other, and so the
 * bench knows whose order is whose.
 */

export interface SeedSizes {
  users: number;
  meals: number;
  orders: number;
}

/** The password of every seeded account (one scrypt hash, reused: every row verifies it). */
export const BENCH_PASSWORD = 'bench-password-not-a-secret';
export const STAFF_EMAIL = 'staff@bench.example';
export const customerEmail = (n: number) => `customer${n}@bench.example`;

/** A v4-shaped UUID from a name: the same in SQL (`pg_temp.uid`) and here. */
export function uid(name: string): string {
  const h = createHash('md5').update(name).digest('hex');
  const hex = `${h.slice(0, 12)}4${h.slice(13, 16)}8${h.slice(17, 32)}`;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
export const userId = (n: number) => uid(`user-${n}`);
export const orderId = (n: number) => uid(`order-${n}`);
export const mealId = (n: number) => uid(`meal-${n}`);
/** Customer of order `i`: each customer gets orders/users orders, spread over the year. */
export const customerOf = (i: number, sizes: SeedSizes) => 1 + ((i - 1) % sizes.users);
/** Orders `i` with i % 20 in {0, 1} are PAID (waiting for the kitchen): the subscription workload's. */
export const paidOrders = (sizes: SeedSizes): number[] => {
  const paid: number[] = [];
  for (let i = 1; i <= sizes.orders; i++) if (i % 20 <= 1) paid.push(i);
  return paid;
};
/** Meals m with m % 10 === 0 are unavailable. */
export const availableMeal = (k: number, sizes: SeedSizes) => {
  const m = 1 + (k % sizes.meals);
  return m % 10 === 0 ? m - 1 : m;
};

/** `count` available meals from the end of the menu (the HTTP workloads order from its start). */
export const menuMeals = (count: number, sizes: SeedSizes): number[] => {
  const meals: number[] = [];
  for (let m = sizes.meals; m > 0 && meals.length < count; m--) if (m % 10 !== 0) meals.push(m);
  return meals;
};

export interface BenchDatabase {
  service: DatabaseService;
  name: string;
  url: string;
}

export async function createDatabases(adminUrl: string, runId: string): Promise<BenchDatabase[]> {
  const created: BenchDatabase[] = [];
  for (const service of databaseServices) {
    const name = `bench_${service}_${runId}`;
    await withPostgres(adminUrl, (client) => client.query(`CREATE DATABASE "${name}"`));
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    created.push({ service, name, url: url.toString() });
  }
  return created;
}

export async function dropDatabases(adminUrl: string, names: string[]): Promise<void> {
  await withPostgres(adminUrl, async (client) => {
    for (const name of names) await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  });
}

/** Databases an earlier run left behind (it was killed before it could clean up). */
export async function staleDatabases(adminUrl: string): Promise<string[]> {
  return withPostgres(adminUrl, async (client) => {
    const { rows } = await client.query<{ datname: string }>(
      `SELECT datname FROM pg_database WHERE datname ~ '^bench_(users|meals|orders|payments)_[0-9a-f]+$'`,
    );
    return rows.map((row) => row.datname);
  });
}

export async function migrate(databases: BenchDatabase[]): Promise<void> {
  await Promise.all(databases.map((db) => migrateDeploy(db.service, db.url)));
}

/** The services' keys for personal data at rest (see packages/platform/src/personal-data.ts). */
export interface Secrets {
  encryptionKeyId: string;
  /** USERS_ENCRYPTION_KEYS' one key. */
  usersKey: Buffer;
  /** USERS_BLIND_INDEX_KEY. */
  blindIndexKey: Buffer;
  /** ORDERS_ENCRYPTION_KEYS' one key. */
  ordersKey: Buffer;
}

/**
 * What every bench process is given of the run's keys, and the token lifetimes the bench needs: its
 * tokens outlast the run, and the gateway accepts tokens that old.
 */
export const serviceKeysEnv = (keys: Secrets) => ({
  ACCESS_TOKEN_TTL_SECONDS: '86400',
  JWT_MAX_AGE_SECONDS: '86400',
  USERS_ENCRYPTION_KEYS: `${keys.encryptionKeyId}:${keys.usersKey.toString('base64')}`,
  USERS_ENCRYPTION_ACTIVE_KEY_ID: keys.encryptionKeyId,
  USERS_BLIND_INDEX_KEY: keys.blindIndexKey.toString('base64'),
  ORDERS_ENCRYPTION_KEYS: `${keys.encryptionKeyId}:${keys.ordersKey.toString('base64')}`,
  ORDERS_ENCRYPTION_ACTIVE_KEY_ID: keys.encryptionKeyId,
});

/** Distinct seeded delivery addresses: order i has address i % ORDER_ADDRESSES, sealed once each. */
const ORDER_ADDRESSES = 1_000;

export async function seed(databases: BenchDatabase[], sizes: SeedSizes, secrets: Secrets): Promise<void> {
  const url = (service: DatabaseService) => databases.find((db) => db.service === service)!.url;
  // One fixed instant, so orders and payments agree on every order's timestamps.
  const base = new Date().toISOString();
  // Sealed exactly as the services seal personal data, by the shared cipher, each with its own key.
  // Seeded rows are already in their encrypted form: left in plaintext, they would be the workers'
  // backfill to do during the measured runs (100k orders), on top of the load being measured.
  const cipher = new PersonalDataCipher(
    new Map([[secrets.encryptionKeyId, secrets.usersKey]]),
    secrets.encryptionKeyId,
  );
  const sealed = (plaintext: string) => cipher.encrypt(plaintext);
  const emailIndex = new BlindIndex(secrets.blindIndexKey);
  const ordersCipher = new PersonalDataCipher(
    new Map([[secrets.encryptionKeyId, secrets.ordersKey]]),
    secrets.encryptionKeyId,
  );
  // Each email sealed and indexed here (thousands: milliseconds); each address once, reused by every
  // order that has it (sealing 100k distinct ones would cost a second and megabytes of parameters).
  const emails = Array.from({ length: sizes.users }, (_, k) => customerEmail(k + 1));
  const addresses = Array.from({ length: ORDER_ADDRESSES }, (_, a) =>
    ordersCipher.encrypt(`${a} Benchmark Street, Berlin`),
  );
  const passwordHash = await hashPassword(BENCH_PASSWORD);
  await Promise.all([
    withPostgres(url('users'), async (client) => {
      await client.query(sqlFunctions(sizes, base));
      await client.query(
        `INSERT INTO users (id, email_encrypted, email_blind_index, password_hash, name, role, phone_encrypted,
                            delivery_address_encrypted, created_at, updated_at)
         SELECT pg_temp.uid('user-' || u), e.sealed, e.blind_index, $1, 'Bench Customer ' || u, 'CUSTOMER',
                $2, $3, $4::timestamptz - u * interval '1 minute', $4::timestamptz
           FROM unnest($5::text[], $6::text[]) WITH ORDINALITY AS e(sealed, blind_index, u)`,
        [
          passwordHash,
          sealed('+4915112345678'),
          sealed('1 Benchmark Street, Berlin'),
          base,
          emails.map(sealed),
          emails.map((email) => emailIndex.of(email)),
        ],
      );
      await client.query(
        `INSERT INTO users (id, email_encrypted, email_blind_index, password_hash, name, role, phone_encrypted,
                            delivery_address_encrypted, updated_at)
         VALUES (pg_temp.uid('user-0'), $1, $2, $3, 'Bench Chef', 'STAFF', $4, $5, now())`,
        [sealed(STAFF_EMAIL), emailIndex.of(STAFF_EMAIL), passwordHash, sealed('+33123456789'), sealed('The kitchen')],
      );
      await client.query('ANALYZE');
    }),
    withPostgres(url('meals'), async (client) => {
      const categories = Math.max(5, Math.round(sizes.meals / 20));
      await client.query(sqlFunctions(sizes, base));
      await client.query(
        `INSERT INTO categories (id, name, description, sort_order)
         SELECT pg_temp.uid('category-' || c), 'Category ' || lpad(c::text, 4, '0'), 'Bench category ' || c, c
           FROM generate_series(1, $1::int) c`,
        [categories],
      );
      await client.query(
        `INSERT INTO meals (id, category_id, name, description, price_amount, currency, available, created_at, updated_at)
         SELECT pg_temp.uid('meal-' || m), pg_temp.uid('category-' || (1 + m % $1::int)), pg_temp.meal_name(m),
                'Bench meal ' || m || ': a description about as long as a real menu has it.', pg_temp.price(m),
                'EUR', m % 10 <> 0, $2::timestamptz, $2::timestamptz
           FROM generate_series(1, $3::int) m`,
        [categories, base, sizes.meals],
      );
      await client.query(
        `INSERT INTO meal_addons (id, meal_id, name, price_amount, max_quantity, available, updated_at)
         SELECT gen_random_uuid(), pg_temp.uid('meal-' || m), 'Extra ' || a, 100 + 50 * a, 2, true, now()
           FROM generate_series(1, $1::int) m, generate_series(1, 2) a WHERE m % 2 = 0 OR a = 1`,
        [sizes.meals],
      );
      await client.query(
        `INSERT INTO meal_components (id, meal_id, name, allergens)
         SELECT gen_random_uuid(), pg_temp.uid('meal-' || m), 'Component ' || k,
                (CASE k WHEN 1 THEN '{GLUTEN}' WHEN 2 THEN '{MILK,SOY}' ELSE '{}' END)::"Allergen"[]
           FROM generate_series(1, $1::int) m, generate_series(1, 3) k`,
        [sizes.meals],
      );
      await client.query('ANALYZE');
    }),
    withPostgres(url('orders'), async (client) => {
      await client.query(sqlFunctions(sizes, base));
      await client.query(
        `INSERT INTO orders (id, customer_id, status, currency, subtotal_amount, delivery_fee_amount, total_amount,
                             delivery_address_encrypted, delivery_address_key_id, version, created_at, updated_at)
         SELECT pg_temp.uid('order-' || i), pg_temp.customer(i), pg_temp.status(i)::"OrderStatus", 'EUR',
                pg_temp.subtotal(i), 299, pg_temp.subtotal(i) + 299, a.sealed, $4,
                pg_temp.version(i), pg_temp.created(i), pg_temp.created(i) + interval '30 minutes'
           FROM generate_series(1, $1::int) i
           -- A join, not $2[k] per row (which costs 0.6 s more on 100k rows: the array is read each time).
           JOIN unnest($2::text[]) WITH ORDINALITY AS a(sealed, k) ON a.k = 1 + i % $3::int`,
        [sizes.orders, addresses, ORDER_ADDRESSES, secrets.encryptionKeyId],
      );
      await client.query(
        `INSERT INTO order_items (id, order_id, position, meal_id, meal_name, unit_price_amount, quantity, line_total_amount)
         SELECT gen_random_uuid(), pg_temp.uid('order-' || i), j, pg_temp.uid('meal-' || pg_temp.item_meal(i, j)),
                pg_temp.meal_name(pg_temp.item_meal(i, j)), pg_temp.price(pg_temp.item_meal(i, j)), pg_temp.item_qty(i, j),
                pg_temp.price(pg_temp.item_meal(i, j)) * pg_temp.item_qty(i, j)
           FROM generate_series(1, $1::int) i, generate_series(0, i % 3) j`,
        [sizes.orders],
      );
      await client.query(
        `INSERT INTO order_status_changes (id, order_id, from_status, to_status, actor, changed_by, created_at)
         SELECT gen_random_uuid(), pg_temp.uid('order-' || i),
                (CASE WHEN k = 1 THEN NULL ELSE pg_temp.flow(k - 1) END)::"OrderStatus",
                (CASE WHEN s = 0 AND k = 2 THEN 'CANCELLED' ELSE pg_temp.flow(k) END)::"OrderStatus",
                (CASE WHEN k = 1 OR s = 0 THEN 'CUSTOMER' WHEN k = 2 THEN 'SYSTEM' ELSE 'STAFF' END)::"OrderActor",
                CASE WHEN k = 1 OR s = 0 THEN pg_temp.customer(i)::text WHEN k = 2 THEN 'payments'
                     ELSE pg_temp.uid('user-0')::text END,
                pg_temp.created(i) + k * interval '1 minute'
           FROM (SELECT i, pg_temp.steps(i) AS s FROM generate_series(1, $1::int) i) o,
                generate_series(1, CASE WHEN s = 0 THEN 2 ELSE s END) k`,
        [sizes.orders],
      );
      await client.query('ANALYZE');
    }),
    withPostgres(url('payments'), async (client) => {
      await client.query(sqlFunctions(sizes, base));
      await client.query(
        `INSERT INTO payments (id, order_id, customer_id, amount, currency, status, payment_method_token,
                               provider_reference, idempotency_key, request_fingerprint, created_at, updated_at)
         SELECT pg_temp.uid('payment-' || i), pg_temp.uid('order-' || i), pg_temp.customer(i), pg_temp.subtotal(i) + 299,
                'EUR', 'SUCCEEDED', 'tok_sandbox_success', 'sandbox_seed_' || i, 'seed-payment-' || i,
                md5('seed-payment-' || i), pg_temp.created(i) + interval '1 minute', pg_temp.created(i) + interval '1 minute'
           FROM generate_series(1, $1::int) i WHERE pg_temp.steps(i) <> 0`,
        [sizes.orders],
      );
      await client.query('ANALYZE');
    }),
  ]);
}

/**
 * The rules every database's seed shares, as session-local SQL functions. Order i: status by i % 20
 * (PAID, the kitchen's steps, mostly DELIVERED, some CANCELLED before payment), 1 to 3 items.
 */
export function sqlFunctions(sizes: SeedSizes, base: string): string {
  const fn = (signature: string, returns: string, body: string) =>
    `CREATE FUNCTION pg_temp.${signature} RETURNS ${returns} LANGUAGE sql IMMUTABLE AS $fn$ ${body} $fn$;`;
  return [
    fn(
      'uid(t text)',
      'uuid',
      `SELECT (substr(h, 1, 12) || '4' || substr(h, 14, 3) || '8' || substr(h, 18, 15))::uuid FROM (SELECT md5(t) AS h) x`,
    ),
    fn('price(m int)', 'int', `SELECT 500 + (m * 37) % 1500`),
    fn('meal_name(m int)', 'text', `SELECT 'Meal ' || lpad(m::text, 5, '0')`),
    fn('item_meal(i int, j int)', 'int', `SELECT 1 + ((i * 7 + j * 13) % ${sizes.meals})`),
    fn('item_qty(i int, j int)', 'int', `SELECT 1 + (i + j) % 3`),
    fn(
      'subtotal(i int)',
      'int',
      `SELECT sum(pg_temp.price(pg_temp.item_meal(i, j)) * pg_temp.item_qty(i, j))::int FROM generate_series(0, i % 3) j`,
    ),
    // Statuses reached on the happy path (2 = PAID ... 7 = DELIVERED); 0 = cancelled before payment.
    fn(
      'steps(i int)',
      'int',
      `SELECT CASE WHEN i % 20 <= 1 THEN 2 WHEN i % 20 <= 5 THEN i % 20 + 1 WHEN i % 20 = 19 THEN 0 ELSE 7 END`,
    ),
    fn(
      'flow(k int)',
      'text',
      `SELECT (ARRAY['PENDING_PAYMENT','PAID','ACCEPTED','PREPARING','READY','OUT_FOR_DELIVERY','DELIVERED'])[k]`,
    ),
    fn(
      'status(i int)',
      'text',
      `SELECT CASE pg_temp.steps(i) WHEN 0 THEN 'CANCELLED' ELSE pg_temp.flow(pg_temp.steps(i)) END`,
    ),
    fn('version(i int)', 'int', `SELECT CASE pg_temp.steps(i) WHEN 0 THEN 2 ELSE pg_temp.steps(i) END`),
    fn('customer(i int)', 'uuid', `SELECT pg_temp.uid('user-' || (1 + (i - 1) % ${sizes.users}))`),
    fn('created(i int)', 'timestamptz', `SELECT '${base}'::timestamptz - i * interval '3 minutes'`),
  ].join('\n');
}
