import { randomUUID } from 'node:crypto';
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import type { Client } from 'graphql-ws';
import { freePort } from '@food/platform/testing';
import { startTestSupergraph } from './harness.js';
import { ServiceProcess } from './service-process.js';
import { Shop } from './shop.js';
import {
  FEED,
  KITCHEN_FLOW,
  TRACK,
  record,
  statusesOf,
  webSocketUrl,
  wsClient,
  WHOLE_JOURNEY,
} from './tracking-clients.js';
import { connectTestRedis, nodesOf } from './test-redis.js';

/**
 * Live order tracking as deployed: gateway replicas as their own processes behind (imagined) load
 * balancing, meeting only through Redis, with clients that reconnect, and Apollo Client as a frontend.
 */
let t: Awaited<ReturnType<typeof startTestSupergraph>>;
let shop: Shop;
/** Two gateway replicas, each its own Node process on its own port, sharing Redis with everything else. */
const replicas: ServiceProcess[] = [];
const clients: Client[] = [];

function client(httpUrl: string, token: string, options: Parameters<typeof wsClient>[2] = {}) {
  const created = wsClient(httpUrl, token, options);
  clients.push(created);
  return created;
}

async function startReplica(port: number) {
  return ServiceProcess.start('gateway', { ...t.processEnv, NODE_ENV: 'production', GATEWAY_PORT: String(port) });
}

beforeAll(async () => {
  t = await startTestSupergraph();
  shop = await new Shop(t.post, t.supergraph.gatewayUrl).open();
  for (let i = 0; i < 2; i++) replicas.push(await startReplica(await freePort()));
}, 180_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.dispose()));
  const exitCodes = await Promise.all(replicas.map((replica) => replica.stop()));
  await t?.stop();
  // A replica that cannot stop cleanly on SIGTERM would hang rolling updates.
  expect(exitCodes.every((code) => code === 0 || code === null)).toBe(true);
});

describe('two gateway processes (Redis fan-out)', () => {
  it('delivers a change made through any gateway to subscribers on every gateway', async () => {
    const [a, b] = replicas as [ServiceProcess, ServiceProcess];
    const orderId = await shop.placeOrder();
    const onA = record(client(a.url, shop.tokens.ada), TRACK, { id: orderId });
    const onB = record(client(b.url, shop.tokens.ada), TRACK, { id: orderId });
    const kitchenOnB = record(client(b.url, shop.tokens.chef), FEED);
    await Promise.all([onA.received(1), onB.received(1)]);

    // Pay through replica A, move the order on through replica B and through the in-process gateway.
    shop.gatewayUrl = a.url;
    await shop.pay(orderId);
    await shop.orderOnceItIs(orderId, 'PAID');
    for (const [i, status] of KITCHEN_FLOW.entries()) {
      shop.gatewayUrl = i % 2 === 0 ? b.url : t.supergraph.gatewayUrl;
      await shop.changeStatus(orderId, status);
    }
    shop.gatewayUrl = t.supergraph.gatewayUrl;

    await Promise.all([onA.ended(), onB.ended()]);
    expect(statusesOf(onA.results)).toEqual(WHOLE_JOURNEY);
    expect(statusesOf(onB.results)).toEqual(WHOLE_JOURNEY);
    expect(onA.state).toEqual({ completed: true });
    // Federated fields in a pushed message, resolved by the replica that pushed it.
    expect(onB.results.at(-1).data.orderStatusChanged).toMatchObject({
      customer: { name: 'Ada Lovelace' },
      payment: { status: 'SUCCEEDED' },
    });
    await kitchenOnB.received(6);
    const kitchenSaw = kitchenOnB.results
      .map((result) => result.data.orderUpdates)
      .filter((order) => order.id === orderId)
      .map((order) => `${order.status}/${order.version}`);
    expect(kitchenSaw).toEqual(WHOLE_JOURNEY.slice(1));
  });
});

