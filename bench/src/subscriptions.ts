import { fileURLToPath } from 'node:url';
import { benchDir, type ScenarioName } from './config.js';
import { changeKey, type ReceiptKind } from './live-operations.js';
import { CpuWindow, openFiles, sampleRss, sleep, start, type CpuGroups, type Managed } from './procs.js';
import type {
  ClientCommand,
  ConnectReport,
  CountReport,
  Receipt,
  ReceiptReport,
  Subscriber,
} from './subscriber-client.js';

export interface SubscriptionRun {
  scenario: ScenarioName;
  /** BENCH_REDIS=both's comparison: the pair of passes it ran in (see BenchResults.cluster). */
  round?: number;
  /** Subscribers connected for (asked for, unless the open-files limit allowed fewer: see `asked`). */
  subscribers: number;
  /** What was asked for, when the machine's open-files limit allowed fewer. */
  asked?: number;
  /** What the subscribers subscribe to, in words. */
  subscribedTo: string;
  /** Subscriber client processes (each at most BENCH_SOCKETS_PER_CLIENT connections). */
  clientProcesses: number;
  connected: number;
  connectFailed: number;
  connectSeconds: number;
  /** Subscriptions the gateway counted (gateway_active_subscriptions) once the subscribers were connected. */
  registered: number;
  /** Connections the gateway closed (or that failed) after they had subscribed. */
  dropped: number;
  changes: number;
  changeErrors: number;
  /** Changes per second actually sent. */
  changeRate: number;
  expected: number;
  delivered: number;
  deliveryRatio: number;
  latencyMs: { p50: number; p99: number; max: number };
  /** The highest of each change's own p99 (changes that went to many subscribers only). */
  worstChangeP99Ms?: number;
  memory: {
    rssBefore: number;
    rssAfter: number;
    heapBefore: number;
    heapAfter: number;
    rssPerSubscriber: number;
    heapPerSubscriber: number;
  };
  gatewayCpu: number;
  clientCpu: number;
  cpu: Record<string, number>;
  gatewayPeakRss: number;
  /** The most file descriptors the gateway had open while the subscribers connected. */
  gatewayOpenFiles: number;
  errors: string[];
}

/** One change made by staff through the gateway, and how many subscribers should receive it. */
export interface Change {
  query: string;
  variables: Record<string, unknown>;
  recipients: number;
}

export interface ScenarioSetup {
  scenario: ScenarioName;
  subscribedTo: string;
  asked?: number;
  gatewayUrl: string;
  gateway: Managed;
  staffJwt: string;
  /** The subscription every subscriber sends (with its own variables). */
  query: string;
  receipt: ReceiptKind;
  subscribers: Subscriber[];
  /** Made in this order, `changeRate` per second, once every subscriber is connected and idle. */
  changes: Change[];
  changeRate: number;
  /** How long the connected subscribers stay idle before the gateway's memory is read. */
  idleSeconds: number;
  /** Subscribes in flight at once, over all client processes. */
  connectConcurrency: number;
  /** Connections one subscriber client process holds at most. */
  socketsPerClient: number;
  /** Subscribers sharing one connection (consecutive ones); default 1. */
  perConnection?: number;
  cpuGroups: (clientPids: number[]) => CpuGroups;
  logDir: string;
  log: (line: string) => void;
}

