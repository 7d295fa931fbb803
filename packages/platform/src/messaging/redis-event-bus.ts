import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from '../logger.js';
import { connectRedis, type RedisConnection, type RedisConnectionOptions, type RedisTarget } from '../redis.js';
import { describeRawEvent, InvalidEventError, parseEvent, type DomainEvent, type EventStream } from './events.js';
import { delay, interruptiblePause } from './pause.js';
import { messagingMetrics } from './telemetry.js';
import type { EventBus, EventHandler, EventSubscription } from './types.js';

export interface RedisEventBusOptions {
  redis: RedisTarget;
  logger: Logger;
  /** Prefix of every key and connection name, so deployments (or test runs) can share one Redis. Default `food:`. */
  keyPrefix?: string;
  /** Approximate cap on a stream's length (XADD MAXLEN ~). Default 100 000. */
  maxLength?: number;
  /** How long one blocking read waits before the loop looks around (claims, stop). Default 1 000 ms. */
  blockMs?: number;
  /** How long an entry must sit unacknowledged before another member takes it over. Default 30 000 ms. */
  claimIdleMs?: number;
  /** First pause before a failed handler is retried; doubles per attempt, capped at 5 s. Default 100 ms. */
  retryBackoffMs?: number;
  /** Entries fetched per read. Default 10. */
  readCount?: number;
}

export interface ConsumeOptions {
  /** Deliveries before an entry goes to the dead-letter stream. Default 10. */
  maxAttempts?: number;
  /** Overrides the bus's `claimIdleMs` for this group member. */
  claimIdleMs?: number;
}

/** An entry that was given up on: what it was, which group gave up, and why. */
export interface DeadLetter {
  stream: EventStream;
  group: string;
  /** The entry's id in its stream. */
  entryId: string;
  /** The event's id and type when the entry could be read that far. */
  eventId: string | null;
  eventType: string | null;
  attempts: number;
  error: string;
  /** The entry as published (the event's JSON), for inspection or a manual replay. */
  raw: string;
}

type StreamEntry = [id: string, fields: string[] | null];
type PendingInfo = [id: string, consumer: string, idleMs: number, deliveries: number];

const DEFAULT_PREFIX = 'food:';
const MAX_RETRY_PAUSE_MS = 5_000;
/** How long close() waits for a running handler before it cuts the connection anyway. */
const CLOSE_GRACE_MS = 10_000;

/**
 * Events over Redis Streams (ioredis).
 *
 * - `publish` is XADD with approximate MAXLEN trimming. It fails fast while Redis is away (the outbox
 *   relay then retries its rows) rather than queueing in memory.
 * - `consume` is one member of a consumer group, on its own connection: XREADGROUP BLOCK, entries
 *   handled one at a time in stream order, XACK on success. A handler that throws is retried in place
 *   after a backoff (each retry counted in Redis with XCLAIM, so a later owner sees the real count);
 *   the entries behind it wait, so one member never reorders an aggregate's events. An entry delivered
 *   `maxAttempts` times, or one that is not a valid event, is copied to `<stream>:dead` with the error,
 *   logged at error level and acknowledged. Entries a dead member left pending are taken over with
 *   XAUTOCLAIM once idle for `claimIdleMs`; a live member keeps the idle time of the entries it holds
 *   (the one being handled and the rest of its batch) fresh, so a slow handler is not mistaken for a
 *   dead member, and a closing member hands its unfinished entries back at once. After a reconnect the
 *   member first re-reads its own pending entries (a reply lost in the outage leaves them there).
 *   Order holds per member; when entries change hands (a takeover), an aggregate's events can be
 *   handled by two members, so handlers check versions/idempotency as they must anyway.
 * - `tail` reads (XREAD BLOCK) from the newest entry at the time it was called, keeping its own cursor,
 *   so a reconnect resumes where it left off.
 * - `close` stops every loop, waits for a running handler (bounded), and disconnects every connection.
 *
 * Trimming is approximate and does not know about groups: a group lagging by more than `maxLength`
 * entries loses the oldest (logged when a pending entry turns out to be gone). Redis needs AOF
 * persistence for a restart to lose nothing.
 */
