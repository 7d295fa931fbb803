import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import type { DomainEvent, EventStream } from './events.js';
import { InProcessEventBus, publishInTurn } from './in-process.js';
import { OUTBOX_RELAY_LOCK_KEY, OutboxRelay, type OutboxRelayOptions } from './outbox-relay.js';
import type { RedisTarget } from '../redis.js';
import { RedisEventBus } from './redis-event-bus.js';
import {
  captureLogger,
  createOutboxDatabase,
  deleteKeys,
  onCluster,
  RedisClusterProcess,
  replicatedRedis,
  RedisServerProcess,
  slotErrors,
  TEST_REDIS,
  statusChanged,
  uniquePrefix,
  until,
  versionOf,
  writeOutboxRows,
} from './test-support.js';
import { messagingMetrics } from './telemetry.js';
import { UnconfirmedPublishError, type EventBus } from './types.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A fresh database per test, with the outbox table and its NOTIFY trigger. */
async function database() {
  const db = await createOutboxDatabase();
  cleanups.push(() => db.drop());
  return db;
}

/** A Redis bus under its own prefix, with a consumer group recording what it receives. */
async function redisBus(redis: RedisTarget = TEST_REDIS, options: { publishReplicas?: number } = {}) {
  const prefix = uniquePrefix();
  const { logger } = captureLogger();
  const bus = new RedisEventBus({
    redis,
    logger,
    keyPrefix: `${prefix}:`,
    blockMs: 200,
    // What createMessaging requires: a replica on a cluster, none on one node.
    publishReplicas: options.publishReplicas ?? (redis.mode === 'cluster' ? 1 : 0),
  });
  cleanups.push(async () => {
    await bus.close();
    if (redis === TEST_REDIS) await deleteKeys(prefix);
  });
  const received: DomainEvent[] = [];
  await bus.consume('orders', 'check', async (event) => void received.push(event));
  return { bus, received, versions: () => received.map(versionOf) };
}

function relay(options: Omit<OutboxRelayOptions, 'logger'> & { logger?: OutboxRelayOptions['logger'] }) {
  const relay = new OutboxRelay({ logger: captureLogger().logger, ...options });
  cleanups.push(() => relay.stop());
  return relay;
}

