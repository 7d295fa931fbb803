import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApolloServer } from '@apollo/server';
import { randomUUID } from 'node:crypto';
import { connectRedis, createLogger, UserTokenSigner, type Caller, type RedisConnection } from '@food/platform';
import {
  deleteKeys,
  errorCodes,
  execute,
  startTestSubgraphServer,
  testRedisTarget,
  testSecrets,
  testUserTokenVerifier,
} from '@food/platform/testing';
import {
  createTestDatabaseAt,
  createTestDatabaseClient,
  withPostgres,
  type TestDatabaseClient,
} from '@food/prisma/testing';
import { RedisLoginAttempts } from './data/login-attempts.js';
import { LoginThrottle } from './domain/login-throttle.js';
import { loadUsersConfig, type UsersConfig } from './config.js';
import { createContext, type SubgraphContext } from './context.js';
import { PersonalDataCipher } from '@food/platform';
import { UsersService } from './domain/users.js';
import { hashPassword } from './domain/passwords.js';
import { PrismaUsersStore } from './data/users-store.js';
import { PrismaSessionStore } from './data/sessions-store.js';
import { hashRefreshToken, Sessions } from './domain/sessions.js';
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
const redisPrefix = `users-test-${randomUUID()}`;
let redis: RedisConnection | undefined;
/** A throttle on the test Redis, with this many free failures per account and per address, 1 s doubling waits. */
const throttle = (free: { account: number; address: number }) => {
  redis ??= connectRedis(testRedisTarget(), { name: 'users-test' });
  const rule = (freeFailures: number) => ({ freeFailures, baseDelayMs: 1_000, maxDelayMs: 60_000, windowMs: 60_000 });
  return new LoginThrottle(new RedisLoginAttempts(redis, redisPrefix), {
    account: rule(free.account),
    address: rule(free.address),
  });
};

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
  redis?.disconnect();
  await deleteKeys(redisPrefix).catch(() => undefined);
  await server?.stop();
  await database?.close();
});

