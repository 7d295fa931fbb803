import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApolloServer } from '@apollo/server';
import { createLogger, UserTokens, type Caller } from '@food/platform';
import { errorCodes, execute, startTestSubgraphServer, testSecrets } from '@food/platform/testing';
import {
  createTestDatabaseAt,
  createTestDatabaseClient,
  withPostgres,
  type TestDatabaseClient,
} from '@food/prisma/testing';
import { loadUsersConfig, type UsersConfig } from './config.js';
import { createContext, type SubgraphContext } from './context.js';
import { PersonalDataCipher } from '@food/platform';
import { UsersService } from './domain/users.js';
import { hashPassword } from './domain/passwords.js';
import { PrismaUsersStore } from './data/users-store.js';
import { PrismaClient } from './data/generated/prisma/client.js';
import { PrismaPg } from '@prisma/adapter-pg';
import { usersPersonalData, usersTypeDefs } from './app.js';
import { sweepUsersPersonalData } from './data/personal-data-sweep.js';
import { protectPersonalData } from './jobs/protect-personal-data.js';
import { resolvers } from './resolvers/index.js';

const key = (byte: number) => Buffer.alloc(32, byte).toString('base64');

let database: TestDatabaseClient<PrismaClient<'query'>>;
let prisma: PrismaClient<'query'>;
let sqlQueries: string[];
let config: UsersConfig;
let users: UsersService;
let server: ApolloServer<SubgraphContext>;

beforeAll(async () => {
  database = await createTestDatabaseClient('users', PrismaClient, PrismaPg);
  ({ prisma, sqlQueries } = database);
  config = loadUsersConfig({
    ...testSecrets,
    USERS_DATABASE_URL: database.url,
    USERS_ENCRYPTION_KEYS: `k2:${key(2)},k1:${key(1)}`,
    USERS_ENCRYPTION_ACTIVE_KEY_ID: 'k2',
  });
  users = serviceOn(prisma, config);
  server = await startTestSubgraphServer<SubgraphContext>({ typeDefs: usersTypeDefs, resolvers });
});

afterAll(async () => {
  await server?.stop();
  await database?.close();
});

/** The users service over a database, with the configuration's keys. */
const serviceOn = (client: PrismaClient, usersConfig: UsersConfig) => {
  const { cipher, emailIndex } = usersPersonalData(usersConfig);
  return new UsersService(
    new PrismaUsersStore(client),
    cipher,
    new UserTokens({
      secret: usersConfig.JWT_SECRET,
      issuer: 'food-users',
      audience: 'food-supergraph',
      ttlSeconds: 3600,
    }),
    emailIndex,
  );
};

const run = (caller: Caller, query: string, variables?: Record<string, unknown>) =>
  execute<Record<string, any>, SubgraphContext>(server, createContext(caller, users), query, variables);
const anonymous: Caller = { kind: 'anonymous' };

const SIGN_UP = `mutation ($input: SignUpInput!) { signUp(input: $input) { token expiresAt user { id email name role phone deliveryAddress } } }`;

