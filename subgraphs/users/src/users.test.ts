import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApolloServer } from '@apollo/server';
import { UserTokenSigner, type Caller } from '@food/platform';
import {
  errorCodes,
  execute,
  startTestSubgraphServer,
  testSecrets,
  testUserTokenVerifier,
} from '@food/platform/testing';
import { createTestDatabaseClient, type TestDatabaseClient } from '@food/prisma/testing';
import { loadUsersConfig, type UsersConfig } from './config.js';
import { createContext, type SubgraphContext } from './context.js';
import { PersonalDataCipher } from './domain/personal-data-cipher.js';
import { UsersService } from './domain/users.js';
import { PrismaUsersStore } from './data/users-store.js';
import { PrismaClient } from './data/generated/prisma/client.js';
import { PrismaPg } from '@prisma/adapter-pg';
import { usersTypeDefs } from './app.js';
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
  users = new UsersService(
    new PrismaUsersStore(prisma),
    new PersonalDataCipher(config.USERS_ENCRYPTION_KEYS, config.USERS_ENCRYPTION_ACTIVE_KEY_ID),
    new UserTokenSigner({
      keys: config.USERS_SIGNING_KEYS,
      activeKeyId: config.USERS_SIGNING_ACTIVE_KEY_ID,
      issuer: 'food-users',
      audience: 'food-supergraph',
      ttlSeconds: 900,
    }),
  );
  server = await startTestSubgraphServer<SubgraphContext>({ typeDefs: usersTypeDefs, resolvers });
});

afterAll(async () => {
  await server?.stop();
  await database?.close();
});

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
      { phone_encrypted: string; delivery_address_encrypted: string; password_hash: string }[]
    >`
      SELECT phone_encrypted, delivery_address_encrypted, password_hash FROM users WHERE id = ${adaId}::uuid`;
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
  });
});
