import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testSecrets } from '@food/platform/testing';
import { startTestSupergraph } from './harness.js';
import { ServiceProcess, type Entry } from './service-process.js';
import { Shop } from './shop.js';
import { record, TRACK, wsClient } from './tracking-clients.js';

/**
 * What an operator sees of a whole run: every deployable as its own process (as Kubernetes runs
 * them) at debug level, exporting traces to an OTLP collector. A customer signs up, orders, pays,
 * follows the order live and cancels it for a refund; then the logs, metrics and traces are read.
 */

interface CollectedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
}

/** An OTLP/HTTP (JSON) trace collector: what the services export when OTEL_EXPORTER_OTLP_ENDPOINT is set. */
async function startCollector(): Promise<{ url: string; spans: CollectedSpan[]; server: Server }> {
  const spans: CollectedSpan[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const payload = JSON.parse(body) as {
          resourceSpans: {
            resource: { attributes: { key: string; value: { stringValue?: string } }[] };
            scopeSpans: { spans: Omit<CollectedSpan, 'service'>[] }[];
          }[];
        };
        for (const { resource, scopeSpans } of payload.resourceSpans) {
          const service = resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '?';
          for (const { spans: batch } of scopeSpans) {
            for (const span of batch) spans.push({ ...span, service });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, server };
}

const FEDERATED = `query OrderOverview($id: ID!) {
  order(id: $id) { id status customer { name } items { quantity meal { name } } payment { status } }
}`;

describe('operating the supergraph: logs, metrics and traces of a whole run', () => {
  let t: Awaited<ReturnType<typeof startTestSupergraph>>;
  let collector: Awaited<ReturnType<typeof startCollector>>;
  const processes = {} as Record<Entry, ServiceProcess>;
  let shop: Shop;
  // The customer's personal data and secrets, which no log line may carry.
  const customer = {
    email: `obs-${randomUUID().slice(0, 8)}@example.com`,
    password: `pw-${randomUUID()}`,
    name: 'Observed Customer',
    phone: '+4915112345678',
    deliveryAddress: `${randomUUID().slice(0, 8)} Observability Lane`,
  };
  let customerToken = '';
  const paymentToken = `tok_sandbox_success`;
  const requestId = `obs-${randomUUID()}`;
  let orderId = '';

  beforeAll(async () => {
    collector = await startCollector();
    // Databases, migrations and demo data; the services under test are the processes below.
    t = await startTestSupergraph({ workers: false });
    const env = { ...t.processEnv, OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, RATE_LIMIT_USER_QUERIES: '300' };
    const debug = { LOG_LEVEL: 'debug' };
    const start = async (entry: Entry, extra: Record<string, string>) =>
      (processes[entry] = await ServiceProcess.start(entry, { ...env, ...extra }, debug));
    await Promise.all([start('users', { USERS_PORT: '0' }), start('meals', { MEALS_PORT: '0' })]);
    await start('orders', { ORDERS_PORT: '0', MEALS_SUBGRAPH_URL: processes.meals.url });
    await start('payments', { PAYMENTS_PORT: '0', ORDERS_SUBGRAPH_URL: processes.orders.url });
    const subgraphs = {
      USERS_SUBGRAPH_URL: processes.users.url,
      MEALS_SUBGRAPH_URL: processes.meals.url,
      ORDERS_SUBGRAPH_URL: processes.orders.url,
      PAYMENTS_SUBGRAPH_URL: processes.payments.url,
    };
    await Promise.all([
      start('users-worker', { USERS_WORKER_PORT: '0' }),
      start('orders-worker', { ...subgraphs, ORDERS_WORKER_PORT: '0' }),
      start('payments-worker', { ...subgraphs, PAYMENTS_WORKER_PORT: '0' }),
      start('gateway', { ...subgraphs, GATEWAY_PORT: '0' }),
    ]);
    shop = await new Shop(t.post, processes.gateway.url).open();
  }, 180_000);

  afterAll(async () => {
    await Promise.all(Object.values(processes).map((service) => service.stop()));
    await t?.stop();
    collector?.server.close();
  });

  it('runs the journey: sign up, order, pay, follow live, cancel for a refund', async () => {
    const signedUp = await shop.call(
      `mutation ($input: SignUpInput!) { signUp(input: $input) { token user { id } } }`,
      { input: customer },
    );
    customerToken = signedUp.signUp.token;
    const auth = { authorization: `Bearer ${customerToken}` };
    const placed = await t.post<any>(
      processes.gateway.url,
      {
        query: `mutation ($input: PlaceOrderInput!) { placeOrder(input: $input) { id } }`,
        variables: {
          input: {
            deliveryAddress: customer.deliveryAddress,
            items: [{ mealId: shop.mealId, quantity: 2 }],
            idempotencyKey: `order-${randomUUID()}`,
          },
        },
      },
      auth,
    );
    expect(placed.errors).toBeUndefined();
    orderId = placed.data.placeOrder.id;

    const client = wsClient(processes.gateway.url, customerToken);
    const tracking = record(client, TRACK, { id: orderId });
    await expect.poll(() => processes.gateway.metric('gateway_active_subscriptions')).toBe(1);
    expect(await processes.gateway.metric('gateway_websocket_connections')).toBe(1);

    const paid = await t.post<any>(
      processes.gateway.url,
      {
        query: `mutation ($input: PayForOrderInput!) { payForOrder(input: $input) { status } }`,
        variables: { input: { orderId, paymentToken, idempotencyKey: `key-${randomUUID()}` } },
      },
      auth,
    );
    expect(paid.errors).toBeUndefined();
    await shop.orderOnceItIs(orderId, 'PAID');
    const cancelled = await t.post<any>(
      processes.gateway.url,
      {
        query: `mutation ($input: CancelOrderInput!) { cancelOrder(input: $input) { status } }`,
        variables: { input: { orderId } },
      },
      auth,
    );
    expect(cancelled.data?.cancelOrder.status).toBe('REFUND_PENDING');
    await shop.orderOnceItIs(orderId, 'REFUNDED');
    await expect.poll(() => tracking.results.map((r) => r.data?.orderStatusChanged.status).at(-1)).toBe('REFUNDED');
    tracking.unsubscribe();
    await client.dispose();
    await expect.poll(() => processes.gateway.metric('gateway_active_subscriptions')).toBe(0);
  });

  it('follows one request id from the gateway into every subgraph it calls, with its trace id', async () => {
    const response = await fetch(processes.gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': requestId, ...shop.headers('chef') },
      body: JSON.stringify({ query: FEDERATED, variables: { id: orderId } }),
    });
    expect(response.headers.get('x-request-id')).toBe(requestId);
    const body = (await response.json()) as any;
    expect(body.errors).toBeUndefined();
    expect(body.data.order).toMatchObject({ customer: { name: customer.name }, payment: { status: 'REFUNDED' } });

    const requestLine = (entry: Entry) =>
      processes[entry].lines.find((line) => line.msg === 'graphql request' && line.requestId === requestId);
    await expect.poll(() => requestLine('gateway')).toBeDefined();
    const gatewayLine = requestLine('gateway')!;
    expect(gatewayLine).toMatchObject({
      operation: 'OrderOverview',
      operationType: 'query',
      status: 200,
      outcome: 'ok',
    });
    expect(gatewayLine.durationMs).toEqual(expect.any(Number));
    expect(gatewayLine.trace_id).toMatch(/^[0-9a-f]{32}$/);
    for (const subgraph of ['orders', 'users', 'meals', 'payments'] as const) {
      // Each process's stdout reaches the test on its own pipe: a subgraph's line may come after the gateway's.
      await expect.poll(() => requestLine(subgraph), { message: `${subgraph} logged the request` }).toBeDefined();
      const line = requestLine(subgraph);
      expect(line, `${subgraph} logged the request`).toMatchObject({ outcome: 'ok', status: 200 });
      expect(line!.trace_id, `${subgraph} continued the gateway's trace`).toBe(gatewayLine.trace_id);
    }

    // The trace, as the collector got it: gateway -> each subgraph -> Prisma, one trace id.
    const traceSpans = () => collector.spans.filter((span) => span.traceId === gatewayLine.trace_id);
    await expect
      .poll(() => new Set(traceSpans().map((span) => span.service)), { timeout: 15_000 })
      .toEqual(new Set(['gateway', 'orders', 'users', 'meals', 'payments']));
    const spans = traceSpans();
    const byId = new Map(spans.map((span) => [span.spanId, span]));
    const ordersServer = spans.find(
      (span) => span.service === 'orders' && span.name === 'query OrderOverview__orders__0',
    );
    expect(ordersServer, spans.map((s) => `${s.service} ${s.name}`).join('\n')).toBeDefined();
    expect(byId.get(ordersServer!.parentSpanId!)).toMatchObject({ service: 'gateway', name: 'gateway.fetch' });
    const prismaSpans = spans.filter((span) => span.service === 'orders' && span.name.startsWith('prisma:'));
    expect(prismaSpans.length).toBeGreaterThan(0);
  });

  it('moves the metrics an operator watches, on every process', async () => {
    const { gateway, orders, users } = processes;
    // Refused before any subgraph is called, and over budget: both are counted.
    const hop = (inner: string) => `orders(first: 1) { edges { node { customer { ${inner} } } } }`;
    const deep = `{ me { ${hop(hop(hop('id')))} } }`;
    expect((await t.post<any>(gateway.url, { query: deep }, shop.headers('grace'))).errors?.[0]?.extensions?.code).toBe(
      'QUERY_LIMIT_EXCEEDED',
    );
    let limited = false;
    // 300 a minute, refilled as time passes: a few more than 300 in a row run out.
    for (let i = 0; i < 1_000 && !limited; i++) {
      const response = await t.post<any>(gateway.url, { query: '{ me { id } }' }, shop.headers('grace'));
      limited = response.status === 429;
    }
    expect(limited).toBe(true);

    expect(await gateway.metric('graphql_requests_total', { server: 'gateway', outcome: 'ok' })).toBeGreaterThan(5);
    expect(
      await gateway.metric('graphql_requests_total', { server: 'gateway', outcome: 'client_error' }),
    ).toBeGreaterThan(0);
    expect(
      await gateway.metric('graphql_request_duration_seconds_count', { server: 'gateway', operation: 'OrderOverview' }),
    ).toBe(1);
    expect(
      await gateway.metric('gateway_subgraph_fetch_duration_seconds_count', { subgraph: 'orders', outcome: 'ok' }),
    ).toBeGreaterThan(0);
    expect(await gateway.metric('gateway_entity_cache_misses_total', { type: 'Meal' })).toBeGreaterThan(0);
    expect(await gateway.metric('gateway_rate_limited_total', { scope: 'user' })).toBeGreaterThan(0);
    expect(await gateway.metric('gateway_operations_refused_total')).toBe(1);
    expect(await orders.metric('graphql_requests_total', { server: 'orders', outcome: 'ok' })).toBeGreaterThan(0);
    expect(await users.metric('graphql_requests_total', { server: 'users' })).toBeGreaterThan(0);

    const ordersWorker = processes['orders-worker'];
    const paymentsWorker = processes['payments-worker'];
    expect(await ordersWorker.metric('events_published_total', { stream: 'orders', type: 'order.placed' })).toBe(1);
    expect(await paymentsWorker.metric('events_published_total', { stream: 'payments' })).toBeGreaterThan(0);
    expect(
      await ordersWorker.metric('events_consumed_total', { stream: 'payments', group: 'orders', outcome: 'ok' }),
    ).toBeGreaterThan(0);
    expect(
      await paymentsWorker.metric('events_consumed_total', { stream: 'orders', group: 'payments', outcome: 'ok' }),
    ).toBeGreaterThan(0);
    expect(
      await paymentsWorker.metric('jobs_processed_total', { queue: 'payments', job: 'refund', outcome: 'ok' }),
    ).toBe(1);
    // Everything written was published: the outbox is empty and not lagging.
    await expect.poll(() => ordersWorker.metric('outbox_pending_events', { outbox: 'orders' })).toBe(0);
    expect(await ordersWorker.metric('outbox_lag_seconds', { outbox: 'orders' })).toBe(0);
    const scrape = await (await fetch(`${paymentsWorker.operationsUrl}/metrics`)).text();
    expect(scrape).toMatch(/^job_queue_depth\{queue="payments"\} \d+$/m);
    expect(scrape).toMatch(/^job_queue_failed_jobs\{queue="payments"\} \d+$/m);
    expect(scrape).toMatch(/^outbox_lag_seconds\{outbox="payments"\} /m);
    for (const service of Object.values(processes)) {
      expect(await service.metric('process_cpu_seconds_total'), service.entry).toBeGreaterThan(0);
      expect(await service.metric('nodejs_heap_size_used_bytes'), service.entry).toBeGreaterThan(0);
      expect((await fetch(`${service.operationsUrl}/readyz`)).status, service.entry).toBe(200);
    }
  });

  it('merges identical query fetches in flight into one subgraph call, never across callers', async () => {
    const { gateway, meals } = processes;
    const menu = '{ meals(first: 5) { edges { node { id name } } } }';
    const before = await meals.metric('graphql_requests_total', { server: 'meals' });
    const answers = await Promise.all(Array.from({ length: 30 }, () => t.post<any>(gateway.url, { query: menu })));
    const calls = (await meals.metric('graphql_requests_total', { server: 'meals' })) - before;
    expect(new Set(answers.map((answer) => JSON.stringify(answer.data))).size).toBe(1);
    expect(answers[0]!.data.meals.edges).toHaveLength(5);
    expect(calls).toBeGreaterThan(0);
    expect(calls).toBeLessThan(30);
    // The same query as different users: each gets their own answer. (Not grace: the metrics case
    // above spends her whole query budget on purpose, and it refills at 5 a second.)
    const me = await Promise.all(
      (['ada', 'chef', 'ada', 'chef'] as const).map((user) =>
        t.post<any>(gateway.url, { query: '{ me { id } }' }, shop.headers(user)),
      ),
    );
    expect(me.map((answer) => answer.data?.me?.id ?? JSON.stringify(answer))).toEqual(
      (['ada', 'chef', 'ada', 'chef'] as const).map((user) => shop.userIds[user]),
    );
  });

  it('counts a subgraph that is down as a server error, by subgraph', async () => {
    const { gateway } = processes;
    const before = await gateway.metric('graphql_requests_total', { server: 'gateway', outcome: 'server_error' });
    await processes.payments.stop();
    // A selection of payments no one asked for before: the gateway's entity cache cannot answer it.
    const partial = await t.post<any>(
      gateway.url,
      { query: FEDERATED.replace('payment { status }', 'payment { status createdAt }'), variables: { id: orderId } },
      shop.headers('chef'),
    );
    expect(partial.data.order.customer).toEqual({ name: customer.name });
    expect(partial.errors?.[0]?.extensions).toMatchObject({ code: 'UPSTREAM_UNAVAILABLE', service: 'payments' });
    expect(await gateway.metric('graphql_requests_total', { server: 'gateway', outcome: 'server_error' })).toBe(
      before + 1,
    );
    expect(
      await gateway.metric('gateway_subgraph_fetch_duration_seconds_count', {
        subgraph: 'payments',
        outcome: 'unavailable',
      }),
    ).toBe(1);
    const ready = await fetch(`${gateway.operationsUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { dependencies: Record<string, string> }).dependencies.payments).toMatch(
      /fetch failed/,
    );
  });

  it('never writes a secret, a token, a password or personal data to any log', async () => {
    const logs = Object.values(processes)
      .map((service) => service.logs)
      .join('\n');
    expect(logs.length).toBeGreaterThan(10_000); // debug level, every process: there is a lot to read
    const forbidden = {
      password: customer.password,
      email: customer.email,
      phone: customer.phone,
      name: customer.name,
      'delivery address': customer.deliveryAddress,
      'user token': customerToken,
      'payment token': paymentToken,
      'token signing key': (JSON.parse(testSecrets.USERS_SIGNING_KEYS) as { d: string }[])[0]!.d,
      'internal token secret': testSecrets.INTERNAL_TOKEN_SECRET,
      'encryption key': t.processEnv.USERS_ENCRYPTION_KEYS!.split(':')[1]!,
      'orders encryption key': t.processEnv.ORDERS_ENCRYPTION_KEYS!.split(':')[1]!,
      'blind index key': t.processEnv.USERS_BLIND_INDEX_KEY!,
    };
    for (const [what, value] of Object.entries(forbidden)) {
      expect(value.length, what).toBeGreaterThan(5);
      expect(logs.includes(value), `${what} appears in the logs`).toBe(false);
    }
    // Any JWT at all (user sessions, the gateway's signed internal tokens): three base64url parts.
    expect(logs.match(/eyJ[\w-]{10,}\.[\w-]{10,}\.[\w-]{10,}/)).toBeNull();
    expect(logs).not.toMatch(/bearer /i);
  });
});