/** Wraps a bus: counts publishes, can slow them down or fail them. */
function instrumented(
  bus: EventBus,
  options: {
    delayMs?: number;
    failOn?: (call: number) => boolean;
    /** Publishes, then reports that too few replicas confirmed it (as a bus requiring replicas does). */
    unconfirmedOn?: (call: number) => boolean;
    /** Holds a publish until the returned promise settles. */
    gate?: (call: number) => Promise<void> | undefined;
  } = {},
) {
  const stats = { calls: 0, inFlight: 0, maxInFlight: 0 };
  const wrapped: EventBus = {
    publish: async (stream: EventStream, event: DomainEvent) => {
      const call = ++stats.calls;
      stats.inFlight++;
      stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
      try {
        if (options.delayMs) await new Promise((resolve) => setTimeout(resolve, options.delayMs));
        await options.gate?.(call);
        if (options.failOn?.(call)) throw new Error(`publish ${call} failed`);
        await bus.publish(stream, event);
        if (options.unconfirmedOn?.(call)) throw new UnconfirmedPublishError(stream, 'test', 0, 1);
      } finally {
        stats.inFlight--;
      }
    },
    // Each in turn through the counting publish above, so a call number is an event's place.
    publishAll: (events) => publishInTurn(wrapped, events),
    consume: (...args) => bus.consume(...args),
    tail: (...args) => bus.tail(...args),
    close: () => bus.close(),
  };
  return { bus: wrapped, stats };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const unpublished = async (pool: pg.Pool) =>
  (await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox_events WHERE published_at IS NULL')).rows[0]!
    .n;

describe('OutboxRelay', () => {
  it('publishes each aggregate’s rows in sequence order and marks them published', async () => {
    const db = await database();
    const { bus, received } = await redisBus();
    const a = randomUUID();
    const b = randomUUID();
    const events = range(1, 10).map((version) => statusChanged(version % 2 ? a : b, version));
    await writeOutboxRows(db.pool, events);
    const relayer = relay({ databaseUrl: db.url, bus, batchSize: 3 });
    expect(await relayer.relayOnce()).toBe(10);
    await until(() => received.length >= 10, 'every event');
    // A batch goes to the bus at once: the order that holds is an aggregate's (one partition each).
    const ids = (list: DomainEvent[], aggregateId: string) =>
      list.filter((event) => event.aggregateId === aggregateId).map((event) => event.id);
    expect(received).toHaveLength(10);
    for (const aggregateId of [a, b]) expect(ids(received, aggregateId)).toEqual(ids(events, aggregateId));
    expect(await unpublished(db.pool)).toBe(0);
    expect(await relayer.relayOnce()).toBe(0);
    expect(await relayer.lag()).toEqual({ pending: 0, oldestPendingAgeMs: 0 });
  });

  it('never lets two relays of one database publish at the same time, nor the same row twice', async () => {
    const db = await database();
    const { bus, received, versions } = await redisBus();
    // Slow publishes make an overlap between the relays visible if the lock did not hold.
    const { bus: slow, stats } = instrumented(bus, { delayMs: 2 });
    const relays = [1, 2].map(() => relay({ databaseUrl: db.url, bus: slow, pollMs: 10, batchSize: 10 }));
    await Promise.all(relays.map((r) => r.start()));
    const orderId = randomUUID();
    for (const chunk of [range(1, 50), range(51, 100), range(101, 150)]) {
      await writeOutboxRows(
        db.pool,
        chunk.map((version) => statusChanged(orderId, version)),
      );
    }
    await until(() => received.length >= 150, 'every event');
    await Promise.all(relays.map((r) => r.stop()));
    expect(versions()).toEqual(range(1, 150));
    expect(stats.calls).toBe(150);
    expect(stats.maxInFlight).toBe(1);
    expect(await unpublished(db.pool)).toBe(0);
  });

  it('skips its round, publishing nothing, while another relay holds the database’s relay lock', async () => {
    const db = await database();
    const { bus, versions } = await redisBus();
    await writeOutboxRows(db.pool, [statusChanged(randomUUID(), 1)]);
    const other = await db.pool.connect();
    try {
      await other.query('BEGIN');
      const { rows } = await other.query('SELECT pg_try_advisory_xact_lock($1::bigint) AS locked', [
        OUTBOX_RELAY_LOCK_KEY,
      ]);
      expect(rows[0].locked).toBe(true);
      const relayer = relay({ databaseUrl: db.url, bus });
      expect(await relayer.relayOnce()).toBe(0);
      expect(await unpublished(db.pool)).toBe(1);
      await other.query('COMMIT');
      expect(await relayer.relayOnce()).toBe(1);
      await until(() => versions().length >= 1, 'the row');
    } finally {
      other.release();
    }
  });

  it('stopped mid-way, it finishes its batch, and a new relay publishes the rest: nothing lost', async () => {
    const db = await database();
    const { bus, received, versions } = await redisBus();
    const orderId = randomUUID();
    await writeOutboxRows(
      db.pool,
      range(1, 60).map((version) => statusChanged(orderId, version)),
    );
    // The 8th publish (in the second batch, rows 6 to 10) waits until the relay is being stopped.
    let open = () => {};
    const gate = new Promise<void>((resolve) => (open = resolve));
    const { bus: gated, stats } = instrumented(bus, { gate: (call) => (call === 8 ? gate : undefined) });
    const first = relay({ databaseUrl: db.url, bus: gated, batchSize: 5 });
    await first.start();
    await until(() => stats.inFlight === 1 && stats.calls === 8, 'the relay to be mid-batch');
    const stopping = first.stop();
    open();
    await stopping;
    // Stop let the batch in flight finish and commit, and started no other.
    expect(stats.calls).toBe(10);
    expect(await unpublished(db.pool)).toBe(50);
    await until(() => received.length >= 10, 'the published ones to arrive');

    const second = relay({ databaseUrl: db.url, bus, batchSize: 5 });
    await second.start();
    await until(() => received.length >= 60, 'the rest');
    expect(versions()).toEqual(range(1, 60));
    // A batch is published, then committed: its events may arrive before its rows are marked.
    await until(async () => (await unpublished(db.pool)) === 0, 'the last batch to commit');
  });

  it('rolls back a batch whose publish failed and publishes it again: at least once, never lost', async () => {
    const db = await database();
    const { bus, received, versions } = await redisBus();
    const orderId = randomUUID();
    await writeOutboxRows(
      db.pool,
      range(1, 6).map((version) => statusChanged(orderId, version)),
    );
    // The third publish fails once: rows 1 and 2 were sent, but their batch is not committed.
    const { bus: flaky } = instrumented(bus, { failOn: (call) => call === 3 });
    const relayer = relay({ databaseUrl: db.url, bus: flaky, batchSize: 10 });
    await expect(relayer.relayOnce()).rejects.toThrow('publish 3 failed');
    expect(await unpublished(db.pool)).toBe(6);
    expect(await relayer.relayOnce()).toBe(6);
    await until(() => received.length >= 8, 'the batch again');
    expect(versions()).toEqual([1, 2, 1, 2, 3, 4, 5, 6]);
    expect(await unpublished(db.pool)).toBe(0);
  });

  it(`while ${onCluster ? 'a master fails over, publishes through its replica (nothing lost)' : 'Redis is down, leaves rows unpublished, and publishes them once it is back'}`, async () => {
    // A Redis of its own, to kill: one node, or a cluster whose master of the order's partition dies.
    const server = onCluster ? await RedisClusterProcess.start() : await RedisServerProcess.start();
    cleanups.push(() => server.destroy());
    const db = await database();
    const target: RedisTarget =
      server instanceof RedisClusterProcess ? server.target : { mode: 'single', url: server.url };
    const { bus, versions } = await redisBus(target);
    const { logger, lines } = captureLogger();
    const relayer = relay({ databaseUrl: db.url, bus, logger, pollMs: 50, maxBackoffMs: 200 });
    await relayer.start();
    const orderId = randomUUID();
    await writeOutboxRows(db.pool, [statusChanged(orderId, 1)]);
    await until(() => versions().length === 1, 'the first event');

    const failed = (start: string) => lines.filter((line) => line.msg.startsWith(start)).length;
    const failures = () => failed('outbox relay could not publish') + failed('outbox relay: too few Redis replicas');
    if (server instanceof RedisClusterProcess) {
      const key = bus.partitionKey('orders', bus.partitionOf(orderId));
      const master = await server.masterOf(key);
      await server.kill(master);
      await writeOutboxRows(
        db.pool,
        range(2, 4).map((version) => statusChanged(orderId, version)),
      );
      await until(async () => (await server.masterOf(key)) !== master, 'the failover', 30_000);
      // The promoted replica has no replica of its own while the old master is down, and no one can
      // be promoted over it: its events go out confirmed by none, and the rows are marked.
      await until(async () => (await unpublished(db.pool)) === 0, 'the rows, marked without the old master', 30_000);
      await server.restart(master);
    } else {
      await server.kill();
      await writeOutboxRows(
        db.pool,
        range(2, 4).map((version) => statusChanged(orderId, version)),
      );
      await until(() => failures() >= 2, 'the relay to try and fail twice');
      expect(await relayer.lag()).toMatchObject({ pending: 3 });
      await server.start();
    }
    await until(async () => (await unpublished(db.pool)) === 0, 'the rows to be marked', 30_000);
    await until(() => new Set(versions()).size >= 4, 'the held-back events');
    // Unconfirmed publishes may have reached the stream too: repeats, in order, nothing lost.
    expect([...new Set(versions())]).toEqual([1, 2, 3, 4]);
    expect(versions()).toEqual([...versions()].sort((a, b) => a - b));
    if (!onCluster) expect(versions()).toEqual([1, 2, 3, 4]);
    expect(slotErrors(lines)).toEqual([]);
  }, 120_000);

  it('does not mark a row its replicas did not confirm, marks the rows before it, and publishes it again', async () => {
    const db = await database();
    const { bus, received, versions } = await redisBus();
    const orderId = randomUUID();
    await writeOutboxRows(
      db.pool,
      range(1, 4).map((version) => statusChanged(orderId, version)),
    );
    // The second publish reaches the stream but not its replicas, once.
    const { bus: unconfirming } = instrumented(bus, { unconfirmedOn: (call) => call === 2 });
    const relayer = relay({ databaseUrl: db.url, bus: unconfirming, batchSize: 10 });
    const counted = async () =>
      (await messagingMetrics.eventsUnconfirmed.get()).values.find((value) => value.labels.stream === 'orders')
        ?.value ?? 0;
    const countedBefore = await counted();
    await expect(relayer.relayOnce()).rejects.toBeInstanceOf(UnconfirmedPublishError);
    expect(await unpublished(db.pool)).toBe(3);
    expect(await counted()).toBe(countedBefore + 1);
    expect(await relayer.relayOnce()).toBe(3);
    expect(await unpublished(db.pool)).toBe(0);
    await until(() => received.length >= 5, 'every event');
    expect(versions()).toEqual([1, 2, 2, 3, 4]);
  });

  it('with a real replica: never marks a row the stalled replica did not confirm, marks it once it does', async () => {
    const db = await database();
    const redis = await replicatedRedis();
    cleanups.push(() => redis.destroy());
    const { bus, versions } = await redisBus(redis.target, { publishReplicas: 1 });
    const { logger, lines } = captureLogger();
    const orderId = randomUUID();
    await redis.stallReplicaOf(bus.partitionKey('orders', bus.partitionOf(orderId)));
    await writeOutboxRows(db.pool, [statusChanged(orderId, 1)]);
    const relayer = relay({ databaseUrl: db.url, bus, logger, pollMs: 50, maxBackoffMs: 100 });
    await relayer.start();
    await until(() => lines.filter((line) => line.msg.startsWith('outbox relay: too few')).length >= 2, 'two tries');
    expect(await unpublished(db.pool)).toBe(1);
    redis.resumeReplicas();
    await until(async () => (await unpublished(db.pool)) === 0, 'the row, marked once confirmed', 30_000);
    await until(() => versions().length >= 1, 'the event');
    await relayer.stop();
    expect(slotErrors(lines)).toEqual([]);
  }, 90_000);

  it('publishes a new row at once on NOTIFY, without waiting for its (60 s) poll', async () => {
    const db = await database();
    const { bus, versions } = await redisBus();
    const relayer = relay({ databaseUrl: db.url, bus, pollMs: 60_000 });
    await relayer.start();
    const orderId = randomUUID();
    await writeOutboxRows(db.pool, [statusChanged(orderId, 1)]);
    await until(() => versions().length >= 1, 'the first row');
    // Inserted after the first row was relayed: only the trigger's NOTIFY can wake the relay now.
    await writeOutboxRows(db.pool, [statusChanged(orderId, 2)]);
    await until(() => versions().length >= 2, 'the second row', 5_000);
    expect(versions()).toEqual([1, 2]);
  });

  it('listens again after its LISTEN connection was cut', async () => {
    const db = await database();
    const { bus, versions } = await redisBus();
    const url = new URL(db.url);
    const applicationName = `relay-listen-${randomUUID().slice(0, 8)}`;
    url.searchParams.set('application_name', applicationName);
    const relayer = relay({ databaseUrl: url.toString(), bus, pollMs: 60_000 });
    await relayer.start();
    const listeners = async () =>
      (
        await db.pool.query<{ pid: number }>(
          `SELECT pid FROM pg_stat_activity
            WHERE application_name = $1 AND query LIKE 'LISTEN%'`,
          [applicationName],
        )
      ).rows.map((row) => row.pid);
    await until(async () => (await listeners()).length === 1, 'the listener');
    const [cut] = await listeners();
    await db.pool.query('SELECT pg_terminate_backend($1)', [cut]);
    await until(async () => {
      const now = await listeners();
      return now.length === 1 && now[0] !== cut;
    }, 'a new listener');
    // The poll is 60 s away: only the new LISTEN connection can get this one out promptly.
    await writeOutboxRows(db.pool, [statusChanged(randomUUID(), 1)]);
    await until(() => versions().length >= 1, 'the row', 5_000);
  });

  it('publishes by polling alone when nothing notifies', async () => {
    const db = await database();
    await db.pool.query('DROP TRIGGER outbox_events_notify ON outbox_events');
    const { bus, versions } = await redisBus();
    const relayer = relay({ databaseUrl: db.url, bus, pollMs: 50 });
    await relayer.start();
    const orderId = randomUUID();
    await writeOutboxRows(db.pool, [statusChanged(orderId, 1)]);
    await until(() => versions().length >= 1, 'the first row');
    await writeOutboxRows(db.pool, [statusChanged(orderId, 2)]);
    await until(() => versions().length >= 2, 'the second row');
    expect(versions()).toEqual([1, 2]);
  });

  it('holds back an unpublishable row and its aggregate’s later rows only, logs it once, and resumes once repaired', async () => {
    const db = await database();
    const { logger, errors } = captureLogger();
    const bus = new InProcessEventBus(logger);
    cleanups.push(() => bus.close());
    const received: DomainEvent[] = [];
    await bus.consume('orders', 'check', async (event) => void received.push(event));
    const broken = randomUUID();
    const healthy = randomUUID();
    const brokenEvents = [1, 2, 3].map((version) => statusChanged(broken, version));
    await writeOutboxRows(db.pool, [brokenEvents[0]!, brokenEvents[1]!]);
    await writeOutboxRows(db.pool, [statusChanged(healthy, 1)]);
    await writeOutboxRows(db.pool, [brokenEvents[2]!, statusChanged(healthy, 2)]);
    // Row 2 (broken's second event) is corrupted by a bug.
    await db.pool.query(`UPDATE outbox_events SET payload = '{"type":"order.status_changed"}' WHERE id = $1`, [
      brokenEvents[1]!.id,
    ]);

    const relayer = relay({ databaseUrl: db.url, bus, logger, batchSize: 2 });
    expect(await relayer.relayOnce()).toBe(3);
    expect(await relayer.relayOnce()).toBe(0);
    await until(() => received.length >= 3, 'the publishable events');
    const sent = () =>
      received.map((event) => `${event.aggregateId === broken ? 'broken' : 'healthy'}:${versionOf(event)}`);
    expect(sent()).toEqual(['broken:1', 'healthy:1', 'healthy:2']);
    expect(await relayer.lag()).toMatchObject({ pending: 2 });
    const held = errors().filter((line) => line.msg.startsWith('outbox row is not a publishable event'));
    expect(held).toHaveLength(1);
    expect(held[0]).toMatchObject({ aggregateId: broken });

    await db.pool.query('UPDATE outbox_events SET payload = $2 WHERE id = $1', [brokenEvents[1]!.id, brokenEvents[1]]);
    expect(await relayer.relayOnce()).toBe(2);
    await until(() => received.length >= 5, 'the repaired aggregate');
    expect(sent()).toEqual(['broken:1', 'healthy:1', 'healthy:2', 'broken:2', 'broken:3']);
    expect(await unpublished(db.pool)).toBe(0);
  });

  it('reports the pending rows and the age of the oldest', async () => {
    const db = await database();
    const { bus } = await redisBus();
    await writeOutboxRows(db.pool, [statusChanged(randomUUID(), 1), statusChanged(randomUUID(), 1)]);
    await db.pool.query(`UPDATE outbox_events SET created_at = now() - interval '5 seconds' WHERE sequence = 1`);
    const relayer = relay({ databaseUrl: db.url, bus });
    const lag = await relayer.lag();
    expect(lag.pending).toBe(2);
    expect(lag.oldestPendingAgeMs).toBeGreaterThanOrEqual(5_000);
    expect(lag.oldestPendingAgeMs).toBeLessThan(60_000);
  });

  it('releases its database connections when stopped', async () => {
    const db = await database();
    const { bus } = await redisBus();
    const url = new URL(db.url);
    const applicationName = `relay-stop-${randomUUID().slice(0, 8)}`;
    url.searchParams.set('application_name', applicationName);
    const relayer = relay({ databaseUrl: url.toString(), bus, pollMs: 20 });
    await relayer.start();
    await writeOutboxRows(db.pool, [statusChanged(randomUUID(), 1)]);
    await until(async () => (await unpublished(db.pool)) === 0, 'the row');
    const connections = async () =>
      (
        await db.pool.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1',
          [applicationName],
        )
      ).rows[0]!.n;
    // The LISTEN connection and the pool's (at most two).
    expect(await connections()).toBeGreaterThanOrEqual(2);
    expect(await connections()).toBeLessThanOrEqual(3);
    await relayer.stop();
    await until(async () => (await connections()) === 0, 'the relay’s connections to close');
  });
});
