import { Queue, Worker, type Job } from 'bullmq';
import type { Logger } from '../logger.js';
import { connectRedis, hashTag, type RedisConnection, type RedisTarget } from '../redis.js';
import type { FailedJob, JobHandler, JobOptions, JobQueue, JobWorker } from './types.js';

const DEFAULT_ATTEMPTS = 5;
const DEFAULT_BACKOFF_MS = 1_000;
/** Completed jobs kept (a job id is added once while its job is kept). */
const KEEP_COMPLETED = 1_000;
/** Failed jobs kept: large, so failures stay visible until someone looks. */
const KEEP_FAILED = 10_000;

export interface BullOptions {
  redis: RedisTarget;
  /** Prefix of every queue's keys, e.g. `food:bull`; tests use their own for isolation. */
  prefix: string;
  logger: Logger;
}

/**
 * BullMQ's prefix for one queue, e.g. `food:bull:{orders}` (its keys `food:bull:{orders}:orders:wait`, …).
 * BullMQ's scripts use many keys of a queue at once, so on a cluster they must share a hash slot: one
 * slot per queue (not one for all), so queues spread over the masters. The same keys on one node.
 */
const queuePrefix = (options: BullOptions, queueName: string) => `${options.prefix}:${hashTag(queueName)}`;

/** Workers block on Redis; they must wait for a restarted Redis rather than fail (BullMQ requires it). */
const connectionOf = (options: BullOptions, role: string): RedisConnection =>
  connectRedis(options.redis, { name: `${options.prefix}:${role}` });

/**
 * A BullMQ queue behind the JobQueue port: attempts (default 5) with exponential backoff (default
 * 1 s, doubling), completed jobs kept up to 1 000 and failed ones up to 10 000 (so failures stay
 * visible), `every` as a job scheduler (one per name, across replicas).
 */
export class BullJobQueue implements JobQueue {
  private readonly queue: Queue;
  /** Ours, not BullMQ's: a connection passed in is left open by `queue.close()`. */
  private readonly connection: RedisConnection;

  constructor(
    readonly name: string,
    options: BullOptions,
  ) {
    this.connection = connectionOf(options, `queue:${name}`);
    this.queue = new Queue(name, { connection: this.connection, prefix: queuePrefix(options, name) });
    // Without a listener an 'error' event would throw; ioredis reconnects by itself.
    this.queue.on('error', (error) => options.logger.warn({ err: error, queue: name }, 'job queue Redis error'));
  }

  async add(jobName: string, data: unknown, options: JobOptions = {}): Promise<void> {
    await this.queue.add(jobName, data, {
      jobId: options.jobId,
      delay: options.delayMs,
      attempts: options.attempts ?? DEFAULT_ATTEMPTS,
      backoff: { type: 'exponential', delay: options.backoffMs ?? DEFAULT_BACKOFF_MS },
      removeOnComplete: { count: KEEP_COMPLETED },
      removeOnFail: { count: KEEP_FAILED },
    });
  }

  async every(jobName: string, everyMs: number, data: unknown = {}): Promise<void> {
    await this.queue.upsertJobScheduler(
      jobName,
      { every: everyMs },
      {
        name: jobName,
        data,
        // The next run is the retry: a failing run is logged and kept, not retried in a loop.
        opts: { attempts: 1, removeOnComplete: { count: 100 }, removeOnFail: { count: 1_000 } },
      },
    );
  }

  async failed(): Promise<FailedJob[]> {
    const jobs = await this.queue.getFailed(0, 99);
    return jobs.map((job) => ({
      id: job.id ?? '',
      name: job.name,
      data: job.data,
      attemptsMade: job.attemptsMade,
      failedReason: job.failedReason,
    }));
  }

  async depth(): Promise<number> {
    const counts = await this.queue.getJobCounts('waiting', 'delayed', 'active', 'prioritized');
    return Object.values(counts).reduce((sum, count) => sum + count, 0);
  }

  async failedCount(): Promise<number> {
    return this.queue.getFailedCount();
  }

  async close(): Promise<void> {
    await this.queue.close();
    this.connection.disconnect();
  }
}

/** How often a worker looks for jobs waiting while it sits idle (see `startBullWorker`). */
const WEDGE_CHECK_MS = 5_000;
/** Jobs waiting this long while the worker took none: it is stuck, and replaced. */
const WEDGED_AFTER_MS = 15_000;
/** How long `close` waits for running jobs before it stops the worker anyway. */
const CLOSE_GRACE_MS = 8_000;

const settlesWithin = (promise: Promise<unknown>, ms: number): Promise<boolean> =>
  Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms).unref()),
  ]);

