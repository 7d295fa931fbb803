import type { Logger } from '../logger.js';
import type { DomainEvent, EventStream } from './events.js';
import type {
  EventBus,
  EventHandler,
  EventSubscription,
  FailedJob,
  JobHandler,
  JobOptions,
  JobQueue,
  JobWorker,
} from './types.js';

/**
 * Stand-ins for Redis Streams and BullMQ with the same semantics, for the dev start command when no
 * REDIS_URL is set. Everything lives in this process's memory: valid for one process only, and
 * nothing survives a restart.
 */
export class InProcessEventBus implements EventBus {
  private readonly streams = new Map<EventStream, DomainEvent[]>();
  private readonly wakers = new Set<() => void>();
  private readonly subscriptions = new Set<EventSubscription>();
  /** One cursor per (stream, group), shared by the group's members, as a consumer group's is. */
  private readonly cursors = new Map<string, number>();
  readonly deadLetters: { stream: EventStream; group: string; event: DomainEvent; error: string }[] = [];

  constructor(private readonly logger: Logger) {}

  async publish(stream: EventStream, event: DomainEvent): Promise<void> {
    this.entries(stream).push(event);
    for (const wake of this.wakers) wake();
  }

  async consume(
    stream: EventStream,
    group: string,
    handler: EventHandler,
    options: { maxAttempts?: number } = {},
  ): Promise<EventSubscription> {
    const maxAttempts = options.maxAttempts ?? 10;
    const cursor = `${stream}\u0000${group}`;
    if (!this.cursors.has(cursor)) this.cursors.set(cursor, 0);
    return this.run(async (isStopped) => {
      const entries = this.entries(stream);
      while (!isStopped() && this.cursors.get(cursor)! < entries.length) {
        const position = this.cursors.get(cursor)!;
        this.cursors.set(cursor, position + 1);
        const event = entries[position]!;
        for (let attempt = 1; !isStopped(); attempt++) {
          try {
            await handler(event);
            break;
          } catch (error) {
            if (attempt >= maxAttempts) {
              this.deadLetters.push({ stream, group, event, error: String(error) });
              this.logger.error(
                { err: error, stream, group, eventId: event.id, attempts: attempt },
                'event handler gave up on an event: moved to the dead-letter list',
              );
              break;
            }
            this.logger.warn(
              { err: error, stream, group, eventId: event.id, attempt },
              'event handler failed; retrying',
            );
            await sleep(Math.min(100 * 2 ** attempt, 5_000));
          }
        }
      }
    });
  }

  async tail(stream: EventStream, handler: (event: DomainEvent) => void): Promise<EventSubscription> {
    let position = this.entries(stream).length;
    return this.run(async () => {
      const entries = this.entries(stream);
      while (position < entries.length) handler(entries[position++]!);
    });
  }

  async close(): Promise<void> {
    await Promise.all([...this.subscriptions].map((subscription) => subscription.close()));
  }

  private entries(stream: EventStream): DomainEvent[] {
    let entries = this.streams.get(stream);
    if (!entries) this.streams.set(stream, (entries = []));
    return entries;
  }

  /** Runs `drain` whenever something is published, one run at a time, until closed. */
  private async run(drain: (isStopped: () => boolean) => Promise<void>): Promise<EventSubscription> {
    let stopped = false;
    let running = Promise.resolve();
    let again = false;
    let busy = false;
    const wake = () => {
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      running = (async () => {
        do {
          again = false;
          await drain(() => stopped);
        } while (again && !stopped);
        busy = false;
      })();
    };
    this.wakers.add(wake);
    wake();
    const subscription: EventSubscription = {
      close: async () => {
        stopped = true;
        this.wakers.delete(wake);
        this.subscriptions.delete(subscription);
        await running;
      },
    };
    this.subscriptions.add(subscription);
    return subscription;
  }
}

interface QueuedJob {
  id: string;
  name: string;
  data: unknown;
  attempts: number;
  backoffMs: number;
  attemptsMade: number;
  timer?: NodeJS.Timeout;
}

/** A job queue in this process: delays, attempts with exponential backoff, a failed list, id dedupe. */
export class InProcessJobQueue implements JobQueue {
  private readonly jobs = new Map<string, QueuedJob>();
  private readonly failedJobs: FailedJob[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private handlers: Record<string, JobHandler> | null = null;
  private nextId = 1;
  private closed = false;

  constructor(
    readonly name: string,
    private readonly logger: Logger,
  ) {}

  async add(jobName: string, data: unknown, options: JobOptions = {}): Promise<void> {
    const id = options.jobId ?? String(this.nextId++);
    if (this.jobs.has(id)) return;
    const job: QueuedJob = {
      id,
      name: jobName,
      data,
      attempts: options.attempts ?? 5,
      backoffMs: options.backoffMs ?? 1_000,
      attemptsMade: 0,
    };
    this.jobs.set(id, job);
    this.schedule(job, options.delayMs ?? 0);
  }

  async every(jobName: string, everyMs: number, data: unknown = {}): Promise<void> {
    const timer = setInterval(() => void this.add(jobName, data, { jobId: `every:${jobName}`, attempts: 1 }), everyMs);
    timer.unref();
    this.timers.add(timer);
  }

  async failed(): Promise<FailedJob[]> {
    return [...this.failedJobs].reverse();
  }

  async depth(): Promise<number> {
    return this.jobs.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    for (const job of this.jobs.values()) clearTimeout(job.timer);
  }

  /** Attaches the handlers (what a BullMQ worker would run) and starts any job already due. */
  work(handlers: Record<string, JobHandler>): JobWorker {
    this.handlers = handlers;
    for (const job of this.jobs.values()) if (!job.timer) this.schedule(job, 0);
    return { close: () => this.close() };
  }

  private schedule(job: QueuedJob, delayMs: number) {
    if (this.closed || !this.handlers) return;
    job.timer = setTimeout(() => void this.runJob(job), delayMs);
    this.timers.add(job.timer);
  }

  private async runJob(job: QueuedJob) {
    const handler = this.handlers?.[job.name];
    job.attemptsMade++;
    try {
      if (!handler) throw new Error(`no handler for job "${job.name}" on queue "${this.name}"`);
      await handler(job.data, { id: job.id, attemptsMade: job.attemptsMade - 1 });
      this.jobs.delete(job.id);
    } catch (error) {
      if (job.attemptsMade >= job.attempts) {
        this.jobs.delete(job.id);
        this.failedJobs.push({
          id: job.id,
          name: job.name,
          data: job.data,
          attemptsMade: job.attemptsMade,
          failedReason: String(error),
        });
        this.logger.error(
          { err: error, queue: this.name, job: job.name, jobId: job.id, attempts: job.attemptsMade },
          'job failed for good: it is in the failed list',
        );
      } else {
        this.logger.warn({ err: error, queue: this.name, job: job.name, jobId: job.id }, 'job failed; retrying');
        this.schedule(job, job.backoffMs * 2 ** (job.attemptsMade - 1));
      }
    }
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
