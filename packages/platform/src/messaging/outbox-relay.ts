import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Logger } from '../logger.js';
import { EventStreams, parseEvent, streamOf, type DomainEvent, type EventStream } from './events.js';
import { OUTBOX_NOTIFY_CHANNEL, OUTBOX_TABLE } from './outbox.js';
import { interruptiblePause } from './pause.js';
import { messagingMetrics } from './telemetry.js';
import { UnconfirmedPublishError, type EventBus } from './types.js';

export interface OutboxRelayOptions {
  databaseUrl: string;
  bus: EventBus;
  /** Whose outbox this is (`orders`, `payments`): the `outbox` label of its metrics. */
  name?: string;
  logger: Logger;
  /** Fallback poll; NOTIFY usually wakes the relay first, but polling alone is enough. Default 500 ms. */
  pollMs?: number;
  /** Rows per transaction. Default 100. */
  batchSize?: number;
  /** Longest pause between retries after a failed batch (Redis or Postgres away). Default 10 000 ms. */
  maxBackoffMs?: number;
}

/**
 * The advisory lock every relay of one database takes per batch: derived from the table name, so it
 * is the same for every replica (and advisory locks are per database, so services never contend).
 */
export const OUTBOX_RELAY_LOCK_KEY = createHash('sha256')
  .update(`outbox-relay:${OUTBOX_TABLE}`)
  .digest()
  .readBigInt64BE(0)
  .toString();

const KNOWN_STREAMS = new Set<string>(Object.values(EventStreams));

interface OutboxRow {
  sequence: string;
  aggregate_id: string;
  stream: string;
  payload: unknown;
}

/**
 * Publishes one service's outbox (`outbox_events`) to the event bus, in `sequence` order, and marks
 * the rows published.
 *
 * - One relay per database at a time: each batch is a transaction that first takes
 *   `pg_try_advisory_xact_lock(OUTBOX_RELAY_LOCK_KEY)` and skips the round when another replica holds
 *   it, so replicas never publish concurrently nor interleave an aggregate's events.
 * - A batch's rows go to the bus at once (`publishAll`: on Redis one pipeline and one replica wait per
 *   master), so a row's delivery does not wait on the confirmations of the rows before it.
 * - At least once: rows are published, then marked in the same transaction; a crash (or a failed
 *   publish) before the commit leaves them unmarked, and they are published again by the next batch.
 *   Consumers are idempotent (processed_events), so a repeat has no effect. Rows are never marked
 *   unless the bus accepted them: while Redis is away the batch rolls back and is retried with backoff.
 * - Never on a write a failover can lose: when the bus requires replicas (REDIS_PUBLISH_REPLICAS) and
 *   they do not confirm an event (UnconfirmedPublishError), the batch stops there: the rows before it
 *   are marked, it and the rest stay unpublished (counted in `events_unconfirmed_total`, logged) and
 *   are published again after a backoff, so an aggregate's events are never marked out of order. The
 *   entry may be in the stream already: a consumer then sees it twice, which it ignores by event id.
 * - Wake-ups: LISTEN on `outbox_events` (a dedicated connection, re-established if lost) plus a
 *   fallback poll (`pollMs`), which is enough alone (LISTEN is not available on every server).
 * - A row whose payload is not a valid event (or whose stream does not match its type) can only come
 *   from a bug. It is NOT marked published and nothing is sent for it: it is logged at error level
 *   (once per relay process) and left in place, together with every later row of the same aggregate,
 *   so that aggregate's events are never reordered or skipped. Rows of other aggregates go on. Once
 *   someone repairs the row (or marks it published by hand), the relay picks its aggregate up again
 *   without a restart. `lag()` shows such rows as pending.
 */
