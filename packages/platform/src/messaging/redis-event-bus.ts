import { Redis } from 'ioredis';
import type { Logger } from '../logger.js';
import { InvalidEventError, parseEvent, type DomainEvent, type EventStream } from './events.js';
import type { EventBus, EventHandler, EventSubscription } from './types.js';

export interface RedisEventBusOptions {
  url: string;
  logger: Logger;
  /** Prefix of every key, so several deployments (or test runs) can share one Redis. */
  keyPrefix?: string;
  /** Approximate cap on a stream's length; older entries are trimmed. */
  maxLength?: number;
  /** How long a blocking read waits before it checks whether it should stop. */
  blockMs?: number;
}

type StreamEntry = [id: string, fields: string[]];

/**
 * Events over Redis Streams. `consume` uses a consumer group: each entry is handled by one member,
 * in stream order, retried in place (so one aggregate's events are never reordered), and moved to
 * `<stream>:dead` with a log line after `maxAttempts`. Entries a dead member left unacknowledged are
 * claimed by the others. `tail` reads the stream from where it was when tailing started.
 */
export class RedisEventBus implements EventBus {
  private readonly publisher: Redis;
  private readonly subscriptions = new Set<EventSubscription>();
  private readonly prefix: string;
  private readonly blockMs: number;

  constructor(private readonly options: RedisEventBusOptions) {
    this.prefix = options.keyPrefix ?? 'food:';
    this.blockMs = options.blockMs ?? 1_000;
    // Publishing must fail fast while Redis is away (the relay then retries the rows later), not queue.
    this.publisher = this.connect('publisher', { maxRetriesPerRequest: 1, commandTimeout: 5_000 });
  }

  streamKey(stream: EventStream): string {
    return `${this.prefix}events:${stream}`;
  }

  async publish(stream: EventStream, event: DomainEvent): Promise<void> {
    await this.publisher.xadd(
      this.streamKey(stream),
      'MAXLEN',
      '~',
      String(this.options.maxLength ?? 100_000),
      '*',
      'event',
      JSON.stringify(event),
    );
  }

