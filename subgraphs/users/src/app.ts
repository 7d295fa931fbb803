import {
  BlindIndex,
  connectRedis,
  createLogger,
  JWKS_PATH,
  loadSchemaFile,
  OutboxRelay,
  PersonalDataCipher,
  redisTargetOf,
  startSubgraph,
  UserTokenSigner,
  type Logger,
  type Messaging,
} from '@food/platform';
import { InMemoryLoginAttempts, RedisLoginAttempts } from './data/login-attempts.js';
import { LoginThrottle, type LoginAttempts, type LoginThrottleSettings } from './domain/login-throttle.js';
import type { UsersConfig } from './config.js';
import { createContext } from './context.js';
import { connectUsersDatabase } from './data/prisma.js';
import { PrismaSessionStore } from './data/sessions-store.js';
import { PrismaUsersStore } from './data/users-store.js';
import { Sessions } from './domain/sessions.js';
import { UsersService } from './domain/users.js';
import { resolvers } from './resolvers/index.js';

export const usersTypeDefs = loadSchemaFile(new URL('../schema.graphql', import.meta.url));

/** The throttle's settings from the configuration. */
export const loginThrottleSettings = (config: UsersConfig): LoginThrottleSettings => {
  const rule = (freeFailures: number) => ({
    freeFailures,
    baseDelayMs: config.LOGIN_THROTTLE_BASE_DELAY_MS,
    maxDelayMs: config.LOGIN_THROTTLE_MAX_DELAY_SECONDS * 1000,
    windowMs: config.LOGIN_THROTTLE_WINDOW_SECONDS * 1000,
  });
  return {
    account: rule(config.LOGIN_THROTTLE_ACCOUNT_FREE_FAILURES),
    address: rule(config.LOGIN_THROTTLE_ADDRESS_FREE_FAILURES),
  };
};

/**
 * Wires the users subgraph from its configuration: database, domain, tokens. Failed logins are
 * counted in `attempts` (Redis, shared by every replica); by default in this process's memory.
 */
export function createUsersService(config: UsersConfig, attempts: LoginAttempts = new InMemoryLoginAttempts()) {
  const prisma = connectUsersDatabase(config.USERS_DATABASE_URL, undefined, {
    replicaUrls: config.USERS_DATABASE_REPLICA_URLS,
    maxLagSeconds: config.DATABASE_REPLICA_MAX_LAG_SECONDS,
  });
  const tokens = new UserTokenSigner({
    keys: config.USERS_SIGNING_KEYS,
    activeKeyId: config.USERS_SIGNING_ACTIVE_KEY_ID,
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    ttlSeconds: config.ACCESS_TOKEN_TTL_SECONDS,
  });
  const sessions = new Sessions(new PrismaSessionStore(prisma), tokens, {
    refreshTtlSeconds: config.REFRESH_TOKEN_TTL_SECONDS,
    accessTtlSeconds: config.ACCESS_TOKEN_TTL_SECONDS,
  });
  const personalData = usersPersonalData(config);
  const users = new UsersService(
    new PrismaUsersStore(prisma),
    personalData.cipher,
    sessions,
    new LoginThrottle(attempts, loginThrottleSettings(config)),
    personalData.emailIndex,
  );
  return { prisma, users, tokens, personalData };
}

/** The users service's keys for personal data: its cipher (phone, address, email) and the email's blind index. */
export function usersPersonalData(config: UsersConfig) {
  return {
    cipher: new PersonalDataCipher(config.USERS_ENCRYPTION_KEYS, config.USERS_ENCRYPTION_ACTIVE_KEY_ID),
    emailIndex: new BlindIndex(config.USERS_BLIND_INDEX_KEY),
  };
}

/**
 * Starts the users subgraph over HTTP, and the relay of its outbox (session.revoked) to `messaging`'s
 * bus: in this process, not a worker of its own, because a revocation must reach the gateways with
 * nothing more deployed; the relay's advisory lock keeps replicas from publishing twice. `close()`
 * stops the relay, HTTP and the database pool (`messaging` stays the caller's).
 */
export async function startUsersSubgraph(
  config: UsersConfig,
  messaging: Messaging,
  logger: Logger = createLogger('users', config.LOG_LEVEL),
) {
  // Failed logins are counted where every replica sees them: the shared Redis (one key per
  // operation, so a cluster is fine); the start command without one keeps them in memory.
  const redisTarget = redisTargetOf(config);
  const redis = redisTarget
    ? connectRedis(redisTarget, { name: `${config.REDIS_KEY_PREFIX}:users:logins`, whenDown: 'fail-fast', logger })
    : undefined;
  const { prisma, users, tokens } = createUsersService(
    config,
    redis ? new RedisLoginAttempts(redis, config.REDIS_KEY_PREFIX) : new InMemoryLoginAttempts(),
  );
  const relay = new OutboxRelay({
    name: 'users',
    databaseUrl: config.USERS_DATABASE_URL,
    bus: messaging.bus,
    logger: logger.child({ component: 'outbox-relay' }),
  });
  await relay.start();
  const http = await startSubgraph({
    name: 'users',
    logger,
    typeDefs: usersTypeDefs,
    resolvers,
    internalTokenSecret: config.INTERNAL_TOKEN_SECRET,
    context: (caller, { clientAddress }) => createContext(caller, users, clientAddress),
    database: prisma,
    port: config.USERS_PORT,
    host: config.HOST,
    nodeEnv: config.NODE_ENV,
    // The public keys the gateway verifies access tokens with; every kid configured, so rotation is seamless.
    jsonDocuments: { [JWKS_PATH]: () => tokens.jwks() },
  }).catch(async (error: unknown) => {
    await relay.stop();
    redis?.disconnect();
    throw error;
  });
  return {
    ...http,
    close: async () => {
      await relay.stop();
      await http.close();
      redis?.disconnect();
    },
  };
}