/** The users service over a database, with the configuration's keys (and a lenient throttle unless given one). */
const serviceOn = (
  client: PrismaClient,
  usersConfig: UsersConfig,
  loginThrottle: LoginThrottle = throttle({ account: 1_000, address: 1_000 }),
) => {
  const { cipher, emailIndex } = usersPersonalData(usersConfig);
  return new UsersService(
    new PrismaUsersStore(client),
    cipher,
    new Sessions(
      new PrismaSessionStore(client),
      new UserTokenSigner({
        keys: usersConfig.USERS_SIGNING_KEYS,
        activeKeyId: usersConfig.USERS_SIGNING_ACTIVE_KEY_ID,
        issuer: 'food-users',
        audience: 'food-supergraph',
        ttlSeconds: 900,
      }),
      { refreshTtlSeconds: 3_600, accessTtlSeconds: 900 },
    ),
    loginThrottle,
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
    const verified = await testUserTokenVerifier().verify(token);
    expect(verified).toEqual({ kind: 'user', userId: adaId, role: 'CUSTOMER', sessionId: expect.any(String) });

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

describe('sessions: refresh tokens used once, revocations announced', () => {
  const AUTH = `token expiresAt refreshToken refreshTokenExpiresAt user { id role email }`;
  const LOG_IN = `mutation ($input: LogInInput!) { logIn(input: $input) { ${AUTH} } }`;
  const REFRESH = `mutation ($token: String!) { refreshSession(input: { refreshToken: $token }) { ${AUTH} } }`;
  const email = 'sessions@example.com';
  let password = 'first password';
  let userId = '';
  const verifier = testUserTokenVerifier();
  /** A login, and the caller the gateway makes of its access token. */
  const logIn = async () => {
    const result = await run(anonymous, LOG_IN, { input: { email, password } });
    expect(result.errors).toBeUndefined();
    const session = result.data!.logIn;
    return { ...session, caller: (await verifier.verify(session.token)) as Caller };
  };
  const refresh = (token: string) => run(anonymous, REFRESH, { token });
  const revocations = async () =>
    (await prisma.outboxEvent.findMany({ where: { type: 'session.revoked' }, orderBy: { sequence: 'asc' } })).map(
      (row) => row.payload as { data: { sessionId: string; userId: string; reason: string } },
    );
  const revoked = async (sessionId: string) =>
    (await prisma.session.findUniqueOrThrow({ where: { id: sessionId } })).revokedReason;

  beforeAll(async () => {
    const result = await run(anonymous, SIGN_UP, { input: { email, password, name: 'Sessions' } });
    userId = result.data!.signUp.user.id;
  });

  it('gives a refresh token with every login, stored only as its hash, and a sid in the access token', async () => {
    const session = await logIn();
    expect(session.refreshToken).toMatch(/^rt_[A-Za-z0-9_-]{43}$/);
    expect(session.caller).toMatchObject({ kind: 'user', userId, sessionId: expect.any(String) });
    const rows = await prisma.refreshToken.findMany({
      where: { sessionId: (session.caller as { sessionId: string }).sessionId },
    });
    expect(rows).toEqual([
      expect.objectContaining({ tokenHash: hashRefreshToken(session.refreshToken), usedAt: null }),
    ]);
    const everything = JSON.stringify(await prisma.$queryRaw`SELECT * FROM refresh_tokens`);
    expect(everything).not.toContain(session.refreshToken);
    expect(new Date(session.expiresAt).getTime() - Date.now()).toBeLessThanOrEqual(900_000);
  });

  it('rotates: a refresh gives a new pair in the same session, and the old refresh token is used up', async () => {
    const first = await logIn();
    const second = await refresh(first.refreshToken);
    expect(second.errors).toBeUndefined();
    const next = second.data!.refreshSession;
    expect(next.refreshToken).not.toBe(first.refreshToken);
    expect(next.refreshTokenExpiresAt).toBe(first.refreshTokenExpiresAt);
    expect(await verifier.verify(next.token)).toMatchObject({
      sessionId: (first.caller as { sessionId: string }).sessionId,
    });
    const third = await refresh(next.refreshToken);
    expect(third.errors).toBeUndefined();
    expect(errorCodes(await refresh('rt_not-a-token-anyone-was-given'))).toEqual(['UNAUTHENTICATED']);
  });

  it('revokes the whole session when a used refresh token comes back, and announces it', async () => {
    const stolen = await logIn();
    const sessionId = (stolen.caller as { sessionId: string }).sessionId;
    const legitimate = (await refresh(stolen.refreshToken)).data!.refreshSession;
    const before = (await revocations()).length;
    // The copy is presented again: whoever holds it, and whoever holds the newer one, are out.
    expect(errorCodes(await refresh(stolen.refreshToken))).toEqual(['UNAUTHENTICATED']);
    expect(errorCodes(await refresh(legitimate.refreshToken))).toEqual(['UNAUTHENTICATED']);
    expect(await revoked(sessionId)).toBe('refresh_token_reused');
    const events = (await revocations()).slice(before);
    expect(events.map((event) => event.data)).toEqual([
      expect.objectContaining({ sessionId, userId, reason: 'refresh_token_reused' }),
    ]);
  });

  it('logs out the current session only', async () => {
    const one = await logIn();
    const other = await logIn();
    const result = await run(one.caller, `mutation { logOut }`);
    expect(result.data).toEqual({ logOut: true });
    expect(await revoked((one.caller as { sessionId: string }).sessionId)).toBe('logout');
    expect(errorCodes(await refresh(one.refreshToken))).toEqual(['UNAUTHENTICATED']);
    expect((await refresh(other.refreshToken)).errors).toBeUndefined();
    expect(errorCodes(await run(anonymous, `mutation { logOut }`))).toEqual(['UNAUTHENTICATED']);
  });

  it('changes the password given the current one, and ends every other session', async () => {
    const here = await logIn();
    const elsewhere = await logIn();
    const CHANGE = `mutation ($input: ChangePasswordInput!) { changePassword(input: $input) }`;
    const wrong = await run(here.caller, CHANGE, {
      input: { currentPassword: 'not it', newPassword: 'second password' },
    });
    expect(errorCodes(wrong)).toEqual(['INVALID_CREDENTIALS']);
    const before = (await revocations()).length;
    const ok = await run(here.caller, CHANGE, { input: { currentPassword: password, newPassword: 'second password' } });
    expect(ok.data).toEqual({ changePassword: true });
    password = 'second password';
    expect(await revoked((elsewhere.caller as { sessionId: string }).sessionId)).toBe('password_changed');
    expect(await revoked((here.caller as { sessionId: string }).sessionId)).toBeNull();
    expect(errorCodes(await refresh(elsewhere.refreshToken))).toEqual(['UNAUTHENTICATED']);
    expect((await refresh(here.refreshToken)).errors).toBeUndefined();
    const events = (await revocations()).slice(before).map((event) => event.data);
    expect(events.map((event) => event.reason)).toEqual(events.map(() => 'password_changed'));
    expect(events.map((event) => event.sessionId)).not.toContain((here.caller as { sessionId: string }).sessionId);
    expect(errorCodes(await run(anonymous, LOG_IN, { input: { email, password: 'first password' } }))).toEqual([
      'INVALID_CREDENTIALS',
    ]);
  });

  it('ends every session of a user whose role changes, so no token keeps the old role', async () => {
    const session = await logIn();
    const admin: Caller = { kind: 'user', userId: '00000000-0000-4000-8000-000000000003', role: 'ADMIN' };
    await run(admin, `mutation ($id: ID!) { setUserRole(userId: $id, role: STAFF) { role } }`, { id: userId });
    expect(await revoked((session.caller as { sessionId: string }).sessionId)).toBe('role_changed');
    expect(errorCodes(await refresh(session.refreshToken))).toEqual(['UNAUTHENTICATED']);
    const again = await logIn();
    expect(again.caller).toMatchObject({ role: 'STAFF' });
    expect(again.user.role).toBe('STAFF');
  });
});

describe('login abuse: throttled failures, and one answer for unknown and wrong', () => {
  const LOG_IN = `mutation ($input: LogInInput!) { logIn(input: $input) { user { id } } }`;
  let tight: UsersService;
  const as = (service: UsersService, address: string, email: string, password: string) =>
    execute<Record<string, any>, SubgraphContext>(server, createContext(anonymous, service, address), LOG_IN, {
      input: { email, password },
    });
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  beforeAll(async () => {
    await run(anonymous, SIGN_UP, { input: { email: 'throttled@example.com', password: 'right password', name: 'T' } });
    tight = serviceOn(prisma, config, throttle({ account: 2, address: 4 }));
  });

  it('makes an account wait after its free failures, with RATE_LIMITED and retryAfterSeconds, right password or not', async () => {
    const address = `198.51.100.${Math.floor(Math.random() * 200)}`;
    for (let i = 0; i < 3; i += 1) {
      expect(errorCodes(await as(tight, address, 'throttled@example.com', 'wrong'))).toEqual(['INVALID_CREDENTIALS']);
    }
    // The third failure (one past the free two) started a 1 s wait: even the right password waits.
    const refused = await as(tight, `${address}1`, 'throttled@example.com', 'right password');
    expect(errorCodes(refused)).toEqual(['RATE_LIMITED']);
    expect(refused.errors![0]!.extensions).toMatchObject({ code: 'RATE_LIMITED', retryAfterSeconds: 1 });
    await sleep(1_100);
    expect(errorCodes(await as(tight, address, 'throttled@example.com', 'wrong'))).toEqual(['INVALID_CREDENTIALS']);
    // The next wait is twice as long.
    const longer = await as(tight, address, 'throttled@example.com', 'right password');
    expect(longer.errors![0]!.extensions).toMatchObject({ code: 'RATE_LIMITED', retryAfterSeconds: 2 });
    await sleep(2_100);
    expect((await as(tight, address, 'throttled@example.com', 'right password')).errors).toBeUndefined();
    // A success clears the account's failures.
    expect(errorCodes(await as(tight, address, 'throttled@example.com', 'wrong'))).toEqual(['INVALID_CREDENTIALS']);
  });

  it('makes a client address wait after its free failures over any accounts; other addresses go on', async () => {
    const address = '203.0.113.7';
    for (let i = 0; i < 5; i += 1) {
      expect(errorCodes(await as(tight, address, `nobody-${i}@example.com`, 'wrong'))).toEqual(['INVALID_CREDENTIALS']);
    }
    const refused = await as(tight, address, 'someone-else@example.com', 'whatever');
    expect(refused.errors![0]!.extensions).toMatchObject({ code: 'RATE_LIMITED', retryAfterSeconds: 1 });
    expect(errorCodes(await as(tight, '203.0.113.8', 'someone-else@example.com', 'whatever'))).toEqual([
      'INVALID_CREDENTIALS',
    ]);
    // The counters live in Redis under the service's prefix, each with a TTL.
    expect(await redis!.pttl(`${redisPrefix}:login:address:${address}`)).toBeGreaterThan(0);
  });

  it('answers an unknown email like a wrong password, in about the same time', async () => {
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    const time = async (email: string) => {
      const started = performance.now();
      const result = await as(users, `192.0.2.${Math.floor(Math.random() * 250)}`, email, 'not the password');
      expect(errorCodes(result)).toEqual(['INVALID_CREDENTIALS']);
      return performance.now() - started;
    };
    const unknown: number[] = [];
    const wrong: number[] = [];
    // Interleaved, so load on the machine weighs on both alike.
    for (let i = 0; i < 5; i += 1) {
      unknown.push(await time(`unknown-${randomUUID()}@example.com`));
      wrong.push(await time('throttled@example.com'));
    }
    const ratio = median(unknown) / median(wrong);
    // Without the decoy hash an unknown email would answer in a database round trip (a hundredth of
    // a scrypt, or less): far outside this.
    expect(ratio, `unknown ${median(unknown).toFixed(0)} ms vs wrong ${median(wrong).toFixed(0)} ms`).toBeGreaterThan(
      0.5,
    );
    expect(ratio).toBeLessThan(2);
  }, 120_000);
});
