import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import cors, { type CorsOptions } from 'cors';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { ApolloServer, type BaseContext } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
export type { CorsOptions } from 'cors';
import type { Logger } from './logger.js';
import { ConfigError } from './config.js';
import { processMetrics } from './telemetry/metrics.js';
import { assignRequestId, GraphQLRequestTelemetry } from './telemetry/request-telemetry.js';
import { inRequestSpan, traceRequests } from './telemetry/tracing.js';

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
  /**
   * Answers requests to /graphql before Express and Apollo Server see them, when it can (the gateway's
   * cached responses, recorded in `telemetry` as Apollo Server would record them). Called with each
   * JSON POST to /graphql whose body could be read whole (a Content-Length within the limit, no
   * content encoding, UTF-8) and parsed to an object, after its request id and CORS headers are set
   * and inside its trace span; resolves whether it answered. Any other request, or one it does not
   * answer, goes on to Express with its body as read (body-parser's own errors for a body that does
   * not parse).
   */
  preempt?: (req: IncomingMessage & { body: Record<string, unknown> }, res: ServerResponse) => Promise<boolean>;
  /** The request telemetry of this server (made here when not given). */
  telemetry?: GraphQLRequestTelemetry;
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
  const maxBodyBytes = options.maxBodyBytes ?? 100_000;
  const corsHandler = options.cors ? cors(options.cors) : undefined;
  const httpServer = createServer(
    options.preempt ? preempting(app, options.preempt, { maxBodyBytes, cors: corsHandler, server: options.name }) : app,
  );
  options.onHttpServer?.(httpServer);
  const server = options.createServer([
    ApolloServerPluginDrainHttpServer({ httpServer }),
    (options.telemetry ?? new GraphQLRequestTelemetry(options.name, options.logger)).plugin<Ctx>(),
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
    ...(corsHandler ? [corsHandler] : []),
    // A body read before Express that did not parse: answered as body-parser answers it.
    (req: Request, _res: Response, next: NextFunction) => next(unparsedBodies.get(req)),
    express.json({ limit: maxBodyBytes }),
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

/** Why a body read before Express could not be used: handed to Express as body-parser's error would be. */
const unparsedBodies = new WeakMap<IncomingMessage, Error>();

/**
 * The HTTP server's handler when `preempt` is set: a JSON POST to /graphql is read and parsed here,
 * offered to `preempt`, and handed to Express (parsed) when it does not answer; every other request
 * goes to Express untouched.
 */
function preempting(
  app: (req: IncomingMessage, res: ServerResponse) => void,
  preempt: NonNullable<ServeGraphQLOptions<BaseContext>['preempt']>,
  options: { maxBodyBytes: number; cors?: RequestHandler; server: string },
) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const length = Number(req.headers['content-length']);
    const encoding = req.headers['content-encoding'];
    if (
      req.method !== 'POST' ||
      !/^\/graphql(\?|$)/.test(req.url ?? '') ||
      !/^application\/json\s*(;\s*charset=utf-?8\s*)?$/i.test(req.headers['content-type'] ?? '') ||
      (encoding !== undefined && encoding !== 'identity') ||
      !(length > 0 && length <= options.maxBodyBytes)
    ) {
      return app(req, res);
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('error', () => app(req, res));
    req.once('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        // As body-parser's strict JSON parser: an object or an array, nothing else.
        if (!/^\s*[[{]/.test(text)) throw new SyntaxError('Unexpected token: the body is not a JSON object or array');
        body = JSON.parse(text);
      } catch (error) {
        unparsedBodies.set(
          req,
          Object.assign(error as Error, { status: 400, statusCode: 400, expose: true, type: 'entity.parse.failed' }),
        );
        return app(req, res);
      }
      Object.assign(req, { body });
      if (Array.isArray(body)) return app(req, res);
      assignRequestId(req as Request, res as Response, () => undefined);
      const offer = () =>
        inRequestSpan(options.server, req, res, () =>
          preempt(req as IncomingMessage & { body: Record<string, unknown> }, res),
        );
      const answered = options.cors
        ? new Promise<boolean>((resolve, reject) =>
            options.cors!(req as Request, res as Response, () => void offer().then(resolve, reject)),
          )
        : offer();
      answered.then(
        (done) => done || app(req, res),
        () => app(req, res),
      );
    });
  };
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