export class RedisEventBus implements EventBus {
  private readonly publisher: RedisConnection;
  private readonly subscriptions = new Set<EventSubscription>();
  private readonly prefix: string;
  private readonly blockMs: number;
  private readonly maxLength: number;
  private readonly readCount: number;
  private readonly retryBackoffMs: number;
  private readonly claimIdleMs: number;
  private readonly logger: Logger;
  private closed = false;

  constructor(private readonly options: RedisEventBusOptions) {
    this.prefix = options.keyPrefix ?? DEFAULT_PREFIX;
    this.blockMs = options.blockMs ?? 1_000;
    this.maxLength = options.maxLength ?? 100_000;
    this.readCount = options.readCount ?? 10;
    this.retryBackoffMs = options.retryBackoffMs ?? 100;
    this.claimIdleMs = options.claimIdleMs ?? 30_000;
    this.logger = options.logger;
    // Publishing must fail fast while Redis is away (the relay retries the rows later), not queue up.
    this.publisher = this.connect('publisher', { maxRetriesPerRequest: 1, commandTimeout: 5_000 });
  }

  /** The Redis key of a stream, e.g. `food:events:orders`. */
  streamKey(stream: EventStream): string {
    return `${this.prefix}events:${stream}`;
  }

  /** The Redis key of a stream's dead-letter stream, e.g. `food:events:orders:dead`. */
  deadLetterKey(stream: EventStream): string {
    return `${this.streamKey(stream)}:dead`;
  }

  async publish(stream: EventStream, event: DomainEvent): Promise<void> {
    this.assertOpen();
    await this.publisher.xadd(
      this.streamKey(stream),
      'MAXLEN',
      '~',
      String(this.maxLength),
      '*',
      'event',
      JSON.stringify(event),
    );
  }

  /** The newest dead letters of a stream (all groups), newest first. */
  async deadLetters(stream: EventStream, count = 100): Promise<DeadLetter[]> {
    const entries = (await this.publisher.xrevrange(this.deadLetterKey(stream), '+', '-', 'COUNT', count)) as [
      string,
      string[],
    ][];
    return entries.map(([, fields]) => {
      const value = (name: string) => fieldValue(fields, name);
      return {
        stream,
        group: value('group') ?? '',
        entryId: value('entry') ?? '',
        eventId: value('eventId') || null,
        eventType: value('eventType') || null,
        attempts: Number(value('attempts') ?? 0),
        error: value('error') ?? '',
        raw: value('event') ?? '',
      };
    });
  }

