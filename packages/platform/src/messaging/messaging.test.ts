import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../logger.js';
import { newEvent, type DomainEvent } from './events.js';
import { createMessaging } from './messaging.js';
import { OutboxRelay } from './outbox-relay.js';
import { outboxRecord } from './outbox.js';
import type { Messaging } from './types.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const POSTGRES_URL = process.env.TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const logger = createLogger('messaging-test', 'silent');

const statusChanged = (orderId: string, version: number): DomainEvent =>
  newEvent('order.status_changed', orderId, {
    orderId,
    customerId: randomUUID(),
    from: 'PAID',
    to: 'ACCEPTED',
    version,
    final: false,
    actor: { kind: 'system', id: 'test' },
    reason: null,
  });

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const backends = [
  { mode: 'redis', make: (prefix: string) => createMessaging({ redisUrl: REDIS_URL, logger, keyPrefix: prefix }) },
  { mode: 'in-process', make: (prefix: string) => createMessaging({ logger, keyPrefix: prefix }) },
] as const;

describe.each(backends)('messaging ($mode)', ({ mode, make }) => {
  let messaging: Messaging;
  let prefix: string;
  const open: Messaging[] = [];
  const start = () => {
    prefix = `test-${randomUUID()}`;
    messaging = make(prefix);
    open.push(messaging);
    return messaging;
  };
  afterEach(async () => {
    await Promise.all(open.splice(0).map((m) => m.close()));
  });

  it('delivers every event to each group once, in order, retrying a handler that throws', async () => {
    const { bus } = start();
    const orderId = randomUUID();
    const events = [1, 2, 3, 4, 5].map((version) => statusChanged(orderId, version));
    const kitchen: number[] = [];
    const audit: number[] = [];
    let failuresLeft = 2;
    await bus.consume('orders', 'kitchen', async (event) => {
      if (event.type !== 'order.status_changed') return;
      if (event.data.version === 3 && failuresLeft-- > 0) throw new Error('transient');
      kitchen.push(event.data.version);
    });
    await bus.consume('orders', 'audit', async (event) => {
      if (event.type === 'order.status_changed') audit.push(event.data.version);
    });
    for (const event of events) await bus.publish('orders', event);
    await until(() => kitchen.length === 5 && audit.length === 5, 'both groups');
    expect(kitchen).toEqual([1, 2, 3, 4, 5]);
    expect(audit).toEqual([1, 2, 3, 4, 5]);
  });

  it('moves an event that keeps failing aside after maxAttempts, and goes on with the next', async () => {
    const { bus } = start();
    const handled: number[] = [];
    let attempts = 0;
    await bus.consume(
      'orders',
      'picky',
      async (event) => {
        if (event.type !== 'order.status_changed') return;
        if (event.data.version === 1) {
          attempts++;
          throw new Error('poison');
        }
        handled.push(event.data.version);
      },
      { maxAttempts: 3 },
    );
    const orderId = randomUUID();
    await bus.publish('orders', statusChanged(orderId, 1));
    await bus.publish('orders', statusChanged(orderId, 2));
    await until(() => handled.length === 1, 'the next event');
    expect(attempts).toBe(3);
    expect(handled).toEqual([2]);
    if (mode === 'redis') {
      const redis = new Redis(REDIS_URL);
      expect(await redis.xlen(`${prefix}:events:orders:dead`)).toBe(1);
      redis.disconnect();
    }
  });

  it('fans out to every tail, from when it started', async () => {
    const { bus } = start();
    const orderId = randomUUID();
    await bus.publish('orders', statusChanged(orderId, 1));
    const a: number[] = [];
    const b: number[] = [];
    await bus.tail('orders', (event) => event.type === 'order.status_changed' && a.push(event.data.version));
    await bus.tail('orders', (event) => event.type === 'order.status_changed' && b.push(event.data.version));
    await bus.publish('orders', statusChanged(orderId, 2));
    await bus.publish('orders', statusChanged(orderId, 3));
    await until(() => a.length === 2 && b.length === 2, 'both tails');
    expect(a).toEqual([2, 3]);
    expect(b).toEqual([2, 3]);
  });

  it('retries a job with backoff until it succeeds, and parks one that never does in the failed set', async () => {
    const messaging = start();
    const queue = messaging.queue('work');
    let flakyCalls = 0;
    let doomedCalls = 0;
    messaging.work('work', {
      flaky: async () => {
        if (++flakyCalls < 3) throw new Error('not yet');
      },
      doomed: async () => {
        doomedCalls++;
        throw new Error('never');
      },
    });
    await queue.add('flaky', { n: 1 }, { attempts: 5, backoffMs: 20 });
    await queue.add('doomed', { n: 2 }, { attempts: 2, backoffMs: 20, jobId: 'doomed-1' });
    await until(async () => flakyCalls === 3 && (await queue.failed()).length === 1, 'jobs to settle');
    expect(doomedCalls).toBe(2);
    expect((await queue.failed())[0]).toMatchObject({ id: 'doomed-1', name: 'doomed', attemptsMade: 2 });
  });

  it('adds a job with a given id once', async () => {
    const messaging = start();
    const queue = messaging.queue('dedupe');
    const runs: unknown[] = [];
    await queue.add('once', { n: 1 }, { jobId: 'same', delayMs: 200 });
    await queue.add('once', { n: 2 }, { jobId: 'same', delayMs: 200 });
    messaging.work('dedupe', { once: async (data) => void runs.push(data) });
    await until(() => runs.length === 1, 'the job');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(runs).toEqual([{ n: 1 }]);
  });
});

