import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { freePort } from '@food/platform/testing';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** The deployables a test can run as their own processes, by entry file (as `pnpm dev`/`dev:worker` runs them). */
export const entries = {
  gateway: { dir: 'gateway', file: 'src/main.ts', ready: 'gateway ready' },
  users: { dir: 'subgraphs/users', file: 'src/main.ts', ready: 'users subgraph ready' },
  meals: { dir: 'subgraphs/meals', file: 'src/main.ts', ready: 'meals subgraph ready' },
  orders: { dir: 'subgraphs/orders', file: 'src/main.ts', ready: 'orders subgraph ready' },
  payments: { dir: 'subgraphs/payments', file: 'src/main.ts', ready: 'payments subgraph ready' },
  'users-worker': { dir: 'subgraphs/users', file: 'src/worker-main.ts', ready: 'users worker ready' },
  'meals-worker': { dir: 'subgraphs/meals', file: 'src/worker-main.ts', ready: 'meals worker ready' },
  'orders-worker': { dir: 'subgraphs/orders', file: 'src/worker-main.ts', ready: 'orders worker ready' },
  'payments-worker': { dir: 'subgraphs/payments', file: 'src/worker-main.ts', ready: 'payments worker ready' },
} as const;

export type Entry = keyof typeof entries;

interface LogLine {
  msg?: string;
  url?: string;
  [key: string]: unknown;
}

/**
 * One service as its own Node process, as production runs it: real signals, real crashes (SIGKILL),
 * real restarts. Its JSON log lines are kept for assertions and for the failure message.
 */
export class ServiceProcess {
  readonly lines: LogLine[] = [];
  private output = '';
  private child: ChildProcess | null = null;
  private exit: Promise<number | null> = Promise.resolve(null);

  private constructor(
    readonly entry: Entry,
    private readonly env: Record<string, string>,
  ) {}

  /** Starts the process and resolves once it logged that it is ready (`extraEnv` may set LOG_LEVEL). */
  static async start(
    entry: Entry,
    env: Record<string, string>,
    extraEnv: Record<string, string> = {},
  ): Promise<ServiceProcess> {
    // A worker's operations port is fixed by default: tests that run at once each need their own.
    const workerPort = entry.endsWith('-worker')
      ? `${entry.slice(0, -'-worker'.length).toUpperCase()}_WORKER_PORT`
      : null;
    const own = workerPort && !env[workerPort] ? { [workerPort]: String(await freePort()) } : {};
    const service = new ServiceProcess(entry, { ...env, ...own });
    await service.start(extraEnv);
    return service;
  }

  /** The `url` its ready line carried (a gateway's or subgraph's, with the port it picked). */
  get url(): string {
    const ready = this.lines.findLast((line) => line.msg === entries[this.entry].ready);
    if (!ready?.url) throw new Error(`${this.entry} logged no URL`);
    return ready.url;
  }

  /** Where its /healthz, /readyz and /metrics are: a server's own root, or a worker's operations port. */
  get operationsUrl(): string {
    const listening = this.lines.findLast((line) => line.msg?.endsWith('operations endpoints listening'));
    return listening?.url ?? new URL('/', this.url).href.replace(/\/$/, '');
  }

  /** One series of its /metrics, summed over the labels not given. */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    const text = await (await fetch(`${this.operationsUrl}/metrics`)).text();
    return text
      .split('\n')
      .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
      .filter((line) => Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`)))
      .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
  }

  async start(extraEnv: Record<string, string> = {}): Promise<void> {
    const { dir, file, ready } = entries[this.entry];
    const readyBefore = this.readyCount();
    const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=source', file], {
      cwd: `${repoRoot}${dir}`,
      // At info, so the ready line (and any error) shows whatever level the test's own services use.
      env: { PATH: process.env.PATH ?? '', ...this.env, LOG_LEVEL: 'info', ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    let partial = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      partial += chunk.toString();
      const complete = partial.split('\n');
      partial = complete.pop() ?? '';
      for (const line of complete) {
        this.output += `${line}\n`;
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          // not a log line
        }
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.exit = once(child, 'exit').then(([code]) => code as number | null);
    let exited = false;
    void this.exit.then(() => (exited = true));
    const deadline = Date.now() + 60_000;
    while (this.readyCount() === readyBefore) {
      if (exited) throw new Error(`${this.entry} exited before "${ready}":\n${this.output}`);
      if (Date.now() > deadline) {
        await this.kill(); // never leave a process behind the test run
        throw new Error(`${this.entry} never logged "${ready}":\n${this.output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** A crash: no shutdown hooks run, nothing is flushed or acknowledged. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  /** A graceful stop; resolves with the exit code. */
  async stop(): Promise<number | null> {
    return this.signal('SIGTERM');
  }

  get logs(): string {
    return this.output;
  }

  /** Whether the process started last is still running (it has not exited or been killed). */
  get running(): boolean {
    const child = this.child;
    return child !== null && child.exitCode === null && child.signalCode === null;
  }

  private async signal(signal: NodeJS.Signals): Promise<number | null> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    this.child = null;
    child.kill(signal);
    return this.exit;
  }

  private readyCount(): number {
    return this.lines.filter((line) => line.msg === entries[this.entry].ready).length;
  }
}
