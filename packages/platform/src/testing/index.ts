import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ApolloServer } from '@apollo/server';
import type { DocumentNode, GraphQLFormattedError } from 'graphql';
import { createLogger } from '../logger.js';
import { randomUUID } from 'node:crypto';
import type { Role } from '../auth.js';
import { createSubgraphServer } from '../subgraph.js';
import {
  generateSigningJwk,
  localUserKeys,
  publicJwks,
  signingKeysEnv,
  UserTokenSigner,
  UserTokenVerifier,
  type UserTokenSignerOptions,
  type UserTokenVerifierOptions,
} from '../user-tokens.js';

export interface OperationResult<T = Record<string, unknown>> {
  data: T | null | undefined;
  errors: readonly GraphQLFormattedError[] | undefined;
}

/** Runs one operation through a subgraph's Apollo Server with a given context (no HTTP). */
export async function execute<T = Record<string, unknown>, Ctx extends object = object>(
  server: ApolloServer<Ctx>,
  contextValue: Ctx,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<OperationResult<T>> {
  const response = await server.executeOperation({ query, variables }, { contextValue });
  if (response.body.kind !== 'single') throw new Error('incremental delivery is not expected here');
  const { data, errors } = response.body.singleResult;
  return { data: data as T | null | undefined, errors };
}

/** The `extensions.code` of each error, for assertions. */
export const errorCodes = (result: OperationResult<unknown>) => (result.errors ?? []).map((e) => e.extensions?.code);

/** The test run's access-token signing key (made once per process): its kid is `test-1`. */
const testSigningKey = generateSigningJwk('test-1');

export const testSecrets = {
  INTERNAL_TOKEN_SECRET: 'test-internal-token-secret-0123456789abcdef',
  /** Personal data at rest: each service its own keys (see personal-data.ts). */
  USERS_ENCRYPTION_KEYS: `test:${Buffer.alloc(32, 1).toString('base64')}`,
  USERS_ENCRYPTION_ACTIVE_KEY_ID: 'test',
  USERS_BLIND_INDEX_KEY: Buffer.alloc(32, 3).toString('base64'),
  ORDERS_ENCRYPTION_KEYS: `test:${Buffer.alloc(32, 2).toString('base64')}`,
  ORDERS_ENCRYPTION_ACTIVE_KEY_ID: 'test',
  USERS_SIGNING_KEYS: JSON.stringify([testSigningKey]),
  USERS_SIGNING_ACTIVE_KEY_ID: 'test-1',
};

/** Signs access tokens as the users service does with testSecrets' key (issuer food-users, audience food-supergraph). */
export function testUserTokenSigner(options: Partial<UserTokenSignerOptions> = {}): UserTokenSigner {
  return new UserTokenSigner({
    keys: signingKeysEnv.parse(testSecrets.USERS_SIGNING_KEYS),
    activeKeyId: testSecrets.USERS_SIGNING_ACTIVE_KEY_ID,
    issuer: 'food-users',
    audience: 'food-supergraph',
    ttlSeconds: 600,
    ...options,
  });
}

/** A signer with another key under the test key's kid: its tokens must be refused. */
export const forgedUserTokenSigner = (options: Partial<UserTokenSignerOptions> = {}): UserTokenSigner =>
  testUserTokenSigner({ keys: signingKeysEnv.parse(JSON.stringify([generateSigningJwk('test-1')])), ...options });

/** An access token for the user in a new session, signed with testSecrets' key. */
export async function testAccessToken(
  userId: string,
  role: Role,
  options: Partial<UserTokenSignerOptions> & { signer?: UserTokenSigner; sessionId?: string } = {},
): Promise<string> {
  const { signer = testUserTokenSigner(options), sessionId = randomUUID() } = options;
  return (await signer.issue({ userId, role, sessionId })).token;
}

/** Verifies access tokens against testSecrets' public key, as the gateway does against the JWKS. */
export function testUserTokenVerifier(options: Partial<UserTokenVerifierOptions> = {}): UserTokenVerifier {
  return new UserTokenVerifier({
    keys: localUserKeys(publicJwks(signingKeysEnv.parse(testSecrets.USERS_SIGNING_KEYS))),
    issuer: 'food-users',
    audience: 'food-supergraph',
    ...options,
  });
}

/**
 * A subgraph's Apollo Server, started, for `execute`: silent logger, introspection off, no HTTP.
 * The test stops it (`server.stop()`) in its `afterAll`.
 */
export async function startTestSubgraphServer<Ctx extends object>(options: {
  typeDefs: DocumentNode;
  resolvers: unknown;
}): Promise<ApolloServer<Ctx>> {
  const server = createSubgraphServer<Ctx>({
    typeDefs: options.typeDefs,
    resolvers: options.resolvers,
    logger: createLogger('subgraph-test', 'silent'),
    introspection: false,
  });
  await server.start();
  return server;
}

/** One GraphQL request a fake upstream received. */
export interface UpstreamRequest<Variables> {
  headers: IncomingHttpHeaders;
  body: { query: string; variables: Variables };
}

/**
 * Another service's GraphQL endpoint, faked on a free local port: answers every request with
 * `answer(request)` as JSON, and keeps the requests it received.
 */
export class FakeUpstream<Variables> {
  /** Every request received, in order; a test may empty it. */
  readonly requests: UpstreamRequest<Variables>[] = [];
  private readonly server: Server;

  constructor(answer: (request: UpstreamRequest<Variables>) => unknown) {
    this.server = createServer((req, res) => {
      let raw = '';
      req.on('data', (chunk: Buffer) => (raw += chunk.toString()));
      req.on('end', () => {
        const request = { headers: req.headers, body: JSON.parse(raw) as UpstreamRequest<Variables>['body'] };
        this.requests.push(request);
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(answer(request)));
      });
    });
  }

  /** Where it listens once started, ending in `/graphql`. */
  get url(): string {
    const address = this.server.address() as AddressInfo | null;
    if (!address) throw new Error('the fake upstream is not listening: start() it first');
    return `http://127.0.0.1:${address.port}/graphql`;
  }

  start(): Promise<void> {
    return new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
  }

  close(): Promise<void> {
    return new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A `/graphql` URL on a local port that was free a moment ago and has nothing listening: a service that is down. */
export async function unreachableUrl(): Promise<string> {
  const down = createServer();
  await new Promise<void>((resolve) => down.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(down.address() as AddressInfo).port}/graphql`;
  await new Promise<void>((resolve) => down.close(() => resolve()));
  return url;
}

export { deleteKeys, freePort, redisEnvOf, RedisServerProcess, testRedisTarget } from './redis-server.js';
export { RedisClusterProcess } from './redis-cluster.js';
export { EmitterBus } from './emitter-bus.js';
export { PostgresReplicaPair } from './postgres-replica.js';
