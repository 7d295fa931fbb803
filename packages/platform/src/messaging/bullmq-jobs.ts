import { Queue, Worker, type ConnectionOptions } from 'bullmq';
import type { Logger } from '../logger.js';
import type { FailedJob, JobHandler, JobOptions, JobQueue, JobWorker } from './types.js';

const DEFAULT_ATTEMPTS = 5;
const DEFAULT_BACKOFF_MS = 1_000;

function connectionOf(url: string): ConnectionOptions {
  const parsed = new URL(url);
  return {
    host: parsed.hostname,
    port: Number(parsed.port || 6379),
    username: parsed.username || undefined,
    password: parsed.password || undefined,
    db: parsed.pathname.length > 1 ? Number(parsed.pathname.slice(1)) : 0,
    tls: parsed.protocol === 'rediss:' ? {} : undefined,
    // BullMQ workers block on Redis; they must wait for a restarted Redis rather than fail.
    maxRetriesPerRequest: null,
  };
}

/** A BullMQ queue behind the JobQueue port. Failed jobs are kept (bounded) so they stay visible. */
export class BullJobQueue implements JobQueue {
  private readonly queue: Queue;

  constructor(
    readonly name: string,
    url: string,
    prefix: string,
  ) {
    this.queue = new Queue(name, { connection: connectionOf(url), prefix });
  }

  async add(jobName: string, data: unknown, options: JobOptions = {}): Promise<void> {
    await this.queue.add(jobName, data, {
      jobId: options.jobId,
      delay: options.delayMs,
      attempts: options.attempts ?? DEFAULT_ATTEMPTS,
      backoff: { type: 'exponential', delay: options.backoffMs ?? DEFAULT_BACKOFF_MS },
      removeOnComplete: { count: 1_000 },
      removeOnFail: { count: 10_000 },
    });
  }

  async every(jobName: string, everyMs: number, data: unknown = {}): Promise<void> {
    await this.queue.upsertJobScheduler(
      jobName,
      { every: everyMs },
      {
        name: jobName,
        data,
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

  async close(): Promise<void> {
    await this.queue.close();
  }
}

/** A BullMQ worker dispatching by job name; a job that used up its attempts is logged as an error. */
export function startBullWorker(
  queueName: string,
  url: string,
  prefix: string,
  handlers: Record<string, JobHandler>,
  logger: Logger,
  concurrency = 1,
): JobWorker {
  const worker = new Worker(
    queueName,
    async (job) => {
      const handler = handlers[job.name];
      if (!handler) throw new Error(`no handler for job "${job.name}" on queue "${queueName}"`);
      await handler(job.data, { id: job.id ?? '', attemptsMade: job.attemptsMade });
    },
    { connection: connectionOf(url), prefix, concurrency },
  );
  worker.on('failed', (job, error) => {
    if (!job) return;
    const attempts = job.opts.attempts ?? 1;
    if (job.attemptsMade >= attempts) {
      logger.error(
        { err: error, queue: queueName, job: job.name, jobId: job.id, attempts: job.attemptsMade },
        'job failed for good: it is in the failed set',
      );
    } else {
      logger.warn(
        { err: error, queue: queueName, job: job.name, jobId: job.id, attempt: job.attemptsMade },
        'job failed; retrying',
      );
    }
  });
  worker.on('error', (error) => logger.warn({ err: error, queue: queueName }, 'job worker error'));
  return { close: () => worker.close() };
}
