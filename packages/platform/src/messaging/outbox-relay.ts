import pg from 'pg';
import type { Logger } from '../logger.js';
import { parseEvent, type EventStream } from './events.js';
import { OUTBOX_NOTIFY_CHANNEL, OUTBOX_TABLE } from './outbox.js';
import type { EventBus } from './types.js';

export interface OutboxRelayOptions {
  databaseUrl: string;
  bus: EventBus;
  logger: Logger;
  /** Fallback poll; NOTIFY usually wakes the relay first. */
  pollMs?: number;
  batchSize?: number;
}

/** Any constant works: it only has to be the same for every relay of one database. */
const RELAY_LOCK_KEY = 0x6f7574626f78; // "outbox"

/**
 * Publishes a service's outbox to the event bus, in `sequence` order, and marks rows published.
 * At least once: a crash after publishing and before the commit publishes those rows again on the
 * next run (consumers are idempotent). Only one relay per database publishes at a time (a
 * transaction-scoped advisory lock), so replicas never interleave one order's events.
 * A row whose payload is not a valid event is logged and skipped past (marked published with nothing
 * sent) rather than blocking every later event: it can only come from a bug, never from a client.
 */
export class OutboxRelay {
  private readonly pool: pg.Pool;
  private listener: pg.Client | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> = Promise.resolve();
  private stopped = true;
  private wakeAgain = false;
  private busy = false;

  constructor(private readonly options: OutboxRelayOptions) {
    this.pool = new pg.Pool({ connectionString: options.databaseUrl, max: 2 });
    this.pool.on('error', (error) => options.logger.warn({ err: error }, 'outbox relay pool error'));
  }

  async start(): Promise<void> {
    this.stopped = false;
    try {
      const listener = new pg.Client({ connectionString: this.options.databaseUrl });
      listener.on('error', (error) => this.options.logger.warn({ err: error }, 'outbox relay listener lost'));
      await listener.connect();
      listener.on('notification', () => this.wake());
      await listener.query(`LISTEN ${OUTBOX_NOTIFY_CHANNEL}`);
      this.listener = listener;
    } catch (error) {
      // Polling alone is enough; NOTIFY only makes it prompt.
      this.options.logger.warn({ err: error }, 'outbox relay cannot LISTEN; polling only');
    }
    const poll = () => {
      if (this.stopped) return;
      this.wake();
      this.timer = setTimeout(poll, this.options.pollMs ?? 500);
    };
    poll();
  }

  /** Publishes whatever is pending now; resolves with how many rows were published. */
  async relayOnce(): Promise<number> {
    let total = 0;
    for (;;) {
      const published = await this.batch();
      total += published;
      if (published < (this.options.batchSize ?? 100)) return total;
    }
  }

  async lag(): Promise<{ pending: number; oldestPendingAgeMs: number }> {
    const { rows } = await this.pool.query(
      `SELECT count(*)::int AS pending, COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)) * 1000, 0)::float AS age
         FROM ${OUTBOX_TABLE} WHERE published_at IS NULL`,
    );
    return { pending: rows[0].pending as number, oldestPendingAgeMs: rows[0].age as number };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running.catch(() => undefined);
    await this.listener?.end().catch(() => undefined);
    await this.pool.end();
  }

  private wake() {
    if (this.stopped) return;
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
        } catch (error) {
          this.options.logger.warn({ err: error }, 'outbox relay could not publish; will retry');
          await new Promise((resolve) => setTimeout(resolve, 1_000));
        }
      } while (this.wakeAgain && !this.stopped);
      this.busy = false;
    })();
  }

  private async batch(): Promise<number> {
    const client = await this.pool.connect();
    // A connection that dies while checked out reports on the client, not the pool.
    const onError = (error: Error) => this.options.logger.warn({ err: error }, 'outbox relay connection lost');
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const { rows: lock } = await client.query('SELECT pg_try_advisory_xact_lock($1) AS locked', [RELAY_LOCK_KEY]);
      if (!lock[0].locked) {
        await client.query('ROLLBACK');
        return 0;
      }
      const { rows } = await client.query(
        `SELECT sequence, stream, payload FROM ${OUTBOX_TABLE}
          WHERE published_at IS NULL ORDER BY sequence LIMIT $1`,
        [this.options.batchSize ?? 100],
      );
      const done: string[] = [];
      for (const row of rows) {
        let event;
        try {
          event = parseEvent(row.payload);
        } catch (error) {
          this.options.logger.error({ err: error, sequence: row.sequence }, 'outbox row is not a valid event; skipped');
          done.push(row.sequence);
          continue;
        }
        await this.options.bus.publish(row.stream as EventStream, event);
        done.push(row.sequence);
      }
      if (done.length > 0) {
        await client.query(`UPDATE ${OUTBOX_TABLE} SET published_at = now() WHERE sequence = ANY($1::bigint[])`, [
          done,
        ]);
      }
      await client.query('COMMIT');
      return rows.length;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.off('error', onError);
      client.release();
    }
  }
}
