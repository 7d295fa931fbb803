import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'graphql-ws';
import { RedisClusterProcess, freePort } from '@food/platform/testing';
import type { RedisConnection } from '@food/platform';
import { startTestSupergraph } from './harness.js';
import { ServiceProcess } from './service-process.js';
import { Shop } from './shop.js';
import { connectTestRedis, streamKeyOf, waitForFailover } from './test-redis.js';
import { KITCHEN_FLOW, TRACK, record, statusesOf, wsClient, WHOLE_JOURNEY } from './tracking-clients.js';

/**
 * Redis Cluster failover under load. Orders are placed, paid, moved through the kitchen (or cancelled
 * and refunded, a BullMQ job) with a live subscriber each on one of two gateway processes, while a
 * master of our own cluster (3 masters, 3 replicas) is SIGKILLed: (a) the one holding the orders
 * stream's first partition, left dead while its replica serves; (b) another, started again once its
 * replica took over, so it rejoins as a replica. Subgraphs, workers and gateways are their own
 * processes, all on this cluster. Runs in either suite mode: it always kills nodes of its own cluster.
 *
 * Afterwards: every subscriber saw each status of its order once and in order; every order was
 * charged once and every refund made once by one job run; no process crashed; a poller querying each
 * gateway every 100 ms never got a 5xx. The numbers (failover time, retried polls, deliveries, charges)
 * are printed for the record.
 */
const ORDERS_PER_PHASE = 30;
/** Orders worked on at once, each by its own lane through the steps of its journey. */
const LANES = 5;
/** Every 5th order is cancelled once paid: its refund is a BullMQ job of the payments worker. */
const cancelled = (index: number) => index % 5 === 4;
const REFUND_JOURNEY = ['PENDING_PAYMENT/1', 'PAID/2', 'REFUND_PENDING/3', 'REFUNDED/4'];

let cluster: RedisClusterProcess;
let t: Awaited<ReturnType<typeof startTestSupergraph>>;
let redis: RedisConnection;
let prefix: string;
const gateways: ServiceProcess[] = [];
const processes: ServiceProcess[] = [];
let shops: Shop[];
const clients: Client[] = [];
const pollers: Poller[] = [];
const summary: Record<string, unknown>[] = [];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  const setupStarted = Date.now();
  cluster = await RedisClusterProcess.start();
  t = await startTestSupergraph({ workers: false, redis: cluster.target });
  prefix = t.processEnv.REDIS_KEY_PREFIX!;
  redis = await connectTestRedis('test-cluster-failover', cluster.target);
  // A worker's unacknowledged events and running jobs go to its successor after 3 s, not 30.
  const env = { ...t.processEnv, REDIS_REDELIVER_AFTER_MS: '3000' };
  const [orders, payments] = await Promise.all([
    ServiceProcess.start('orders', { ...env, ORDERS_PORT: String(await freePort()) }),
    ServiceProcess.start('payments', { ...env, PAYMENTS_PORT: String(await freePort()) }),
  ]);
  const subgraphs = { ORDERS_SUBGRAPH_URL: orders.url, PAYMENTS_SUBGRAPH_URL: payments.url };
  const started = await Promise.all([
    ServiceProcess.start('orders-worker', { ...env, ...subgraphs }),
    ServiceProcess.start('payments-worker', { ...env, ...subgraphs }),
    ...[0, 1].map(async () =>
      ServiceProcess.start('gateway', {
        ...env,
        ...subgraphs,
        NODE_ENV: 'production',
        GATEWAY_PORT: String(await freePort()),
      }),
    ),
  ]);
  gateways.push(...started.slice(2));
  processes.push(orders, payments, ...started);
  shops = await Promise.all(gateways.map((gateway) => new Shop(t.post, gateway.url).open()));
  summary.push({ setupMs: Date.now() - setupStarted });
}, 180_000);

