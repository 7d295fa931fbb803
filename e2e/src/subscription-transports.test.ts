import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { createClient, type Client as SseClient, type ClientOptions as SseClientOptions } from 'graphql-sse';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { newEvent, type EventOf } from '@food/platform';
import { forgedUserTokenSigner, freePort, testAccessToken } from '@food/platform/testing';
import type { RunningGateway } from '@food/gateway';
import { startTestSupergraph } from './harness.js';
import { EmitterBus, startGatewayOnBus } from './in-test-bus.js';
import { Shop } from './shop.js';
import { FEED, KITCHEN_FLOW, record, statusesOf, TRACK, WHOLE_JOURNEY } from './tracking-clients.js';

/**
 * The HTTP transports of subscriptions, with the clients that speak them: Server-Sent Events with
 * graphql-sse's client (and EventSource's Last-Event-ID), multipart HTTP with Apollo Client's plain
 * HttpLink. Each runs on the same engine as graphql-ws (e2e/src/subscriptions.test.ts), on the real
 * subgraphs; most cases publish their changes to an in-test bus, the resume case runs the real chain.
 */

type Status = EventOf<'order.status_changed'>['data']['to'];

let t: Awaited<ReturnType<typeof startTestSupergraph>>;
let shop: Shop;
let bus: EmitterBus;
let gateway: RunningGateway;
const MAX_PER_ADDRESS = 3;
const sseClients: SseClient[] = [];
const apolloClients: ApolloClient[] = [];
const aborts: AbortController[] = [];
const extraGateways: RunningGateway[] = [];

beforeAll(async () => {
  t = await startTestSupergraph();
  shop = await new Shop(t.post, t.supergraph.gatewayUrl).open();
  bus = new EmitterBus();
  gateway = await startGatewayOnBus(t.supergraph.subgraphUrls, bus, {
    GATEWAY_MAX_HTTP_SUBSCRIPTIONS_PER_ADDRESS: String(MAX_PER_ADDRESS),
  });
}, 120_000);

afterAll(async () => {
  for (const client of sseClients) client.dispose();
  for (const apollo of apolloClients) apollo.stop();
  for (const controller of aborts) controller.abort();
  for (const running of [gateway, ...extraGateways]) await running?.close();
  await t?.stop();
});

/** A graphql-sse client (distinct connections mode), as an app holds one. */
function sseClient(url: string, token: string | undefined, options: Partial<SseClientOptions> = {}): SseClient {
  const client = createClient({
    url,
    headers: token ? { authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
    ...options,
  });
  sseClients.push(client);
  return client;
}

/** Apollo Client with nothing but its HttpLink: subscriptions go over multipart HTTP. */
function apolloClient(url: string, token: string | undefined): ApolloClient {
  const apollo = new ApolloClient({
    cache: new InMemoryCache(),
    link: new HttpLink({ uri: url, headers: token ? { authorization: `Bearer ${token}` } : {} }),
  });
  apolloClients.push(apollo);
  return apollo;
}

/** What one Apollo Client subscription receives: its data, its errors, whether it completed. */
function follow(apollo: ApolloClient, query: string, variables: Record<string, unknown> = {}) {
  const followed = { data: [] as any[], errors: [] as any[], completed: false, unsubscribe: () => {} };
  const subscription = apollo.subscribe({ query: gql(query), variables }).subscribe({
    next: ({ data, error }) => void (error ? followed.errors.push(error) : followed.data.push(data)),
    error: (error) => void followed.errors.push(error),
    complete: () => void (followed.completed = true),
  });
  followed.unsubscribe = () => subscription.unsubscribe();
  return followed;
}

/** A raw event stream, as EventSource opens one: GET with the query in the URL. */
async function openEventStream(url: string, token: string, variables: Record<string, unknown>, lastEventId?: string) {
  const controller = new AbortController();
  aborts.push(controller);
  const params = new URLSearchParams({ query: TRACK, variables: JSON.stringify(variables) });
  const response = await fetch(`${url}?${params}`, {
    headers: {
      accept: 'text/event-stream',
      authorization: `Bearer ${token}`,
      ...(lastEventId ? { 'last-event-id': lastEventId } : {}),
    },
    signal: controller.signal,
  });
  const events: { id?: string; event?: string; data?: any }[] = [];
  let buffer = '';
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  const reading = (async () => {
    try {
      for (let read = await reader.read(); !read.done; read = await reader.read()) {
        buffer += decoder.decode(read.value, { stream: true });
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const fields = buffer.slice(0, end).split('\n');
          buffer = buffer.slice(end + 2);
          const event: (typeof events)[number] = {};
          for (const line of fields) {
            if (line.startsWith(':')) continue;
            const [field, ...rest] = line.split(': ');
            const value = rest.join(': ');
            if (field === 'id') event.id = value;
            if (field === 'event') event.event = value;
            if (field === 'data' && value) event.data = JSON.parse(value);
          }
          if (event.event) events.push(event);
        }
      }
    } catch {
      // Aborted: the client went away.
    }
  })();
  return {
    response,
    events,
    ended: () => reading,
    leave: () => controller.abort(),
    async received(count: number) {
      await vi.waitFor(() => expect(events.length).toBeGreaterThanOrEqual(count), { timeout: 20_000, interval: 20 });
      return events;
    },
  };
}

