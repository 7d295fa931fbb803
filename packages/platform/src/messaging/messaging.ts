import type { Logger } from '../logger.js';
import { BullJobQueue, startBullWorker } from './bullmq-jobs.js';
import { InProcessEventBus, InProcessJobQueue } from './in-process.js';
import { RedisEventBus } from './redis-event-bus.js';
import type { JobHandler, JobQueue, JobWorker, Messaging } from './types.js';

export interface MessagingOptions {
  /** Redis for events and jobs; without it, in-process stand-ins (one process only). */
  redisUrl?: string;
  logger: Logger;
  /** Prefix for every Redis key (events and queues), so deployments or test runs can share a Redis. */
  keyPrefix?: string;
}

/** The one place a process chooses its messaging backend. */
export function createMessaging(options: MessagingOptions): Messaging {
  const prefix = options.keyPrefix ?? 'food';
  const queues = new Map<string, JobQueue>();
  const workers = new Set<JobWorker>();

  if (!options.redisUrl) {
    options.logger.warn('no REDIS_URL: events and jobs use in-process stand-ins; run only one process');
    const bus = new InProcessEventBus(options.logger);
    const queue = (name: string) => {
      let found = queues.get(name);
      if (!found) queues.set(name, (found = new InProcessJobQueue(name, options.logger)));
      return found;
    };
    return {
      mode: 'in-process',
      bus,
      queue,
      work: (name, handlers: Record<string, JobHandler>) => (queue(name) as InProcessJobQueue).work(handlers),
      close: async () => {
        await bus.close();
        await Promise.all([...queues.values()].map((q) => q.close()));
      },
    };
  }

  const redisUrl = options.redisUrl;
  const bus = new RedisEventBus({ url: redisUrl, logger: options.logger, keyPrefix: `${prefix}:` });
  return {
    mode: 'redis',
    bus,
    queue: (name) => {
      let found = queues.get(name);
      if (!found) queues.set(name, (found = new BullJobQueue(name, redisUrl, `${prefix}:bull`)));
      return found;
    },
    work: (name, handlers, workOptions) => {
      const worker = startBullWorker(
        name,
        redisUrl,
        `${prefix}:bull`,
        handlers,
        options.logger,
        workOptions?.concurrency,
      );
      workers.add(worker);
      return worker;
    },
    close: async () => {
      await Promise.all([...workers].map((worker) => worker.close()));
      await bus.close();
      await Promise.all([...queues.values()].map((queue) => queue.close()));
    },
  };
}
