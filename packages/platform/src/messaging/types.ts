import type { DomainEvent, EventStream } from './events.js';

/**
 * The two messaging ports every service uses. Production implements them over Redis (streams for
 * events, BullMQ for jobs); the dev start command without REDIS_URL uses in-process stand-ins with
 * the same semantics, valid for one process only.
 */

/** A handler for one event. Throwing means "not handled": the event is redelivered later. */
export type EventHandler = (event: DomainEvent) => Promise<void>;

export interface EventSubscription {
  /** Stops delivery and releases what the subscription holds (connections, listeners). */
  close(): Promise<void>;
}

/**
 * A publish that reached the stream's master but not the replicas it must reach (Redis replicates
 * asynchronously): the entry may be in the stream, or lost by a failover. Publish it again.
 */
export class UnconfirmedPublishError extends Error {
  override name = 'UnconfirmedPublishError';

  constructor(
    readonly stream: EventStream,
    /** The Redis key it was written to. */
    readonly key: string,
    readonly confirmed: number,
    readonly required: number,
  ) {
    super(`${key}: ${confirmed} of ${required} replicas confirmed the publish in time`);
  }
}

/** An event and the stream it goes to. */
export interface StreamEvent {
  stream: EventStream;
  event: DomainEvent;
}

export interface TailOptions {
  /**
   * Start with the events published since this instant (epoch ms) instead of only later ones, where
   * the stream still holds them (a gateway catching up on recent session revocations). The
   * in-process stand-in has no history and starts now.
   */
  sinceMs?: number;
}

export interface EventBus {
  /**
   * Appends an event to its stream. Resolves once the stream has it (and, where the bus requires
   * replicas, once they have it too; else rejects with an UnconfirmedPublishError). Used by the
   * outbox relay only.
   */
  publish(stream: EventStream, event: DomainEvent): Promise<void>;
  /**
   * Appends each event to its stream, those of one stream partition in the order given, each as
   * `publish` would; the outcome of each: undefined once it is confirmed, else the error `publish`
   * would have thrown for it. Where the bus can, the whole batch goes at once (the outbox relay's
   * batches); one that sends them one by one stops at the first failure. Used by the outbox relay only.
   */
  publishAll(events: readonly StreamEvent[]): Promise<(Error | undefined)[]>;
  /**
   * Competing consumption: each event of `stream` is handled by one member of `group` (a service),
   * at least once, in stream order, and redelivered when a handler throws or a member dies before
   * acknowledging. Handlers must be idempotent. An event that keeps failing goes to the
   * dead-letter list after `maxAttempts` and is logged, never silently dropped.
   */
  consume(
    stream: EventStream,
    group: string,
    handler: EventHandler,
    options?: { maxAttempts?: number },
  ): Promise<EventSubscription>;
  /**
   * Fan-out: every caller (e.g. every gateway process) sees every event published after it started
   * tailing, in stream order; a dropped connection resumes where it left off.
   */
  tail(stream: EventStream, handler: (event: DomainEvent) => void, options?: TailOptions): Promise<EventSubscription>;
  close(): Promise<void>;
}

export interface JobOptions {
  /** Jobs with the same id are added once: scheduling is idempotent. */
  jobId?: string;
  delayMs?: number;
  /** Total tries before the job lands in the failed set. Default 5. */
  attempts?: number;
  /** First retry delay; doubles each try. Default 1000. */
  backoffMs?: number;
}

export interface FailedJob {
  id: string;
  name: string;
  data: unknown;
  attemptsMade: number;
  failedReason: string;
}

/** A job handler. Throwing retries with backoff until attempts run out. Must be idempotent. */
export type JobHandler = (data: unknown, job: { id: string; attemptsMade: number }) => Promise<void>;

export interface JobQueue {
  readonly name: string;
  add(jobName: string, data: unknown, options?: JobOptions): Promise<void>;
  /** Runs `jobName` every `everyMs`, once across all replicas (a repeatable job). */
  every(jobName: string, everyMs: number, data?: unknown): Promise<void>;
  /** Jobs that used up their attempts, newest first: the visible place failures land. */
  failed(): Promise<FailedJob[]>;
  /** Jobs waiting, delayed or running: the queue depth. */
  depth(): Promise<number>;
  /** How many jobs are in the failed set (for metrics; `failed()` lists the newest). */
  failedCount(): Promise<number>;
  close(): Promise<void>;
}

export interface JobWorker {
  close(): Promise<void>;
}

/** Everything messaging a process needs, from one place, so the backend is chosen once. */
export interface Messaging {
  /** `redis` in production and tests; `in-process` in the dev start command without REDIS_URL. */
  readonly mode: 'redis' | 'in-process';
  readonly bus: EventBus;
  queue(name: string): JobQueue;
  /** Starts processing `queueName`; a job whose name has no handler fails (visibly). */
  work(queueName: string, handlers: Record<string, JobHandler>, options?: { concurrency?: number }): JobWorker;
  close(): Promise<void>;
}