/** The gateway's own /metrics, one series summed. */
async function metric(gatewayUrl: string, name: string): Promise<number> {
  const text = await (await fetch(new URL('/metrics', gatewayUrl))).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name} `) || line.startsWith(`${name}{`))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

/**
 * What the gateway holds: a full collection first (SIGUSR2, see gc-on-signal.mjs), then the lowest
 * of six readings over 2.5 s.
 */
async function memory(gatewayUrl: string, gateway: Managed): Promise<{ rss: number; heap: number }> {
  process.kill(gateway.pid, 'SIGUSR2');
  await sleep(1_000);
  let rss = Infinity;
  let heap = Infinity;
  for (let i = 0; i < 6; i++) {
    if (i > 0) await sleep(500);
    rss = Math.min(rss, await metric(gatewayUrl, 'process_resident_memory_bytes'));
    heap = Math.min(heap, await metric(gatewayUrl, 'nodejs_heap_size_used_bytes'));
  }
  return { rss, heap };
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

/** A subscriber client process and its IPC: a command, then the reply of the type asked for. */
class SubscriberClient {
  private readonly replies: { type: string }[] = [];
  private readonly waiters: (() => void)[] = [];

  constructor(readonly managed: Managed) {
    managed.child.on('message', (message: { type: string }) => {
      this.replies.push(message);
      this.waiters.splice(0).forEach((wake) => wake());
    });
  }

  async ask<T>(command: ClientCommand, reply: string, timeoutMs: number): Promise<T> {
    this.managed.child.send(command);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.replies.findIndex((message) => message.type === reply);
      if (index >= 0) return this.replies.splice(index, 1)[0] as T;
      if (!this.managed.alive) throw new Error(`subscriber client exited\n${this.managed.logs()}`);
      if (Date.now() > deadline) throw new Error(`subscriber client: no "${reply}" within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }
}

/**
 * One scenario at one size on a running gateway: connect every subscriber (client processes of their
 * own), let them idle, read the gateway's memory, make the changes, and match each receipt to its change.
 */
