import { ConfigError } from '../config.js';
import type { Logger } from '../logger.js';
import { redisTargetOf, type RedisTarget } from '../redis.js';
import { BullJobQueue, startBullWorker } from './bullmq-jobs.js';
import { InProcessEventBus, InProcessJobQueue } from './in-process.js';
import { RedisEventBus } from './redis-event-bus.js';
import { messagingMetrics } from './telemetry.js';
import type { JobHandler, JobQueue, JobWorker, Messaging } from './types.js';

export interface MessagingOptions {
  /** Redis (one node or a cluster) for events and jobs; without it, in-process stand-ins (one process only). */
  redis?: RedisTarget;
  logger: Logger;
  /**
   * Prefix for every Redis key and connection name (events under `<prefix>:events:`, queues under
   * `<prefix>:bull:{<queue>}:`), so deployments or test runs can share a Redis. Default `food`.
   */
  keyPrefix?: string;
  /**
   * How long a crashed process's work waits before another takes it over: events it read but never
   * acknowledged, and jobs it was running. Shorter recovers sooner; it must stay well above the
   * longest pause a live process may have (a handler's run, a GC pause). Default 30 000.
   */
  redeliverAfterMs?: number;
  /** Partitions per event stream (REDIS_STREAM_PARTITIONS): the same in every process. Default 8. */
  streamPartitions?: number;
  /**
   * Replicas that must confirm each published event (REDIS_PUBLISH_REPLICAS). Default 1 on a cluster,
   * 0 on one node.
   */
  publishReplicas?: number;
}

export const IN_PROCESS_WARNING =
  'no REDIS_URL or REDIS_CLUSTER_NODES: events and jobs are in-process stand-ins; run only one process';

/**
 * The one place a process chooses its messaging backend: Redis Streams and BullMQ when `redis` is
 * set, else the in-process stand-ins (with a warning: they are valid for one process only).
 * `close` stops the workers (waiting for running jobs), then the event subscriptions, then the queues.
 */
export function createMessaging(options: MessagingOptions): Messaging {
  const prefix = (options.keyPrefix ?? 'food').replace(/:+$/, '');
  const { logger } = options;
  const queues = new Map<string, JobQueue>();
  const workers = new Set<JobWorker>();
  const untrackQueues: (() => void)[] = [];
  const queue = <Q extends JobQueue>(name: string, make: () => Q): Q => {
    let found = queues.get(name) as Q | undefined;
    if (!found) {
      const made = make();
      queues.set(name, (found = made));
      untrackQueues.push(
        messagingMetrics.queueDepth.track(async () => [[{ queue: name }, await made.depth()]]),
        messagingMetrics.queueFailed.track(async () => [[{ queue: name }, await made.failedCount()]]),
      );
    }
    return found;
  };
  const track = (worker: JobWorker): JobWorker => {
    workers.add(worker);
    return {
      close: async () => {
        workers.delete(worker);
        await worker.close();
      },
    };
  };
  const closeAll = async (bus: { close(): Promise<void> }) => {
    await Promise.all([...workers].map((worker) => worker.close()));
    workers.clear();
    await bus.close();
    for (const untrack of untrackQueues.splice(0)) untrack();
    await Promise.all([...queues.values()].map((q) => q.close()));
    queues.clear();
  };

  if (!options.redis) {
    logger.warn(IN_PROCESS_WARNING);
    const bus = new InProcessEventBus(logger);
    const inProcessQueue = (name: string) => queue(name, () => new InProcessJobQueue(name, logger));
    return {
      mode: 'in-process',
      bus,
      queue: inProcessQueue,
      work: (name, handlers, workOptions) =>
        track(inProcessQueue(name).work(countJobRuns(name, handlers), workOptions)),
      close: () => closeAll(bus),
    };
  }

  const redis = options.redis;
  const bull = { redis, prefix: `${prefix}:bull`, logger, stalledAfterMs: options.redeliverAfterMs };
  const bus = new RedisEventBus({
    redis,
    logger,
    keyPrefix: `${prefix}:`,
    claimIdleMs: options.redeliverAfterMs,
    partitions: options.streamPartitions,
    publishReplicas: options.publishReplicas ?? (redis.mode === 'cluster' ? 1 : 0),
  });
  return {
    mode: 'redis',
    bus,
    queue: (name) => queue(name, () => new BullJobQueue(name, bull)),
    work: (name, handlers, workOptions) =>
      track(startBullWorker(name, countJobRuns(name, handlers), { ...bull, ...workOptions })),
    close: () => closeAll(bus),
  };
}

/** The same handlers, each run counted in `jobs_processed_total` by outcome. */
function countJobRuns(queue: string, handlers: Record<string, JobHandler>): Record<string, JobHandler> {
  return Object.fromEntries(
    Object.entries(handlers).map(([job, handler]) => [
      job,
      async (data, run) => {
        try {
          await handler(data, run);
          messagingMetrics.jobsProcessed.inc({ queue, job, outcome: 'ok' });
        } catch (error) {
          messagingMetrics.jobsProcessed.inc({ queue, job, outcome: 'failed' });
          throw error;
        }
      },
    ]),
  );
}

/**
 * Messaging for a process that runs beside others (a worker, a gateway replica): they only see each
 * other's events through Redis, so a Redis is required and the in-process stand-ins are never used.
 */
export function createSharedMessaging(
  serviceName: string,
  env: Parameters<typeof redisTargetOf>[0] & {
    REDIS_KEY_PREFIX: string;
    REDIS_REDELIVER_AFTER_MS: number;
    REDIS_STREAM_PARTITIONS: number;
    REDIS_PUBLISH_REPLICAS?: number | undefined;
  },
  logger: Logger,
): Messaging {
  const redis = redisTargetOf(env);
  if (!redis) {
    throw new ConfigError(
      `${serviceName}: invalid configuration: REDIS_URL: is required, or REDIS_CLUSTER_NODES (processes share events and jobs through Redis)`,
    );
  }
  return createMessaging({
    redis,
    keyPrefix: env.REDIS_KEY_PREFIX,
    redeliverAfterMs: env.REDIS_REDELIVER_AFTER_MS,
    streamPartitions: env.REDIS_STREAM_PARTITIONS,
    publishReplicas: env.REDIS_PUBLISH_REPLICAS,
    logger,
  });
}