  async consume(
    stream: EventStream,
    group: string,
    handler: EventHandler,
    options: { maxAttempts?: number; claimIdleMs?: number } = {},
  ): Promise<EventSubscription> {
    const key = this.streamKey(stream);
    const maxAttempts = options.maxAttempts ?? 10;
    const claimIdleMs = options.claimIdleMs ?? 30_000;
    const consumer = `${group}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    const connection = this.connect(`consumer:${group}`);
    try {
      // From the stream's start: a group created after events were published still gets them.
      await connection.xgroup('CREATE', key, group, '0', 'MKSTREAM');
    } catch (error) {
      if (!String(error).includes('BUSYGROUP')) throw error;
    }
    let stopped = false;
    const { logger } = this.options;

    const handle = async ([id, fields]: StreamEntry): Promise<void> => {
      let attempt = 0;
      while (!stopped) {
        attempt++;
        try {
          await handler(parseEvent(JSON.parse(fieldValue(fields, 'event'))));
          await connection.xack(key, group, id);
          return;
        } catch (error) {
          const poison = error instanceof InvalidEventError || error instanceof SyntaxError;
          if (poison || attempt >= maxAttempts) {
            await connection.xadd(`${key}:dead`, '*', 'entry', id, 'group', group, 'error', String(error), ...fields);
            await connection.xack(key, group, id);
            logger.error(
              { err: error, stream, group, entryId: id, attempts: attempt },
              'event handler gave up on an event: moved to the dead-letter stream',
            );
            return;
          }
          logger.warn({ err: error, stream, group, entryId: id, attempt }, 'event handler failed; retrying');
          await sleep(Math.min(100 * 2 ** attempt, 5_000));
        }
      }
    };

    const loop = async () => {
      let claimCursor = '0-0';
      let lastClaim = 0;
      while (!stopped) {
        try {
          // Take over entries a crashed member left pending (and, at start, our own).
          if (Date.now() - lastClaim > Math.min(claimIdleMs, 5_000)) {
            lastClaim = Date.now();
            const [next, claimed] = (await connection.xautoclaim(key, group, consumer, claimIdleMs, claimCursor)) as [
              string,
              StreamEntry[],
            ];
            claimCursor = next;
            for (const entry of claimed) if (entry) await handle(entry);
          }
          const reply = (await connection.xreadgroup(
            'GROUP',
            group,
            consumer,
            'COUNT',
            '50',
            'BLOCK',
            String(this.blockMs),
            'STREAMS',
            key,
            '>',
          )) as [string, StreamEntry[]][] | null;
          for (const entry of reply?.[0]?.[1] ?? []) await handle(entry);
        } catch (error) {
          if (stopped) break;
          if (String(error).includes('NOGROUP')) {
            // Redis lost the stream (restarted without persistence): recreate the group and go on.
            await connection.xgroup('CREATE', key, group, '0', 'MKSTREAM').catch(() => undefined);
          } else {
            logger.warn({ err: error, stream, group }, 'event consumer read failed; retrying');
          }
          await sleep(500);
        }
      }
    };
    return this.track(connection, loop(), () => (stopped = true));
  }

  async tail(stream: EventStream, handler: (event: DomainEvent) => void): Promise<EventSubscription> {
    const key = this.streamKey(stream);
    const connection = this.connect(`tail:${stream}`);
    // Start after the newest entry now, and keep our own cursor so a reconnect misses nothing.
    const newest = (await connection.xrevrange(key, '+', '-', 'COUNT', 1)) as StreamEntry[];
    let cursor = newest[0]?.[0] ?? '0-0';
    let stopped = false;
    const loop = async () => {
      while (!stopped) {
        try {
          const reply = (await connection.xread('COUNT', 500, 'BLOCK', this.blockMs, 'STREAMS', key, cursor)) as
            [string, StreamEntry[]][] | null;
          for (const [id, fields] of reply?.[0]?.[1] ?? []) {
            cursor = id;
            try {
              handler(parseEvent(JSON.parse(fieldValue(fields, 'event'))));
            } catch (error) {
              this.options.logger.error({ err: error, stream, entryId: id }, 'could not deliver a tailed event');
            }
          }
        } catch (error) {
          if (stopped) break;
          this.options.logger.warn({ err: error, stream }, 'event tail read failed; retrying');
          await sleep(500);
        }
      }
    };
    return this.track(connection, loop(), () => (stopped = true));
  }

  /** A subscription whose close stops its loop, drops its connection and waits for the loop to end. */
  private track(connection: Redis, running: Promise<void>, stop: () => void): EventSubscription {
    const subscription: EventSubscription = {
      close: async () => {
        stop();
        connection.disconnect();
        await running;
        this.subscriptions.delete(subscription);
      },
    };
    this.subscriptions.add(subscription);
    return subscription;
  }

  async close(): Promise<void> {
    await Promise.all([...this.subscriptions].map((subscription) => subscription.close()));
    this.publisher.disconnect();
  }

  private connect(role: string, overrides: { maxRetriesPerRequest?: number; commandTimeout?: number } = {}): Redis {
    const connection = new Redis(this.options.url, {
      connectionName: `${this.prefix}${role}`,
      // Blocking reads must wait as long as they need; a restart is survived by reconnecting.
      maxRetriesPerRequest: null,
      retryStrategy: (times) => Math.min(times * 200, 2_000),
      ...overrides,
    });
    let reported = false;
    connection.on('error', (error) => {
      // ioredis reconnects by itself; say so once per outage, not once per retry.
      if (!reported) this.options.logger.warn({ err: error, role }, 'Redis connection lost; reconnecting');
      reported = true;
    });
    connection.on('ready', () => (reported = false));
    return connection;
  }
}

function fieldValue(fields: string[], name: string): string {
  const index = fields.indexOf(name);
  if (index < 0 || index % 2 !== 0) throw new InvalidEventError(`stream entry has no "${name}" field`);
  return fields[index + 1]!;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