function statusChanged(orderId: string, from: Status, to: Status, version: number, final = false) {
  return newEvent('order.status_changed', orderId, {
    orderId,
    customerId: shop.userIds.ada,
    from,
    to,
    version,
    final,
    actor: { kind: 'user', id: shop.userIds.chef },
    reason: null,
  });
}

/** The journey of a delivered order, as events on the in-test bus. */
const JOURNEY: [Status, Status][] = [
  ['PENDING_PAYMENT', 'PAID'],
  ['PAID', 'ACCEPTED'],
  ['ACCEPTED', 'PREPARING'],
  ['PREPARING', 'READY'],
  ['READY', 'OUT_FOR_DELIVERY'],
  ['OUT_FOR_DELIVERY', 'DELIVERED'],
];
async function publishJourney(orderId: string) {
  for (const [i, [from, to]] of JOURNEY.entries()) {
    await bus.publish('orders', statusChanged(orderId, from, to, i + 2, to === 'DELIVERED'));
  }
}

async function settled(running = gateway) {
  await vi.waitFor(() => {
    expect(running.subscriptions.activeSubscriptions()).toBe(0);
    expect(running.subscriptions.httpStreams()).toBe(0);
    expect(running.subscriptions.topics()).toBe(0);
    expect(running.subscriptions.listenerCounts()).toMatchObject({ indexedListeners: 0, typeListeners: 0 });
  });
}