describe('a client that reconnects (graphql-ws retry)', () => {
  it('gets the current status first after the gateway it was on crashes and comes back', async () => {
    const replica = replicas[1]!;
    const port = Number(new URL(replica.url).port);
    const [moving, finishing] = [await shop.placeOrder(), await shop.placeOrder()];
    let connected = 0;
    const retrying = client(replica.url, shop.tokens.ada, {
      retryAttempts: 100,
      retryWait: () => new Promise((resolve) => setTimeout(resolve, 200)),
      // A refused connection is an error event, not a close event: retry on those too (graphql-ws
      // retries only close events by default), as a tracking app that must survive a deploy would.
      shouldRetry: () => true,
      on: { connected: () => void connected++ },
    });
    const movingTracker = record(retrying, TRACK, { id: moving });
    const finishingTracker = record(retrying, TRACK, { id: finishing });
    await Promise.all([movingTracker.received(1), finishingTracker.received(1)]);
    expect(connected).toBe(1);

    // The replica dies (no close frame); meanwhile one order moves on and the other ends.
    await replica.kill();
    await shop.pay(moving);
    await shop.orderOnceItIs(moving, 'PAID');
    await shop.changeStatus(moving, 'ACCEPTED');
    await shop.cancel(finishing);

    await replica.start({ GATEWAY_PORT: String(port) });
    await vi.waitFor(() => expect(connected).toBe(2), { timeout: 20_000 });
    // Resubscribed: the order's state now first (not the changes it missed), then what follows.
    await movingTracker.received(2);
    for (const status of KITCHEN_FLOW.slice(1)) await shop.changeStatus(moving, status);
    await Promise.all([movingTracker.ended(), finishingTracker.ended()]);
    expect(statusesOf(movingTracker.results)).toEqual([
      'PENDING_PAYMENT/1',
      'ACCEPTED/3',
      'PREPARING/4',
      'READY/5',
      'OUT_FOR_DELIVERY/6',
      'DELIVERED/7',
    ]);
    // The order that ended while the client was away: its final state, then the subscription completes.
    expect(statusesOf(finishingTracker.results)).toEqual(['PENDING_PAYMENT/1', 'CANCELLED/2']);
    expect(finishingTracker.state).toEqual({ completed: true });
  });
});

describe('a rolling restart of the gateway replicas', () => {
  it('loses no status: every subscriber ends with every status of its order, each once by version', async () => {
    const orderIds: string[] = [];
    for (let i = 0; i < 8; i++) orderIds.push(await shop.placeOrder());
    // As behind a load balancer: each (re)connect goes to a replica that is up, round robin.
    const up = new Set(replicas);
    let turn = 0;
    const nextReplica = () => {
      const live = replicas.filter((replica) => up.has(replica));
      return webSocketUrl(live[turn++ % live.length]!.url);
    };
    const connects = orderIds.map(() => 0);
    const trackers = orderIds.map((id, i) =>
      record(
        client(replicas[0]!.url, shop.tokens.ada, {
          url: nextReplica,
          retryAttempts: 100,
          retryWait: () => new Promise((resolve) => setTimeout(resolve, 50)),
          shouldRetry: () => true,
          on: { connected: () => void connects[i]!++ },
        }),
        TRACK,
        { id },
      ),
    );
    await Promise.all(trackers.map((tracker) => tracker.received(1)));

    // One replica after the other: drained (SIGTERM: its clients get 1001 and reconnect), then back.
    const rollingRestart = (async () => {
      for (const replica of replicas) {
        const port = Number(new URL(replica.url).port);
        up.delete(replica);
        expect(await replica.stop()).toBe(0);
        await replica.start({ GATEWAY_PORT: String(port) });
        up.add(replica);
      }
    })();
    // The orders move on during the restart; the last status waits for it to end, so that no
    // subscription completes before its replica has restarted (on a slow machine the whole kitchen
    // flow could otherwise finish while the first replica is still coming back).
    const journey = (async () => {
      await Promise.all(orderIds.map((id) => shop.pay(id)));
      for (const id of orderIds) await shop.orderOnceItIs(id, 'PAID');
      for (const [step, status] of KITCHEN_FLOW.entries()) {
        if (step === KITCHEN_FLOW.length - 1) await rollingRestart;
        await new Promise((resolve) => setTimeout(resolve, 400));
        for (const id of orderIds) await shop.changeStatus(id, status);
      }
    })();
    await Promise.all([rollingRestart, journey]);
    await Promise.all(trackers.map((tracker) => tracker.ended(30_000)));
    // Every client was on a replica that restarted, and came back through a reconnect.
    for (const count of connects) expect(count).toBeGreaterThanOrEqual(2);
    for (const tracker of trackers) {
      expect(tracker.state).toEqual({ completed: true });
      // A reconnect sends the current state first, which may repeat the last one seen: one per version.
      expect([...new Set(statusesOf(tracker.results))]).toEqual(WHOLE_JOURNEY);
      const versions = tracker.results.map((result) => result.data.orderStatusChanged.version);
      expect(versions).toEqual([...versions].sort((a, b) => a - b));
    }
  }, 120_000);
});

