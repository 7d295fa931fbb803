import type { Logger } from '../logger.js';
import { describeRawEvent, parseEvent, type DomainEvent, type EventStream } from './events.js';
import { interruptiblePause } from './pause.js';
import { messagingMetrics } from './telemetry.js';
import type { ConsumeOptions, DeadLetter } from './redis-event-bus.js';
import type {
  EventBus,
  EventHandler,
  EventSubscription,
  FailedJob,
  JobHandler,
  JobOptions,
  JobQueue,
  JobWorker,
  StreamEvent,
} from './types.js';

/**
 * `publishAll` for a bus with nothing to batch: each event in turn, through its `publish`, up to the
 * first that fails; the ones after it are not sent (their outcome says so), as a pipeline cut off
 * there would leave them.
 */
export async function publishInTurn(
  bus: Pick<EventBus, 'publish'>,
  events: readonly StreamEvent[],
): Promise<(Error | undefined)[]> {
  const outcomes: (Error | undefined)[] = [];
  for (const { stream, event } of events) {
    if (outcomes.some(Boolean)) {
      outcomes.push(new Error('not sent: an earlier event of the batch failed'));
      continue;
    }
    outcomes.push(
      await bus.publish(stream, event).then(
        () => undefined,
        (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
      ),
    );
  }
  return outcomes;
}

/**
 * Stand-ins for Redis Streams and BullMQ with the same semantics, for the dev start command when no
 * REDIS_URL is set. Everything lives in this process's memory: valid for one process only, and
 * nothing survives a restart.
 */

/** Wakes everything waiting for "something changed" (a publish, a released entry, a close). */
class Signal {
  private waiters: (() => void)[] = [];
  wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

export interface InProcessEventBusOptions {
  /** Cap on a stream's length; older entries are dropped (as XADD MAXLEN ~ does). Default 100 000. */
  maxLength?: number;
  /** First pause before a failed handler is retried; doubles per attempt, capped at 5 s. Default 100 ms. */
  retryBackoffMs?: number;
}

interface Pending {
  /** Position in the stream. */
  index: number;
  /** Deliveries so far. */
  attempts: number;
}

interface GroupState {
  /** The next never-delivered position, shared by the group's members (a consumer group's last id). */
  cursor: number;
  /** Entries a member let go of unfinished (it closed while retrying), for the next free member. */
  released: Pending[];
}

interface StreamLog {
  /** Position of entries[0]: positions before it were trimmed. */
  first: number;
  entries: { id: string; raw: string }[];
  groups: Map<string, GroupState>;
  deadLetters: DeadLetter[];
}

const MAX_RETRY_PAUSE_MS = 5_000;

/**
 * Events in memory, with the Redis bus's semantics: entries are stored as JSON and validated on
 * delivery; a group's members share one cursor (each entry goes to one member), each member handles
 * its entries one at a time in order, retries a throwing handler in place with backoff, and moves an
 * entry to the dead-letter list (with an error log line) after `maxAttempts` deliveries, or at once
 * when it is not a valid event. A member that closes while retrying hands its entry back to the group.
 * `tail` delivers what is published after it was called. Delivery is always asynchronous.
 */
export class InProcessEventBus implements EventBus {
  private readonly streams = new Map<EventStream, StreamLog>();
  private readonly changed = new Signal();
  private readonly subscriptions = new Set<EventSubscription>();
  private readonly maxLength: number;
  private readonly retryBackoffMs: number;
  private closed = false;

  constructor(
    private readonly logger: Logger,
    options: InProcessEventBusOptions = {},
  ) {
    this.maxLength = options.maxLength ?? 100_000;
    this.retryBackoffMs = options.retryBackoffMs ?? 100;
  }

  async publish(stream: EventStream, event: DomainEvent): Promise<void> {
    this.assertOpen();
    const log = this.log(stream);
    const position = log.first + log.entries.length;
    log.entries.push({ id: `${position + 1}-0`, raw: JSON.stringify(event) });
    // Trim in steps (as Redis's approximate MAXLEN does), not on every publish.
    const excess = log.entries.length - this.maxLength;
    if (excess > Math.max(100, this.maxLength / 10)) {
      log.entries.splice(0, excess);
      log.first += excess;
    }
    this.changed.notify();
  }

  publishAll(events: readonly StreamEvent[]): Promise<(Error | undefined)[]> {
    return publishInTurn(this, events);
  }

  /** The newest dead letters of a stream (all groups), newest first. */
  async deadLetters(stream: EventStream, count = 100): Promise<DeadLetter[]> {
    return this.log(stream).deadLetters.slice(-count).reverse();
  }

  async consume(
    stream: EventStream,
    group: string,
    handler: EventHandler,
    options: ConsumeOptions = {},
  ): Promise<EventSubscription> {
    this.assertOpen();
    const maxAttempts = options.maxAttempts ?? 10;
    const log = this.log(stream);
    let state = log.groups.get(group);
    // A new group starts at the stream's beginning, as XGROUP CREATE ... 0 does.
    if (!state) log.groups.set(group, (state = { cursor: log.first, released: [] }));
    const groupState = state;
    const logger = this.logger.child({ stream, group });
    let stopped = false;
    const pause = interruptiblePause();

    const take = (): Pending | undefined => {
      const released = groupState.released.shift();
      if (released) return released;
      if (groupState.cursor < log.first) {
        logger.error({ lost: log.first - groupState.cursor }, 'events were trimmed before this group read them');
        groupState.cursor = log.first;
      }
      if (groupState.cursor >= log.first + log.entries.length) return undefined;
      return { index: groupState.cursor++, attempts: 0 };
    };

    const deadLetter = (entryId: string, raw: string, attempts: number, error: unknown, why: string) => {
      const { eventId, eventType } = describeRawEvent(raw);
      log.deadLetters.push({
        stream,
        // One process, one log per stream: no partitions here.
        partition: 0,
        group,
        entryId,
        eventId,
        eventType,
        attempts,
        error: error instanceof Error ? error.message : String(error),
        raw,
      });
      if (log.deadLetters.length > this.maxLength) log.deadLetters.shift();
      messagingMetrics.eventsConsumed.inc({ stream, group, outcome: 'dead_letter' });
      logger.error(
        { err: error, entryId, eventId, eventType, attempts },
        `event moved to the dead-letter list: ${why}`,
      );
    };

    const handle = async ({ index, attempts }: Pending): Promise<void> => {
      const entry = log.entries[index - log.first];
      if (!entry) {
        deadLetter(`${index + 1}-0`, '', attempts + 1, new Error('the entry was trimmed'), 'lost to trimming');
        return;
      }
      let event: DomainEvent;
      try {
        event = parseEvent(JSON.parse(entry.raw));
      } catch (error) {
        deadLetter(entry.id, entry.raw, attempts + 1, error, 'not a valid event');
        return;
      }
      for (let attempt = attempts + 1; ; attempt++) {
        if (attempt > maxAttempts) {
          const error = new Error(`delivered ${attempt} times without being acknowledged`);
          deadLetter(entry.id, entry.raw, attempt, error, `more than ${maxAttempts} deliveries`);
          return;
        }
        try {
          await handler(event);
          messagingMetrics.eventsConsumed.inc({ stream, group, outcome: 'ok' });
          return;
        } catch (error) {
          if (attempt >= maxAttempts) {
            deadLetter(entry.id, entry.raw, attempt, error, `failed ${attempt} times`);
            return;
          }
          logger.warn(
            { err: error, entryId: entry.id, eventId: event.id, eventType: event.type, attempt },
            'event handler failed; will retry',
          );
          messagingMetrics.eventsConsumed.inc({ stream, group, outcome: 'retry' });
          await pause.wait(Math.min(this.retryBackoffMs * 2 ** (attempt - 1), MAX_RETRY_PAUSE_MS));
          if (stopped) {
            // Leaving unfinished: the next free member of the group takes it over, in position order.
            const rest = groupState.released.filter((pending) => pending.index < index);
            const after = groupState.released.filter((pending) => pending.index > index);
            groupState.released = [...rest, { index, attempts: attempt }, ...after];
            this.changed.notify();
            return;
          }
        }
      }
    };

    const running = (async () => {
      while (!stopped) {
        const next = take();
        if (next) await handle(next);
        else await this.changed.wait();
      }
    })();
    return this.track(async () => {
      stopped = true;
      pause.interrupt();
      this.changed.notify();
      await running;
    });
  }

  async tail(stream: EventStream, handler: (event: DomainEvent) => void): Promise<EventSubscription> {
    this.assertOpen();
    const log = this.log(stream);
    let position = log.first + log.entries.length;
    let stopped = false;
    const running = (async () => {
      while (!stopped) {
        position = Math.max(position, log.first);
        const entry = log.entries[position - log.first];
        if (!entry) {
          await this.changed.wait();
          continue;
        }
        position++;
        try {
          handler(parseEvent(JSON.parse(entry.raw)));
        } catch (error) {
          this.logger.error({ err: error, stream, entryId: entry.id }, 'could not deliver a tailed event');
        }
      }
    })();
    return this.track(async () => {
      stopped = true;
      this.changed.notify();
      await running;
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.subscriptions].map((subscription) => subscription.close()));
  }

  private track(stop: () => Promise<void>): EventSubscription {
    const subscription: EventSubscription = {
      close: async () => {
        if (!this.subscriptions.delete(subscription)) return;
        await stop();
      },
    };
    this.subscriptions.add(subscription);
    return subscription;
  }

  private log(stream: EventStream): StreamLog {
    let log = this.streams.get(stream);
    if (!log) this.streams.set(stream, (log = { first: 0, entries: [], groups: new Map(), deadLetters: [] }));
    return log;
  }

  private assertOpen() {
    if (this.closed) throw new Error('the event bus is closed');
  }
}

export interface InProcessJobQueueOptions {
  /** Completed job ids remembered (a job id is added once while remembered), as BullMQ's removeOnComplete. */
  keepCompleted?: number;
  /** Failed jobs kept, as BullMQ's removeOnFail. */
  keepFailed?: number;
}

interface QueuedJob {
  id: string;
  name: string;
  data: unknown;
  attempts: number;
  backoffMs: number;
  /** Attempts finished so far. */
  attemptsMade: number;
  state: 'waiting' | 'delayed' | 'active';
  timer?: NodeJS.Timeout;
}

interface WorkerState {
  handlers: Record<string, JobHandler>;
  concurrency: number;
  active: number;
  idle: Signal;
}

/**
 * A job queue in this process, with the BullMQ queue's semantics: delays, attempts with exponential
 * backoff (backoffMs, then doubling), a failed list (newest first) with an error log line for each job
 * that used up its attempts, job ids added once while the job is waiting, running, or remembered as
 * completed or failed, and `every` (the first run at once, then one per interval, never piling up).
 * Workers (`work`) run jobs with a concurrency limit (default 1). `close()` clears every timer.
 */
export class InProcessJobQueue implements JobQueue {
  private readonly jobs = new Map<string, QueuedJob>();
  private readonly waiting: QueuedJob[] = [];
  private readonly completedIds = new Set<string>();
  private readonly failedIds = new Set<string>();
  private readonly failedJobs: FailedJob[] = [];
  private readonly schedulers = new Map<string, { timer: NodeJS.Timeout; jobId?: string }>();
  private readonly workers = new Set<WorkerState>();
  private readonly keepCompleted: number;
  private readonly keepFailed: number;
  private nextId = 1;
  private closed = false;

  constructor(
    readonly name: string,
    private readonly logger: Logger,
    options: InProcessJobQueueOptions = {},
  ) {
    this.keepCompleted = options.keepCompleted ?? 1_000;
    this.keepFailed = options.keepFailed ?? 10_000;
  }

  async add(jobName: string, data: unknown, options: JobOptions = {}): Promise<void> {
    this.assertOpen();
    if (options.jobId !== undefined) checkJobId(options.jobId);
    this.enqueue(options.jobId ?? String(this.nextId++), jobName, data, options);
  }

  async every(jobName: string, everyMs: number, data: unknown = {}): Promise<void> {
    this.assertOpen();
    // Upsert, as BullMQ's job scheduler: calling it again replaces the schedule.
    const existing = this.schedulers.get(jobName);
    if (existing) clearInterval(existing.timer);
    const tick = () => {
      const previous = scheduler.jobId === undefined ? undefined : this.jobs.get(scheduler.jobId);
      if (previous && previous.state !== 'active') return; // the last run has not started: do not pile up
      const jobId = `repeat:${jobName}:${Date.now()}`;
      if (this.enqueue(jobId, jobName, data, { attempts: 1 })) scheduler.jobId = jobId;
    };
    const scheduler: { timer: NodeJS.Timeout; jobId?: string } = { timer: setInterval(tick, everyMs) };
    scheduler.timer.unref();
    this.schedulers.set(jobName, scheduler);
    tick();
  }

  async failed(): Promise<FailedJob[]> {
    return this.failedJobs.slice(-100).reverse();
  }

  async depth(): Promise<number> {
    return this.jobs.size;
  }

  async failedCount(): Promise<number> {
    return this.failedJobs.length;
  }

  /** Stops the queue: clears every timer (delays, retries, schedules); nothing more starts. */
  async close(): Promise<void> {
    this.closed = true;
    for (const scheduler of this.schedulers.values()) clearInterval(scheduler.timer);
    this.schedulers.clear();
    for (const job of this.jobs.values()) clearTimeout(job.timer);
  }

  /**
   * Starts running this queue's jobs (what a BullMQ worker does). Its `close` stops taking jobs and
   * waits for the ones running.
   */
  work(handlers: Record<string, JobHandler>, options: { concurrency?: number } = {}): JobWorker {
    const worker: WorkerState = { handlers, concurrency: options.concurrency ?? 1, active: 0, idle: new Signal() };
    this.workers.add(worker);
    this.pump();
    return {
      close: async () => {
        this.workers.delete(worker);
        while (worker.active > 0) await worker.idle.wait();
      },
    };
  }

  /** Adds a job unless one with its id exists; false when it did. */
  private enqueue(id: string, name: string, data: unknown, options: JobOptions): boolean {
    if (this.jobs.has(id) || this.completedIds.has(id) || this.failedIds.has(id)) return false;
    const job: QueuedJob = {
      id,
      name,
      // Stored as JSON, as BullMQ does: the handler gets a copy, never the caller's object.
      data: data === undefined ? undefined : JSON.parse(JSON.stringify(data)),
      attempts: options.attempts ?? 5,
      backoffMs: options.backoffMs ?? 1_000,
      attemptsMade: 0,
      state: 'waiting',
    };
    this.jobs.set(id, job);
    this.schedule(job, options.delayMs ?? 0);
    return true;
  }

  private schedule(job: QueuedJob, delayMs: number) {
    if (delayMs <= 0) {
      job.state = 'waiting';
      this.waiting.push(job);
      this.pump();
      return;
    }
    job.state = 'delayed';
    if (this.closed) return;
    job.timer = setTimeout(() => {
      job.timer = undefined;
      this.schedule(job, 0);
    }, delayMs);
    job.timer.unref();
  }

  /** Starts waiting jobs while some worker has room. */
  private pump() {
    while (!this.closed && this.waiting.length > 0) {
      const worker = [...this.workers].find((candidate) => candidate.active < candidate.concurrency);
      if (!worker) return;
      void this.run(this.waiting.shift()!, worker);
    }
  }

  private async run(job: QueuedJob, worker: WorkerState) {
    job.state = 'active';
    worker.active++;
    let failure: unknown;
    try {
      const handler = worker.handlers[job.name];
      if (!handler) throw new Error(`no handler for job "${job.name}" on queue "${this.name}"`);
      await handler(job.data, { id: job.id, attemptsMade: job.attemptsMade });
    } catch (error) {
      failure = error ?? new Error('job handler threw a nullish value');
    }
    job.attemptsMade++;
    worker.active--;
    if (failure === undefined) {
      this.jobs.delete(job.id);
      remember(this.completedIds, job.id, this.keepCompleted);
    } else if (job.attemptsMade >= job.attempts) {
      this.jobs.delete(job.id);
      const reason = failure instanceof Error ? failure.message : String(failure);
      this.failedJobs.push({
        id: job.id,
        name: job.name,
        data: job.data,
        attemptsMade: job.attemptsMade,
        failedReason: reason,
      });
      remember(this.failedIds, job.id, this.keepFailed);
      if (this.failedJobs.length > this.keepFailed) this.failedJobs.shift();
      this.logger.error(
        { err: failure, queue: this.name, job: job.name, jobId: job.id, attempts: job.attemptsMade, reason },
        'job failed for good: it is in the failed set',
      );
    } else {
      this.logger.warn(
        { err: failure, queue: this.name, job: job.name, jobId: job.id, attempt: job.attemptsMade },
        'job failed; will retry',
      );
      this.schedule(job, job.backoffMs * 2 ** (job.attemptsMade - 1));
    }
    worker.idle.notify();
    this.pump();
  }

  private assertOpen() {
    if (this.closed) throw new Error(`job queue "${this.name}" is closed`);
  }
}

/** Adds to a bounded, insertion-ordered set, forgetting the oldest. */
function remember(ids: Set<string>, id: string, keep: number) {
  ids.add(id);
  if (ids.size > keep) ids.delete(ids.values().next().value!);
}

/** The custom job ids BullMQ refuses, refused here too so the dev stand-in does not accept more. */
function checkJobId(jobId: string) {
  if (`${parseInt(jobId, 10)}` === jobId) throw new Error('Custom Id cannot be integers');
  if (jobId.includes(':') && jobId.split(':').length !== 3) throw new Error('Custom Id cannot contain :');
  if (jobId === '0' || jobId.startsWith('0:')) throw new Error("JobId cannot be '0' or start with 0:");
}