describe('Server-Sent Events, with graphql-sse', () => {
  it('follows an order to DELIVERED: the current state, each change, then complete', async () => {
    const orderId = await shop.placeOrder();
    const tracking = record(sseClient(gateway.url, shop.tokens.ada), TRACK, { id: orderId });
    await tracking.received(1);
    await publishJourney(orderId);
    await tracking.ended();
    expect(tracking.state).toEqual({ completed: true });
    expect(statusesOf(tracking.results)).toEqual(WHOLE_JOURNEY);
    // Each event is a federated Order, resolved when it was sent.
    for (const result of tracking.results) {
      expect(result.data.orderStatusChanged).toMatchObject({ id: orderId, customer: { name: 'Ada Lovelace' } });
      expect(result.data.orderStatusChanged.items[0].meal.name).toEqual(expect.any(String));
    }
    await settled();
  });

  it('resumes a client that comes back with Last-Event-ID from the current state, ids going on', async () => {
    // The supergraph's own gateway, on the real chain: the order moves on in its database while away.
    const real = t.supergraph.gateway;
    const orderId = await shop.placeOrder();
    const first = await openEventStream(real.url, shop.tokens.ada, { id: orderId });
    expect(first.response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    await shop.pay(orderId);
    const before = await first.received(2);
    expect(before.map((e) => [e.id, e.event, statusesOf([e.data])[0]])).toEqual([
      ['1', 'next', 'PENDING_PAYMENT/1'],
      ['2', 'next', 'PAID/2'],
    ]);
    first.leave();
    await vi.waitFor(() => expect(real.subscriptions.httpStreams()).toBe(0));

    // Away: the kitchen accepts and starts preparing.
    await shop.changeStatus(orderId, 'ACCEPTED');
    await shop.changeStatus(orderId, 'PREPARING');
    const resumed = await openEventStream(real.url, shop.tokens.ada, { id: orderId }, '2');
    const [current] = await resumed.received(1);
    expect([current!.id, statusesOf([current!.data])[0]]).toEqual(['3', 'PREPARING/4']);
    for (const status of KITCHEN_FLOW.slice(2)) await shop.changeStatus(orderId, status);
    await resumed.ended();
    expect(resumed.events.map((e) => [e.id, e.event, e.data && statusesOf([e.data])[0]])).toEqual([
      ['3', 'next', 'PREPARING/4'],
      ['4', 'next', 'READY/5'],
      ['5', 'next', 'OUT_FOR_DELIVERY/6'],
      ['6', 'next', 'DELIVERED/7'],
      [undefined, 'complete', undefined],
    ]);
    await vi.waitFor(() => expect(real.subscriptions.activeSubscriptions()).toBe(0));
  });

  it('is started again by graphql-sse when its gateway shuts down, and gets the current state first', async () => {
    const port = await freePort();
    const ownBus = new EmitterBus();
    const env = { GATEWAY_PORT: String(port) };
    let own = await startGatewayOnBus(t.supergraph.subgraphUrls, ownBus, env);
    extraGateways.push(own);
    const orderId = await shop.placeOrder();
    const reconnects = vi.fn();
    const client = sseClient(own.url, shop.tokens.ada, {
      retryAttempts: 50,
      retry: () => new Promise((resolve) => setTimeout(resolve, 100)),
      on: { connected: (reconnected) => void (reconnected && reconnects()) },
    });
    const tracking = record(client, TRACK, { id: orderId });
    await tracking.received(1);
    // Shutdown ends the stream without `complete`; the order is cancelled while no gateway is up.
    await own.close();
    await shop.cancel(orderId);
    own = await startGatewayOnBus(t.supergraph.subgraphUrls, ownBus, env);
    extraGateways.push(own);
    await tracking.ended();
    expect(reconnects).toHaveBeenCalledTimes(1);
    expect(statusesOf(tracking.results)).toEqual(['PENDING_PAYMENT/1', 'CANCELLED/2']);
    expect(tracking.state).toEqual({ completed: true });
    await settled(own);
  });
});

describe('refusals, over SSE and multipart HTTP alike', () => {
  const forgedToken = () => testAccessToken(shop.userIds.chef, 'STAFF', { signer: forgedUserTokenSigner() });

  it('refuses a bad token with 401 UNAUTHENTICATED', async () => {
    const forged = await forgedToken();
    for (const accept of ['text/event-stream', 'multipart/mixed;subscriptionSpec="1.0", application/json']) {
      const response = await fetch(gateway.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept, authorization: `Bearer ${forged}` },
        body: JSON.stringify({ query: FEED }),
      });
      expect(response.status).toBe(401);
      expect(await response.json()).toEqual({
        errors: [expect.objectContaining({ extensions: { code: 'UNAUTHENTICATED' } })],
      });
    }
    // graphql-sse's client reports the refused response; Apollo Client, the coded error in it.
    const sse = record(sseClient(gateway.url, forged), FEED);
    await sse.ended();
    expect((sse.state.error as { response?: Response }).response?.status).toBe(401);
    const apollo = follow(apolloClient(gateway.url, forged), FEED);
    await vi.waitFor(() => expect(apollo.completed).toBe(true));
    expect(apollo.errors).toEqual([
      expect.objectContaining({ errors: [expect.objectContaining({ extensions: { code: 'UNAUTHENTICATED' } })] }),
    ]);
    expect(apollo.data).toEqual([]);
  });

  it("gives a customer who subscribes to the kitchen's feed the typed FORBIDDEN error", async () => {
    const forbidden = {
      message: 'You may not subscribe to orderUpdates',
      extensions: { code: 'FORBIDDEN' },
    };
    // In the stream, as graphql-sse's protocol has it: one `next` with errors, then `complete`.
    const sse = record(sseClient(gateway.url, shop.tokens.ada), FEED);
    await sse.ended();
    expect(sse.results).toEqual([{ errors: [forbidden] }]);
    expect(sse.state).toEqual({ completed: true });
    // As a GraphQL response (403) over multipart, which Apollo Client turns into its GraphQL errors.
    const apollo = follow(apolloClient(gateway.url, shop.tokens.ada), FEED);
    await vi.waitFor(() => expect(apollo.completed).toBe(true));
    expect(apollo.errors).toEqual([expect.objectContaining({ errors: [forbidden] })]);
    await settled();
  });

  it(`refuses a stream beyond ${MAX_PER_ADDRESS} from one client address with 429, whatever the transport`, async () => {
    const kitchen = Array.from({ length: MAX_PER_ADDRESS }, (_, i) =>
      i % 2 === 0
        ? record(sseClient(gateway.url, shop.tokens.chef), FEED)
        : follow(apolloClient(gateway.url, shop.tokens.chef), FEED),
    );
    await vi.waitFor(() => expect(gateway.subscriptions.httpStreams()).toBe(MAX_PER_ADDRESS));
    const refused = follow(apolloClient(gateway.url, shop.tokens.chef), FEED);
    await vi.waitFor(() => expect(refused.completed).toBe(true));
    expect(refused.errors).toEqual([
      expect.objectContaining({
        errors: [
          expect.objectContaining({
            extensions: { code: 'TOO_MANY_SUBSCRIPTIONS', max: MAX_PER_ADDRESS, scope: 'address' },
          }),
        ],
      }),
    ]);
    for (const subscription of kitchen) subscription.unsubscribe();
    await settled();
  });
});