export async function runScenario(setup: ScenarioSetup): Promise<SubscriptionRun> {
  const { gatewayUrl, log } = setup;
  const n = setup.subscribers.length;
  const activeBefore = await metric(gatewayUrl, 'gateway_active_subscriptions');
  const before = await memory(gatewayUrl, setup.gateway);

  const perConnection = setup.perConnection ?? 1;
  const processes = Math.max(1, Math.ceil(n / perConnection / setup.socketsPerClient));
  // Whole connections to each client process.
  const per = Math.ceil(n / processes / perConnection) * perConnection;
  const clients = Array.from({ length: processes }, (_, k) => {
    const name = `subscribers-${setup.scenario}-${n}${processes > 1 ? `-${k + 1}` : ''}`;
    const managed = start({
      name,
      command: process.execPath,
      args: ['--import', 'tsx', fileURLToPath(new URL('./subscriber-client.ts', import.meta.url))],
      cwd: benchDir,
      env: { PATH: process.env.PATH ?? '' },
      logDir: setup.logDir,
      ipc: true,
      openFiles: Math.ceil(per / perConnection) + 256,
    });
    return new SubscriberClient(managed);
  });
  const clientPids = clients.map((client) => client.managed.pid);
  const peak = sampleRss(setup.gateway.pid, 250);
  // Sockets (one per subscriber) and the connections to the subgraphs while current states resolve.
  let gatewayOpenFiles = openFiles(setup.gateway.pid);
  const files = setInterval(() => (gatewayOpenFiles = Math.max(gatewayOpenFiles, openFiles(setup.gateway.pid))), 1_000);
  try {
    log(
      `  ${setup.scenario}: connecting ${n} subscribers (${setup.subscribedTo})` +
        (perConnection > 1 ? ` over ${Math.ceil(n / perConnection)} connections` : '') +
        (processes > 1 ? ` from ${processes} client processes` : ''),
    );
    const reports = await Promise.all(
      clients.map((client, k) =>
        client.ask<ConnectReport>(
          {
            type: 'connect',
            url: gatewayUrl.replace(/^http/, 'ws'),
            query: setup.query,
            receipt: setup.receipt,
            subscribers: setup.subscribers.slice(k * per, (k + 1) * per),
            offset: k * per,
            concurrency: Math.max(1, Math.ceil(setup.connectConcurrency / processes)),
            perConnection,
          },
          'connected',
          300_000 + per * 30,
        ),
      ),
    );
    const connected = {
      ok: reports.reduce((sum, r) => sum + r.ok, 0),
      failed: reports.reduce((sum, r) => sum + r.failed, 0),
      ms: Math.max(...reports.map((r) => r.ms)),
      errors: reports.flatMap((r) => r.errors).slice(0, 10),
    };
    // Every subscription registered at the gateway before anything changes.
    const deadline = Date.now() + 30_000;
    let registered = 0;
    for (;;) {
      registered = (await metric(gatewayUrl, 'gateway_active_subscriptions')) - activeBefore;
      if (registered >= connected.ok || Date.now() > deadline) break;
      await sleep(200);
    }
    gatewayOpenFiles = Math.max(gatewayOpenFiles, openFiles(setup.gateway.pid));
    clearInterval(files);
    // Idle, as the goal's subscribers are: the burst of 1,000s of first results (each a query
    // through the gateway) leaves garbage that V8 collects, and gives back, only once it is idle.
    await sleep(setup.idleSeconds * 1_000);
    const after = await memory(gatewayUrl, setup.gateway);
    log(
      `  ${connected.ok}/${n} connected in ${(connected.ms / 1000).toFixed(1)} s, ${registered} registered at the ` +
        `gateway (${gatewayOpenFiles} open files); gateway RSS ${mib(before.rss)} -> ${mib(after.rss)} MiB, ` +
        `heap ${mib(before.heap)} -> ${mib(after.heap)} MiB`,
    );

    // The changes, paced; each response's time is the start of its receipts' latency.
    const window = new CpuWindow(setup.cpuGroups(clientPids));
    const responded = new Map<string, { at: number; recipients: number }>();
    const changeErrors: string[] = [];
    const intervalMs = 1_000 / setup.changeRate;
    const changeStart = performance.now();
    const since = performance.timeOrigin + changeStart;
    let inFlight = 0;
    let lastSent = changeStart;
    const sends: Promise<void>[] = [];
    for (let i = 0; i < setup.changes.length; i++) {
      const due = changeStart + i * intervalMs;
      while (performance.now() < due || inFlight >= 64) await sleep(Math.max(1, Math.min(5, due - performance.now())));
      const change = setup.changes[i]!;
      lastSent = performance.now();
      inFlight++;
      sends.push(
        (async () => {
          try {
            const response = await fetch(gatewayUrl, {
              method: 'POST',
              headers: { 'content-type': 'application/json', authorization: `Bearer ${setup.staffJwt}` },
              body: JSON.stringify({ query: change.query, variables: change.variables }),
            });
            const text = await response.text();
            const at = performance.timeOrigin + performance.now();
            const body = JSON.parse(text) as { data?: Record<string, unknown> | null; errors?: unknown };
            const key = body.data ? changeKey(setup.receipt, Object.values(body.data)[0]) : undefined;
            if (!response.ok || body.errors || key === undefined)
              changeErrors.push(`${response.status} ${text.slice(0, 300)}`);
            else responded.set(key, { at, recipients: change.recipients });
          } catch (error) {
            changeErrors.push(String(error));
          } finally {
            inFlight--;
          }
        })(),
      );
    }
    await Promise.all(sends);
    const sendingSeconds = (lastSent - changeStart) / 1_000;
    // Subscribers that never connected count as not delivered.
    const expected = setup.changes.reduce((sum, change) => sum + change.recipients, 0);

    // Deliveries: each subscriber's first receipt of each change (a repeat is not a second delivery).
    // While they arrive only counts cross the IPC (cheap for the clients); every receipt at the end.
    const waitUntil = Date.now() + 30_000;
    let latencies: number[] = [];
    const byChange = new Map<string, number[]>();
    let errors: string[] = [];
    let dropped = 0;
    for (;;) {
      const counts = await Promise.all(
        clients.map((client) => client.ask<CountReport>({ type: 'count', since }, 'count', 60_000)),
      );
      const arrived = counts.reduce((sum, count) => sum + count.receipts, 0);
      if (arrived < expected && Date.now() < waitUntil) {
        await sleep(500);
        continue;
      }
      const reports = await Promise.all(
        clients.map((client) => client.ask<ReceiptReport>({ type: 'report', since }, 'report', 60_000)),
      );
      const seen = new Set<string>();
      latencies = [];
      byChange.clear();
      for (const [subscriber, at, key] of reports.flatMap((report): Receipt[] => report.receipts)) {
        const change = responded.get(key);
        const id = `${subscriber} ${key}`;
        if (!change || seen.has(id)) continue;
        seen.add(id);
        latencies.push(at - change.at);
        const list = byChange.get(key) ?? [];
        list.push(at - change.at);
        byChange.set(key, list);
      }
      errors = reports.flatMap((report) => report.errors);
      dropped = reports.reduce((sum, report) => sum + report.dropped, 0);
      if (latencies.length >= expected || Date.now() > waitUntil) break;
      await sleep(1_000);
    }
    const cpu = window.finish();
    latencies.sort((a, b) => a - b);
    // A change's own p99, where it went to enough subscribers for one to mean something.
    const perChange = [...byChange]
      .filter(([key]) => (responded.get(key)?.recipients ?? 0) >= 100)
      .map(([, list]) =>
        percentile(
          list.sort((a, b) => a - b),
          99,
        ),
      );
    const run: SubscriptionRun = {
      scenario: setup.scenario,
      subscribers: n,
      asked: setup.asked,
      subscribedTo: setup.subscribedTo,
      clientProcesses: processes,
      connected: connected.ok,
      connectFailed: connected.failed,
      connectSeconds: connected.ms / 1_000,
      registered,
      dropped,
      changes: setup.changes.length,
      changeErrors: changeErrors.length,
      changeRate: setup.changes.length > 1 ? (setup.changes.length - 1) / sendingSeconds : setup.changeRate,
      expected,
      delivered: latencies.length,
      deliveryRatio: latencies.length / expected,
      latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) ?? NaN },
      worstChangeP99Ms: perChange.length > 0 ? Math.max(...perChange) : undefined,
      memory: {
        rssBefore: before.rss,
        rssAfter: after.rss,
        heapBefore: before.heap,
        heapAfter: after.heap,
        rssPerSubscriber: (after.rss - before.rss) / Math.max(1, connected.ok),
        heapPerSubscriber: (after.heap - before.heap) / Math.max(1, connected.ok),
      },
      gatewayCpu: cpu.gateway ?? 0,
      clientCpu: cpu.client ?? 0,
      cpu,
      gatewayPeakRss: 0,
      gatewayOpenFiles,
      errors: [...connected.errors, ...errors, ...changeErrors.slice(0, 5)].slice(0, 10),
    };
    log(
      `  delivered ${run.delivered}/${run.expected} (${(run.deliveryRatio * 100).toFixed(2)} %), ` +
        `latency p50 ${run.latencyMs.p50.toFixed(1)} ms, p99 ${run.latencyMs.p99.toFixed(1)} ms, ` +
        `max ${run.latencyMs.max.toFixed(1)} ms` +
        (run.worstChangeP99Ms === undefined ? '' : `, worst change's p99 ${run.worstChangeP99Ms.toFixed(1)} ms`) +
        `; ${(run.memory.rssPerSubscriber / 1024).toFixed(1)} KiB RSS per subscriber; CPU gateway ${run.gatewayCpu}%, ` +
        `subscriber clients ${run.clientCpu}%` +
        (run.errors.length ? `; errors: ${run.errors.slice(0, 3).join('; ')}` : ''),
    );
    run.gatewayPeakRss = peak.stop();
    return run;
  } finally {
    clearInterval(files);
    peak.stop();
    await Promise.all(
      clients.map(async (client) => {
        if (client.managed.alive) await client.ask({ type: 'close' }, 'closed', 60_000).catch(() => undefined);
        await client.managed.stop();
      }),
    );
    // Back to idle before the next run: the gateway has ended every subscription.
    const deadline = Date.now() + 30_000;
    while ((await metric(gatewayUrl, 'gateway_active_subscriptions').catch(() => 0)) > activeBefore) {
      if (Date.now() > deadline) break;
      await sleep(200);
    }
  }
}

const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