describe('Apollo Client as a frontend', () => {
  /**
   * Places and pays over HTTP and follows the order to DELIVERED through `apollo`'s link: each pushed
   * message joins users (customer), meals (meal names) and payments (payment status).
   * `whileSubscribed` runs once the first message is in.
   */
  async function placePayAndFollow(apollo: ApolloClient, whileSubscribed = async () => {}) {
    const placed = await apollo.mutate({
      mutation: gql`
        mutation Place($input: PlaceOrderInput!) {
          placeOrder(input: $input) {
            id
            status
          }
        }
      `,
      variables: {
        input: {
          deliveryAddress: '1 Apollo Avenue',
          items: [{ mealId: shop.mealId, quantity: 1 }],
          idempotencyKey: `order-${randomUUID()}`,
        },
      },
    });
    const orderId = (placed.data as { placeOrder: { id: string } }).placeOrder.id;
    const seen: string[] = [];
    const done = new Promise<void>((resolve, reject) => {
      apollo
        .subscribe({
          query: gql`
            subscription Track($id: ID!) {
              orderStatusChanged(orderId: $id) {
                id
                status
                version
                customer {
                  name
                }
                items {
                  quantity
                  meal {
                    name
                  }
                }
                payment {
                  status
                }
              }
            }
          `,
          variables: { id: orderId },
        })
        .subscribe({
          next: ({ data, error }) => {
            if (error) reject(error);
            type Pushed = {
              status: string;
              version: number;
              customer: { name: string };
              items: { meal: { name: string } }[];
              payment: { status: string } | null;
            };
            const order = (data as { orderStatusChanged: Pushed }).orderStatusChanged;
            seen.push(
              `${order.status}/${order.version}|${order.customer.name}|${order.items[0]!.meal.name}|${order.payment?.status ?? '-'}`,
            );
          },
          error: reject,
          complete: resolve,
        });
    });
    await vi.waitFor(() => expect(seen).toHaveLength(1), { timeout: 10_000 });
    await whileSubscribed();
    const paid = await apollo.mutate({
      mutation: gql`
        mutation Pay($input: PayForOrderInput!) {
          payForOrder(input: $input) {
            id
            status
          }
        }
      `,
      variables: { input: { orderId, paymentToken: 'tok_sandbox_success', idempotencyKey: `apollo-${orderId}` } },
    });
    expect((paid.data as { payForOrder: { status: string } }).payForOrder.status).toBe('SUCCEEDED');
    await shop.orderOnceItIs(orderId, 'PAID');
    for (const status of KITCHEN_FLOW) await shop.changeStatus(orderId, status);
    await done;
    const meal = seen[0]!.split('|')[2]!;
    expect(meal.length).toBeGreaterThan(0);
    expect(seen).toEqual(WHOLE_JOURNEY.map((step, i) => `${step}|Ada Lovelace|${meal}|${i === 0 ? '-' : 'SUCCEEDED'}`));
    // The cache holds the order as last pushed, for every component that reads it.
    expect((apollo.cache.extract() as Record<string, unknown>)[`Order:${orderId}`]).toMatchObject({
      status: 'DELIVERED',
    });
  }

  it('places and pays over HTTP and follows the order to DELIVERED over GraphQLWsLink, with joined fields', async () => {
    const replica = replicas[0]!;
    const authorization = `Bearer ${shop.tokens.ada}`;
    const ws = client(replica.url, shop.tokens.ada);
    const apollo = new ApolloClient({
      cache: new InMemoryCache(),
      link: ApolloLink.split(
        ({ operationType }) => operationType === 'subscription',
        new GraphQLWsLink(ws),
        new HttpLink({ uri: replica.url, headers: { authorization } }),
      ),
    });
    await placePayAndFollow(apollo);
    apollo.stop();
  });

  it('does the same with nothing but its plain HttpLink: the subscription over multipart HTTP', async () => {
    const replica = replicas[0]!;
    const apollo = new ApolloClient({
      cache: new InMemoryCache(),
      link: new HttpLink({ uri: replica.url, headers: { authorization: `Bearer ${shop.tokens.ada}` } }),
    });
    const openStreams = async () => {
      const metrics = await (await fetch(new URL('/metrics', replica.url))).text();
      return Number(/^gateway_http_subscription_streams (\d+)$/m.exec(metrics)?.[1]);
    };
    // One multipart response while it follows the order, none once the order is delivered.
    await placePayAndFollow(apollo, async () => expect(await openStreams()).toBe(1));
    apollo.stop();
    await vi.waitFor(async () => expect(await openStreams()).toBe(0));
  });
});