/**
 * A BullMQ worker dispatching by job name (a name without a handler fails, visibly). A job that used
 * up its attempts is logged at error level with its queue, name, id and reason: never dropped silently.
 * `close` waits for the running jobs (at most CLOSE_GRACE_MS, then stops the worker anyway: a stopped
 * job's lock runs out and another worker runs it).
 *
 * On a Redis Cluster, BullMQ's blocking connection can stop taking jobs after a master fails over,
 * with no error (the worker looks alive, jobs wait; bullmq#4138, seen in our failover test too). So
 * a watchdog replaces a worker that took no job for WEDGED_AFTER_MS while jobs were waiting.
 */
export function startBullWorker(
  queueName: string,
  handlers: Record<string, JobHandler>,
  options: BullOptions & {
    concurrency?: number;
    /** A job whose worker died (its lock not renewed) runs again after this long. BullMQ's default: 30 s. */
    stalledAfterMs?: number;
  },
): JobWorker {
  const { logger } = options;
  const connection = connectionOf(options, `worker:${queueName}`);
  const prefix = queuePrefix(options, queueName);
  // Asked by the watchdog how many jobs wait; shares the worker's (non-blocking) connection.
  const queue = new Queue(queueName, { connection, prefix });
  queue.on('error', () => undefined);
  let lastProgress = Date.now();
  /** Jobs this process is running now: a worker busy with a long job is not stuck. */
  let running = 0;
  const startWorker = (): Worker => {
    const worker = new Worker(
      queueName,
      async (job: Job) => {
        lastProgress = Date.now();
        const handler = handlers[job.name];
        if (!handler) throw new Error(`no handler for job "${job.name}" on queue "${queueName}"`);
        running++;
        try {
          await handler(job.data, { id: job.id ?? '', attemptsMade: job.attemptsMade });
        } finally {
          running--;
          lastProgress = Date.now();
        }
      },
      {
        connection,
        prefix,
        concurrency: options.concurrency ?? 1,
        // A live worker renews its lock every lockDuration / 2; a dead one's job is found at the next check.
        ...(options.stalledAfterMs && {
          lockDuration: options.stalledAfterMs,
          stalledInterval: options.stalledAfterMs,
        }),
      },
    );
    worker.on('completed', () => (lastProgress = Date.now()));
    worker.on('failed', (job, error) => {
      lastProgress = Date.now();
      if (!job) {
        logger.error({ err: error, queue: queueName }, 'a job failed');
        return;
      }
      const details = { err: error, queue: queueName, job: job.name, jobId: job.id, reason: error.message };
      // Final when its attempts are used up, or when BullMQ failed it for good otherwise (e.g. stalled too often).
      const final = job.attemptsMade >= (job.opts.attempts ?? 1) || Boolean(job.finishedOn);
      if (final) {
        logger.error({ ...details, attempts: job.attemptsMade }, 'job failed for good: it is in the failed set');
      } else {
        logger.warn({ ...details, attempt: job.attemptsMade }, 'job failed; will retry');
      }
    });
    worker.on('stalled', (jobId) =>
      logger.warn({ queue: queueName, jobId }, 'job stalled (its worker died?); retrying'),
    );
    worker.on('error', (error) => logger.warn({ err: error, queue: queueName }, 'job worker Redis error'));
    return worker;
  };

  let worker = startWorker();
  let closing = false;
  let checking = false;
  const watchdog = setInterval(() => {
    if (closing || checking || running > 0 || Date.now() - lastProgress < WEDGED_AFTER_MS) return;
    checking = true;
    queue
      .getJobCounts('wait', 'prioritized')
      .then(async (counts) => {
        const waiting = Object.values(counts).reduce((sum, count) => sum + count, 0);
        if (closing || waiting === 0 || running > 0 || Date.now() - lastProgress < WEDGED_AFTER_MS) {
          if (waiting === 0) lastProgress = Date.now();
          return;
        }
        logger.warn({ queue: queueName, waiting }, 'job worker took no job while jobs waited: replacing it');
        const stuck = worker;
        worker = startWorker();
        lastProgress = Date.now();
        if (!(await settlesWithin(stuck.close(true), CLOSE_GRACE_MS))) {
          logger.warn({ queue: queueName }, 'the replaced job worker did not close');
        }
      })
      .catch(() => undefined) // Redis away: the next check asks again.
      .finally(() => (checking = false));
  }, WEDGE_CHECK_MS);
  watchdog.unref();

  return {
    close: async () => {
      closing = true;
      clearInterval(watchdog);
      if (!(await settlesWithin(worker.close(), CLOSE_GRACE_MS))) {
        logger.warn({ queue: queueName }, 'job worker did not close in time: stopping it');
        await settlesWithin(worker.close(true), 2_000);
      }
      await settlesWithin(queue.close(), 2_000);
      connection.disconnect();
    },
  };
}
