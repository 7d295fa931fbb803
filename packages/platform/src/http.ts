import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import cors, { type CorsOptions } from 'cors';
import express, { type Request, type RequestHandler } from 'express';
import { ApolloServer, type BaseContext } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
export type { CorsOptions } from 'cors';
import type { Logger } from './logger.js';
import { ConfigError } from './config.js';
import { processMetrics } from './telemetry/metrics.js';
import { assignRequestId, requestTelemetry } from './telemetry/request-telemetry.js';
import { traceRequests } from './telemetry/tracing.js';

export type ReadinessChecks = Record<string, () => Promise<unknown>>;

export interface RunningHttpService {
  url: string;
  port: number;
  httpServer: Server;
  close(): Promise<void>;
}

export interface ServeGraphQLOptions<Ctx extends BaseContext> {
  /** Whose requests these are (`gateway`, `orders`, ...): the `server` label of request metrics. */
  name: string;
  logger: Logger;
  /** Built by the caller; started here, after the drain plugin is attached. */
  createServer: (plugins: ApolloServer<Ctx>['internals']['plugins']) => ApolloServer<Ctx>;
  context: (req: Request) => Promise<Ctx>;
  /** Each check must resolve for `/readyz` to answer 200 (the service's own database). */
  readiness?: ReadinessChecks;
  /**
   * Shown by `/readyz` but never failing it: what this server depends on without being useless
   * when it is away (the gateway's subgraphs: one down costs only its part of an answer, so taking
   * every gateway replica out of the load balancer for it would turn a partial failure into an outage).
   */
  dependencies?: ReadinessChecks;
  port: number;
  host?: string;
  maxBodyBytes?: number;
  /** Lets a caller mount more on the same HTTP server (e.g. WebSockets) before it listens. */
  onHttpServer?: (server: Server) => void;
  /**
   * Run on `/graphql` after CORS and body parsing, before Apollo Server: for requests Apollo Server
   * cannot serve (the gateway's subscriptions over SSE and multipart HTTP). A handler answers the
   * requests it takes and calls `next()` for every other one.
   */
  beforeApolloServer?: RequestHandler[];
  /** Cross-origin rules for `/graphql` (the `cors` package's options); none means same-origin only. */
  cors?: CorsOptions;
  /** In production there is no landing page on GET /graphql (development keeps Apollo's). */
  production?: boolean;
  /** Files served as they are, by URL path (e.g. a development IDE's scripts). */
  staticFiles?: Record<string, { file: string; type: string }>;
  /** Public JSON documents served on GET, by URL path (e.g. the users service's JWKS), cacheable for 5 minutes. */
  jsonDocuments?: Record<string, () => unknown>;
}

/** The paths every process serves for its orchestrator and Prometheus (probes and scrapes use these). */
export const OPERATIONS_PATHS = { liveness: '/healthz', readiness: '/readyz', metrics: '/metrics' } as const;

/**
 * What every HTTP server of ours has: a request id on every request, liveness on /healthz, readiness
 * on /readyz (every check must pass) and the process's Prometheus metrics on /metrics.
 */
function operationsApp(readiness: ReadinessChecks = {}, dependencies?: ReadinessChecks) {
  const app = express();
  app.disable('x-powered-by');
  app.use(assignRequestId);
  app.get(OPERATIONS_PATHS.liveness, (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get(OPERATIONS_PATHS.readiness, async (_req, res) => {
    const [checks, reported] = await Promise.all([runReadiness(readiness), runReadiness(dependencies ?? {})]);
    const ready = Object.values(checks).every((check) => check === 'ok');
    res
      .status(ready ? 200 : 503)
      .json({ status: ready ? 'ready' : 'not ready', checks, ...(dependencies ? { dependencies: reported } : {}) });
  });
  const metrics = processMetrics();
  app.get(OPERATIONS_PATHS.metrics, async (_req, res) => {
    res.type(metrics.contentType).send(await metrics.metrics());
  });
  return app;
}

/**
 * The HTTP shell every GraphQL server shares: GraphQL on /graphql (one log line, metrics and a trace
 * span per request), the operations paths, graceful shutdown that finishes in-flight requests.
 */
export async function serveGraphQL<Ctx extends BaseContext>(
  options: ServeGraphQLOptions<Ctx>,
): Promise<RunningHttpService> {
  const app = operationsApp(options.readiness, options.dependencies);
  const httpServer = createServer(app);
  options.onHttpServer?.(httpServer);
  const server = options.createServer([
    ApolloServerPluginDrainHttpServer({ httpServer }),
    requestTelemetry<Ctx>(options.name, options.logger),
    ...(options.production ? [ApolloServerPluginLandingPageDisabled()] : []),
  ]);
  await server.start();

  for (const [path, { file, type }] of Object.entries(options.staticFiles ?? {})) {
    app.get(path, (_req, res) => {
      // dotfiles: pnpm keeps packages under node_modules/.pnpm, which `send` would otherwise refuse.
      res.type(type).set('cache-control', 'public, max-age=3600').sendFile(file, { dotfiles: 'allow' });
    });
  }
  for (const [path, document] of Object.entries(options.jsonDocuments ?? {})) {
    app.get(path, (_req, res) => {
      res.set('cache-control', 'public, max-age=300').json(document());
    });
  }
  app.use(
    '/graphql',
    ...(options.cors ? [cors(options.cors)] : []),
    express.json({ limit: options.maxBodyBytes ?? 100_000 }),
    ...(options.beforeApolloServer ?? []),
    traceRequests(options.name),
    expressMiddleware(server, { context: ({ req }) => options.context(req) }),
  );
  const running = await listen(httpServer, options.port, options.host, async () => {
    await server.stop();
    httpServer.closeAllConnections();
  });
  return { ...running, url: `${running.url}/graphql` };
}

export interface ServeOperationsOptions {
  port: number;
  host?: string;
  readiness?: ReadinessChecks;
}

/**
 * The operations paths alone, for a process that serves no GraphQL (a worker): its probes and its
 * metrics. `url` is the server's root; `close()` stops listening.
 */
export async function serveOperations(options: ServeOperationsOptions): Promise<RunningHttpService> {
  const httpServer = createServer(operationsApp(options.readiness));
  return listen(httpServer, options.port, options.host, async () => {
    httpServer.closeAllConnections();
    await new Promise<void>((resolve) => httpServer.close(() => resolve()));
  });
}

async function listen(
  httpServer: Server,
  port: number,
  host: string | undefined,
  close: () => Promise<void>,
): Promise<RunningHttpService> {
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new ConfigError(`port ${port} is already in use: stop what holds it or choose another port`)
          : error,
      ),
    );
    httpServer.listen(port, host ?? '127.0.0.1', () => resolve());
  });
  const bound = (httpServer.address() as AddressInfo).port;
  const url = `http://${host && host !== '0.0.0.0' ? host : '127.0.0.1'}:${bound}`;
  return { url, port: bound, httpServer, close };
}

async function runReadiness(checks: ReadinessChecks): Promise<Record<string, string>> {
  const entries = await Promise.all(
    Object.entries(checks).map(async ([name, check]) => {
      try {
        await withTimeout(check(), 2_000);
        return [name, 'ok'] as const;
      } catch (error) {
        return [name, error instanceof Error ? error.message : 'failed'] as const;
      }
    }),
  );
  return Object.fromEntries(entries);
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
