import { createLogger, JWKS_PATH, loadSchemaFile, startSubgraph, UserTokenSigner, type Logger } from '@food/platform';
import type { UsersConfig } from './config.js';
import { createContext } from './context.js';
import { connectUsersDatabase } from './data/prisma.js';
import { PrismaUsersStore } from './data/users-store.js';
import { PersonalDataCipher } from './domain/personal-data-cipher.js';
import { UsersService } from './domain/users.js';
import { resolvers } from './resolvers/index.js';

export const usersTypeDefs = loadSchemaFile(new URL('../schema.graphql', import.meta.url));

/** Wires the users subgraph from its configuration: database, domain, tokens. */
export function createUsersService(config: UsersConfig) {
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
  const users = new UsersService(
    new PrismaUsersStore(prisma),
    new PersonalDataCipher(config.USERS_ENCRYPTION_KEYS, config.USERS_ENCRYPTION_ACTIVE_KEY_ID),
    tokens,
  );
  return { prisma, users, tokens };
}

/** Starts the users subgraph over HTTP. `close()` stops it and its database pool. */
export async function startUsersSubgraph(
  config: UsersConfig,
  logger: Logger = createLogger('users', config.LOG_LEVEL),
) {
  const { prisma, users, tokens } = createUsersService(config);
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
    // The public keys the gateway verifies access tokens with; every kid configured, so rotation is seamless.
    jsonDocuments: { [JWKS_PATH]: () => tokens.jwks() },
  });
}
