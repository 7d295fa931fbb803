import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { RedisTarget } from '../redis.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether something may listen on `port` now. */
async function canListen(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A port for a cluster node. A node also listens on its port + 10000 (the cluster bus), so both must
 * be free; and both are taken below the ephemeral range (32768 and up on Linux), which every
 * outgoing connection draws from: a free port there can be a client's a moment later, and a node that
 * cannot bind its bus port exits (seen in CI with many clusters and connections at once).
 */
async function freeNodePort(taken: ReadonlySet<number>): Promise<number> {
  for (;;) {
    const port = 15_000 + Math.floor(Math.random() * 7_700);
    if (taken.has(port) || taken.has(port + 10_000)) continue;
    if ((await canListen(port)) && (await canListen(port + 10_000))) return port;
  }
}

/** A node's redis-server exited while starting (its port, or its bus port, was taken). */
class NodeExited extends Error {
  constructor(port: number) {
    super(`redis-server on port ${port} exited`);
  }
}

/** One node of a test cluster: its port and, while it runs, its process. */
interface ClusterNode {
  port: number;
  dir: string;
  child: ChildProcess | null;
}

/**
 * A Redis Cluster of our own from the machine's `redis-server`: 3 masters and 3 replicas on free
 * ports, joined with `redis-cli --cluster create --cluster-replicas 1`, removed by `destroy()`. Nodes
 * can be killed (SIGKILL: its replica takes over after `nodeTimeoutMs`) and started again on the
 * same port and data, where they rejoin (as a replica of whoever took over).
 */
export class RedisClusterProcess {
  private constructor(
    private readonly nodes: ClusterNode[],
    private readonly dir: string,
    readonly nodeTimeoutMs: number,
    private readonly appendOnly: boolean,
  ) {}

  /**
   * `appendOnly` (default true): every node keeps an AOF fsync'd on every write, so a killed node
   * restarts with what it acknowledged; false: no persistence, as a bench compares with a node
   * that has none.
   */
  static async start(
    options: { masters?: number; nodeTimeoutMs?: number; appendOnly?: boolean } = {},
  ): Promise<RedisClusterProcess> {
    const masters = options.masters ?? 3;
    // Another test file may take a port between the check and the node's bind: then new ports.
    for (let attempt = 1; ; attempt++) {
      const dir = await mkdtemp(join(tmpdir(), 'redis-cluster-'));
      const nodes: ClusterNode[] = [];
      const taken = new Set<number>();
      for (let i = 0; i < masters * 2; i++) {
        const port = await freeNodePort(taken);
        taken.add(port).add(port + 10_000);
        nodes.push({ port, dir: join(dir, String(port)), child: null });
      }
      const cluster = new RedisClusterProcess(nodes, dir, options.nodeTimeoutMs ?? 2_000, options.appendOnly ?? true);
      try {
        await Promise.all(nodes.map((node) => cluster.startNode(node)));
      } catch (error) {
        await cluster.destroy();
        if (attempt < 3 && error instanceof NodeExited) continue;
        throw error;
      }
      try {
        await cluster.create();
        await cluster.waitUntilHealthy();
      } catch (error) {
        await cluster.destroy();
        throw error;
      }
      return cluster;
    }
  }

  /** The seed list, as REDIS_CLUSTER_NODES takes it. */
  get seeds(): string {
    return this.nodes.map((node) => `127.0.0.1:${node.port}`).join(',');
  }

  get target(): RedisTarget {
    return { mode: 'cluster', nodes: this.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })) };
  }

  get ports(): number[] {
    return this.nodes.map((node) => node.port);
  }

  /** The port of the master that serves `key`'s slot now. */
  async masterOf(key: string): Promise<number> {
    return this.withAnyNode(async (redis) => {
      const slot = Number(await redis.call('CLUSTER', 'KEYSLOT', key));
      const ranges = (await redis.call('CLUSTER', 'SLOTS')) as [number, number, [string, number, string]][];
      const range = ranges.find(([first, last]) => slot >= first && slot <= last);
      if (!range) throw new Error(`no master serves slot ${slot}`);
      return Number(range[2][1]);
    });
  }

  /** The ports of the nodes that are masters now (of running nodes). */
  async masters(): Promise<number[]> {
    return this.withAnyNode(async (redis) => {
      const ranges = (await redis.call('CLUSTER', 'SLOTS')) as [number, number, [string, number, string]][];
      return [...new Set(ranges.map((range) => Number(range[2][1])))];
    });
  }

  /** SIGKILL one node: no shutdown, no final save. */
  async kill(port: number): Promise<void> {
    const node = this.node(port);
    const child = node.child;
    if (!child) return;
    node.child = null;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }

  /** The ports of the replicas connected to the master on `port`, as it reports them. */
  async replicasOf(port: number): Promise<number[]> {
    const redis = probe(port);
    try {
      const info = await redis.info('replication');
      return [...info.matchAll(/^slave\d+:.*\bport=(\d+)/gm)].map((match) => Number(match[1]));
    } finally {
      redis.disconnect();
    }
  }

  /** SIGSTOP one node: it stays connected but answers nothing (a stalled replica acknowledges no write). */
  pause(port: number): void {
    this.node(port).child?.kill('SIGSTOP');
  }

  resume(port: number): void {
    this.node(port).child?.kill('SIGCONT');
  }

  /** Starts a killed node again on its port and data (`nodes.conf`): it rejoins the cluster. */
  async restart(port: number): Promise<void> {
    await this.startNode(this.node(port));
  }

  /** Until every slot is served by a reachable master and every running node agrees the cluster is ok. */
  async waitUntilHealthy(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await this.healthy()) return;
      if (Date.now() > deadline) throw new Error('the test Redis Cluster did not become healthy');
      await sleep(100);
    }
  }

  async destroy(): Promise<void> {
    await Promise.all(this.nodes.map((node) => this.kill(node.port)));
    await rm(this.dir, { recursive: true, force: true });
  }

  private async healthy(): Promise<boolean> {
    const running = this.nodes.filter((node) => node.child);
    for (const node of running) {
      const redis = probe(node.port);
      try {
        const info = String(await redis.call('CLUSTER', 'INFO'));
        if (!info.includes('cluster_state:ok') || !info.includes('cluster_slots_ok:16384')) return false;
        // A master of a range must be one that runs (a killed master is "ok" to others until it is failed over).
        const ranges = (await redis.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
        if (ranges.some((range) => !this.nodes.some((n) => n.port === Number(range[2][1]) && n.child))) return false;
        // A replica counts once it has synced with its master: only then can it take over without loss.
        const replication = String(await redis.call('INFO', 'replication'));
        if (replication.includes('role:slave') && !replication.includes('master_link_status:up')) return false;
      } catch {
        return false;
      } finally {
        redis.disconnect();
      }
    }
    return running.length > 0;
  }

  private async create(): Promise<void> {
    const child = spawn(
      'redis-cli',
      ['--cluster', 'create', ...this.nodes.map((node) => `127.0.0.1:${node.port}`), '--cluster-replicas', '1'],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stdin.end('yes\n');
    const [code] = (await once(child, 'exit')) as [number | null];
    if (code !== 0 || !output.includes('All 16384 slots covered')) {
      throw new Error(`redis-cli --cluster create failed (${code}):\n${output}`);
    }
  }

  private async startNode(node: ClusterNode): Promise<void> {
    await mkdir(node.dir, { recursive: true });
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(node.port),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(node.dir, 'nodes.conf'),
        '--cluster-node-timeout',
        String(this.nodeTimeoutMs),
        // A replica may take over however long it was cut off from its master (the default refuses one
        // whose link was down for long, which leaves slots unserved: not what a test of failover wants).
        '--cluster-replica-validity-factor',
        '0',
        // A replica's first sync starts at once (the default waits 5 s for more replicas to join it).
        '--repl-diskless-sync-delay',
        '0',
        // The AOF, fsync'd on every write: a restarted node has what it acknowledged.
        ...(this.appendOnly ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
        '--save',
        '',
        '--dir',
        node.dir,
      ],
      { stdio: 'ignore' },
    );
    node.child = child;
    child.once('exit', () => {
      if (node.child === child) node.child = null;
    });
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (!node.child) throw new NodeExited(node.port);
      const redis = probe(node.port);
      try {
        if ((await redis.ping()) === 'PONG') return;
      } catch {
        // not up yet
      } finally {
        redis.disconnect();
      }
      if (Date.now() > deadline) throw new Error(`redis-server on port ${node.port} never became ready`);
      await sleep(20);
    }
  }

  private async withAnyNode<T>(use: (redis: Redis) => Promise<T>): Promise<T> {
    let lastError: unknown;
    for (const node of this.nodes.filter((n) => n.child)) {
      const redis = probe(node.port);
      try {
        return await use(redis);
      } catch (error) {
        lastError = error;
      } finally {
        redis.disconnect();
      }
    }
    throw lastError ?? new Error('no node of the test cluster is running');
  }

  private node(port: number): ClusterNode {
    const node = this.nodes.find((n) => n.port === port);
    if (!node) throw new Error(`port ${port} is not a node of this cluster`);
    return node;
  }
}

function probe(port: number): Redis {
  const redis = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: false,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    connectTimeout: 1_000,
  });
  redis.on('error', () => undefined);
  return redis;
}
