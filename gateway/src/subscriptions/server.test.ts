import { Supergraph } from '@apollo/federation-internals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ApolloGateway } from '@apollo/gateway';
import type { GraphQLSchema } from 'graphql';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLogger, type EventBus } from '@food/platform';
import { EmitterBus, forgedUserTokenSigner, testAccessToken, testUserTokenVerifier } from '@food/platform/testing';
import { supergraphPath } from '../compose/compose.js';
import { readLiveFields } from './declarations.js';
import { SubscriptionEngine } from './engine.js';
import { SupergraphGateway } from '../execution/supergraph-gateway.js';
import { LiveExecutor } from './executor.js';
import { attachSubscriptionServer, type SubscriptionServer, type SubscriptionServerOptions } from './server.js';

/**
 * The WebSocket side on its own (no subgraphs): what is refused before anything is resolved. The
 * whole flow, with the subgraphs, is in e2e/src/subscriptions.test.ts.
 */

const userTokens = testUserTokenVerifier();
let schema: GraphQLSchema;
let gateway: ApolloGateway;
const supergraphSdl = readFileSync(fileURLToPath(supergraphPath), 'utf8');
// No data sources: nothing here reaches execution.
const live = {
  fields: readLiveFields(supergraphSdl),
  executor: new LiveExecutor(
    new SupergraphGateway({ supergraph: Supergraph.build(supergraphSdl), supergraphSdl, services: new Map() }),
    createLogger('test', 'silent'),
  ),
};
const running: { httpServer: Server; subscriptions: SubscriptionServer; engine: SubscriptionEngine }[] = [];

beforeAll(async () => {
  gateway = new ApolloGateway({ supergraphSdl });
  schema = (await gateway.load()).schema;
});
afterAll(async () => {
  await gateway?.stop();
});
afterEach(async () => {
  for (const { httpServer, subscriptions, engine } of running.splice(0)) {
    await subscriptions.close();
    await engine.close();
    await new Promise((resolve) => httpServer.close(resolve));
  }
});

async function serve(options: Partial<SubscriptionServerOptions> = {}, eventBus: EventBus | null = new EmitterBus()) {
  const httpServer = createServer((_req, res) => res.writeHead(404).end());
  const logger = createLogger('test', 'silent');
  const engine = new SubscriptionEngine({ schema: () => schema, live, eventBus: eventBus ?? undefined, logger });
  const subscriptions = attachSubscriptionServer({
    httpServer,
    engine,
    userTokens,
    logger,
    maxSubscriptionsPerConnection: 20,
    production: false,
    ...options,
  });
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  running.push({ httpServer, subscriptions, engine });
  const { port } = httpServer.address() as AddressInfo;
  return { url: `ws://127.0.0.1:${port}/graphql`, subscriptions, engine };
}

/** A raw socket speaking graphql-transport-ws; resolves with how it was closed. */
function rawSocket(url: string, onOpen: (socket: WebSocket) => void = () => {}) {
  const socket = new WebSocket(url, 'graphql-transport-ws');
  socket.on('open', () => onOpen(socket));
  socket.on('error', () => {});
  return new Promise<{ code: number; reason: string }>((resolve) =>
    socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
}

async function subscribeOnce(url: string, query: string, token?: string) {
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
  });
  try {
    return await new Promise<{ error?: any; results: unknown[] }>((resolve) => {
      const results: unknown[] = [];
      client.subscribe(
        { query },
        {
          next: (value) => void results.push(value),
          error: (error) => resolve({ error, results }),
          complete: () => resolve({ results }),
        },
      );
    });
  } finally {
    await client.dispose();
  }
}