afterAll(async () => {
  for (const poller of pollers) poller.stop();
  await Promise.all(clients.map((c) => c.dispose()));
  const stops = await Promise.all(
    processes.map(async (service) => {
      const stopping = Date.now();
      return { service: service.entry, exitCode: await service.stop(), stopMs: Date.now() - stopping };
    }),
  );
  redis?.disconnect();
  await t?.stop();
  await cluster?.destroy();
  summary.push({ stops });
  console.log(`cluster failover summary\n${JSON.stringify(summary, null, 2)}`);
  // Each stopped cleanly on SIGTERM (exit 1 is the 10 s grace running out: something would not close).
  processes.forEach((service, i) =>
    expect(stops[i]!.exitCode, `${service.entry} stopped; its last lines:\n${service.logs.slice(-4_000)}`).toBe(0),
  );
});

describe('Redis Cluster failover under live orders', () => {
  it('(a) loses nothing when the master of the orders stream dies and its replica takes over', async () => {
    await phase('a: master of the orders stream killed, replica promoted', async () => {
      const port = await cluster.masterOf(await streamKeyOf(redis, prefix, 'orders'));
      await cluster.kill(port);
      const failoverMs = await waitForFailover(cluster, port);
      // Its replica serves the slots from now on; the node stays down for the rest of the phase.
      return { killed: port, failoverMs, restart: () => cluster.restart(port) };
    });
  }, 120_000);

  it('(b) loses nothing when a master is killed, failed over and restarted (it rejoins as a replica)', async () => {
    await phase('b: master of the payments jobs killed, failed over, restarted', async () => {
      const port = await cluster.masterOf(await jobQueueKey('payments'));
      await cluster.kill(port);
      const failoverMs = await waitForFailover(cluster, port);
      const restarting = Date.now();
      await cluster.restart(port);
      await cluster.waitUntilHealthy();
      expect(await cluster.masters(), 'the restarted node rejoins as a replica').not.toContain(port);
      return { killed: port, failoverMs, rejoinMs: Date.now() - restarting };
    });
  }, 120_000);
});

interface Fault {
  killed: number;
  failoverMs: number;
  rejoinMs?: number;
  /** Brings the node back after the phase, for the next one (when the fault left it down). */
  restart?: () => Promise<void>;
}

/**
 * One phase: `ORDERS_PER_PHASE` orders with a tracker each (alternating gateways), their journeys in
 * `LANES` lanes, `fault` started once a third of them are paid; then every assertion.
 */