describe('clean-up', () => {
  it('at shutdown gives multipart clients a retryable error and the final boundary, and does not wait for them', async () => {
    const own = await startGatewayOnBus(t.supergraph.subgraphUrls, new EmitterBus());
    extraGateways.push(own);
    const tracking = follow(apolloClient(own.url, shop.tokens.ada), TRACK, { id: await shop.placeOrder() });
    await vi.waitFor(() => expect(tracking.data).toHaveLength(1));
    const closing = Date.now();
    await own.close();
    // Well under the HTTP server's drain grace (10 s), which an open stream would have to run out.
    expect(Date.now() - closing).toBeLessThan(5_000);
    await vi.waitFor(() => expect(tracking.completed).toBe(true));
    expect(tracking.errors).toEqual([
      expect.objectContaining({
        errors: [
          {
            message: 'the gateway is shutting down; subscribe again',
            extensions: { code: 'SUBSCRIPTIONS_UNAVAILABLE', retryable: true },
          },
        ],
      }),
    ]);
    expect(own.subscriptions.activeSubscriptions()).toBe(0);
  });

  it('ends the subscription when the client goes away mid-stream, over either transport', async () => {
    const orderId = await shop.placeOrder();
    const client = sseClient(gateway.url, shop.tokens.ada);
    const overSse = record(client, TRACK, { id: orderId });
    const overMultipart = follow(apolloClient(gateway.url, shop.tokens.ada), TRACK, { id: orderId });
    const feed = record(sseClient(gateway.url, shop.tokens.chef), FEED);
    await overSse.received(1);
    await vi.waitFor(() => expect(overMultipart.data).toHaveLength(1));
    await vi.waitFor(() => expect(gateway.subscriptions.activeSubscriptions()).toBe(3));
    await bus.publish('orders', statusChanged(orderId, 'PENDING_PAYMENT', 'PAID', 2));
    await overSse.received(2);
    await vi.waitFor(() => expect(overMultipart.data).toHaveLength(2));

    overMultipart.unsubscribe();
    await vi.waitFor(() => expect(gateway.subscriptions.activeSubscriptions()).toBe(2));
    client.dispose();
    feed.unsubscribe();
    await settled();
    expect(gateway.subscriptions.listenerCounts().tails).toBe(1);
    // The one tail of the bus stays for the next subscriber; nothing else listens.
    expect(bus.emitter.listenerCount('orders')).toBe(1);
  });
});
