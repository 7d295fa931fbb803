/**
 * Helpers for the messaging tests (real Redis and Postgres). Not exported from the package.
 */
import { randomUUID } from 'node:crypto';
import { Cluster } from 'ioredis';
import pg from 'pg';
import { pino } from 'pino';
import type { Logger } from '../logger.js';
import { connectRedis, type RedisTarget } from '../redis.js';
import { testRedisTarget } from '../testing/redis-server.js';
import { newEvent, type DomainEvent } from './events.js';
import { OUTBOX_NOTIFY_CHANNEL, outboxRecord } from './outbox.js';

import { RedisClusterProcess } from '../testing/redis-cluster.js';
import { RedisServerProcess } from '../testing/redis-server.js';

export { deleteKeys, RedisServerProcess, testRedisTarget } from '../testing/redis-server.js';
export { RedisClusterProcess } from '../testing/redis-cluster.js';

/** The run's Redis: one node, or (TEST_REDIS=cluster) the run's cluster. */
export const TEST_REDIS = testRedisTarget();
export const onCluster = TEST_REDIS.mode === 'cluster';
export const POSTGRES_URL = process.env.TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

/** Polls `check` until it holds; fails with `what` after the deadline. */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** An `order.status_changed` event of `orderId` carrying `version`, so tests can follow the order. */
export function statusChanged(orderId: string, version: number): DomainEvent {
  return newEvent('order.status_changed', orderId, {
    orderId,
    customerId: '00000000-0000-4000-8000-000000000001',
    from: 'PAID',
    to: 'ACCEPTED',
    version,
    final: false,
    actor: { kind: 'system', id: 'test' },
    reason: null,
  });
}

/** The version an event carries (status_changed events only). */
export const versionOf = (event: DomainEvent): number =>
  event.type === 'order.status_changed' ? event.data.version : -1;

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** A logger that keeps every line, to assert what was logged. */
export function captureLogger(): { logger: Logger; lines: LogLine[]; errors: () => LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  return { logger, lines, errors: () => lines.filter((line) => line.level >= 50) };
}

/** A unique key prefix per test, so tests can share one Redis. */
export const uniquePrefix = () => `test-${randomUUID()}`;

/** Connections (to every node of a cluster) whose client name contains `fragment`. */
export async function clientNames(fragment: string, target: RedisTarget = TEST_REDIS): Promise<string[]> {
  return (await clientsNamed(fragment, target)).map((line) => /(?:^| )name=(\S*)/.exec(line)![1]!);
}

/** The CLIENT LIST lines (name, age, idle, last command, ...) of those connections. */
export async function clientsNamed(fragment: string, target: RedisTarget = TEST_REDIS): Promise<string[]> {
  const redis = connectRedis(target, { name: 'test-client-list', lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const nodes = redis instanceof Cluster ? redis.nodes('all') : [redis];
    const lists = await Promise.all(nodes.map(async (node) => String(await node.client('LIST'))));
    return lists
      .join('\n')
      .split('\n')
      .filter((line) => (/(?:^| )name=(\S*)/.exec(line)?.[1] ?? '').includes(fragment));
  } finally {
    redis.disconnect();
  }
}

/** Lines that show a cluster redirection or a cross-slot command reached the code (none may). */
export const slotErrors = (lines: LogLine[]) =>
  lines.filter((line) => /CROSSSLOT|MOVED|ASK /.test(JSON.stringify(line)));

export const OUTBOX_TABLE_SQL = `
  CREATE TABLE outbox_events (
    sequence bigserial PRIMARY KEY, id uuid UNIQUE NOT NULL, stream text NOT NULL, type text NOT NULL,
    aggregate_id uuid NOT NULL, payload jsonb NOT NULL,
    created_at timestamptz(3) NOT NULL DEFAULT now(), published_at timestamptz(3));
  CREATE INDEX outbox_events_published_at_sequence_idx ON outbox_events (published_at, sequence);
  CREATE TABLE processed_events (
    consumer text NOT NULL, event_id uuid NOT NULL, processed_at timestamptz(3) NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id));
  CREATE FUNCTION outbox_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_notify('${OUTBOX_NOTIFY_CHANNEL}', ''); RETURN NULL; END $$;
  CREATE TRIGGER outbox_events_notify AFTER INSERT ON outbox_events
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_events_notify();
`;

/** A fresh database with the outbox tables (and the NOTIFY trigger), dropped by `drop()`. */
export async function createOutboxDatabase(): Promise<{ url: string; pool: pg.Pool; drop(): Promise<void> }> {
  const name = `messaging_test_${randomUUID().replace(/-/g, '')}`;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 3 });
  // DROP DATABASE ... WITH (FORCE) ends whatever is still connected; that is expected.
  pool.on('error', () => undefined);
  await pool.query(OUTBOX_TABLE_SQL);
  return {
    url: url.toString(),
    pool,
    drop: async () => {
      await pool.end();
      const dropper = new pg.Client({ connectionString: POSTGRES_URL });
      await dropper.connect();
      try {
        await dropper.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await dropper.end();
      }
    },
  };
}

/** Inserts events as outbox rows, one statement each (the trigger notifies per statement). */
export async function writeOutboxRows(pool: pg.Pool, events: DomainEvent[]): Promise<void> {
  for (const event of events) {
    const row = outboxRecord(event);
    await pool.query(
      'INSERT INTO outbox_events (id, stream, type, aggregate_id, payload) VALUES ($1, $2, $3, $4, $5)',
      [row.id, row.stream, row.type, row.aggregateId, row.payload],
    );
  }
}

/**
 * A Redis of the test's own whose masters have a replica, in the suite's mode: one node with a
 * replica (REPLICAOF), or a cluster. `stallReplicaOf(key)` SIGSTOPs the replica of the master that
 * holds `key`: still connected (the master counts it), but it acknowledges nothing.
 */
export async function replicatedRedis(): Promise<{
  target: RedisTarget;
  stallReplicaOf(key: string): Promise<void>;
  resumeReplicas(): void;
  destroy(): Promise<void>;
}> {
  if (onCluster) {
    const cluster = await RedisClusterProcess.start();
    const stalled: number[] = [];
    return {
      target: cluster.target,
      stallReplicaOf: async (key) => {
        for (const replica of await cluster.replicasOf(await cluster.masterOf(key))) {
          cluster.pause(replica);
          stalled.push(replica);
        }
      },
      resumeReplicas: () => stalled.splice(0).forEach((port) => cluster.resume(port)),
      destroy: () => cluster.destroy(),
    };
  }
  const master = await RedisServerProcess.start();
  const replica = await RedisServerProcess.start();
  const control = connectRedis({ mode: 'single', url: replica.url }, { name: 'test-replica-control' });
  try {
    await control.replicaof('127.0.0.1', String(master.port));
    await until(async () => (await control.info('replication')).includes('master_link_status:up'), 'the replica');
  } finally {
    control.disconnect();
  }
  return {
    target: { mode: 'single', url: master.url },
    stallReplicaOf: async () => replica.pause(),
    resumeReplicas: () => replica.resume(),
    destroy: async () => {
      replica.resume();
      await Promise.all([replica.destroy(), master.destroy()]);
    },
  };
}