async function phase(name: string, fault: () => Promise<Fault>) {
  const phaseStarted = Date.now();
  const paymentsWorker = processes.find((service) => service.entry === 'payments-worker')!;
  const countersBefore = await counters();
  const orderIds = await Promise.all(Array.from({ length: ORDERS_PER_PHASE }, (_, i) => shops[i % 2]!.placeOrder()));
  const trackers = orderIds.map((id, i) => {
    const client = wsClient(gateways[i % 2]!.url, shops[0]!.tokens.ada);
    clients.push(client);
    return record(client, TRACK, { id });
  });
  await Promise.all(trackers.map((tracker) => tracker.received(1)));
  const polling = gateways.map((gateway) => new Poller(gateway.url, shops[0]!.tokens.chef, orderIds[0]!));
  pollers.push(...polling);

  let paid = 0;
  let thirdPaid!: () => void;
  const aThirdPaid = new Promise<void>((resolve) => (thirdPaid = resolve));
  let next = 0;
  const lanes = Array.from({ length: LANES }, async () => {
    while (next < orderIds.length) {
      const index = next++;
      const id = orderIds[index]!;
      // Each order through the gateway its tracker is not on, so changes cross between the replicas.
      const shop = shops[(index + 1) % 2]!;
      await shop.pay(id);
      await untilStatus(id, 'PAID');
      if (++paid === Math.ceil(ORDERS_PER_PHASE / 3)) thirdPaid();
      if (cancelled(index)) {
        expect(await shop.cancel(id)).toBe('REFUND_PENDING');
        await untilStatus(id, 'REFUNDED');
      } else {
        for (const status of KITCHEN_FLOW) await shop.changeStatus(id, status);
      }
    }
  });
  const work = Promise.all(lanes);
  // If the journeys fail before a third are paid, report that rather than wait for the fault.
  await Promise.race([aThirdPaid, work]);
  const faultStarted = Date.now();
  const outcome = await fault();
  const faultMs = Date.now() - faultStarted;
  // The node comes back however the phase ends, so one phase's failure does not fail the next.
  try {
    const paidBeforeFaultEnded = paid;
    await work;
    await Promise.all(trackers.map((tracker) => tracker.ended(30_000)));
    for (const poller of polling) poller.stop();
    await Promise.all(polling.map((poller) => poller.done));

    // Every subscriber: the current state first, then each change once, in order; then the end.
    orderIds.forEach((id, i) => {
      const tracker = trackers[i]!;
      expect(tracker.state, `tracker of ${id}`).toEqual({ completed: true });
      expect(statusesOf(tracker.results), `tracker of ${id}`).toEqual(cancelled(i) ? REFUND_JOURNEY : WHOLE_JOURNEY);
    });
    // Every order charged once: one payment row, succeeded (refunded for the cancelled), one success event.
    const payments = await t.query(
      'payments',
      `SELECT p.order_id, p.status, (SELECT count(*)::int FROM outbox_events e WHERE e.aggregate_id = p.id
         AND e.type = 'payment.succeeded') AS succeeded, (SELECT count(*)::int FROM outbox_events e
         WHERE e.aggregate_id = p.id AND e.type = 'payment.refunded') AS refunded
       FROM payments p WHERE p.order_id = ANY($1::uuid[])`,
      [orderIds],
    );
    const refundIds = orderIds.filter((_, i) => cancelled(i));
    expect(payments.map((row) => row.order_id).sort()).toEqual([...orderIds].sort());
    for (const row of payments) {
      const refund = refundIds.includes(row.order_id);
      expect(row, `payment of ${row.order_id}`).toMatchObject({
        status: refund ? 'REFUNDED' : 'SUCCEEDED',
        succeeded: 1,
        refunded: refund ? 1 : 0,
      });
    }
    // Each status change made once (the orders database), however often its event was delivered.
    const transitions = await t.query(
      'orders',
      `SELECT to_status, count(*)::int AS n FROM order_status_changes WHERE order_id = ANY($1::uuid[])
       GROUP BY order_id, to_status HAVING count(*) > 1`,
      [orderIds],
    );
    expect(transitions, 'a status reached twice').toEqual([]);
    // Each refund applied once: one "refund handled" of outcome refunded per cancelled order. A job may
    // run again after a failover (its lock lost with the master: BullMQ is at least once); such a run
    // finds the refund done and changes nothing ("already_handled"), which is what idempotency is for.
    const refundRuns = paymentsWorker.lines.filter(
      (line) => line.msg === 'refund handled' && refundIds.includes(line.orderId as string),
    );
    const applied = refundRuns.filter((line) => line.outcome !== 'already_handled');
    expect(applied.map((line) => `${line.orderId as string}:${line.outcome as string}`).sort()).toEqual(
      refundIds.map((id) => `${id}:refunded`).sort(),
    );
    // No process crashed.
    for (const service of processes) expect(service.running, `${service.entry} is running`).toBe(true);
    // The gateways answered throughout: a few retried polls at most, never a 5xx.
    for (const poller of polling) {
      expect(poller.stats.serverErrors, `5xx from ${poller.url}: ${poller.failures.join('; ')}`).toBe(0);
      expect(poller.stats.ok).toBeGreaterThan(10);
      expect(
        poller.stats.longestGapMs,
        `${poller.url} went unanswered (answers over 1 s: ${poller.slow.join(', ')}; failures: ${poller.failures.join('; ')})`,
      ).toBeLessThan(5_000);
    }

    const countersAfter = await counters();
    const delta = (name: keyof typeof countersAfter) => countersAfter[name] - countersBefore[name];
    // Every job ran (none lost); a repeat is counted, and is a no-op by the check above.
    expect(delta('refundJobRuns'), 'refund job runs').toBe(refundRuns.length);
    summary.push({
      phase: name,
      killedNode: outcome.killed,
      failoverMs: outcome.failoverMs,
      ...(outcome.rejoinMs !== undefined && { rejoinMs: outcome.rejoinMs }),
      faultMs,
      ordersPaidWhenFaultEnded: `${paidBeforeFaultEnded}/${ORDERS_PER_PHASE}`,
      subscriptionMessages: trackers.reduce((sum, tracker) => sum + tracker.results.length, 0),
      charges: payments.reduce((sum, row) => sum + row.succeeded, 0),
      refunds: payments.reduce((sum, row) => sum + row.refunded, 0),
      refundJobRuns: delta('refundJobRuns'),
      refundRunsRepeated: refundRuns.length - applied.length,
      eventsConsumedByOrdersWorker: delta('ordersWorkerEvents'),
      eventsConsumedByPaymentsWorker: delta('paymentsWorkerEvents'),
      polls: polling.map((poller) => poller.stats),
      phaseMs: Date.now() - phaseStarted,
    });
    console.log(`cluster failover, phase ${JSON.stringify(summary.at(-1))}`);
  } finally {
    await outcome.restart?.();
    await cluster.waitUntilHealthy();
  }
}