  async consume(
    stream: EventStream,
    group: string,
    handler: EventHandler,
    options: ConsumeOptions = {},
  ): Promise<EventSubscription> {
    this.assertOpen();
    const key = this.streamKey(stream);
    const maxAttempts = options.maxAttempts ?? 10;
    const claimIdleMs = options.claimIdleMs ?? this.claimIdleMs;
    const consumer = `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
    const connection = this.connect(`consumer:${stream}:${group}`);
    const log = this.logger.child({ stream, group, consumer });
    try {
      await createGroup(connection, key, group);
    } catch (error) {
      connection.disconnect();
      throw error;
    }

    const call = async <T>(...args: (string | number)[]): Promise<T> =>
      (await connection.call(args[0] as string, ...args.slice(1))) as T;

    const state = { stopped: false, busy: false };
    const pause = interruptiblePause();
    /**
     * Entries delivered to this member and not finished yet (the one being handled and the rest of its
     * batch). Their idle time is kept fresh, so other members do not take a live member's entries for a
     * dead one's; and a closing member hands them back at once, in order.
     */
    const held = new Set<string>();
    const refreshHeld = async () => {
      if (held.size > 0) await call('XCLAIM', key, group, consumer, 0, ...held, 'JUSTID');
    };
    const keeper = setInterval(
      () => {
        if (state.stopped || held.size === 0) return;
        refreshHeld().catch((error: unknown) =>
          log.warn({ err: error }, 'could not refresh the entries being handled'),
        );
      },
      Math.max(10, Math.floor(claimIdleMs / 3)),
    );
    keeper.unref();
    // At start and after every reconnect: our own pending entries first (a lost reply leaves them there).
    let readOwnPending = true;
    connection.on('ready', () => (readOwnPending = true));

    const deadLetter = async (
      id: string,
      fields: string[] | null,
      attempts: number,
      error: unknown,
      why: string,
    ): Promise<void> => {
      const raw = fields ? (fieldValue(fields, 'event') ?? JSON.stringify(fields)) : '';
      const { eventId, eventType } = describeRawEvent(raw);
      const message = error instanceof Error ? error.message : String(error);
      // One transaction: the copy and the acknowledgement happen together or not at all.
      const results = await connection
        .multi()
        .xadd(
          `${key}:dead`,
          'MAXLEN',
          '~',
          String(this.maxLength),
          '*',
          'entry',
          id,
          'group',
          group,
          'eventId',
          eventId ?? '',
          'eventType',
          eventType ?? '',
          'attempts',
          String(attempts),
          'error',
          message,
          'event',
          raw,
        )
        .xack(key, group, id)
        .exec();
      const failed = results?.find(([commandError]) => commandError)?.[0];
      if (!results || failed) throw failed ?? new Error('dead-letter transaction was discarded');
      messagingMetrics.eventsConsumed.inc({ stream, group, outcome: 'dead_letter' });
      log.error(
        { err: error, entryId: id, eventId, eventType, attempts, deadLetterStream: `${key}:dead` },
        `event moved to the dead-letter stream: ${why}`,
      );
    };

    /** Where an entry stands in the group: its owner and how many times it has been delivered. */
    const pendingInfo = async (firstId: string, lastId: string, count: number): Promise<Map<string, PendingInfo>> => {
      const rows = await call<PendingInfo[]>('XPENDING', key, group, firstId, lastId, count);
      return new Map(rows.map((row) => [row[0], row]));
    };

    /** Handles one entry, `deliveries` being the delivery it is on (1 for a fresh one). */
    const handle = async (id: string, fields: string[] | null, deliveries: number): Promise<void> => {
      state.busy = true;
      try {
        await handleEntry(id, fields, deliveries);
        held.delete(id);
      } finally {
        state.busy = false;
      }
    };

    /** Resolves once the entry is acknowledged, dead-lettered or someone else's; throws on a Redis failure. */
    const handleEntry = async (id: string, fields: string[] | null, deliveries: number): Promise<void> => {
      if (!fields) {
        // Pending, but trimmed away from the stream (the group lagged more than maxLength behind).
        await deadLetter(id, null, deliveries, new Error('the entry was trimmed from the stream'), 'lost to trimming');
        return;
      }
      let event: DomainEvent;
      try {
        const raw = fieldValue(fields, 'event');
        if (raw === undefined) throw new InvalidEventError('stream entry has no "event" field');
        event = parseEvent(JSON.parse(raw));
      } catch (error) {
        await deadLetter(id, fields, deliveries, error, 'not a valid event');
        return;
      }
      let attempt = deliveries;
      if (attempt > maxAttempts) {
        // Delivered that often without an acknowledgement: members died on it (or it crashes them).
        const error = new Error(`delivered ${attempt} times without being acknowledged`);
        await deadLetter(id, fields, attempt, error, `more than ${maxAttempts} deliveries`);
        return;
      }
      for (;;) {
        let failure: unknown;
        try {
          await handler(event);
        } catch (error) {
          failure = error ?? new Error('handler threw a nullish value');
        }
        if (failure === undefined) {
          await connection.xack(key, group, id);
          messagingMetrics.eventsConsumed.inc({ stream, group, outcome: 'ok' });
          return;
        }
        if (attempt >= maxAttempts) {
          await deadLetter(id, fields, attempt, failure, `failed ${attempt} times`);
          return;
        }
        log.warn(
          { err: failure, entryId: id, eventId: event.id, eventType: event.type, attempt },
          'event handler failed; will retry',
        );
        messagingMetrics.eventsConsumed.inc({ stream, group, outcome: 'retry' });
        await pause.wait(Math.min(this.retryBackoffMs * 2 ** (attempt - 1), MAX_RETRY_PAUSE_MS));
        // Stopping: leave it pending (close hands it back); another member takes it over.
        if (state.stopped) throw new Stopping();
        const info = (await pendingInfo(id, id, 1)).get(id);
        // Acknowledged or taken over by another member meanwhile: it is theirs now.
        if (!info || info[1] !== consumer) return;
        // A retry is a delivery: count it in Redis, so whoever owns it next knows.
        await call('XCLAIM', key, group, consumer, 0, id, 'RETRYCOUNT', info[3] + 1, 'JUSTID');
        await refreshHeld();
        attempt = info[3] + 1;
      }
    };

    /** Handles entries that were delivered before (ours after a reconnect, or claimed from a dead member). */
    const handleRedelivered = async (entries: StreamEntry[]): Promise<void> => {
      if (entries.length === 0) return;
      for (const [id] of entries) held.add(id);
      const info = await pendingInfo(entries[0]![0], entries[entries.length - 1]![0], entries.length * 2 + 10);
      for (const [id, fields] of entries) {
        if (state.stopped) return;
        const row = info.get(id);
        // Not pending any more (acknowledged meanwhile) or now another member's: not ours to handle.
        if (!row || row[1] !== consumer) {
          held.delete(id);
          continue;
        }
        await handle(id, fields, row[3]);
      }
    };

    const claimEveryMs = Math.max(50, Math.min(claimIdleMs, 5_000));
    const loop = async () => {
      let claimCursor = '0-0';
      let nextClaimAt = 0;
      let failing = false;
      while (!state.stopped) {
        try {
          if (readOwnPending) {
            const reply = await call<[string, StreamEntry[]][] | null>(
              'XREADGROUP',
              'GROUP',
              group,
              consumer,
              'COUNT',
              this.readCount,
              'STREAMS',
              key,
              '0',
            );
            const entries = reply?.[0]?.[1] ?? [];
            if (entries.length === 0) readOwnPending = false;
            await handleRedelivered(entries);
          } else if (Date.now() >= nextClaimAt) {
            // Take over what a dead member left pending for longer than claimIdleMs.
            const [next, claimed, deleted] = await call<[string, (StreamEntry | null)[], string[]?]>(
              'XAUTOCLAIM',
              key,
              group,
              consumer,
              claimIdleMs,
              claimCursor,
              'COUNT',
              this.readCount,
            );
            claimCursor = next;
            // More to scan: come back at once; a full pass done: wait a while.
            nextClaimAt = next === '0-0' ? Date.now() + claimEveryMs : 0;
            for (const id of deleted ?? []) {
              log.error({ entryId: id }, 'a pending event was trimmed from the stream before it was handled: lost');
            }
            if (claimed.length > 0) log.warn({ count: claimed.length }, 'took over events a group member left pending');
            await handleRedelivered(claimed.filter((entry): entry is StreamEntry => entry !== null));
          } else {
            const reply = await call<[string, StreamEntry[]][] | null>(
              'XREADGROUP',
              'GROUP',
              group,
              consumer,
              'COUNT',
              this.readCount,
              'BLOCK',
              this.blockMs,
              'STREAMS',
              key,
              '>',
            );
            const entries = reply?.[0]?.[1] ?? [];
            for (const [id] of entries) held.add(id);
            for (const [id, fields] of entries) {
              if (state.stopped) break;
              await handle(id, fields, 1);
            }
          }
          if (failing) log.info('event consumer reading again');
          failing = false;
        } catch (error) {
          if (state.stopped) break;
          // What we held stays pending: re-read from our own pending entries once Redis answers.
          held.clear();
          if (String(error).includes('NOGROUP')) {
            // The stream or group is gone (a Redis without persistence restarted, or a manual delete).
            log.warn('consumer group missing: creating it again');
            await createGroup(connection, key, group).catch(() => undefined);
          } else if (!failing) {
            log.warn({ err: error }, 'event consumer failed to talk to Redis; retrying');
          }
          failing = true;
          readOwnPending = true;
          await pause.wait(500);
        }
      }
    };

    const running = loop();
    const subscription: EventSubscription = {
      close: async () => {
        if (!this.subscriptions.delete(subscription)) return;
        state.stopped = true;
        clearInterval(keeper);
        pause.interrupt();
        // A blocking read is cut at once; a running handler may finish and acknowledge (bounded wait).
        if (state.busy) await Promise.race([running, delay(CLOSE_GRACE_MS)]);
        connection.disconnect();
        await running;
        await this.handBack(key, group, consumer, [...held], claimIdleMs);
        await this.forgetConsumer(key, group, consumer);
      },
    };
    this.subscriptions.add(subscription);
    return subscription;
  }

  async tail(stream: EventStream, handler: (event: DomainEvent) => void): Promise<EventSubscription> {
    this.assertOpen();
    const key = this.streamKey(stream);
    const connection = this.connect(`tail:${stream}`);
    const log = this.logger.child({ stream });
    let cursor: string;
    try {
      // From the newest entry now; our own cursor then, so a reconnect misses nothing and repeats nothing.
      const newest = (await connection.xrevrange(key, '+', '-', 'COUNT', 1)) as [string, string[]][];
      cursor = newest[0]?.[0] ?? '0-0';
    } catch (error) {
      connection.disconnect();
      throw error;
    }
    let stopped = false;
    const pause = interruptiblePause();
    const loop = async () => {
      let failing = false;
      while (!stopped) {
        try {
          const reply = (await connection.call(
            'XREAD',
            'COUNT',
            100,
            'BLOCK',
            this.blockMs,
            'STREAMS',
            key,
            cursor,
          )) as [string, [string, string[]][]][] | null;
          failing = false;
          for (const [id, fields] of reply?.[0]?.[1] ?? []) {
            if (stopped) break;
            cursor = id;
            try {
              handler(parseEvent(JSON.parse(fieldValue(fields, 'event') ?? '')));
            } catch (error) {
              log.error({ err: error, entryId: id }, 'could not deliver a tailed event');
            }
          }
        } catch (error) {
          if (stopped) break;
          if (!failing) log.warn({ err: error }, 'event tail failed to read; retrying');
          failing = true;
          await pause.wait(500);
        }
      }
    };
    const running = loop();
    const subscription: EventSubscription = {
      close: async () => {
        if (!this.subscriptions.delete(subscription)) return;
        stopped = true;
        pause.interrupt();
        connection.disconnect();
        await running;
      },
    };
    this.subscriptions.add(subscription);
    return subscription;
  }

  /** Closes every subscription and the publishing connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.subscriptions].map((subscription) => subscription.close()));
    this.publisher.disconnect();
  }

  /**
   * Makes a closing member's unfinished entries claimable at once (their idle time set past the claim
   * threshold, all alike), so another member takes them over now, and in order.
   */
  private async handBack(key: string, group: string, consumer: string, ids: string[], claimIdleMs: number) {
    if (ids.length === 0 || this.publisher.status !== 'ready') return;
    try {
      await this.publisher.call('XCLAIM', key, group, consumer, 0, ...ids, 'IDLE', claimIdleMs, 'JUSTID');
    } catch {
      // They are taken over anyway once idle for claimIdleMs.
    }
  }

  /** Removes a closed member from its group when it left nothing pending (members do not pile up). */
  private async forgetConsumer(key: string, group: string, consumer: string): Promise<void> {
    if (this.publisher.status !== 'ready') return;
    try {
      const pending = (await this.publisher.call('XPENDING', key, group, '-', '+', 1, consumer)) as unknown[];
      if (pending.length === 0) await this.publisher.call('XGROUP', 'DELCONSUMER', key, group, consumer);
    } catch {
      // Only housekeeping: a leftover member with nothing pending is harmless.
    }
  }

  private assertOpen() {
    if (this.closed) throw new Error('the event bus is closed');
  }

  private connect(role: string, overrides: Partial<RedisConnectionOptions> = {}): RedisConnection {
    // Blocking reads wait as long as they need; a restarted Redis is reconnected to, with capped backoff.
    return connectRedis(this.options.redis, { name: `${this.prefix}${role}`, logger: this.logger, ...overrides });
  }
}

async function createGroup(connection: RedisConnection, key: string, group: string): Promise<void> {
  try {
    // From the stream's start: a group created after events were published still gets them.
    await connection.xgroup('CREATE', key, group, '0', 'MKSTREAM');
  } catch (error) {
    if (!String(error).includes('BUSYGROUP')) throw error;
  }
}

/** Thrown inside a consumer to unwind when it is closed mid-retry. */
class Stopping extends Error {}

function fieldValue(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}
