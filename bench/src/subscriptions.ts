import { fileURLToPath } from 'node:url';
import { benchDir } from './config.js';
import { CpuWindow, sampleRss, sleep, start, type CpuGroups, type Managed } from './procs.js';
import type { ClientCommand, ConnectReport, Receipt, Subscriber } from './subscriber-client.js';

export const TRACK = `subscription Track($id: ID!) { orderStatusChanged(orderId: $id) { id status version customer { name } items { quantity meal { name } } payment { status } } }`;
export const FEED = `subscription Feed { orderUpdates { id status version customer { name } items { quantity meal { name } } payment { status } } }`;
const CHANGE = `mutation Change($input: ChangeOrderStatusInput!) { changeOrderStatus(input: $input) { id status version } }`;

export interface SubscriptionRun {
  subscribers: number;
  mode: 'order' | 'feed';
  connected: number;
  connectFailed: number;
  connectSeconds: number;
  changes: number;
  changeErrors: number;
  /** Changes per second actually sent (order mode paces them). */
  changeRate: number;
  expected: number;
  delivered: number;
  deliveryRatio: number;
  latencyMs: { p50: number; p99: number; max: number };
  memory: {
    rssBefore: number;
    rssAfter: number;
    heapBefore: number;
    heapAfter: number;
    rssPerSubscriber: number;
    heapPerSubscriber: number;
  };
  gatewayCpu: number;
  cpu: Record<string, number>;
  gatewayPeakRss: number;
  errors: string[];
}

