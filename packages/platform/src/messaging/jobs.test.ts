import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Cluster } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { connectRedis } from '../redis.js';
import { createMessaging } from './messaging.js';
import {
  captureLogger,
  clientNames,
  clientsNamed,
  deleteKeys,
  onCluster,
  slotErrors,
  TEST_REDIS,
  uniquePrefix,
  until,
  type LogLine,
} from './test-support.js';
import type { Messaging } from './types.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const backends = [
  { backend: 'redis', redis: TEST_REDIS },
  { backend: 'in-process', redis: undefined },
] as const;

describe.each(backends)('jobs ($backend)', ({ redis }) => {
  function make(): { messaging: Messaging; errors: () => LogLine[] } {
    const prefix = uniquePrefix();
    const { logger, errors } = captureLogger();
    const messaging = createMessaging({
      redis,
      logger,
      keyPrefix: prefix,
    });
    cleanups.push(async () => {
      await messaging.close();
      if (redis) await deleteKeys(prefix);
    });
    return { messaging, errors };
  }

  it('retries a failing job with exponential backoff until it succeeds', async () => {
    const { messaging } = make();
    const queue = messaging.queue('work');
    const tries: { at: number; attemptsMade: number }[] = [];
    let done = false;
    messaging.work('work', {
      flaky: async (_data, job) => {
        tries.push({ at: Date.now(), attemptsMade: job.attemptsMade });
        if (tries.length < 3) throw new Error('not yet');
        done = true;
      },
    });
    await queue.add('flaky', { n: 1 }, { attempts: 5, backoffMs: 150 });
    await until(() => done, 'the third try');
    expect(tries.map((t) => t.attemptsMade)).toEqual([0, 1, 2]);
    // Lower bounds only: a retry never comes before its backoff (150 ms, then 300 ms).
    expect(tries[1]!.at - tries[0]!.at).toBeGreaterThanOrEqual(140);
    expect(tries[2]!.at - tries[1]!.at).toBeGreaterThanOrEqual(290);
    expect(await queue.failed()).toEqual([]);
  });

  it('keeps a job that used up its attempts in failed() and logs it at error level', async () => {
    const { messaging, errors } = make();
    const queue = messaging.queue('work');
    let calls = 0;
    messaging.work('work', {
      doomed: async () => {
        calls++;
        throw new Error('never works');
      },
    });
    await queue.add('doomed', { n: 2 }, { attempts: 2, backoffMs: 20, jobId: 'doomed-1' });
    await until(async () => (await queue.failed()).length === 1, 'the job to fail for good');
    expect(calls).toBe(2);
    expect(await queue.failed()).toEqual([
      { id: 'doomed-1', name: 'doomed', data: { n: 2 }, attemptsMade: 2, failedReason: 'never works' },
    ]);
    await until(() => errors().length > 0, 'the error log line');
    expect(errors()).toContainEqual(
      expect.objectContaining({ queue: 'work', job: 'doomed', jobId: 'doomed-1', reason: 'never works' }),
    );
    expect(await queue.depth()).toBe(0);
  });

  it('fails a job whose name has no handler, visibly', async () => {
    const { messaging } = make();
    const queue = messaging.queue('work');
    messaging.work('work', {});
    await queue.add('unknown', {}, { attempts: 1 });
    await until(async () => (await queue.failed()).length === 1, 'the job to fail');
    expect((await queue.failed())[0]!.failedReason).toMatch(/no handler for job "unknown"/);
  });

  it('adds a job with a given id once', async () => {
    const { messaging } = make();
    const queue = messaging.queue('dedupe');
    const runs: unknown[] = [];
    await queue.add('once', { n: 1 }, { jobId: 'same' });
    await queue.add('once', { n: 2 }, { jobId: 'same' });
    expect(await queue.depth()).toBe(1);
    messaging.work('dedupe', {
      once: async (data) => void runs.push(data),
      sentinel: async () => void runs.push('sentinel'),
    });
    await until(() => runs.length >= 1, 'the job');
    // Still remembered once done: a redelivered request schedules nothing more.
    await queue.add('once', { n: 3 }, { jobId: 'same' });
    await queue.add('sentinel', {});
    await until(() => runs.includes('sentinel'), 'the sentinel');
    expect(runs).toEqual([{ n: 1 }, 'sentinel']);
  });

  it('does not run a delayed job before its delay', async () => {
    const { messaging } = make();
    const queue = messaging.queue('later');
    const ran: { label: string; at: number }[] = [];
    messaging.work('later', {
      run: async (data) => void ran.push({ label: (data as { label: string }).label, at: Date.now() }),
    });
    const addedAt = Date.now();
    await queue.add('run', { label: 'delayed' }, { delayMs: 600 });
    await queue.add('run', { label: 'now' });
    await until(() => ran.length >= 2, 'both jobs');
    expect(ran.map((run) => run.label)).toEqual(['now', 'delayed']);
    expect(ran[1]!.at - addedAt).toBeGreaterThanOrEqual(590);
  });

  it('runs an `every` job repeatedly', async () => {
    const { messaging } = make();
    const queue = messaging.queue('sweeps');
    let runs = 0;
    messaging.work('sweeps', { sweep: async () => void runs++ });
    await queue.every('sweep', 100);
    // Calling it again (every replica does at start) replaces the schedule, it does not add one.
    await queue.every('sweep', 100);
    await until(() => runs >= 3, 'three runs');
  });

  it('reports waiting, delayed and running jobs as the depth', async () => {
    const { messaging } = make();
    const queue = messaging.queue('depth');
    await queue.add('job', { n: 1 });
    await queue.add('job', { n: 2 });
    await queue.add('job', { n: 3 }, { delayMs: 60_000 });
    expect(await queue.depth()).toBe(3);
    let release = () => {};
    const blocked = new Promise<void>((resolve) => (release = resolve));
    let started = 0;
    messaging.work('depth', {
      job: async () => {
        started++;
        await blocked;
      },
    });
    await until(() => started === 1, 'the first job to start');
    expect(await queue.depth()).toBe(3);
    release();
    await until(async () => (await queue.depth()) === 1, 'only the delayed job left');
  });

  it('waits for the running job when a worker closes', async () => {
    const { messaging } = make();
    const queue = messaging.queue('work');
    let finished = false;
    let started = false;
    const worker = messaging.work('work', {
      slow: async () => {
        started = true;
        await new Promise((resolve) => setTimeout(resolve, 300));
        finished = true;
      },
    });
    await queue.add('slow', {});
    await until(() => started, 'the job to start');
    await worker.close();
    expect(finished).toBe(true);
  });
});