describe('clean-up under churn', () => {
  it('leaves no subscription, listener or Redis connection behind', async () => {
    const gateway = t.supergraph.gateway;
    const prefix = t.processEnv.REDIS_KEY_PREFIX!;
    const redis = await connectTestRedis('test-client-list');
    // On a cluster, a process's connections are spread over the nodes: count them on every node.
    const ourConnections = async () => {
      const lists = await Promise.all(nodesOf(redis).map(async (node) => String(await node.client('LIST'))));
      // BullMQ's queue and worker connections (`…:queue:<name>`, `…:worker:<name>`) are left out: the
      // job workers in this process replace an idle worker on their own schedule, churn or not.
      return lists
        .flatMap((list) => list.split('\n'))
        .filter((line) => line.includes(`name=${prefix}`) && !/ name=\S*:(queue|worker):/.test(line)).length;
    };
    try {
      const orderId = await shop.placeOrder();
      // Warm: the gateway's one tail of the orders stream is open.
      const warm = record(client(t.supergraph.gatewayUrl, shop.tokens.chef), FEED);
      await vi.waitFor(() => expect(gateway.subscriptions.listenerCounts().tails).toBe(1));
      warm.unsubscribe();
      const connectionsBefore = await ourConnections();

      for (let round = 0; round < 3; round++) {
        const sockets = Array.from({ length: 10 }, (_, i) =>
          wsClient(t.supergraph.gatewayUrl, i % 2 ? shop.tokens.ada : shop.tokens.chef),
        );
        const subscriptions = sockets.flatMap((socket, i) =>
          Array.from({ length: 5 }, () => (i % 2 ? record(socket, TRACK, { id: orderId }) : record(socket, FEED))),
        );
        await vi.waitFor(() => expect(gateway.subscriptions.activeSubscriptions()).toBe(50), { timeout: 10_000 });
        // Half end politely (unsubscribe, then close), half vanish (the socket is cut).
        subscriptions.slice(0, 25).forEach((subscription) => subscription.unsubscribe());
        await Promise.all(sockets.slice(0, 5).map((socket) => socket.dispose()));
        const raw = new WebSocket(webSocketUrl(t.supergraph.gatewayUrl), 'graphql-transport-ws');
        await new Promise((resolve) => raw.once('open', resolve));
        raw.terminate();
        await Promise.all(sockets.slice(5).map((socket) => socket.terminate()));
        await vi.waitFor(() => {
          expect(gateway.subscriptions.activeSubscriptions()).toBe(0);
          expect(gateway.subscriptions.connections()).toBe(0);
        });
      }
      expect(gateway.subscriptions.listenerCounts()).toMatchObject({ indexedListeners: 0, typeListeners: 0 });
      expect(gateway.subscriptions.topics()).toBe(0);
      // Subscribers share the process's connections to Redis; churn opens none per subscriber. A
      // stream's tail is one connection per partition (8) and may be reopened under churn (CI saw
      // +8 on one node, under load); on a cluster each client also keeps a connection to whichever
      // node it first asked for the slot map: a few dozen more or fewer. A connection per
      // subscriber (150 of them here) would still show.
      const connectionsAfter = await ourConnections();
      expect(Math.abs(connectionsAfter - connectionsBefore)).toBeLessThan(50);
    } finally {
      redis.disconnect();
    }
  });
});
