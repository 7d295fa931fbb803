import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import cors, { type CorsOptions } from 'cors';
import express, { type Request } from 'express';
import { ApolloServer, type BaseContext } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import type { Registry } from 'prom-client';

export type { CorsOptions } from 'cors';
import type { Logger } from './logger.js';
import { ConfigError } from './config.js';

export type ReadinessChecks = Record<string, () => Promise<unknown>>;

export interface RunningHttpService {
  url: string;
  port: number;
  httpServer: Server;
  close(): Promise<void>;
}

export interface ServeGraphQLOptions<Ctx extends BaseContext> {
  logger: Logger;
  /** Built by the caller; started here, after the drain plugin is attached. */
  createServer: (plugins: ApolloServer<Ctx>['internals']['plugins']) => ApolloServer<Ctx>;
  context: (req: Request) => Promise<Ctx>;
  /** Each check must resolve for `/readyz` to answer 200 (databases, upstream services). */
  readiness?: ReadinessChecks;
  port: number;
  host?: string;
  maxBodyBytes?: number;
  /** Lets a caller mount more on the same HTTP server (e.g. WebSockets) before it listens. */
  onHttpServer?: (server: Server) => void;
  /** Served as Prometheus text on `/metrics`. */
  metrics?: Registry;
  /** Cross-origin rules for `/graphql` (the `cors` package's options); none means same-origin only. */
  cors?: CorsOptions;
  /** In production there is no landing page on GET /graphql (development keeps Apollo's). */
  production?: boolean;
  /** Files served as they are, by URL path (e.g. a development IDE's scripts). */
  staticFiles?: Record<string, { file: string; type: string }>;
}

/**
 * The HTTP shell every process shares: GraphQL on /graphql, liveness on /healthz, readiness on
 * /readyz, graceful shutdown that finishes in-flight requests.
 */
export async function serveGraphQL<Ctx extends BaseContext>(
  options: ServeGraphQLOptions<Ctx>,
): Promise<RunningHttpService> {
  const app = express();
  app.disable('x-powered-by');
  const httpServer = createServer(app);
  options.onHttpServer?.(httpServer);
  const server = options.createServer([
    ApolloServerPluginDrainHttpServer({ httpServer }),
    ...(options.production ? [ApolloServerPluginLandingPageDisabled()] : []),
  ]);
  await server.start();

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const checks = await runReadiness(options.readiness ?? {});
    const ready = Object.values(checks).every((check) => check === 'ok');
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready', checks });
  });
  for (const [path, { file, type }] of Object.entries(options.staticFiles ?? {})) {
    app.get(path, (_req, res) => {
      // dotfiles: pnpm keeps packages under node_modules/.pnpm, which `send` would otherwise refuse.
      res.type(type).set('cache-control', 'public, max-age=3600').sendFile(file, { dotfiles: 'allow' });
    });
  }
  const { metrics } = options;
  if (metrics) {
    app.get('/metrics', async (_req, res) => {
      res.type(metrics.contentType).send(await metrics.metrics());
    });
  }
  app.use(
    '/graphql',
    ...(options.cors ? [cors(options.cors)] : []),
    express.json({ limit: options.maxBodyBytes ?? 100_000 }),
    expressMiddleware(server, { context: ({ req }) => options.context(req) }),
  );

  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new ConfigError(`port ${options.port} is already in use: stop what holds it or choose another port`)
          : error,
      ),
    );
    httpServer.listen(options.port, options.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = httpServer.address() as AddressInfo;
  const url = `http://${options.host && options.host !== '0.0.0.0' ? options.host : '127.0.0.1'}:${port}/graphql`;
  return {
    url,
    port,
    httpServer,
    close: async () => {
      await server.stop();
      httpServer.closeAllConnections();
    },
  };
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