/** The workers' counters a phase reports the growth of. */
async function counters() {
  const worker = (entry: string) => processes.find((service) => service.entry === entry)!;
  return {
    refundJobRuns: await worker('payments-worker').metric('jobs_processed_total', { queue: 'payments', job: 'refund' }),
    ordersWorkerEvents: await worker('orders-worker').metric('events_consumed_total', { outcome: 'ok' }),
    paymentsWorkerEvents: await worker('payments-worker').metric('events_consumed_total', { outcome: 'ok' }),
  };
}

/** Until the order has `status` in the orders database (cheap: no gateway, no Redis). */
async function untilStatus(orderId: string, status: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [row] = await t.query('orders', 'SELECT status FROM orders WHERE id = $1', [orderId]);
    if (row?.status === status) return;
    if (Date.now() > deadline) throw new Error(`order ${orderId} never reached ${status} (it is ${row?.status})`);
    await sleep(100);
  }
}

/** A key of a BullMQ queue of this run (its `meta` hash), wherever the job prefix puts it. */
async function jobQueueKey(queue: string): Promise<string> {
  for (const port of await cluster.masters()) {
    const node = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1 });
    try {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', `*${prefix}*`, 'COUNT', 1_000);
        cursor = next;
        const meta = keys.find((key) => key.includes('bull') && key.includes(queue) && key.endsWith(':meta'));
        if (meta) return meta;
      } while (cursor !== '0');
    } finally {
      node.disconnect();
    }
  }
  throw new Error(`no BullMQ key of the ${queue} queue under ${prefix}`);
}

/**
 * Asks one gateway for an order every 100 ms, as a client would: a request that gets no answer or an
 * error is retried at once (counted); a 5xx is counted apart (it must never happen).
 */
class Poller {
  readonly stats = { ok: 0, retried: 0, serverErrors: 0, longestGapMs: 0 };
  readonly failures: string[] = [];
  /** Answers that took over a second: when (ms since the poller started) and how long. */
  readonly slow: string[] = [];
  readonly done: Promise<void>;
  private stopped = false;

  constructor(
    readonly url: string,
    token: string,
    orderId: string,
  ) {
    const body = JSON.stringify({
      query: 'query ($id: ID!) { order(id: $id) { id status } }',
      variables: { id: orderId },
    });
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
    this.done = (async () => {
      const began = Date.now();
      let lastOk = began;
      while (!this.stopped) {
        const started = Date.now();
        try {
          const response = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(5_000) });
          const tookMs = Date.now() - started;
          if (tookMs > 1_000) this.slow.push(`${started - began}+${tookMs}ms`);
          const answer = (await response.json().catch(() => ({}))) as { data?: { order?: unknown }; errors?: unknown };
          if (response.status >= 500) {
            this.stats.serverErrors++;
            this.failures.push(`${response.status} ${JSON.stringify(answer)}`);
          } else if (response.status !== 200 || answer.errors || !answer.data?.order) {
            this.stats.retried++;
            this.failures.push(`${response.status} ${JSON.stringify(answer)}`);
            await sleep(20);
          } else {
            this.stats.ok++;
            this.stats.longestGapMs = Math.max(this.stats.longestGapMs, Date.now() - lastOk);
            lastOk = Date.now();
            await sleep(Math.max(0, 100 - (Date.now() - started)));
          }
        } catch (error) {
          this.stats.retried++;
          this.failures.push(String(error));
          await sleep(20);
        }
      }
    })();
  }

  stop() {
    this.stopped = true;
  }
}