export interface SubscriptionSetup {
  gatewayUrl: string;
  gateway: Managed;
  staffJwt: string;
  /** Order mode: one subscriber per order (its customer's JWT); feed mode: the staff's JWT N times. */
  subscribers: Subscriber[];
  /** PAID orders to change (order mode: the subscribers' own; feed mode: others). */
  changeOrders: string[];
  mode: 'order' | 'feed';
  changeRate: number;
  /** How long the connected subscribers stay idle before the gateway's memory is read. */
  idleSeconds: number;
  cpuGroups: (clientPid: number) => CpuGroups;
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

export async function runSubscriptions(setup: SubscriptionSetup): Promise<SubscriptionRun> {
  const { gatewayUrl, log } = setup;
  const n = setup.subscribers.length;
  const activeBefore = await metric(gatewayUrl, 'gateway_active_subscriptions');
  const before = await memory(gatewayUrl, setup.gateway);

  const client = start({
    name: `subscribers-${n}`,
    command: process.execPath,
    args: ['--import', 'tsx', fileURLToPath(new URL('./subscriber-client.ts', import.meta.url))],
    cwd: benchDir,
    env: { PATH: process.env.PATH ?? '' },
    logDir: setup.logDir,
    ipc: true,
    openFiles: n + 1_024,
  });
  const replies: { type: string; [key: string]: unknown }[] = [];
  const waiters: (() => void)[] = [];
  client.child.on('message', (message: { type: string }) => {
    replies.push(message);
    waiters.splice(0).forEach((wake) => wake());
  });
  const ask = async <T>(command: ClientCommand, reply: string, timeoutMs: number): Promise<T> => {
    client.child.send(command);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = replies.findIndex((message) => message.type === reply);
      if (index >= 0) return replies.splice(index, 1)[0] as T;
      if (!client.alive) throw new Error(`subscriber client exited\n${client.logs()}`);
      if (Date.now() > deadline) throw new Error(`subscriber client: no "${reply}" within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  };
  const peak = sampleRss(setup.gateway.pid, 250);
  try {
    log(`  connecting ${n} subscribers (${setup.mode} mode)`);
    const connected = await ask<ConnectReport>(
      {
        type: 'connect',
        url: gatewayUrl.replace(/^http/, 'ws'),
        query: setup.mode === 'order' ? TRACK : FEED,
        subscribers: setup.subscribers,
        concurrency: 64,
      },
      'connected',
      300_000,
    );
    // Every subscription registered at the gateway before anything changes.
    const deadline = Date.now() + 30_000;
    while ((await metric(gatewayUrl, 'gateway_active_subscriptions')) - activeBefore < connected.ok) {
      if (Date.now() > deadline) break;
      await sleep(200);
    }
    // Idle, as the goal's subscribers are: the burst of 1,000s of first results (each a query
    // through the gateway) leaves garbage that V8 collects, and gives back, only once it is idle.
    await sleep(setup.idleSeconds * 1_000);
    const after = await memory(gatewayUrl, setup.gateway);
    log(
      `  ${connected.ok}/${n} connected in ${(connected.ms / 1000).toFixed(1)} s; gateway RSS ` +
        `${mib(before.rss)} -> ${mib(after.rss)} MiB, heap ${mib(before.heap)} -> ${mib(after.heap)} MiB`,
    );

    // Status changes: in order mode each subscriber's order once, paced; in feed mode a few, each to all.
    const window = new CpuWindow(setup.cpuGroups(client.pid));
    const responded = new Map<string, number>();
    const changeErrors: string[] = [];
    const changeOrders = setup.changeOrders;
    const intervalMs = setup.mode === 'order' ? 1_000 / setup.changeRate : 1_000;
    const changeStart = performance.now();
    let inFlight = 0;
    const sends: Promise<void>[] = [];
    for (let i = 0; i < changeOrders.length; i++) {
      const due = changeStart + i * intervalMs;
      while (performance.now() < due || inFlight >= 64) await sleep(Math.max(1, Math.min(5, due - performance.now())));
      const orderId = changeOrders[i]!;
      inFlight++;
      sends.push(
        (async () => {
          try {
            const response = await fetch(gatewayUrl, {
              method: 'POST',
              headers: { 'content-type': 'application/json', authorization: `Bearer ${setup.staffJwt}` },
              body: JSON.stringify({ query: CHANGE, variables: { input: { orderId, status: 'ACCEPTED' } } }),
            });
            const text = await response.text();
            const at = performance.timeOrigin + performance.now();
            if (!response.ok || text.includes('"errors"'))
              changeErrors.push(`${response.status} ${text.slice(0, 300)}`);
            else responded.set(orderId, at);
          } catch (error) {
            changeErrors.push(String(error));
          } finally {
            inFlight--;
          }
        })(),
      );
    }
    await Promise.all(sends);
    const changeSeconds = (performance.now() - changeStart) / 1_000;
    // Subscribers that never connected count as not delivered.
    const expected = setup.mode === 'order' ? changeOrders.length : n * changeOrders.length;

    // Deliveries: each subscriber's receipt of an ACCEPTED change it asked for.
    let latencies: number[] = [];
    let errors: string[] = [];
    const waitUntil = Date.now() + 30_000;
    for (;;) {
      const report = await ask<{ receipts: Receipt[][]; errors: string[] }>({ type: 'report' }, 'report', 60_000);
      latencies = [];
      for (const receipts of report.receipts) {
        for (const receipt of receipts ?? []) {
          const sentAt = receipt.status === 'ACCEPTED' ? responded.get(receipt.orderId) : undefined;
          if (sentAt !== undefined) latencies.push(receipt.at - sentAt);
        }
      }
      errors = report.errors;
      if (latencies.length >= expected || Date.now() > waitUntil) break;
      await sleep(1_000);
    }
    const cpu = window.finish();
    latencies.sort((a, b) => a - b);
    const run: SubscriptionRun = {
      subscribers: n,
      mode: setup.mode,
      connected: connected.ok,
      connectFailed: connected.failed,
      connectSeconds: connected.ms / 1_000,
      changes: changeOrders.length,
      changeErrors: changeErrors.length,
      changeRate: changeOrders.length / changeSeconds,
      expected,
      delivered: latencies.length,
      deliveryRatio: latencies.length / expected,
      latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) ?? NaN },
      memory: {
        rssBefore: before.rss,
        rssAfter: after.rss,
        heapBefore: before.heap,
        heapAfter: after.heap,
        rssPerSubscriber: (after.rss - before.rss) / Math.max(1, connected.ok),
        heapPerSubscriber: (after.heap - before.heap) / Math.max(1, connected.ok),
      },
      gatewayCpu: cpu.gateway ?? 0,
      cpu,
      gatewayPeakRss: 0,
      errors: [...connected.errors, ...errors, ...changeErrors.slice(0, 5)].slice(0, 10),
    };
    log(
      `  delivered ${run.delivered}/${run.expected} (${(run.deliveryRatio * 100).toFixed(2)} %), ` +
        `latency p50 ${run.latencyMs.p50.toFixed(1)} ms, p99 ${run.latencyMs.p99.toFixed(1)} ms, ` +
        `max ${run.latencyMs.max.toFixed(1)} ms; ${(run.memory.rssPerSubscriber / 1024).toFixed(1)} KiB RSS per subscriber`,
    );
    run.gatewayPeakRss = peak.stop();
    return run;
  } finally {
    peak.stop();
    if (client.alive) await ask({ type: 'close' }, 'closed', 60_000).catch(() => undefined);
    await client.stop();
    // Back to idle before the next size: the gateway has ended every subscription.
    const deadline = Date.now() + 20_000;
    while ((await metric(gatewayUrl, 'gateway_active_subscriptions').catch(() => 0)) > activeBefore) {
      if (Date.now() > deadline) break;
      await sleep(200);
    }
  }
}

const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