export class OutboxRelay {
  private readonly pool: pg.Pool;
  private readonly pollMs: number;
  private readonly batchSize: number;
  private readonly maxBackoffMs: number;
  private readonly logger: Logger;
  private readonly pause = interruptiblePause();
  /** Rows found unpublishable: sequence -> aggregate id. */
  private readonly poisoned = new Map<string, string>();
  private listener: pg.Client | null = null;
  private listenTimer: NodeJS.Timeout | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private running: Promise<void> = Promise.resolve();
  private state: 'new' | 'started' | 'stopped' = 'new';
  private busy = false;
  private wakeAgain = false;
  private failures = 0;
  private untrackMetrics: (() => void)[] = [];

  constructor(private readonly options: OutboxRelayOptions) {
    this.pollMs = options.pollMs ?? 500;
    this.batchSize = options.batchSize ?? 100;
    this.maxBackoffMs = options.maxBackoffMs ?? 10_000;
    this.logger = options.logger.child({ component: 'outbox-relay' });
    this.pool = new pg.Pool({ connectionString: options.databaseUrl, max: 2, connectionTimeoutMillis: 10_000 });
    this.pool.on('error', (error) => this.logger.warn({ err: error }, 'outbox relay: idle database connection lost'));
  }

  /** Starts relaying: at once, then on every NOTIFY and every `pollMs`. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`the outbox relay was already ${this.state}`);
    this.state = 'started';
    const outbox = this.options.name ?? 'outbox';
    this.untrackMetrics = [
      messagingMetrics.outboxPending.track(async () => [[{ outbox }, (await this.lag()).pending]]),
      messagingMetrics.outboxLag.track(async () => [[{ outbox }, (await this.lag()).oldestPendingAgeMs / 1_000]]),
    ];
    await this.listen();
    const poll = () => {
      if (this.state !== 'started') return;
      this.wake();
      this.pollTimer = setTimeout(poll, this.pollMs);
    };
    poll();
  }

  /** Stops: waits for the batch in flight, then releases every database connection. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    for (const untrack of this.untrackMetrics) untrack();
    if (this.pollTimer) clearTimeout(this.pollTimer);
    if (this.listenTimer) clearTimeout(this.listenTimer);
    this.pause.interrupt();
    await this.running;
    const listener = this.listener;
    this.listener = null;
    await listener?.end().catch(() => undefined);
    await this.pool.end();
  }

  /** Publishes what is pending now (unless another relay holds the lock); resolves with how many rows it published. */
  async relayOnce(): Promise<number> {
    let published = 0;
    for (;;) {
      const batch = await this.batch();
      published += batch.published;
      if (batch.unconfirmed) throw batch.unconfirmed;
      // Stopping: the batch in flight is done (committed); the rest waits for the next relay.
      if (!batch.locked || batch.selected < this.batchSize || this.state === 'stopped') return published;
    }
  }

  /** Unpublished rows and the age of the oldest (for metrics and readiness). */
  async lag(): Promise<{ pending: number; oldestPendingAgeMs: number }> {
    const { rows } = await this.pool.query<{ pending: number; age: number }>(
      `SELECT count(*)::int AS pending,
              COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)) * 1000, 0)::float8 AS age
         FROM ${OUTBOX_TABLE} WHERE published_at IS NULL`,
    );
    return { pending: rows[0]!.pending, oldestPendingAgeMs: Math.max(0, rows[0]!.age) };
  }

