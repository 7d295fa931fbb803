import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { once } from 'node:events';
import { openSync, closeSync, readFileSync, readdirSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';

/** Every child this run started, so that any exit (Ctrl-C, failure) stops them all, by pid. */
const running = new Set<Managed>();
/** Set once the run is stopping: nothing new may start behind the clean-up's back. */
let closing = false;

export interface StartOptions {
  name: string;
  command: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  /** Where stdout/stderr go (a file, so a chatty server costs this process nothing). */
  logDir: string;
  /** Open files the process may need; its soft limit is raised to this when lower (see fdLimit). */
  openFiles?: number;
  ipc?: boolean;
}

export class Managed {
  readonly exited: Promise<number | null>;
  private exitCode: number | null | undefined;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly logFile: string,
  ) {
    this.exited = once(child, 'exit').then(([code]) => (this.exitCode = code as number | null));
    running.add(this);
    void this.exited.then(() => running.delete(this));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return this.exitCode === undefined;
  }

  logs(tail = 4000): string {
    try {
      return readFileSync(this.logFile, 'utf8').slice(-tail);
    } catch {
      return '';
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`, to its process group (its own: it was started detached). */
  async stop(graceMs = 5_000): Promise<void> {
    if (!this.alive) return;
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.alive && this.signal('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  private signal(signal: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, signal);
    } catch {
      this.child.kill(signal);
    }
  }
}

export function start(options: StartOptions): Managed {
  if (closing) throw new Error(`not starting ${options.name}: the bench is stopping`);
  mkdirSync(options.logDir, { recursive: true });
  const logFile = `${options.logDir}/${options.name}.log`;
  const fd = openSync(logFile, 'a');
  const stdio: StdioOptions = options.ipc ? ['ignore', fd, fd, 'ipc'] : ['ignore', fd, fd];
  const { command, args } = withOpenFiles(options.command, options.args, options.openFiles);
  // Own process group: Ctrl-C reaches only the bench, which then stops each child in order.
  const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio, detached: true });
  closeSync(fd);
  return new Managed(options.name, child, logFile);
}

/** Stops every child still running, and lets new ones start (between the passes of BENCH_REDIS=both). */
export async function stopRunning(): Promise<void> {
  while (running.size > 0) await Promise.all([...running].map((managed) => managed.stop(3_000)));
}

/** Refuses new children, then stops every child still running. */
export async function stopAll(): Promise<void> {
  closing = true;
  while (running.size > 0) await Promise.all([...running].map((managed) => managed.stop(3_000)));
}

/** Polls until `probe` resolves true; fails with the process's log when it exits or time runs out. */
/** A probe for waitUntil: the URL answers 2xx within 2 s. */
export const answersOk = (url: string, init?: RequestInit) => async () =>
  (await fetch(url, { ...init, signal: AbortSignal.timeout(2_000) })).ok;

/** A GraphQL endpoint is up once `{ __typename }` answers 200 (the schema is loaded). */
export const graphqlReady = (url: string, headers: Record<string, string> = {}) =>
  answersOk(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: '{"query":"{ __typename }"}',
  });

export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  managed?: Managed,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (managed && !managed.alive) throw new Error(`${what}: the process exited\n${managed.logs()}`);
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs} ms\n${managed?.logs() ?? ''}`);
    await sleep(100);
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

// --- open files -----------------------------------------------------------------------------

export interface FdLimit {
  soft: number;
  hard: number;
}

export function fdLimit(): FdLimit {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const [soft, hard] = (line ?? '').split(/\s{2,}/).slice(1, 3);
  const parse = (value: string | undefined) => (value === 'unlimited' ? Infinity : Number(value ?? 1024));
  return { soft: parse(soft), hard: parse(hard) };
}

/** Limits this run raised for its children (reported). */
export const raisedLimits: { name: string; from: number; to: number }[] = [];

function withOpenFiles(command: string, args: string[], needed?: number): { command: string; args: string[] } {
  const limit = fdLimit();
  if (!needed || limit.soft >= needed) return { command, args };
  if (limit.hard < needed) {
    throw new Error(`needs ${needed} open files but the hard limit is ${limit.hard}: raise it (ulimit -Hn) first`);
  }
  const to = Math.min(limit.hard, Math.max(needed, 65_536));
  raisedLimits.push({ name: command, from: limit.soft, to });
  return { command: '/bin/sh', args: ['-c', `ulimit -n ${to} && exec "$@"`, 'sh', command, ...args] };
}

// --- CPU and memory from /proc ----------------------------------------------------------------

export const CLOCK_TICKS = 100;

/** utime + stime of one process, in clock ticks; 0 once it is gone. */
export function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

export function rssBytes(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Open file descriptors of a process (sockets included); 0 once it is gone. */
export function openFiles(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

/** Pids of processes whose command name is `comm` (postgres backends, redis-server). */
export function pidsNamed(comm: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === comm) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

export type CpuGroups = Record<string, () => number[]>;

/** Busy clock ticks of the whole machine (all cores), from /proc/stat. */
function machineBusyTicks(): number {
  const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const values = fields.map(Number);
  // user nice system idle iowait irq softirq steal: busy is everything but idle and iowait.
  return values.slice(0, 8).reduce((sum, value, i) => (i === 3 || i === 4 ? sum : sum + value), 0);
}

/**
 * CPU use of named groups of processes over a window, in % of one core, plus `machine` (all processes)
 * and `other` (the machine minus the groups: anything else running here disturbs the measurement).
 */
export class CpuWindow {
  private readonly startedAt = performance.now();
  private readonly before: Map<number, number>;
  private readonly machineBefore = machineBusyTicks();

  constructor(private readonly groups: CpuGroups) {
    this.before = new Map(this.allPids().map((pid) => [pid, cpuTicks(pid)]));
  }

  finish(): Record<string, number> {
    const seconds = (performance.now() - this.startedAt) / 1_000;
    const percent = (ticks: number) => Math.round((ticks / CLOCK_TICKS / seconds) * 1000) / 10;
    const result: Record<string, number> = {};
    let known = 0;
    for (const [name, pids] of Object.entries(this.groups)) {
      let ticks = 0;
      for (const pid of pids()) ticks += Math.max(0, cpuTicks(pid) - (this.before.get(pid) ?? 0));
      known += ticks;
      result[name] = percent(ticks);
    }
    const machine = machineBusyTicks() - this.machineBefore;
    result.machine = percent(machine);
    result.other = percent(Math.max(0, machine - known));
    return result;
  }

  private allPids(): number[] {
    return Object.values(this.groups).flatMap((pids) => pids());
  }
}

/** Samples a process's RSS every `everyMs`; `stop()` gives the peak seen. */
export function sampleRss(pid: number, everyMs = 200): { stop(): number } {
  let peak = rssBytes(pid);
  const timer = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), everyMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, rssBytes(pid));
    },
  };
}