describe('users subgraph', () => {
  let adaId = '';

  it('signs up a customer, returns a verifiable JWT, and stores personal data encrypted', async () => {
    const result = await run(anonymous, SIGN_UP, {
      input: {
        email: ' Ada@Example.com ',
        password: 'correct horse',
        name: 'Ada',
        phone: '+441234567890',
        deliveryAddress: '12 St James Square',
      },
    });
    expect(result.errors).toBeUndefined();
    const { token, user } = result.data!.signUp;
    adaId = user.id;
    expect(user).toMatchObject({ email: 'ada@example.com', role: 'CUSTOMER', phone: '+441234567890' });
    const verified = await new UserTokens({
      secret: config.JWT_SECRET,
      issuer: 'food-users',
      audience: 'food-supergraph',
      ttlSeconds: 1,
    }).verify(token);
    expect(verified).toEqual({ kind: 'user', userId: adaId, role: 'CUSTOMER' });

    const [row] = await prisma.$queryRaw<
      {
        email: string | null;
        email_encrypted: string;
        email_blind_index: string;
        phone_encrypted: string;
        delivery_address_encrypted: string;
        password_hash: string;
      }[]
    >`
      SELECT email, email_encrypted, email_blind_index, phone_encrypted, delivery_address_encrypted, password_hash
        FROM users WHERE id = ${adaId}::uuid`;
    // The email is nowhere in plaintext: sealed, and its keyed blind index (not a plain hash of it).
    expect(row!.email).toBeNull();
    expect(row!.email_encrypted).toMatch(/^k2:/);
    expect(JSON.stringify(row)).not.toMatch(/ada@|example\.com/i);
    expect(row!.email_blind_index).toMatch(/^[0-9a-f]{64}$/);
    expect(row!.email_blind_index).not.toBe(createHash('sha256').update('ada@example.com').digest('hex'));
    expect(row!.phone_encrypted).toMatch(/^k2:/);
    expect(row!.phone_encrypted).not.toContain('1234567890');
    expect(row!.delivery_address_encrypted).not.toContain('James');
    expect(row!.password_hash).toMatch(/^scrypt\$/);
  });

  it('refuses a second account with the same email, whatever its case', async () => {
    const result = await run(anonymous, SIGN_UP, {
      input: { email: 'ADA@example.com', password: 'another one', name: 'Ada 2' },
    });
    expect(errorCodes(result)).toEqual(['EMAIL_TAKEN']);
    expect(await prisma.user.count()).toBe(1);
  });

  it.each([
    ['an invalid email', { email: 'not-an-email', password: 'long enough', name: 'X' }],
    ['a short password', { email: 'x@example.com', password: 'short', name: 'X' }],
    ['an oversized name', { email: 'x@example.com', password: 'long enough', name: 'x'.repeat(101) }],
    ['a malformed phone', { email: 'x@example.com', password: 'long enough', name: 'X', phone: '12345' }],
  ])('refuses %s with BAD_USER_INPUT and writes nothing', async (_label, input) => {
    const result = await run(anonymous, SIGN_UP, { input });
    expect(errorCodes(result)).toEqual(['BAD_USER_INPUT']);
    expect(await prisma.user.count()).toBe(1);
  });

  it('logs in with the right password only', async () => {
    const LOG_IN = `mutation ($input: LogInInput!) { logIn(input: $input) { user { id } } }`;
    const ok = await run(anonymous, LOG_IN, { input: { email: 'ada@example.com', password: 'correct horse' } });
    expect(ok.data!.logIn.user.id).toBe(adaId);
    const otherCase = await run(anonymous, LOG_IN, { input: { email: ' ADA@Example.COM', password: 'correct horse' } });
    expect(otherCase.data!.logIn.user.id).toBe(adaId);
    const wrong = await run(anonymous, LOG_IN, { input: { email: 'ada@example.com', password: 'wrong horse' } });
    expect(errorCodes(wrong)).toEqual(['INVALID_CREDENTIALS']);
    const unknown = await run(anonymous, LOG_IN, { input: { email: 'nobody@example.com', password: 'whatever1' } });
    expect(errorCodes(unknown)).toEqual(['INVALID_CREDENTIALS']);
  });

  it('shows personal data to the user and staff, not to other customers', async () => {
    const query = `query ($reps: [_Any!]!) { _entities(representations: $reps) { ... on User { id name email phone } } }`;
    const reps = [{ __typename: 'User', id: adaId }];
    const other = await run({ kind: 'user', userId: '00000000-0000-4000-8000-000000000001', role: 'CUSTOMER' }, query, {
      reps,
    });
    expect(other.data!._entities[0]).toEqual({ id: adaId, name: 'Ada', email: null, phone: null });
    const staff = await run({ kind: 'user', userId: '00000000-0000-4000-8000-000000000002', role: 'STAFF' }, query, {
      reps,
    });
    expect(staff.data!._entities[0].phone).toBe('+441234567890');
    const self = await run({ kind: 'user', userId: adaId, role: 'CUSTOMER' }, `{ me { email deliveryAddress } }`);
    expect(self.data!.me).toEqual({ email: 'ada@example.com', deliveryAddress: '12 St James Square' });
  });

  it('resolves any number of User references with one database query', async () => {
    for (const name of ['B', 'C', 'D']) {
      await run(anonymous, SIGN_UP, { input: { email: `${name}@example.com`, password: 'long enough', name } });
    }
    const ids = (await prisma.user.findMany({ select: { id: true } })).map((u) => u.id);
    expect(ids).toHaveLength(4);
    sqlQueries.length = 0;
    const result = await run(
      anonymous,
      `query ($reps: [_Any!]!) { _entities(representations: $reps) { ... on User { id name } } }`,
      {
        reps: ids.map((id) => ({ __typename: 'User', id })),
      },
    );
    expect(result.data!._entities.map((u: { id: string }) => u.id)).toEqual(ids);
    expect(sqlQueries.filter((sql) => /FROM "public"\."users"/.test(sql))).toHaveLength(1);
  });

  it('lets only admins change roles', async () => {
    const mutation = `mutation ($id: ID!) { setUserRole(userId: $id, role: STAFF) { role } }`;
    const asCustomer = await run({ kind: 'user', userId: adaId, role: 'CUSTOMER' }, mutation, { id: adaId });
    expect(errorCodes(asCustomer)).toEqual(['FORBIDDEN']);
    const asAdmin = await run(
      { kind: 'user', userId: '00000000-0000-4000-8000-000000000003', role: 'ADMIN' },
      mutation,
      { id: adaId },
    );
    expect(asAdmin.data!.setUserRole.role).toBe('STAFF');
  });

  it('reads values sealed with an older key after the active key rotates', () => {
    const old = new PersonalDataCipher(config.USERS_ENCRYPTION_KEYS, 'k1');
    const current = new PersonalDataCipher(config.USERS_ENCRYPTION_KEYS, 'k2');
    const sealed = old.encrypt('+15550100');
    expect(current.decrypt(sealed)).toBe('+15550100');
    expect(current.needsRotation(sealed)).toBe(true);
    expect(() => current.decrypt(sealed.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')))).toThrow();
  });

  it('fails fast with a clear message on a missing or bad variable', () => {
    expect(() =>
      loadUsersConfig({ ...testSecrets, USERS_ENCRYPTION_KEYS: 'k1:short', USERS_ENCRYPTION_ACTIVE_KEY_ID: 'k1' }),
    ).toThrow(/USERS_DATABASE_URL: .*required[\s\S]*USERS_ENCRYPTION_KEYS: each entry must be/);
    const valid = { ...testSecrets, USERS_DATABASE_URL: 'postgres://x' };
    expect(() => loadUsersConfig({ ...valid, USERS_BLIND_INDEX_KEY: undefined })).toThrow(
      /USERS_BLIND_INDEX_KEY: is required/,
    );
    expect(() => loadUsersConfig({ ...valid, USERS_BLIND_INDEX_KEY: Buffer.alloc(16).toString('base64') })).toThrow(
      /USERS_BLIND_INDEX_KEY: must be base64 of at least 32 bytes/,
    );
    expect(() => loadUsersConfig({ ...valid, USERS_ENCRYPTION_ACTIVE_KEY_ID: 'nope' })).toThrow(
      /USERS_ENCRYPTION_ACTIVE_KEY_ID: must name a key in USERS_ENCRYPTION_KEYS/,
    );
  });
});

describe('email at rest, for accounts from before it was encrypted', () => {
  const LOG_IN = `mutation ($input: LogInInput!) { logIn(input: $input) { user { id email phone } } }`;
  const logger = createLogger('users-test', 'silent');
  let legacy: Awaited<ReturnType<typeof createTestDatabaseAt>>;
  let client: PrismaClient;
  let k1: UsersConfig;
  let k2: UsersConfig;
  const ids = Array.from({ length: 5 }, (_, n) => `00000000-0000-4000-8000-00000000010${n}`);
  const rows = () =>
    client.$queryRaw<
      {
        id: string;
        email: string | null;
        email_encrypted: string | null;
        email_blind_index: string | null;
        phone_encrypted: string | null;
      }[]
    >`SELECT id::text, email, email_encrypted, email_blind_index, phone_encrypted FROM users ORDER BY id`;
  const as = (usersConfig: UsersConfig, caller: Caller, query: string, variables?: Record<string, unknown>) =>
    execute<Record<string, any>, SubgraphContext>(
      server,
      createContext(caller, serviceOn(client, usersConfig)),
      query,
      variables,
    );

  beforeAll(async () => {
    const env = { ...testSecrets, USERS_ENCRYPTION_KEYS: `k1:${key(1)},k2:${key(2)}` };
    // A database as it was before the email was encrypted, with accounts in it (phones sealed under k1).
    legacy = await createTestDatabaseAt('users', '20261125000000_init');
    k1 = loadUsersConfig({ ...env, USERS_DATABASE_URL: legacy.url, USERS_ENCRYPTION_ACTIVE_KEY_ID: 'k1' });
    k2 = loadUsersConfig({ ...env, USERS_DATABASE_URL: legacy.url, USERS_ENCRYPTION_ACTIVE_KEY_ID: 'k2' });
    const { cipher } = usersPersonalData(k1);
    const passwordHash = await hashPassword('legacy password');
    await withPostgres(legacy.url, async (pg) => {
      for (const [n, id] of ids.entries()) {
        await pg.query(
          `INSERT INTO users (id, email, password_hash, name, phone_encrypted, updated_at)
           VALUES ($1, $2, $3, $4, $5, now())`,
          [id, `legacy${n}@example.com`, passwordHash, `Legacy ${n}`, cipher.encrypt(`+4420790000${n}`)],
        );
      }
    });
    await legacy.migrateRest();
    client = new PrismaClient({ adapter: new PrismaPg({ connectionString: legacy.url, max: 4 }) });
  });
  afterAll(async () => {
    await client?.$disconnect();
    await legacy?.drop();
  });

  it('logs a legacy account in, and refuses its email to a new account, before the worker moved it', async () => {
    const ok = await as(k1, anonymous, LOG_IN, {
      input: { email: 'Legacy0@example.com', password: 'legacy password' },
    });
    expect(ok.data!.logIn.user).toEqual({ id: ids[0], email: 'legacy0@example.com', phone: '+44207900000' });
    const taken = await as(k1, anonymous, SIGN_UP, {
      input: { email: 'LEGACY1@example.com', password: 'another one', name: 'Copy' },
    });
    expect(errorCodes(taken)).toEqual(['EMAIL_TAKEN']);
  });

  it('moves every plaintext email into its sealed column and blind index, once, with two workers at once', async () => {
    const protection = usersPersonalData(k1);
    const sweep = () => sweepUsersPersonalData(client, protection, { batchSize: 2, logger });
    const [first, second] = await Promise.all([sweep(), sweep()]);
    expect(first.moved + second.moved).toBe(ids.length);
    expect(first.resealed + second.resealed + first.conflicts + second.conflicts).toBe(0);
    for (const [n, row] of (await rows()).entries()) {
      expect(row.email).toBeNull();
      expect(row.email_encrypted).toMatch(/^k1:/);
      expect(row.email_encrypted).not.toContain('legacy');
      expect(row.email_blind_index).toBe(protection.emailIndex.of(`legacy${n}@example.com`));
    }
    const ok = await as(k1, anonymous, LOG_IN, {
      input: { email: 'legacy2@EXAMPLE.com', password: 'legacy password' },
    });
    expect(ok.data!.logIn.user.email).toBe('legacy2@example.com');
    const taken = await as(k1, anonymous, SIGN_UP, {
      input: { email: 'Legacy3@example.com', password: 'another one', name: 'Copy' },
    });
    expect(errorCodes(taken)).toEqual(['EMAIL_TAKEN']);
  });

  it('re-encrypts every value under the new active key when it rotates, and then has nothing left to do', async () => {
    await protectPersonalData({ prisma: client, ...usersPersonalData(k2), logger, batchSize: 2 })(
      {},
      { id: '1', attemptsMade: 0 },
    );
    for (const row of await rows()) {
      expect(row.email_encrypted).toMatch(/^k2:/);
      expect(row.phone_encrypted).toMatch(/^k2:/);
    }
    const ok = await as(k2, anonymous, LOG_IN, {
      input: { email: 'legacy4@example.com', password: 'legacy password' },
    });
    expect(ok.data!.logIn.user).toEqual({ id: ids[4], email: 'legacy4@example.com', phone: '+44207900004' });
    expect(await sweepUsersPersonalData(client, usersPersonalData(k2), { batchSize: 2, logger })).toEqual({
      moved: 0,
      resealed: 0,
      conflicts: 0,
    });
  });

  it('leaves a legacy account whose email another account took meanwhile, and reports it', async () => {
    // Written by a replica of the release before, during the roll-out: the same email, in plaintext.
    const duplicate = '00000000-0000-4000-8000-000000000200';
    await client.$executeRaw`
      INSERT INTO users (id, email, password_hash, name, updated_at)
      VALUES (${duplicate}::uuid, 'legacy0@example.com', 'scrypt$x', 'Twin', now())`;
    expect(await sweepUsersPersonalData(client, usersPersonalData(k2), { batchSize: 2, logger })).toEqual({
      moved: 0,
      resealed: 0,
      conflicts: 1,
    });
    expect((await rows()).find((row) => row.id === duplicate)).toMatchObject({
      email: 'legacy0@example.com',
      email_encrypted: null,
    });
  });
});