describe('RedisEventBus connections', () => {
  it('releases every Redis connection it opened on close', async () => {
    const prefix = `test-${randomUUID()}`;
    const redis = new Redis(REDIS_URL);
    const ours = async () =>
      String(await redis.client('LIST'))
        .split('\n')
        .filter((line) => line.includes(`name=${prefix}:`)).length;
    const messaging = createMessaging({ redisUrl: REDIS_URL, logger, keyPrefix: prefix });
    await messaging.bus.consume('orders', 'g', async () => {});
    await messaging.bus.tail('orders', () => {});
    await messaging.bus.publish('orders', statusChanged(randomUUID(), 1));
    expect(await ours()).toBe(3);
    await messaging.close();
    await until(async () => (await ours()) === 0, 'connections to close');
    redis.disconnect();
  });
});

describe('OutboxRelay', () => {
  let admin: pg.Client;
  let databaseUrl: string;
  let pool: pg.Pool;
  const name = `outbox_test_${randomUUID().replace(/-/g, '')}`;

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    const url = new URL(POSTGRES_URL);
    url.pathname = `/${name}`;
    databaseUrl = url.toString();
    pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
    // DROP DATABASE ... WITH (FORCE) below ends whatever is still connected; that is expected.
    pool.on('error', () => undefined);
    await pool.query(`CREATE TABLE outbox_events (sequence bigserial PRIMARY KEY, id uuid UNIQUE NOT NULL,
      stream text NOT NULL, type text NOT NULL, aggregate_id uuid NOT NULL, payload jsonb NOT NULL,
      created_at timestamptz(3) NOT NULL DEFAULT now(), published_at timestamptz(3))`);
  });
  afterAll(async () => {
    await pool?.end();
    await admin?.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin?.end();
  });

  async function write(events: DomainEvent[], notify = true) {
    for (const event of events) {
      const row = outboxRecord(event);
      await pool.query('INSERT INTO outbox_events (id, stream, type, aggregate_id, payload) VALUES ($1,$2,$3,$4,$5)', [
        row.id,
        row.stream,
        row.type,
        row.aggregateId,
        row.payload,
      ]);
    }
    if (notify) await pool.query(`SELECT pg_notify('outbox_events', '')`);
  }

  it('publishes in order, once, with several relays running, and promptly on NOTIFY', async () => {
    const messaging = createMessaging({ redisUrl: REDIS_URL, logger, keyPrefix: `test-${randomUUID()}` });
    const seen: number[] = [];
    await messaging.bus.consume('orders', 'check', async (event) => {
      if (event.type === 'order.status_changed') seen.push(event.data.version);
    });
    // A poll far longer than the test: only NOTIFY can wake them.
    const relays = [1, 2, 3].map(() => new OutboxRelay({ databaseUrl, bus: messaging.bus, logger, pollMs: 60_000 }));
    await Promise.all(relays.map((relay) => relay.start()));
    const orderId = randomUUID();
    const versions = Array.from({ length: 30 }, (_, i) => i + 1);
    await write(versions.map((version) => statusChanged(orderId, version)));
    await until(() => seen.length === 30, 'all events');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(seen).toEqual(versions);
    expect((await relays[0]!.lag()).pending).toBe(0);
    await Promise.all(relays.map((relay) => relay.stop()));
    await messaging.close();
  });

  it('leaves rows unpublished while the bus is down, and publishes them after a restart', async () => {
    const prefix = `test-${randomUUID()}`;
    const orderId = randomUUID();
    const down = createMessaging({ redisUrl: 'redis://127.0.0.1:1', logger, keyPrefix: prefix });
    const failing = new OutboxRelay({ databaseUrl, bus: down.bus, logger, pollMs: 50 });
    await write([statusChanged(orderId, 1), statusChanged(orderId, 2)], false);
    await failing.start();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await failing.lag()).pending).toBe(2);
    await failing.stop();
    down.bus.close().catch(() => undefined);

    const up = createMessaging({ redisUrl: REDIS_URL, logger, keyPrefix: prefix });
    const seen: number[] = [];
    await up.bus.consume('orders', 'check', async (event) => {
      if (event.type === 'order.status_changed') seen.push(event.data.version);
    });
    const relay = new OutboxRelay({ databaseUrl, bus: up.bus, logger, pollMs: 50 });
    await relay.start();
    await until(() => seen.length === 2, 'the backlog');
    expect(seen).toEqual([1, 2]);
    await relay.stop();
    await up.close();
  });
});
