import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { connectRedis, type RedisTarget } from '../redis.js';

/**
 * The Redis the tests use: the run's own cluster when the suite runs in cluster mode
 * (`TEST_REDIS=cluster`: the global setup starts it and sets REDIS_CLUSTER_NODES), else REDIS_URL
 * or the machine's Redis.
 */
export function testRedisTarget(): RedisTarget {
  const seeds = process.env.REDIS_CLUSTER_NODES;
  if (seeds) {
    return {
      mode: 'cluster',
      nodes: seeds.split(',').map((seed) => {
        const [host, port] = seed.trim().split(':');
        return { host: host!, port: Number(port ?? 6379) };
      }),
    };
  }
  return { mode: 'single', url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' };
}

/** The environment a spawned process needs to reach `target` (REDIS_URL or REDIS_CLUSTER_NODES). */
export function redisEnvOf(target: RedisTarget): Record<string, string> {
  return target.mode === 'single'
    ? { REDIS_URL: target.url }
    : { REDIS_CLUSTER_NODES: target.nodes.map((node) => `${node.host}:${node.port}`).join(',') };
}

/** Deletes every key under `prefix`, on every master of a cluster (never FLUSHALL: other test files share the Redis). */
export async function deleteKeys(prefix: string, target: RedisTarget | string = testRedisTarget()): Promise<void> {
  const redis = connectRedis(typeof target === 'string' ? { mode: 'single', url: target } : target, {
    name: 'test-cleanup',
    lazyConnect: true,
    maxRetriesPerRequest: 1,
  });
  try {
    await redis.connect();
    const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
        cursor = next;
        // One key per command: on a cluster, keys of different slots cannot go in one UNLINK.
        await Promise.all(keys.map((key) => node.unlink(key)));
      } while (cursor !== '0');
    }
  } finally {
    redis.disconnect();
  }
}

/** A local TCP port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** A redis-server of our own (AOF, fsync always), to kill and restart on the same port and data. */
export class RedisServerProcess {
  private child: ChildProcess | null = null;

  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  static async start(): Promise<RedisServerProcess> {
    const server = new RedisServerProcess(await freePort(), await mkdtemp(join(tmpdir(), 'redis-test-')));
    await server.start();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--dir',
        this.dir,
      ],
      { stdio: 'ignore' },
    );
    this.child = child;
    child.once('exit', () => {
      if (this.child === child) this.child = null;
    });
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (await this.ready()) return;
      if (Date.now() > deadline) throw new Error(`redis-server on port ${this.port} never became ready`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  private async ready(): Promise<boolean> {
    if (!this.child) throw new Error(`redis-server on port ${this.port} exited`);
    const probe = new Redis(this.url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => undefined);
    try {
      await probe.connect(); // resolves once the server is ready (the AOF loaded)
      return (await probe.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      probe.disconnect();
    }
  }

  /** SIGSTOP: it keeps its connections but answers nothing (a stalled replica acknowledges no write). */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** SIGKILL: no shutdown, no final save; only what the AOF already has survives. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }

  async destroy(): Promise<void> {
    await this.kill();
    await rm(this.dir, { recursive: true, force: true });
  }
}
