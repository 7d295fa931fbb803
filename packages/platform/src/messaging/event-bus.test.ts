import { randomUUID } from 'node:crypto';
import { Cluster } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { connectRedis, type RedisConnection, type RedisTarget } from '../redis.js';
import type { DomainEvent } from './events.js';
import { InProcessEventBus } from './in-process.js';
import { RedisEventBus, type DeadLetter } from './redis-event-bus.js';
import {
  captureLogger,
  clientNames,
  deleteKeys,
  onCluster,
  RedisClusterProcess,
  RedisServerProcess,
  replicatedRedis,
  slotErrors,
  statusChanged,
  TEST_REDIS,
  uniquePrefix,
  until,
  versionOf,
  type LogLine,
} from './test-support.js';
import { UnconfirmedPublishError, type EventBus } from './types.js';

interface Kit {
  bus: EventBus;
  deadLetters(): Promise<DeadLetter[]>;
  errors(): LogLine[];
  /** The partition an aggregate's events go to (the in-process bus has one). */
  partitionOf(aggregateId: string): number;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const backends = [
  {
    backend: 'redis',
    make(): Kit {
      const prefix = uniquePrefix();
      const { logger, errors } = captureLogger();
      // A short claim idle time (1 s) and backoff keep the tests quick; the defaults are 30 s and 100 ms.
      const bus = new RedisEventBus({
        redis: TEST_REDIS,
        logger,
        keyPrefix: `${prefix}:`,
        claimIdleMs: 1_000,
        retryBackoffMs: 20,
        partitions: 4,
      });
      cleanups.push(async () => {
        await bus.close();
        await deleteKeys(prefix);
      });
      return {
        bus,
        deadLetters: () => bus.deadLetters('orders'),
        errors,
        partitionOf: (aggregateId) => bus.partitionOf(aggregateId),
      };
    },
  },
  {
    backend: 'in-process',
    make(): Kit {
      const { logger, errors } = captureLogger();
      const bus = new InProcessEventBus(logger, { retryBackoffMs: 20 });
      cleanups.push(() => bus.close());
      return { bus, deadLetters: () => bus.deadLetters('orders'), errors, partitionOf: () => 0 };
    },
  },
] as const;

/** Publishes `versions` of one order, in order. */
async function publishVersions(bus: EventBus, orderId: string, versions: number[]): Promise<DomainEvent[]> {
  const events = versions.map((version) => statusChanged(orderId, version));
  for (const event of events) await bus.publish('orders', event);
  return events;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe.each(backends)('event bus ($backend)', ({ make }) => {
  it('gives a group created after events were published all of them, once, in order', async () => {
    const { bus } = make();
    const orderId = randomUUID();
    await publishVersions(bus, orderId, range(1, 20));
    const seen: number[] = [];
    await bus.consume('orders', 'kitchen', async (event) => void seen.push(versionOf(event)));
    await until(() => seen.length >= 20, 'the backlog');
    // A sentinel instead of a sleep: once it arrives, anything repeated would have arrived before it.
    await publishVersions(bus, orderId, [21]);
    await until(() => seen.includes(21), 'the sentinel');
    expect(seen).toEqual(range(1, 21));
  });

  it('shares the work between the members of one group, each event handled once', async () => {
    const { bus, partitionOf } = make();
    const members: number[][] = [[], []];
    const byPartition = new Map<string, number[]>();
    for (const [member, handled] of members.entries()) {
      await bus.consume('orders', 'kitchen', async (event) => {
        await new Promise((resolve) => setTimeout(resolve, 10));
        handled.push(versionOf(event));
        const key = `${member}:${partitionOf(event.aggregateId)}`;
        byPartition.set(key, [...(byPartition.get(key) ?? []), versionOf(event)]);
      });
    }
    const orderIds = range(1, 30).map(() => randomUUID());
    for (const [i, orderId] of orderIds.entries()) await publishVersions(bus, orderId, [i + 1]);
    await until(() => members[0]!.length + members[1]!.length >= 30, 'every event');
    await publishVersions(bus, randomUUID(), [31]);
    await until(() => members.some((handled) => handled.includes(31)), 'the sentinel');
    const all = [...members[0]!, ...members[1]!].sort((a, b) => a - b);
    expect(all).toEqual(range(1, 31));
    expect(members[0]!.length).toBeGreaterThan(0);
    expect(members[1]!.length).toBeGreaterThan(0);
    // Each member handles its share of each partition in stream order.
    for (const handled of byPartition.values()) expect(handled).toEqual([...handled].sort((a, b) => a - b));
  });

  it('gives every group every event', async () => {
    const { bus } = make();
    const kitchen: number[] = [];
    const audit: number[] = [];
    await bus.consume('orders', 'kitchen', async (event) => void kitchen.push(versionOf(event)));
    await bus.consume('orders', 'audit', async (event) => void audit.push(versionOf(event)));
    await publishVersions(bus, randomUUID(), range(1, 10));
    await until(() => kitchen.length >= 10 && audit.length >= 10, 'both groups');
    expect(kitchen).toEqual(range(1, 10));
    expect(audit).toEqual(range(1, 10));
  });

  it('redelivers an event whose handler threw until it succeeds, and keeps the later ones behind it', async () => {
    const { bus } = make();
    const seen: number[] = [];
    let attempts = 0;
    await bus.consume('orders', 'kitchen', async (event) => {
      if (versionOf(event) === 3 && ++attempts <= 2) throw new Error('transient');
      seen.push(versionOf(event));
    });
    await publishVersions(bus, randomUUID(), range(1, 5));
    await until(() => seen.length >= 5, 'every event');
    expect(seen).toEqual(range(1, 5));
    expect(attempts).toBe(3);
  });

  it('moves an event that keeps failing to the dead letters after maxAttempts, logs it, and goes on', async () => {
    const { bus, deadLetters, errors } = make();
    const seen: number[] = [];
    let attempts = 0;
    await bus.consume(
      'orders',
      'picky',
      async (event) => {
        if (versionOf(event) === 1) {
          attempts++;
          throw new Error('poison');
        }
        seen.push(versionOf(event));
      },
      { maxAttempts: 3 },
    );
    const [poison] = await publishVersions(bus, randomUUID(), [1, 2]);
    await until(() => seen.length >= 1, 'the event after the poison');
    expect(seen).toEqual([2]);
    expect(attempts).toBe(3);
    const dead = await deadLetters();
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({
      stream: 'orders',
      group: 'picky',
      eventId: poison!.id,
      eventType: 'order.status_changed',
      attempts: 3,
      error: 'poison',
    });
    expect(JSON.parse(dead[0]!.raw)).toEqual(poison);
    expect(errors()).toContainEqual(
      expect.objectContaining({ eventId: poison!.id, eventType: 'order.status_changed', group: 'picky' }),
    );
  });

  it('sends a malformed entry straight to the dead letters, without calling the handler', async () => {
    const { bus, deadLetters, errors } = make();
    const seen: DomainEvent[] = [];
    await bus.consume('orders', 'kitchen', async (event) => void seen.push(event));
    // The valid event after it is of the same aggregate, so of the same partition: it comes after.
    const orderId = randomUUID();
    const bogus = {
      id: randomUUID(),
      type: 'order.placed',
      version: 1,
      aggregateId: orderId,
    } as unknown as DomainEvent;
    await bus.publish('orders', bogus);
    await publishVersions(bus, orderId, [1]);
    await until(() => seen.length >= 1, 'the valid event');
    expect(seen.map(versionOf)).toEqual([1]);
    const dead = await deadLetters();
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ eventId: bogus.id, eventType: 'order.placed', attempts: 1 });
    expect(dead[0]!.error).toMatch(/invalid event/);
    expect(errors()).toContainEqual(expect.objectContaining({ eventId: bogus.id }));
  });

  it('hands an event a member left unfinished when it stopped to another member, in order', async () => {
    const { bus } = make();
    let attemptsByFirst = 0;
    const first = await bus.consume('orders', 'kitchen', async () => {
      attemptsByFirst++;
      throw new Error('this member cannot handle anything');
    });
    await publishVersions(bus, randomUUID(), [1, 2]);
    await until(() => attemptsByFirst >= 1, 'the first member to try');
    await first.close();
    const seen: number[] = [];
    await bus.consume('orders', 'kitchen', async (event) => void seen.push(versionOf(event)));
    await until(() => seen.length >= 2, 'the second member to take over');
    expect(seen).toEqual([1, 2]);
  });

  it('stops delivering to a subscription once it is closed', async () => {
    const { bus } = make();
    const seen: number[] = [];
    const witness: number[] = [];
    const subscription = await bus.consume('orders', 'kitchen', async (event) => void seen.push(versionOf(event)));
    await bus.consume('orders', 'witness', async (event) => void witness.push(versionOf(event)));
    const orderId = randomUUID();
    await publishVersions(bus, orderId, [1]);
    await until(() => seen.length >= 1, 'the first event');
    await subscription.close();
    await publishVersions(bus, orderId, [2]);
    await until(() => witness.length >= 2, 'the other group');
    expect(seen).toEqual([1]);
  });

  it('fans out to every tail the events published after it started, in order', async () => {
    const { bus } = make();
    const orderId = randomUUID();
    await publishVersions(bus, orderId, [1]);
    const tails: number[][] = [[], []];
    for (const seen of tails) await bus.tail('orders', (event) => void seen.push(versionOf(event)));
    await publishVersions(bus, orderId, range(2, 6));
    await until(() => tails.every((seen) => seen.length >= 5), 'both tails');
    expect(tails).toEqual([range(2, 6), range(2, 6)]);
  });
});