  /**
   * Opens the LISTEN connection. Not reaching the database is retried in the background (polling
   * meanwhile); a server that refuses LISTEN leaves the relay polling only.
   */
  private async listen(retries = 0): Promise<void> {
    const listener = new pg.Client({ connectionString: this.options.databaseUrl, connectionTimeoutMillis: 10_000 });
    const retry = () => {
      const delayMs = Math.min(1_000 * 2 ** retries, 30_000);
      this.listenTimer = setTimeout(() => void this.listen(retries + 1), delayMs);
    };
    let lost = false;
    const onLost = (error?: Error) => {
      if (lost || this.state !== 'started' || this.listener !== listener) return;
      lost = true;
      this.listener = null;
      this.logger.warn({ err: error }, 'outbox relay: LISTEN connection lost; polling until it is back');
      listener.end().catch(() => undefined);
      retries = 0;
      retry();
    };
    listener.on('error', onLost);
    listener.on('end', () => onLost());
    listener.on('notification', () => this.wake());
    try {
      await listener.connect();
    } catch (error) {
      await listener.end().catch(() => undefined);
      if (this.state !== 'started') return;
      if (retries === 0) this.logger.warn({ err: error }, 'outbox relay cannot reach the database to LISTEN; retrying');
      retry();
      return;
    }
    try {
      await listener.query(`LISTEN ${OUTBOX_NOTIFY_CHANNEL}`);
    } catch (error) {
      await listener.end().catch(() => undefined);
      // Polling alone is enough; NOTIFY only makes the relay prompt.
      this.logger.warn({ err: error }, 'outbox relay cannot LISTEN on this server; polling only');
      return;
    }
    if (this.state !== 'started') {
      await listener.end().catch(() => undefined);
      return;
    }
    this.listener = listener;
    if (retries > 0) this.logger.info('outbox relay listening again');
    // Rows committed while we were not listening: catch up now.
    this.wake();
  }

  /** Runs batches until nothing new arrived meanwhile; after a failure, retries with capped backoff. */
  private wake() {
    if (this.state !== 'started') return;
    if (this.busy) {
      this.wakeAgain = true;
      return;
    }
    this.busy = true;
    this.running = (async () => {
      do {
        this.wakeAgain = false;
        try {
          await this.relayOnce();
          if (this.failures > 0) this.logger.info({ failures: this.failures }, 'outbox relay publishing again');
          this.failures = 0;
        } catch (error) {
          this.failures++;
          const backoffMs = Math.min(250 * 2 ** (this.failures - 1), this.maxBackoffMs);
          if (error instanceof UnconfirmedPublishError) {
            this.logger.warn(
              {
                err: error,
                key: error.key,
                confirmed: error.confirmed,
                required: error.required,
                retryInMs: backoffMs,
              },
              'outbox relay: too few Redis replicas confirmed an event; its row stays unpublished, will publish it again',
            );
          } else {
            this.logger.warn(
              { err: error, failures: this.failures, retryInMs: backoffMs },
              'outbox relay could not publish; rolled back, will retry',
            );
          }
          await this.pause.wait(backoffMs);
          this.wakeAgain = true;
        }
      } while (this.wakeAgain && this.state === 'started');
      this.busy = false;
    })();
  }