describe('the WebSocket endpoint', () => {
  it('closes a socket that does not initialise in time (4408)', async () => {
    const { url } = await serve({ connectionInitWaitTimeoutMs: 100 });
    expect(await rawSocket(url)).toEqual({ code: 4408, reason: 'Connection initialisation timeout' });
  });

  it('keeps a socket that initialises in time open past the wait', async () => {
    const { url, subscriptions } = await serve({ connectionInitWaitTimeoutMs: 100 });
    const socket = new WebSocket(url, 'graphql-transport-ws');
    const closed = vi.fn();
    socket.on('close', closed);
    const acknowledged = new Promise((resolve) => socket.on('message', resolve));
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init' })));
    expect(JSON.parse(String(await acknowledged))).toEqual({ type: 'connection_ack' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(closed).not.toHaveBeenCalled();
    expect(subscriptions.connections()).toBe(1);
    socket.close();
  });

  it('cuts off a socket that stops answering pings, and keeps the ones that answer', async () => {
    const { url } = await serve({ keepAliveMs: 50 });
    const open = (autoPong: boolean) => {
      const socket = new WebSocket(url, 'graphql-transport-ws', { autoPong });
      socket.on('error', () => {});
      const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
      return { socket, closed, opened: new Promise((resolve) => socket.on('open', resolve)) };
    };
    const dead = open(false);
    const alive = open(true);
    await Promise.all([dead.opened, alive.opened]);
    for (const { socket } of [dead, alive]) socket.send(JSON.stringify({ type: 'connection_init' }));
    // terminate(): no close frame, so the client sees an abnormal closure.
    expect(await dead.closed).toBe(1006);
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(alive.socket.readyState).toBe(WebSocket.OPEN);
    alive.socket.close();
  });

  it('speaks graphql-transport-ws: pings, subscribes, completes, and closes on protocol errors', async () => {
    const { url, subscriptions, engine } = await serve();
    const token = await testAccessToken('7c6d5e4f-3a2b-4c1d-9e8f-0a1b2c3d4e5f', 'STAFF');
    const init = JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } });
    const subscribe = JSON.stringify({
      id: '1',
      type: 'subscribe',
      payload: { query: 'subscription { orderUpdates { id } }' },
    });
    const session = (send: (socket: WebSocket) => void) => {
      const messages: unknown[] = [];
      const closed = rawSocket(url, (socket) => {
        socket.on('message', (data) => messages.push(JSON.parse(String(data))));
        send(socket);
      });
      return { messages, closed };
    };

    expect(await session((socket) => socket.send('{not json')).closed).toEqual({
      code: 4400,
      reason: 'Invalid message received',
    });
    expect(await session((socket) => socket.send(subscribe)).closed).toEqual({ code: 4401, reason: 'Unauthorized' });
    expect(await session((socket) => [init, init].forEach((m) => socket.send(m))).closed).toEqual({
      code: 4429,
      reason: 'Too many initialisation requests',
    });

    let live: WebSocket | undefined;
    const running = session((socket) => {
      live = socket;
      socket.send(init);
      // Once acknowledged (a subscribe before that is refused, as above).
      socket.once('message', () => {
        socket.send(JSON.stringify({ type: 'ping', payload: { at: 1 } }));
        socket.send(subscribe);
      });
    });
    await vi.waitFor(() => expect(engine.activeSubscriptions()).toBe(1));
    // The pong was sent before the subscription started, but may reach the client after it.
    await vi.waitFor(() =>
      expect(running.messages).toEqual([{ type: 'connection_ack' }, { type: 'pong', payload: { at: 1 } }]),
    );
    live!.send(JSON.stringify({ id: '1', type: 'complete' }));
    await vi.waitFor(() => expect(engine.activeSubscriptions()).toBe(0));
    live!.send(subscribe);
    await vi.waitFor(() => expect(engine.activeSubscriptions()).toBe(1));
    live!.send(subscribe);
    expect(await running.closed).toEqual({ code: 4409, reason: 'Subscriber for 1 already exists' });
    await vi.waitFor(() => expect(engine.activeSubscriptions()).toBe(0));
    // The server forgets the connection when its socket has closed, which may be after the client saw the close.
    await vi.waitFor(() => expect(subscriptions.connections()).toBe(0), { timeout: 5_000 });
  });

  it('closes a socket that sends a message over the size limit (1009)', async () => {
    const { url } = await serve({ maxPayloadBytes: 1024 });
    const closed = await rawSocket(url, (socket) =>
      socket.send(JSON.stringify({ type: 'connection_init', payload: { padding: 'x'.repeat(2048) } })),
    );
    expect(closed.code).toBe(1009);
  });

  it('refuses a client that does not speak graphql-transport-ws (4406)', async () => {
    const { url } = await serve();
    const socket = new WebSocket(url, 'graphql-ws');
    socket.on('error', () => {});
    const code = await new Promise<number>((resolve) => socket.on('close', (closeCode) => resolve(closeCode)));
    // ws itself refuses the handshake when no subprotocol is acceptable: the socket never opens.
    expect([1002, 1006, 4406]).toContain(code);
  });

  it('accepts WebSockets on /graphql only', async () => {
    const { url } = await serve();
    const socket = new WebSocket(url.replace('/graphql', '/elsewhere'), 'graphql-transport-ws');
    const status = await new Promise<number | undefined>((resolve) => {
      socket.on('unexpected-response', (_req, res) => resolve(res.statusCode));
      socket.on('error', () => resolve(undefined));
    });
    expect(status).toBe(404);
  });

  it('refuses a bad token at connect (4403) and lets an anonymous one connect', async () => {
    const { url, subscriptions } = await serve();
    const forged = await testAccessToken('7c6d5e4f-3a2b-4c1d-9e8f-0a1b2c3d4e5f', 'ADMIN', {
      signer: forgedUserTokenSigner(),
    });
    const refused = await subscribeOnce(url, 'subscription { orderUpdates { id } }', forged);
    expect(refused.error).toMatchObject({ code: 4403, reason: 'Forbidden' });
    const anonymous = await subscribeOnce(url, 'subscription { orderUpdates { id } }');
    expect(anonymous.error).toEqual([expect.objectContaining({ extensions: { code: 'UNAUTHENTICATED' } })]);
    await vi.waitFor(() => expect(subscriptions.connections()).toBe(0), { timeout: 5_000 });
  });

  it('serves subscriptions only: a query over WebSockets is refused', async () => {
    const { url } = await serve();
    const token = await testAccessToken('7c6d5e4f-3a2b-4c1d-9e8f-0a1b2c3d4e5f', 'STAFF');
    const refused = await subscribeOnce(url, '{ __typename }', token);
    expect(refused.error).toEqual([
      expect.objectContaining({
        message: 'only subscriptions are served over WebSockets; send a query over HTTP POST to /graphql',
        extensions: { code: 'BAD_REQUEST' },
      }),
    ]);
  });

  it('refuses every subscribe without an event bus, and every socket once closed', async () => {
    const { url, subscriptions } = await serve({}, null);
    const token = await testAccessToken('7c6d5e4f-3a2b-4c1d-9e8f-0a1b2c3d4e5f', 'STAFF');
    const refused = await subscribeOnce(url, 'subscription { orderUpdates { id } }', token);
    expect(refused.error).toEqual([
      expect.objectContaining({
        message: 'subscriptions are not available: this gateway has no event bus',
        extensions: { code: 'SUBSCRIPTIONS_UNAVAILABLE' },
      }),
    ]);
    await subscriptions.close();
    const socket = new WebSocket(url, 'graphql-transport-ws');
    const status = await new Promise<number | undefined>((resolve) => {
      socket.on('unexpected-response', (_req, res) => resolve(res.statusCode));
      socket.on('error', () => resolve(undefined));
    });
    expect(status).toBe(503);
  });
});

describe('the engine checks what a subscriber asks for', () => {
  it('refuses more entities by the arguments than the limit, with a typed error', async () => {
    const engine = new SubscriptionEngine({
      schema: () => schema,
      live,
      eventBus: new EmitterBus(),
      maxEntities: 2,
      logger: createLogger('test', 'silent'),
    });
    const ids = ['a', 'b', 'c'].map((c) => `7c6d5e4f-3a2b-4c1d-9e8f-0a1b2c3d4e5${c}`);
    const subscriber = {
      caller: { kind: 'anonymous' as const },
      clientAddress: '127.0.0.1',
      transport: 'websocket' as const,
    };
    const query = 'subscription ($ids: [ID!]) { mealAvailabilityChanged(mealIds: $ids) { id } }';
    const refused = await engine.check({ query, variables: { ids } }, subscriber);
    expect(refused).toEqual([
      expect.objectContaining({
        message: 'mealAvailabilityChanged may follow at most 2 entities by its arguments, not 3',
        extensions: { code: 'BAD_USER_INPUT', max: 2 },
      }),
    ]);
    expect(Array.isArray(await engine.check({ query, variables: { ids: ids.slice(0, 2) } }, subscriber))).toBe(false);
    await engine.close();
  });
});
