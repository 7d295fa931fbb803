import {
  BlindIndex,
  createLogger,
  loadSchemaFile,
  PersonalDataCipher,
  startSubgraph,
  UserTokens,
  type Logger,
} from '@food/platform';
import type { UsersConfig } from './config.js';
import { createContext } from './context.js';
import { connectUsersDatabase } from './data/prisma.js';
import { PrismaUsersStore } from './data/users-store.js';
import { UsersService } from './domain/users.js';
import { resolvers } from './resolvers/index.js';

export const usersTypeDefs = loadSchemaFile(new URL('../schema.graphql', import.meta.url));

/** Wires the users subgraph from its configuration: database, domain, tokens. */
export function createUsersService(config: UsersConfig) {
  const prisma = connectUsersDatabase(config.USERS_DATABASE_URL, undefined, {
    replicaUrls: config.USERS_DATABASE_REPLICA_URLS,
    maxLagSeconds: config.DATABASE_REPLICA_MAX_LAG_SECONDS,
  });
  const personalData = usersPersonalData(config);
  const users = new UsersService(
    new PrismaUsersStore(prisma),
    personalData.cipher,
    new UserTokens({
      secret: config.JWT_SECRET,
      issuer: config.JWT_ISSUER,
      audience: config.JWT_AUDIENCE,
      ttlSeconds: config.JWT_TTL_SECONDS,
    }),
    personalData.emailIndex,
  );
  return { prisma, users, personalData };
}

/** The users service's keys for personal data: its cipher (phone, address, email) and the email's blind index. */
export function usersPersonalData(config: UsersConfig) {
  return {
    cipher: new PersonalDataCipher(config.USERS_ENCRYPTION_KEYS, config.USERS_ENCRYPTION_ACTIVE_KEY_ID),
    emailIndex: new BlindIndex(config.USERS_BLIND_INDEX_KEY),
  };
}

/** Starts the users subgraph over HTTP. `close()` stops it and its database pool. */
export async function startUsersSubgraph(
  config: UsersConfig,
  logger: Logger = createLogger('users', config.LOG_LEVEL),
) {
  const { prisma, users } = createUsersService(config);
  return startSubgraph({
    name: 'users',
    logger,
    typeDefs: usersTypeDefs,
    resolvers,
    internalTokenSecret: config.INTERNAL_TOKEN_SECRET,
    context: (caller) => createContext(caller, users),
    database: prisma,
    port: config.USERS_PORT,
    host: config.HOST,
    nodeEnv: config.NODE_ENV,
  });
}