describe('RedisEventBus', () => {
  const PARTITIONS = 4;

  function makeBus(options: { redis?: RedisTarget; blockMs?: number; publishReplicas?: number } = {}) {
    const prefix = uniquePrefix();
    const captured = captureLogger();
    const target = options.redis ?? TEST_REDIS;
    const bus = new RedisEventBus({
      redis: target,
      logger: captured.logger,
      keyPrefix: `${prefix}:`,
      claimIdleMs: 1_000,
      retryBackoffMs: 20,
      blockMs: options.blockMs,
      partitions: PARTITIONS,
      publishReplicas: options.publishReplicas,
    });
    const redis = connectRedis(target, { name: 'test', maxRetriesPerRequest: 1 });
    cleanups.push(async () => {
      await bus.close();
      redis.disconnect();
      if (!options.redis) await deleteKeys(prefix);
    });
    /** The key of the partition an order's events go to. */
    const keyOf = (orderId: string) => bus.partitionKey('orders', bus.partitionOf(orderId));
    return { bus, redis, prefix, keyOf, ...captured };
  }

  /** Order ids that cover every partition of `bus` (several each). */
  function orderIdsCovering(bus: RedisEventBus, perPartition: number): string[] {
    const ids: string[] = [];
    const counts = new Array<number>(bus.partitions).fill(0);
    while (counts.some((count) => count < perPartition)) {
      const id = randomUUID();
      const partition = bus.partitionOf(id);
      if (counts[partition]! < perPartition) {
        counts[partition]!++;
        ids.push(id);
      }
    }
    return ids;
  }

  /** The masters (on one node: the node) holding keys under `prefix`. */
  async function nodesHolding(redis: RedisConnection, prefix: string): Promise<number> {
    await redis.ping(); // a cluster knows its nodes once ready
    const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
    let holding = 0;
    for (const node of nodes) {
      const [, keys] = await node.scan('0', 'MATCH', `${prefix}*`, 'COUNT', 10_000);
      if (keys.length > 0) holding++;
    }
    return holding;
  }

  it('uses the keys it documents: one per partition, each its own hash slot', () => {
    const bus = new RedisEventBus({ redis: TEST_REDIS, logger: captureLogger().logger });
    cleanups.push(() => bus.close());
    expect(bus.partitions).toBe(8);
    expect(bus.partitionKey('orders', 0)).toBe('food:events:{orders:0}');
    expect(bus.deadLetterKey('payments', 3)).toBe('food:events:{payments:3}:dead');
  });

  it('maps an aggregate to one partition, the same in every process, and spreads aggregates over all', () => {
    const one = new RedisEventBus({ redis: TEST_REDIS, logger: captureLogger().logger, partitions: 8 });
    const other = new RedisEventBus({ redis: TEST_REDIS, logger: captureLogger().logger, partitions: 8 });
    cleanups.push(
      () => one.close(),
      () => other.close(),
    );
    const counts = new Array<number>(8).fill(0);
    for (let i = 0; i < 800; i++) {
      const id = randomUUID();
      expect(other.partitionOf(id)).toBe(one.partitionOf(id));
      counts[one.partitionOf(id)]!++;
    }
    // A fixed id keeps its partition across releases: changing the hash would reorder aggregates.
    expect(one.partitionOf('00000000-0000-4000-8000-000000000001')).toBe(
      one.partitionOf('00000000-0000-4000-8000-000000000001'),
    );
    for (const count of counts) expect(count).toBeGreaterThan(50);
  });

  it.runIf(onCluster)('spreads a stream’s partitions over more than one master', async () => {
    const { bus, redis, prefix } = makeBus();
    for (const orderId of orderIdsCovering(bus, 1)) await publishVersions(bus, orderId, [1]);
    expect(await nodesHolding(redis, `${prefix}:events:`)).toBeGreaterThan(1);
  });

  it('keeps every aggregate’s order across partitions, for every member, group and tail, reading every partition', async () => {
    const { bus, lines } = makeBus();
    const orderIds = orderIdsCovering(bus, 3);
    const seen = {
      kitchen: new Map<string, number[]>(),
      audit: new Map<string, number[]>(),
      tail: new Map<string, number[]>(),
    };
    const record = (into: Map<string, number[]>) => (event: DomainEvent) => {
      into.set(event.aggregateId, [...(into.get(event.aggregateId) ?? []), versionOf(event)]);
    };
    await bus.consume('orders', 'kitchen', async (event) => record(seen.kitchen)(event));
    await bus.consume('orders', 'kitchen', async (event) => record(seen.kitchen)(event));
    await bus.consume('orders', 'audit', async (event) => record(seen.audit)(event));
    await bus.tail('orders', record(seen.tail));
    // Interleaved: version 1 of every order, then version 2 of every order, ...
    for (const version of range(1, 5)) {
      for (const orderId of orderIds) await bus.publish('orders', statusChanged(orderId, version));
    }
    const count = (into: Map<string, number[]>) =>
      [...into.values()].reduce((sum, versions) => sum + versions.length, 0);
    await until(
      () => Object.values(seen).every((into) => count(into) >= orderIds.length * 5),
      'every event, everywhere',
    );
    for (const into of Object.values(seen)) {
      expect(count(into)).toBe(orderIds.length * 5);
      for (const orderId of orderIds) expect(into.get(orderId)).toEqual(range(1, 5));
    }
    expect(new Set(orderIds.map((id) => bus.partitionOf(id))).size).toBe(PARTITIONS);
    expect(slotErrors(lines)).toEqual([]);
  });

  it('puts a dead letter in its partition’s dead-letter stream, and lists every partition’s', async () => {
    const { bus, redis } = makeBus();
    const [first, second] = orderIdsCovering(bus, 1).slice(0, 2);
    await bus.consume('orders', 'picky', async () => Promise.reject(new Error('poison')), { maxAttempts: 1 });
    await publishVersions(bus, first!, [1]);
    await until(async () => (await bus.deadLetters('orders')).length === 1, 'the first dead letter');
    await publishVersions(bus, second!, [1]);
    await until(async () => (await bus.deadLetters('orders')).length === 2, 'the second dead letter');
    for (const partition of range(0, PARTITIONS - 1)) {
      const expected = [first, second].filter((id) => bus.partitionOf(id!) === partition).length;
      expect(await redis.xlen(bus.deadLetterKey('orders', partition))).toBe(expected);
    }
    const letters = await bus.deadLetters('orders');
    // Newest first, across partitions.
    expect(letters.map((letter) => JSON.parse(letter.raw).aggregateId)).toEqual([second, first]);
    expect(letters.map((letter) => letter.partition)).toEqual([bus.partitionOf(second!), bus.partitionOf(first!)]);
  });

  it('rejects a publish a stalled replica did not confirm (the entry may still be in the stream), confirms once it answers', async () => {
    const redis = await replicatedRedis();
    cleanups.push(() => redis.destroy());
    const { bus, redis: connection, keyOf } = makeBus({ redis: redis.target, publishReplicas: 1 });
    const orderId = randomUUID();
    await bus.publish('orders', statusChanged(orderId, 1));
    // Connected but acknowledging nothing: the master counts it, WAIT times out.
    await redis.stallReplicaOf(keyOf(orderId));
    const publishing = bus.publish('orders', statusChanged(orderId, 2));
    await expect(publishing).rejects.toBeInstanceOf(UnconfirmedPublishError);
    await expect(publishing).rejects.toMatchObject({ key: keyOf(orderId), confirmed: 0, required: 1 });
    expect(await connection.xlen(keyOf(orderId))).toBe(2);
    redis.resumeReplicas();
    await until(
      () =>
        bus.publish('orders', statusChanged(orderId, 3)).then(
          () => true,
          () => false,
        ),
      'a confirmed publish',
    );
  }, 60_000);

  it('publishes a batch at once: one pipeline and one replica wait per master, each aggregate in order; a stalled replica fails only its master’s entries', async () => {
    // A Redis of the test's own: its command counts are this test's alone.
    const redis = await replicatedRedis();
    cleanups.push(() => redis.destroy());
    const { bus, redis: connection, keyOf, prefix, lines } = makeBus({ redis: redis.target, publishReplicas: 1 });
    await connection.ping();
    const masters = connection instanceof Cluster ? connection.nodes('master') : [connection];
    const calls = async (node: (typeof masters)[number], command: string) =>
      Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(await node.info('commandstats'))?.[1] ?? 0);
    const counts = async (command: string) => Promise.all(masters.map((node) => calls(node, command)));
    const orderIds = orderIdsCovering(bus, 2);
    // Interleaved, as a relay's batch of many orders is: version 1 of each, then 2, then 3.
    const batch = range(1, 3).flatMap((version) =>
      orderIds.map((orderId) => ({ stream: 'orders' as const, event: statusChanged(orderId, version) })),
    );
    const [waitsBefore, xaddsBefore] = [await counts('wait'), await counts('xadd')];
    expect(await bus.publishAll(batch)).toEqual(batch.map(() => undefined));
    const [waits, xadds] = [await counts('wait'), await counts('xadd')];
    const holding = await nodesHolding(connection, `${prefix}:events:`);
    expect(holding).toBe(onCluster ? masters.length : 1);
    expect(waits.map((n, k) => n - waitsBefore[k]!)).toEqual(masters.map(() => 1));
    expect(xadds.reduce((sum, n, k) => sum + n - xaddsBefore[k]!, 0)).toBe(batch.length);
    for (const orderId of orderIds) {
      const entries = (await connection.xrange(keyOf(orderId), '-', '+')) as [string, string[]][];
      const versions = entries
        .map(([, fields]) => JSON.parse(fields[1]!) as DomainEvent)
        .filter((event) => event.aggregateId === orderId)
        .map(versionOf);
      expect(versions).toEqual([1, 2, 3]);
    }

    // One master's replica stops answering: its entries are unconfirmed, the other masters' are not.
    const stalledKey = keyOf(orderIds[0]!);
    await redis.stallReplicaOf(stalledKey);
    const masterOf = async (key: string) =>
      connection instanceof Cluster
        ? connection.slots[Number(await connection.call('CLUSTER', 'KEYSLOT', key))]![0]
        : 'the one node';
    const stalledMaster = await masterOf(stalledKey);
    const outcomes = await bus.publishAll(batch);
    for (const [k, { event }] of batch.entries()) {
      if ((await masterOf(keyOf(event.aggregateId))) === stalledMaster) {
        expect(outcomes[k]).toBeInstanceOf(UnconfirmedPublishError);
        expect(outcomes[k]).toMatchObject({ key: keyOf(event.aggregateId), confirmed: 0, required: 1 });
      } else expect(outcomes[k]).toBeUndefined();
    }
    if (onCluster) expect(outcomes.some((outcome) => outcome === undefined)).toBe(true);
    redis.resumeReplicas();
    expect(slotErrors(lines)).toEqual([]);
  }, 60_000);

  it('waits for the replicas a master has when it has fewer than asked for (none can be promoted over it), and says so once', async () => {
    // One node has no replica; the test cluster's masters have one each.
    const { bus, redis, keyOf, lines } = makeBus({ publishReplicas: onCluster ? 2 : 1 });
    const orderId = randomUUID();
    await bus.publish('orders', statusChanged(orderId, 1));
    await bus.publish('orders', statusChanged(orderId, 2));
    expect(await redis.xlen(keyOf(orderId))).toBe(2);
    const warned = lines.filter((line) => line.msg.startsWith('Redis master has fewer replicas than'));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ replicas: onCluster ? 1 : 0, wanted: onCluster ? 2 : 1 });
  });

  it.runIf(onCluster)('asks the master that took the write to WAIT for its replica', async () => {
    const { bus, redis, keyOf, lines } = makeBus({ publishReplicas: 1 });
    const cluster = redis as Cluster;
    const orderId = randomUUID();
    await publishVersions(bus, orderId, [1]);
    const masters = cluster.nodes('master');
    const holders = await Promise.all(masters.map((node) => node.exists(keyOf(orderId)).catch(() => 0)));
    const owner = masters[holders.indexOf(1)]!;
    const waits = async () => Number(/cmdstat_wait:calls=(\d+)/.exec(await owner.info('commandstats'))?.[1] ?? 0);
    const before = await waits();
    await publishVersions(bus, orderId, range(2, 21));
    expect((await waits()) - before).toBeGreaterThanOrEqual(20);
    expect(slotErrors(lines)).toEqual([]);
  });

  it('takes over the entries of a member that died before acknowledging them', async () => {
    const { bus, redis, keyOf } = makeBus();
    const orderId = randomUUID();
    const key = keyOf(orderId);
    await redis.xgroup('CREATE', key, 'kitchen', '0', 'MKSTREAM');
    await publishVersions(bus, orderId, [1, 2, 3]);
    // A member reads the entries and dies: they stay pending under its name.
    await redis.xreadgroup('GROUP', 'kitchen', 'dead-member', 'COUNT', 10, 'STREAMS', key, '>');
    const seen: number[] = [];
    await bus.consume('orders', 'kitchen', async (event) => void seen.push(versionOf(event)));
    await until(() => seen.length >= 3, 'the takeover');
    expect(seen).toEqual([1, 2, 3]);
    await until(async () => ((await redis.xpending(key, 'kitchen')) as [number])[0] === 0, 'every entry acknowledged');
  });

  it('dead-letters an entry that was delivered more than maxAttempts times without running it again', async () => {
    const { bus, redis, keyOf } = makeBus();
    const orderId = randomUUID();
    const key = keyOf(orderId);
    await redis.xgroup('CREATE', key, 'kitchen', '0', 'MKSTREAM');
    const [crasher] = await publishVersions(bus, orderId, [1, 2]);
    // Members kept dying on the first entry: it has been delivered 5 times already.
    const reply = (await redis.xreadgroup('GROUP', 'kitchen', 'dead-member', 'COUNT', 1, 'STREAMS', key, '>')) as [
      string,
      [string, string[]][],
    ][];
    const entryId = reply[0]![1][0]![0];
    await redis.xclaim(key, 'kitchen', 'dead-member', 0, entryId, 'RETRYCOUNT', 5, 'JUSTID');
    const seen: number[] = [];
    await bus.consume('orders', 'kitchen', async (event) => void seen.push(versionOf(event)), { maxAttempts: 3 });
    await until(() => seen.length >= 1, 'the next entry');
    await until(async () => (await bus.deadLetters('orders')).length === 1, 'the dead letter');
    expect(seen).toEqual([2]);
    expect((await bus.deadLetters('orders'))[0]).toMatchObject({ entryId, eventId: crasher!.id, attempts: 6 });
  });

  it('dead-letters entries that are not JSON or have no event field', async () => {
    const { bus, redis } = makeBus();
    const seen: number[] = [];
    await bus.consume('orders', 'kitchen', async (event) => void seen.push(versionOf(event)));
    const key = bus.partitionKey('orders', 2);
    await redis.xadd(key, '*', 'event', '{not json');
    await redis.xadd(key, '*', 'something', 'else');
    await publishVersions(bus, randomUUID(), [1]);
    await until(() => seen.length >= 1, 'the valid event');
    await until(async () => (await bus.deadLetters('orders')).length === 2, 'both dead letters');
    const dead = await bus.deadLetters('orders');
    expect(dead.map((letter) => letter.raw)).toEqual(['["something","else"]', '{not json']);
    expect(dead.map((letter) => letter.partition)).toEqual([2, 2]);
    expect(seen).toEqual([1]);
  });

  it('keeps a slow handler’s entry from being taken over by another member', async () => {
    // Short blocking reads, so member b looks for idle entries often.
    const { bus } = makeBus({ blockMs: 100 });
    const handled: string[] = [];
    let release = () => {};
    const slow = new Promise<void>((resolve) => (release = resolve));
    const handler = (member: string) => async (event: DomainEvent) => {
      if (member === 'a') await slow;
      handled.push(`${member}:${versionOf(event)}`);
    };
    await bus.consume('orders', 'kitchen', handler('a'));
    await publishVersions(bus, randomUUID(), [1]);
    await bus.consume('orders', 'kitchen', handler('b'));
    // Twice the claim idle time: without the refresh, member b would have claimed it.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    release();
    await until(() => handled.length >= 1, 'the slow handler');
    await publishVersions(bus, randomUUID(), [2]);
    await until(() => handled.length >= 2, 'the next event');
    expect(handled.filter((entry) => entry.endsWith(':1'))).toEqual(['a:1']);
  });

  it('closes promptly, interrupting blocking reads, and releases every connection it opened', async () => {
    const { bus, prefix } = makeBus({ blockMs: 20_000 });
    await bus.consume('orders', 'kitchen', async () => {});
    await bus.consume('payments', 'audit', async () => {});
    await bus.tail('orders', () => {});
    await bus.publish('orders', statusChanged(randomUUID(), 1));
    // The publisher (on a cluster, one connection per master it wrote to), and one per partition of each reader.
    const readers = 3 * PARTITIONS;
    await until(async () => (await clientNames(prefix)).length > readers, 'publisher, two consumers and a tail');
    // One connection per partition (on a cluster it may also keep one to the node it asked for the slots).
    for (const reader of ['consumer:orders:kitchen', 'consumer:payments:audit', 'tail:orders']) {
      const names = new Set(await clientNames(`${prefix}:${reader}:`));
      expect([...names].sort()).toEqual(
        range(0, PARTITIONS - 1).map((partition) => `${prefix}:${reader}:${partition}`),
      );
    }
    const started = Date.now();
    await bus.close();
    expect(Date.now() - started).toBeLessThan(5_000);
    await until(async () => (await clientNames(prefix)).length === 0, 'every connection to close');
  });

  it(`survives ${onCluster ? 'a master failing over' : 'a Redis restart'}: every event delivered once, to consumers and tails`, async () => {
    // A Redis of its own, to kill: one node, or a cluster whose master of the order's partition dies.
    const server = onCluster ? await RedisClusterProcess.start() : await RedisServerProcess.start();
    cleanups.push(() => server.destroy());
    const target: RedisTarget =
      server instanceof RedisClusterProcess ? server.target : { mode: 'single', url: server.url };
    const { bus, keyOf, redis, lines } = makeBus({ redis: target, blockMs: 200, publishReplicas: onCluster ? 1 : 0 });
    redis.on('error', () => undefined);
    const consumed: number[] = [];
    const tailed: number[] = [];
    await bus.consume('orders', 'kitchen', async (event) => void consumed.push(versionOf(event)));
    await bus.tail('orders', (event) => void tailed.push(versionOf(event)));
    const orderId = randomUUID();
    await publishVersions(bus, orderId, range(1, 5));
    await until(() => consumed.length >= 5 && tailed.length >= 5, 'the first events');
    await until(
      async () => ((await redis.xpending(keyOf(orderId), 'kitchen')) as [number])[0] === 0,
      'acknowledgements',
    );

    if (server instanceof RedisClusterProcess) {
      const master = await server.masterOf(keyOf(orderId));
      await server.kill(master);
      await until(async () => (await server.masterOf(keyOf(orderId))) !== master, 'the failover', 30_000);
      // Back as the new master's replica, so publishes are confirmed again.
      await server.restart(master);
      await server.waitUntilHealthy();
    } else {
      await server.kill();
      await server.start();
    }
    for (const version of range(6, 10)) {
      // Publishing fails fast while the bus reconnects; a caller (the relay) retries.
      await until(
        () =>
          bus.publish('orders', statusChanged(orderId, version)).then(
            () => true,
            () => false,
          ),
        `publishing ${version}`,
        30_000,
      );
    }
    await until(() => consumed.length >= 10 && tailed.length >= 10, 'the events after the restart', 30_000);
    await bus.publish('orders', statusChanged(orderId, 11));
    await until(() => consumed.includes(11) && tailed.includes(11), 'the sentinel');
    expect(consumed).toEqual(range(1, 11));
    expect(tailed).toEqual(range(1, 11));
    expect(slotErrors(lines)).toEqual([]);
    if (!onCluster) {
      // The outage was real: every connection saw it and came back.
      const lost = lines
        .filter((line) => line.msg === 'Redis connection lost; reconnecting')
        .map((line) => line.connection);
      expect(lost).toEqual(
        expect.arrayContaining(
          [/consumer:orders:kitchen:\d$/, /tail:orders:\d$/, /publisher$/].map((pattern) =>
            expect.stringMatching(pattern),
          ),
        ),
      );
    }
  }, 120_000);
});