describe('createMessaging', () => {
  it('without a Redis URL runs in-process, and warns once that it must be the only process', async () => {
    const { logger, lines } = captureLogger();
    const messaging = createMessaging({ logger });
    cleanups.push(() => messaging.close());
    expect(messaging.mode).toBe('in-process');
    messaging.queue('a');
    messaging.queue('b');
    const warnings = lines.filter((line) => line.level === 40);
    expect(warnings.map((line) => line.msg)).toEqual([
      'no REDIS_URL or REDIS_CLUSTER_NODES: events and jobs are in-process stand-ins; run only one process',
    ]);
  });

  it('with a Redis URL uses Redis, and close releases every connection it opened', async () => {
    const prefix = uniquePrefix();
    const { logger } = captureLogger();
    const messaging = createMessaging({ redis: TEST_REDIS, logger, keyPrefix: prefix });
    cleanups.push(() => deleteKeys(prefix));
    expect(messaging.mode).toBe('redis');
    await messaging.bus.consume('orders', 'g', async () => {});
    await messaging.bus.tail('orders', () => {});
    await messaging.queue('q').add('job', {});
    let ran = false;
    messaging.work('q', { job: async () => void (ran = true) });
    await until(() => ran, 'the job');
    expect((await clientNames(prefix)).length).toBeGreaterThanOrEqual(4);
    await messaging.close();
    let open: string[] = [];
    await until(async () => (open = await clientsNamed(prefix)).length === 0, 'every connection to close').catch(
      (error: Error) => {
        throw new Error(`${error.message}; still open:\n${open.join('\n')}`);
      },
    );
  });

  it('keeps each queue’s keys in one hash slot of its own, on one node or a cluster', async () => {
    const prefix = uniquePrefix();
    const { logger, lines } = captureLogger();
    const messaging = createMessaging({ redis: TEST_REDIS, logger, keyPrefix: prefix });
    cleanups.push(async () => {
      await messaging.close();
      await deleteKeys(prefix);
    });
    const names = ['alpha', 'beta', 'gamma', 'delta'];
    const ran = new Set<string>();
    for (const name of names) {
      await messaging.queue(name).add('job', {}, { delayMs: 60_000 });
      await messaging.queue(name).add('job', {});
      await messaging.queue(name).every('tick', 60_000);
      messaging.work(name, { job: async () => void ran.add(name), tick: async () => {} });
    }
    await until(() => ran.size === names.length, 'a job of every queue');
    for (const name of names) expect(await messaging.queue(name).depth()).toBeGreaterThanOrEqual(1);
    const redis = connectRedis(TEST_REDIS, { name: 'test-slots', maxRetriesPerRequest: 1, lazyConnect: true });
    cleanups.push(async () => void redis.disconnect());
    await redis.connect();
    const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
    const keys: string[] = [];
    for (const node of nodes) keys.push(...(await node.scan('0', 'MATCH', `${prefix}:bull:*`, 'COUNT', 10_000))[1]);
    for (const name of names) {
      expect(keys.filter((key) => key.startsWith(`${prefix}:bull:{${name}}:${name}:`)).length).toBeGreaterThan(2);
    }
    expect(keys.every((key) => names.some((name) => key.startsWith(`${prefix}:bull:{${name}}:`)))).toBe(true);
    if (redis instanceof Cluster) {
      const slotOf = async (key: string) => Number(await redis.call('CLUSTER', 'KEYSLOT', key));
      const slots = new Map<string, Set<number>>();
      for (const key of keys) {
        const name = /:bull:\{(\w+)\}/.exec(key)![1]!;
        slots.set(name, (slots.get(name) ?? new Set()).add(await slotOf(key)));
      }
      for (const name of names) expect(slots.get(name)?.size).toBe(1);
      expect(new Set([...slots.values()].map((slot) => [...slot][0])).size).toBe(names.length);
    }
    expect(slotErrors(lines)).toEqual([]);
    expect(onCluster).toBe(redis instanceof Cluster);
  });

  it('runs a job again after its worker died holding it (a stalled job)', async () => {
    const prefix = uniquePrefix();
    const { logger, lines } = captureLogger();
    const messaging = createMessaging({ redis: TEST_REDIS, logger, keyPrefix: prefix, redeliverAfterMs: 1_000 });
    cleanups.push(async () => {
      await messaging.close();
      await deleteKeys(prefix);
    });
    await messaging.queue('stall').add('hang', { n: 1 }, { attempts: 3 });
    const worker = spawn(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(new URL('stalling-worker.fixture.ts', import.meta.url)), prefix],
      {
        env: process.env,
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const exited = once(worker, 'exit');
    cleanups.push(async () => {
      if (worker.exitCode === null && worker.signalCode === null) worker.kill('SIGKILL');
      await exited;
    });
    let output = '';
    worker.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await until(() => output.includes('started'), 'the other process to hold the job', 30_000);
    worker.kill('SIGKILL');
    await exited;
    const runs: unknown[] = [];
    messaging.work('stall', { hang: async (data) => void runs.push(data) });
    await until(() => runs.length >= 1, 'the stalled job to run again', 30_000);
    expect(runs).toEqual([{ n: 1 }]);
    expect(lines).toContainEqual(expect.objectContaining({ queue: 'stall', msg: expect.stringMatching(/stalled/) }));
    expect(slotErrors(lines)).toEqual([]);
  }, 60_000);
});
