import { readFileSync } from 'node:fs';
import { GraphQLError, parse, type DocumentNode } from 'graphql';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { ApolloServerPluginInlineTraceDisabled } from '@apollo/server/plugin/disabled';
import type { Request, RequestHandler } from 'express';
import { CLIENT_ADDRESS_HEADER, INTERNAL_TOKEN_HEADER, InternalTokens, type Caller } from './auth.js';
import { reportChangedEntities } from './changed-entities.js';
import { formatError } from './errors.js';
import type { Logger } from './logger.js';
import { withReadConsistency } from './read-consistency.js';
import { serveGraphQL, type ReadinessChecks, type RunningHttpService } from './http.js';

/** @apollo/subgraph's resolver map type, which its package does not export by name. */
type SubgraphResolverMap = Extract<Parameters<typeof buildSubgraphSchema>[0], { resolvers?: unknown }>['resolvers'];

/** Reads a service's `schema.graphql` (the contract) from beside its package.json. */
export function loadSchemaFile(url: URL): DocumentNode {
  return parse(readFileSync(url, 'utf8'));
}

export interface SubgraphServerOptions<Ctx extends object> {
  typeDefs: DocumentNode;
  resolvers: unknown;
  logger: Logger;
  introspection: boolean;
  plugins?: ApolloServerPlugin<Ctx>[];
}

/** An Apollo Server for one federation subgraph, with the shared error policy. */
export function createSubgraphServer<Ctx extends object>(options: SubgraphServerOptions<Ctx>): ApolloServer<Ctx> {
  return new ApolloServer<Ctx>({
    schema: buildSubgraphSchema({
      typeDefs: options.typeDefs,
      // Generated resolver types are stricter than @apollo/subgraph's map type; the SDL is the check.
      resolvers: options.resolvers as SubgraphResolverMap,
    }),
    introspection: options.introspection,
    includeStacktraceInErrorResponses: false,
    // The process entry owns SIGINT/SIGTERM (see lifecycle.ts); Apollo's own handlers would race it.
    stopOnTerminationSignals: false,
    // Inline traces feed Apollo Studio, which this gateway does not report to.
    plugins: [ApolloServerPluginInlineTraceDisabled(), reportChangedEntities<Ctx>(), ...(options.plugins ?? [])],
    formatError: (formatted, error) =>
      formatError(formatted, error, (unexpected) => options.logger.error({ err: unexpected }, 'unexpected error')),
  });
}

/** The identity a subgraph request carries: only a valid internal token is believed. */
export function callerFromRequest(req: Request, tokens: InternalTokens): Promise<Caller> {
  const header = req.headers[INTERNAL_TOKEN_HEADER];
  return tokens.verify(Array.isArray(header) ? header[0] : header);
}

/**
 * Runs the rest of the request with the read consistency its internal token asks for: replicas may
 * serve it unless the token says "read from the primary" (the gateway's read-your-writes window, a
 * mutation, a subscription's event). A request whose token does not verify reads from the primary;
 * its context refuses it anyway.
 */
function readConsistencyOfRequest(tokens: InternalTokens): RequestHandler {
  return (req, _res, next) => {
    const header = req.headers[INTERNAL_TOKEN_HEADER];
    tokens.verifyRequest(Array.isArray(header) ? header[0] : header).then(
      ({ readFromPrimary }) => withReadConsistency(readFromPrimary ? 'primary' : 'replica', next),
      () => withReadConsistency('primary', next),
    );
  };
}

/**
 * What a subgraph needs of its database client: a readiness probe and a shutdown. Structural, so
 * each service's generated PrismaClient fits without this package depending on Prisma.
 */
export interface SubgraphDatabase {
  $queryRawUnsafe(query: string): Promise<unknown>;
  $disconnect(): Promise<void>;
}

export interface StartSubgraphOptions<Ctx extends object> {
  name: string;
  logger: Logger;
  typeDefs: DocumentNode;
  resolvers: unknown;
  /** Verifies the internal token every request must carry. */
  internalTokenSecret: string;
  /**
   * Builds the per-request context (services, loaders) for a verified caller, with the end client's
   * address where the gateway named it (trusted only because the internal token verified).
   */
  context: (caller: Caller, request: { clientAddress?: string }) => Ctx;
  /** Checked by `/readyz`, and disconnected by `close()` after HTTP stops. */
  database: SubgraphDatabase;
  /** Checks `/readyz` runs besides the database one. */
  readiness?: ReadinessChecks;
  port: number;
  host?: string;
  /** Introspection is off in production. */
  nodeEnv: string;
  /** Public JSON documents beside /graphql (the users service's JWKS). */
  jsonDocuments?: Record<string, () => unknown>;
}

/**
 * Serves one subgraph over HTTP; every request must carry a valid internal token. `/readyz` checks
 * the database; `close()` stops HTTP, then disconnects the database.
 */
export async function startSubgraph<Ctx extends object>(
  options: StartSubgraphOptions<Ctx>,
): Promise<RunningHttpService> {
  const { database, logger } = options;
  const internalTokens = new InternalTokens(options.internalTokenSecret);
  const http = await serveGraphQL<Ctx>({
    name: options.name,
    logger,
    port: options.port,
    host: options.host,
    production: options.nodeEnv === 'production',
    readiness: { ...options.readiness, database: () => database.$queryRawUnsafe('SELECT 1') },
    beforeApolloServer: [readConsistencyOfRequest(internalTokens)],
    jsonDocuments: options.jsonDocuments,
    createServer: (plugins) =>
      createSubgraphServer<Ctx>({
        typeDefs: options.typeDefs,
        resolvers: options.resolvers,
        logger,
        introspection: options.nodeEnv !== 'production',
        plugins,
      }),
    context: async (req) => {
      try {
        const caller = await callerFromRequest(req, internalTokens);
        const address = req.headers[CLIENT_ADDRESS_HEADER];
        const clientAddress = typeof address === 'string' && address.length <= 64 ? address : undefined;
        return options.context(caller, { clientAddress });
      } catch (error) {
        const message = error instanceof Error ? error.message : 'Unauthenticated';
        throw new GraphQLError(message, { extensions: { code: 'UNAUTHENTICATED', http: { status: 401 } } });
      }
    },
  });
  logger.info({ url: http.url }, `${options.name} subgraph ready`);
  return {
    ...http,
    close: async () => {
      await http.close();
      await database.$disconnect();
    },
  };
}
