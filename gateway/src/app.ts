import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ApolloGateway } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import {
  createLogger,
  formatError,
  InternalTokens,
  serveGraphQL,
  UserTokens,
  type Logger,
  type RunningHttpService,
} from '@food/platform';
import { authenticate } from './auth.js';
import { subgraphNames, supergraphPath, type SubgraphName } from './compose/compose.js';
import { subgraphUrlOverrides, type GatewayConfig } from './config.js';
import type { GatewayContext } from './context.js';
import { SubgraphDataSource } from './subgraph-data-source.js';

export interface RunningGateway extends RunningHttpService {
  /** Where each subgraph is called, after overrides. */
  subgraphUrls: Record<string, string>;
}

/** Starts the gateway: the supergraph over HTTP on /graphql, with health and readiness. */
export async function startGateway(
  config: GatewayConfig,
  logger: Logger = createLogger('gateway', config.LOG_LEVEL),
): Promise<RunningGateway> {
  const supergraphSdl = readFileSync(config.SUPERGRAPH_PATH ?? fileURLToPath(supergraphPath), 'utf8');
  const overrides = subgraphUrlOverrides(config);
  const internalTokens = new InternalTokens(config.INTERNAL_TOKEN_SECRET);
  const userTokens = new UserTokens({
    secret: config.JWT_SECRET,
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    ttlSeconds: 1,
  });
  const subgraphUrls: Record<string, string> = {};
  const gateway = new ApolloGateway({
    supergraphSdl,
    buildService: ({ name, url }) => {
      const target = overrides[name as SubgraphName] ?? url;
      if (!target) throw new Error(`no URL for subgraph ${name}`);
      subgraphUrls[name] = target;
      return new SubgraphDataSource({ url: target, timeoutMs: config.SUBGRAPH_TIMEOUT_MS }, internalTokens);
    },
  });

  const http = await serveGraphQL<GatewayContext>({
    logger,
    port: config.GATEWAY_PORT,
    host: config.HOST,
    createServer: (plugins) =>
      new ApolloServer<GatewayContext>({
        gateway,
        introspection: config.NODE_ENV !== 'production',
        includeStacktraceInErrorResponses: false,
        // The process entry owns SIGINT/SIGTERM; Apollo's own handlers would race it.
        stopOnTerminationSignals: false,
        plugins,
        formatError: (formatted, error) =>
          formatError(formatted, error, (unexpected) => logger.error({ err: unexpected }, 'unexpected error')),
      }),
    context: async (req) => ({
      caller: await authenticate(req.headers, userTokens),
      requestId: validRequestId(req.headers['x-request-id']) ?? randomUUID(),
    }),
    readiness: Object.fromEntries(
      subgraphNames.map((name) => [name, () => checkSubgraphReady(subgraphUrls[name] ?? '')]),
    ),
  });
  logger.info({ url: http.url, subgraphs: subgraphUrls }, 'gateway ready');
  return { ...http, subgraphUrls };
}

/** A subgraph is ready when its own /readyz says so (its database is reachable). */
async function checkSubgraphReady(graphqlUrl: string): Promise<void> {
  if (!graphqlUrl) throw new Error('not configured');
  const response = await fetch(new URL('/readyz', graphqlUrl), { signal: AbortSignal.timeout(1_500) });
  if (!response.ok) throw new Error(`readyz answered ${response.status}`);
}

/** Accept a caller's request id only when it is short and plain, so it is safe to log and forward. */
function validRequestId(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(value) ? value : undefined;
}
