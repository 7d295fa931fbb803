import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import type { DomainEvent } from './events.js';
import { InProcessEventBus } from './in-process.js';
import { RedisEventBus, type DeadLetter } from './redis-event-bus.js';
import {
  captureLogger,
  clientNames,
  deleteKeys,
  REDIS_URL,
  RedisServerProcess,
  statusChanged,
  uniquePrefix,
  until,
  versionOf,
  type LogLine,
} from './test-support.js';
import type { EventBus } from './types.js';

interface Kit {
  bus: EventBus;
  deadLetters(): Promise<DeadLetter[]>;
  errors(): LogLine[];
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
        redis: { mode: 'single', url: REDIS_URL },
        logger,
        keyPrefix: `${prefix}:`,
        claimIdleMs: 1_000,
        retryBackoffMs: 20,
      });
      cleanups.push(async () => {
        await bus.close();
        await deleteKeys(prefix);
      });
      return { bus, deadLetters: () => bus.deadLetters('orders'), errors };
    },
  },
  {
    backend: 'in-process',
    make(): Kit {
      const { logger, errors } = captureLogger();
      const bus = new InProcessEventBus(logger, { retryBackoffMs: 20 });
      cleanups.push(() => bus.close());
      return { bus, deadLetters: () => bus.deadLetters('orders'), errors };
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
    const { bus } = make();
    const members: number[][] = [[], []];
    for (const handled of members) {
      await bus.consume('orders', 'kitchen', async (event) => {
        await new Promise((resolve) => setTimeout(resolve, 10));
        handled.push(versionOf(event));
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
    // Each member handles its share in stream order.
    for (const handled of members) expect(handled).toEqual([...handled].sort((a, b) => a - b));
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
    const bogus = { id: randomUUID(), type: 'order.placed', version: 1 } as unknown as DomainEvent;
    await bus.publish('orders', bogus);
    await publishVersions(bus, randomUUID(), [1]);
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
  function makeBus(options: { url?: string; blockMs?: number } = {}) {
    const prefix = uniquePrefix();
    const captured = captureLogger();
    const bus = new RedisEventBus({
      redis: { mode: 'single', url: options.url ?? REDIS_URL },
      logger: captured.logger,
      keyPrefix: `${prefix}:`,
      claimIdleMs: 1_000,
      retryBackoffMs: 20,
      blockMs: options.blockMs,
    });
    const redis = new Redis(options.url ?? REDIS_URL);
    redis.on('error', () => undefined); // the restart test kills its server under it
    cleanups.push(async () => {
      await bus.close();
      redis.disconnect();
      if (!options.url) await deleteKeys(prefix);
    });
    return { bus, redis, prefix, key: bus.streamKey('orders'), ...captured };
  }

  it('uses the keys it documents', () => {
    const bus = new RedisEventBus({ redis: { mode: 'single', url: REDIS_URL }, logger: captureLogger().logger });
    cleanups.push(() => bus.close());
    expect(bus.streamKey('orders')).toBe('food:events:orders');
    expect(bus.deadLetterKey('payments')).toBe('food:events:payments:dead');
  });

  it('takes over the entries of a member that died before acknowledging them', async () => {
    const { bus, redis, key } = makeBus();
    await redis.xgroup('CREATE', key, 'kitchen', '0', 'MKSTREAM');
    await publishVersions(bus, randomUUID(), [1, 2, 3]);
    // A member reads the entries and dies: they stay pending under its name.
    await redis.xreadgroup('GROUP', 'kitchen', 'dead-member', 'COUNT', 10, 'STREAMS', key, '>');
    const seen: number[] = [];
    await bus.consume('orders', 'kitchen', async (event) => void seen.push(versionOf(event)));
    await until(() => seen.length >= 3, 'the takeover');
    expect(seen).toEqual([1, 2, 3]);
    await until(async () => ((await redis.xpending(key, 'kitchen')) as [number])[0] === 0, 'every entry acknowledged');
  });

  it('dead-letters an entry that was delivered more than maxAttempts times without running it again', async () => {
    const { bus, redis, key } = makeBus();
    await redis.xgroup('CREATE', key, 'kitchen', '0', 'MKSTREAM');
    const [crasher] = await publishVersions(bus, randomUUID(), [1, 2]);
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
    const { bus, redis, key } = makeBus();
    const seen: number[] = [];
    await bus.consume('orders', 'kitchen', async (event) => void seen.push(versionOf(event)));
    await redis.xadd(key, '*', 'event', '{not json');
    await redis.xadd(key, '*', 'something', 'else');
    await publishVersions(bus, randomUUID(), [1]);
    await until(() => seen.length >= 1, 'the valid event');
    const dead = await bus.deadLetters('orders');
    expect(dead.map((letter) => letter.raw)).toEqual(['["something","else"]', '{not json']);
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
    await until(async () => (await clientNames(prefix)).length === 4, 'publisher, two consumers and a tail');
    const started = Date.now();
    await bus.close();
    expect(Date.now() - started).toBeLessThan(5_000);
    await until(async () => (await clientNames(prefix)).length === 0, 'every connection to close');
  });

  it('survives a Redis restart: every event delivered once, to consumers and tails', async () => {
    const server = await RedisServerProcess.start();
    cleanups.push(() => server.destroy());
    const { bus, key, redis, lines } = makeBus({ url: server.url, blockMs: 200 });
    const consumed: number[] = [];
    const tailed: number[] = [];
    await bus.consume('orders', 'kitchen', async (event) => void consumed.push(versionOf(event)));
    await bus.tail('orders', (event) => void tailed.push(versionOf(event)));
    const orderId = randomUUID();
    await publishVersions(bus, orderId, range(1, 5));
    await until(() => consumed.length >= 5 && tailed.length >= 5, 'the first events');
    await until(async () => ((await redis.xpending(key, 'kitchen')) as [number])[0] === 0, 'acknowledgements');

    await server.kill();
    await server.start();
    for (const version of range(6, 10)) {
      // Publishing fails fast while the bus reconnects; a caller (the relay) retries.
      await until(
        () =>
          bus.publish('orders', statusChanged(orderId, version)).then(
            () => true,
            () => false,
          ),
        `publishing ${version}`,
      );
    }
    await until(() => consumed.length >= 10 && tailed.length >= 10, 'the events after the restart');
    await bus.publish('orders', statusChanged(orderId, 11));
    await until(() => consumed.includes(11) && tailed.includes(11), 'the sentinel');
    expect(consumed).toEqual(range(1, 11));
    expect(tailed).toEqual(range(1, 11));
    // The outage was real: every connection saw it and came back.
    const lost = lines
      .filter((line) => line.msg === 'Redis connection lost; reconnecting')
      .map((line) => line.connection);
    expect(lost).toEqual(
      expect.arrayContaining(
        [/consumer:orders:kitchen$/, /tail:orders$/, /publisher$/].map((pattern) => expect.stringMatching(pattern)),
      ),
    );
  });
});
