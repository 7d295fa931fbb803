import { runMain } from './config.js';
import { serveOperations, type ReadinessChecks, type RunningHttpService } from './http.js';
import { shutdownOnSignal } from './lifecycle.js';
import { createLogger, type Logger } from './logger.js';
import { createSharedMessaging } from './messaging/messaging.js';
import type { Messaging } from './messaging/types.js';
import { startTracing } from './telemetry/tracing.js';

export interface RunningWorker {
  /** What `/readyz` checks (its database). */
  readiness: ReadinessChecks;
  close(): Promise<void>;
}

type WorkerProcessConfig = Parameters<typeof createSharedMessaging>[1] &
  Parameters<typeof startTracing>[1] & { LOG_LEVEL: string; HOST: string };

/**
 * A worker as its own process (as Kubernetes runs it): events and jobs through Redis, tracing when
 * configured, `/healthz`, `/readyz` and `/metrics` on its operations port, and a clean stop on
 * SIGTERM (the worker first, so running jobs finish, then messaging, then tracing's last spans).
 */
export function runWorkerProcess<C extends WorkerProcessConfig>(options: {
  /** e.g. `orders-worker`: its logger's and its spans' service name. */
  name: string;
  loadConfig: () => C;
  operationsPort: (config: C) => number;
  start: (config: C, messaging: Messaging, logger: Logger) => Promise<RunningWorker>;
}): void {
  runMain(async () => {
    const config = options.loadConfig();
    const tracing = startTracing(options.name, config);
    const logger = createLogger(options.name, config.LOG_LEVEL);
    const messaging = createSharedMessaging(options.name, config, logger);
    const started: { worker?: RunningWorker } = {};
    // Listening first, so the orchestrator sees it alive while it connects; ready once it has started.
    const operations = await serveOperations({
      port: options.operationsPort(config),
      host: config.HOST,
      readiness: {
        worker: async () => {
          if (!started.worker) throw new Error('still starting');
          await Promise.all(Object.values(started.worker.readiness).map((check) => check()));
        },
      },
    });
    logger.info({ url: operations.url }, `${options.name} operations endpoints listening`);
    const worker = (started.worker = await options.start(config, messaging, logger));
    shutdownOnSignal(async () => {
      await worker.close();
      await messaging.close();
      await operations.close();
      await tracing.shutdown();
    });
  });
}

/**
 * A subgraph as its own process: tracing when configured (started before the subgraph, so its
 * database client is traced), and a clean stop on SIGTERM (in-flight requests, then tracing's last spans).
 */
export function runSubgraphProcess<C extends Parameters<typeof startTracing>[1]>(options: {
  name: string;
  loadConfig: () => C;
  start: (config: C) => Promise<RunningHttpService>;
}): void {
  runMain(async () => {
    const config = options.loadConfig();
    const tracing = startTracing(options.name, config);
    const subgraph = await options.start(config);
    shutdownOnSignal(async () => {
      await subgraph.close();
      await tracing.shutdown();
    });
  });
}