  private async batch(): Promise<{
    locked: boolean;
    selected: number;
    published: number;
    /** The publish the batch stopped at, its row and the later ones left unpublished. */
    unconfirmed?: UnconfirmedPublishError;
  }> {
    const client = await this.pool.connect();
    // A connection that dies while checked out reports on the client, not the pool.
    const onError = (error: Error) => this.logger.warn({ err: error }, 'outbox relay: database connection lost');
    client.on('error', onError);
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const { rows: lock } = await client.query<{ locked: boolean }>(
        'SELECT pg_try_advisory_xact_lock($1::bigint) AS locked',
        [OUTBOX_RELAY_LOCK_KEY],
      );
      if (!lock[0]!.locked) {
        await client.query('ROLLBACK');
        return { locked: false, selected: 0, published: 0 };
      }
      await this.recheckPoisoned(client);
      const poisoned = [...this.poisoned];
      const { rows } = await client.query<OutboxRow>(
        `SELECT o.sequence, o.aggregate_id, o.stream, o.payload
           FROM ${OUTBOX_TABLE} o
          WHERE o.published_at IS NULL
            AND NOT (o.sequence = ANY($2::bigint[]))
            AND NOT EXISTS (SELECT 1 FROM unnest($3::uuid[], $2::bigint[]) AS p(aggregate_id, sequence)
                             WHERE p.aggregate_id = o.aggregate_id AND p.sequence < o.sequence)
          ORDER BY o.sequence
          LIMIT $1
          FOR UPDATE`,
        [this.batchSize, poisoned.map(([sequence]) => sequence), poisoned.map(([, aggregateId]) => aggregateId)],
      );
      // The rows to publish: up to a poisoned row of their aggregate, never past it.
      const sendable: { row: OutboxRow; event: DomainEvent }[] = [];
      const blocked = new Set<string>();
      for (const row of rows) {
        if (blocked.has(row.aggregate_id)) continue;
        const event = this.eventOf(row);
        if (event) sendable.push({ row, event });
        else blocked.add(row.aggregate_id);
      }
      // All at once (one pipeline and one replica wait per master), then marked in sequence order
      // up to the first that failed: it and the rows after it stay unpublished and go again.
      const outcomes = await this.options.bus.publishAll(
        sendable.map(({ row, event }) => ({ stream: row.stream as EventStream, event })),
      );
      const published: string[] = [];
      let unconfirmed: UnconfirmedPublishError | undefined;
      for (const [k, { row, event }] of sendable.entries()) {
        const error = outcomes[k];
        if (error && !(error instanceof UnconfirmedPublishError)) throw error;
        if (error) {
          messagingMetrics.eventsUnconfirmed.inc({ stream: row.stream });
          unconfirmed = error;
          break;
        }
        messagingMetrics.eventsPublished.inc({ stream: row.stream, type: event.type });
        published.push(row.sequence);
      }
      if (published.length > 0) {
        await client.query(`UPDATE ${OUTBOX_TABLE} SET published_at = now() WHERE sequence = ANY($1::bigint[])`, [
          published,
        ]);
      }
      await client.query('COMMIT');
      return { locked: true, selected: rows.length, published: published.length, unconfirmed };
    } catch (error) {
      await client.query('ROLLBACK').catch((rollbackError: Error) => (broken = rollbackError));
      throw error;
    } finally {
      client.off('error', onError);
      // A connection that could not even roll back is unusable: drop it rather than reuse it.
      client.release(broken);
    }
  }

  /** The row's event, or null (logged once, remembered) when it cannot be published. */
  private eventOf(row: OutboxRow): DomainEvent | null {
    try {
      const event = parseEvent(row.payload);
      if (!KNOWN_STREAMS.has(row.stream) || streamOf(event.type) !== row.stream) {
        throw new Error(`stream "${row.stream}" is not the stream of ${event.type} (${streamOf(event.type)})`);
      }
      return event;
    } catch (error) {
      if (!this.poisoned.has(row.sequence)) {
        this.poisoned.set(row.sequence, row.aggregate_id);
        this.logger.error(
          { err: error, sequence: row.sequence, aggregateId: row.aggregate_id, table: OUTBOX_TABLE },
          'outbox row is not a publishable event: it and the later events of its aggregate are held back ' +
            'until the row is repaired or marked published by hand',
        );
      }
      return null;
    }
  }

  /** Forgets held-back rows that were repaired, marked published or deleted by hand meanwhile. */
  private async recheckPoisoned(client: pg.PoolClient): Promise<void> {
    if (this.poisoned.size === 0) return;
    const { rows } = await client.query<OutboxRow & { published: boolean }>(
      `SELECT sequence, aggregate_id, stream, payload, published_at IS NOT NULL AS published
         FROM ${OUTBOX_TABLE} WHERE sequence = ANY($1::bigint[])`,
      [[...this.poisoned.keys()]],
    );
    const still = new Set<string>();
    for (const row of rows) {
      if (row.published) continue;
      try {
        const event = parseEvent(row.payload);
        if (streamOf(event.type) === row.stream) continue;
      } catch {
        // still broken
      }
      still.add(row.sequence);
    }
    for (const sequence of [...this.poisoned.keys()]) {
      if (!still.has(sequence)) {
        this.poisoned.delete(sequence);
        this.logger.info({ sequence }, 'held-back outbox row was repaired or resolved; its aggregate flows again');
      }
    }
  }
}
