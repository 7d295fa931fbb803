import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Supergraph } from '@apollo/federation-internals';
import { ApolloGateway } from '@apollo/gateway';
import type { GraphQLSchema } from 'graphql';
import { createClient, type Client, type ClientOptions, type ExecutionResult } from 'graphql-sse';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLogger } from '@food/platform';
import { EmitterBus, forgedUserTokenSigner, testAccessToken, testUserTokenVerifier } from '@food/platform/testing';
import { supergraphPath } from '../compose/compose.js';
import { readLiveFields } from './declarations.js';
import { SubscriptionEngine } from './engine.js';
import { SupergraphGateway } from '../execution/supergraph-gateway.js';
import { LiveExecutor } from './executor.js';
import { serveHttpSubscriptions, type HttpSubscriptions, type HttpSubscriptionsOptions } from './http-streams.js';
import { multipartSubscriptions } from './multipart.js';
import { serverSentEvents } from './sse.js';

/**
 * SSE and multipart HTTP on their own (no subgraphs): which requests are theirs, what is refused
 * before anything is resolved, heartbeats, and how a stream ends. Results of real orders, through
 * Apollo Client and graphql-sse's client, are in e2e/src/subscription-transports.test.ts.
 */

const userTokens = testUserTokenVerifier();
const STAFF_ID = '7c6d5e4f-3a2b-4c1d-9e8f-0a1b2c3d4e5f';
const FEED = 'subscription { orderUpdates { id } }';
/** What the clients send: curl's and graphql-sse's for SSE, Apollo Client 4's for multipart. */
const ACCEPT = {
  sse: 'text/event-stream',
  multipart:
    'multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/graphql-response+json,application/json;q=0.9',
} as const;
const PASSED_ON = 'passed on to Apollo Server';

let schema: GraphQLSchema;
let gateway: ApolloGateway;
const supergraphSdl = readFileSync(fileURLToPath(supergraphPath), 'utf8');
// No data sources: nothing here resolves an event.
const live = {
  fields: readLiveFields(supergraphSdl),
  executor: new LiveExecutor(
    new SupergraphGateway({ supergraph: Supergraph.build(supergraphSdl), supergraphSdl, services: new Map() }),
    createLogger('test', 'silent'),
  ),
};
const running: { httpServer: Server; engine: SubscriptionEngine }[] = [];
const sseClients: Client[] = [];
const aborts: AbortController[] = [];

beforeAll(async () => {
  gateway = new ApolloGateway({ supergraphSdl });
  schema = (await gateway.load()).schema;
});
afterAll(async () => {
  await gateway?.stop();
});
afterEach(async () => {
  for (const client of sseClients.splice(0)) client.dispose();
  for (const controller of aborts.splice(0)) controller.abort();
  for (const { httpServer, engine } of running.splice(0)) {
    await engine.close();
    httpServer.closeAllConnections();
    await new Promise((resolve) => httpServer.close(resolve));
  }
});

async function serve(options: Partial<HttpSubscriptionsOptions> = {}, heartbeatMs = 60_000) {
  const logger = createLogger('test', 'silent');
  const engine = new SubscriptionEngine({ schema: () => schema, live, eventBus: new EmitterBus(), logger });
  const start = () =>
    serveHttpSubscriptions({
      engine,
      userTokens,
      logger,
      protocols: [serverSentEvents({ heartbeatMs }), multipartSubscriptions({ heartbeatMs })],
      maxStreamsPerAddress: 20,
      ...options,
    });
  const served = { subscriptions: start() };
  const httpServer = createServer(async (request, response) => {
    const body = await bodyOf(request);
    Object.assign(request, { body: body ? JSON.parse(body) : undefined });
    await served.subscriptions.handle(request, response, () => response.writeHead(404).end(PASSED_ON));
  });
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  running.push({ httpServer, engine });
  const { port } = httpServer.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/graphql`,
    engine,
    get subscriptions(): HttpSubscriptions {
      return served.subscriptions;
    },
    /** A gateway that comes back (same address, new transports), as after a restart. */
    restart: () => void (served.subscriptions = start()),
  };
}

async function bodyOf(request: IncomingMessage): Promise<string> {
  let body = '';
  for await (const chunk of request) body += String(chunk);
  return body;
}

const staffToken = () => testAccessToken(STAFF_ID, 'STAFF');
const customerToken = () => testAccessToken(STAFF_ID, 'CUSTOMER');

/** A subscription as a raw request, its response body read as it arrives. */
async function subscribe(
  url: string,
  transport: keyof typeof ACCEPT,
  query: string,
  { token, headers = {} }: { token?: string; headers?: Record<string, string> } = {},
) {
  const controller = new AbortController();
  aborts.push(controller);
  const response = await fetch(url, {
    method: 'POST',
    signal: controller.signal,
    headers: {
      'content-type': 'application/json',
      accept: ACCEPT[transport],
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...headers,
    },
    body: JSON.stringify({ query }),
  });
  const body = { text: '', ended: false };
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  const reading = (async () => {
    try {
      for (let read = await reader.read(); !read.done; read = await reader.read()) {
        body.text += decoder.decode(read.value, { stream: true });
      }
    } catch {
      // Aborted by the test.
    }
    body.ended = true;
  })();
  return {
    response,
    body,
    /** Resolves once the server has ended the response. */
    ended: () => reading.then(() => body.text),
    /** The client goes away mid-stream. */
    leave: () => controller.abort(),
  };
}

/** A graphql-sse client, as an app holds one. */
function sseClient(url: string, token: string | undefined, options: Partial<ClientOptions> = {}) {
  const client = createClient({
    url,
    headers: token ? { authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
    ...options,
  });
  sseClients.push(client);
  return client;
}

function record(client: Client, query: string) {
  const results: ExecutionResult[] = [];
  const state: { error?: unknown; completed: boolean } = { completed: false };
  const ended = new Promise<void>((resolve) => {
    client.subscribe(
      { query },
      {
        next: (result) => void results.push(result as ExecutionResult),
        error: (error) => {
          state.error = error;
          resolve();
        },
        complete: () => {
          state.completed = true;
          resolve();
        },
      },
    );
  });
  return { results, state, ended };
}

describe('which requests are served as streams', () => {
  it('passes queries and mutations on, whatever they accept, and subscriptions that ask for no stream', async () => {
    const { url } = await serve();
    const post = (accept: string, query: string) =>
      fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept },
        body: JSON.stringify({ query }),
      });
    for (const accept of [ACCEPT.sse, ACCEPT.multipart]) {
      for (const query of [
        '{ __typename }',
        'mutation { logOut }',
        'query Q { __typename } subscription S { orderUpdates { id } }',
        '{ nope(',
      ]) {
        expect(await (await post(accept, query)).text()).toBe(PASSED_ON);
      }
    }
    // A subscription without a stream Accept is Apollo Server's to refuse (http-guard.ts).
    for (const accept of ['application/json', '*/*', 'multipart/mixed;deferSpec=20220824, application/json']) {
      expect(await (await post(accept, FEED)).text()).toBe(PASSED_ON);
    }
  });

  it('serves a GET with the query in the URL, as EventSource sends it', async () => {
    const { url, engine } = await serve();
    const controller = new AbortController();
    aborts.push(controller);
    const response = await fetch(`${url}?query=${encodeURIComponent(FEED)}`, {
      headers: { accept: ACCEPT.sse, authorization: `Bearer ${await staffToken()}` },
      signal: controller.signal,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    await vi.waitFor(() => expect(engine.activeSubscriptions()).toBe(1));
  });
});

describe('refusals', () => {
  it('refuses a token that is present but invalid with 401 on both transports', async () => {
    const { url, engine } = await serve();
    const forged = await testAccessToken(STAFF_ID, 'STAFF', { signer: forgedUserTokenSigner() });
    for (const transport of ['sse', 'multipart'] as const) {
      for (const token of [forged, 'not-a-jwt']) {
        const { response, ended } = await subscribe(url, transport, FEED, { token });
        expect(response.status).toBe(401);
        expect(JSON.parse(await ended())).toEqual({
          errors: [expect.objectContaining({ extensions: { code: 'UNAUTHENTICATED' } })],
        });
      }
    }
    expect(engine.activeSubscriptions()).toBe(0);
  });

  it('answers a refused subscribe inside the stream over SSE, as graphql-sse reads it', async () => {
    const { url } = await serve();
    const customer = record(sseClient(url, await customerToken()), FEED);
    const invalid = record(sseClient(url, await staffToken()), 'subscription { orderUpdates { nope } }');
    await Promise.all([customer.ended, invalid.ended]);
    expect(customer.state).toEqual({ completed: true });
    expect(customer.results).toEqual([
      { errors: [{ message: 'You may not subscribe to orderUpdates', extensions: { code: 'FORBIDDEN' } }] },
    ]);
    expect(invalid.results).toEqual([
      {
        errors: [
          expect.objectContaining({
            message: 'Cannot query field "nope" on type "Order".',
            extensions: { code: 'GRAPHQL_VALIDATION_FAILED' },
          }),
        ],
      },
    ]);
  });

  it('answers a refused subscribe over multipart as a GraphQL response with its status', async () => {
    const { url } = await serve();
    const cases = [
      { token: await customerToken(), query: FEED, status: 403, code: 'FORBIDDEN' },
      { token: undefined, query: FEED, status: 401, code: 'UNAUTHENTICATED' },
      {
        token: await staffToken(),
        query: 'subscription { orderUpdates { nope } }',
        status: 400,
        code: 'GRAPHQL_VALIDATION_FAILED',
      },
    ];
    for (const { token, query, status, code } of cases) {
      const { response, ended } = await subscribe(url, 'multipart', query, { token });
      expect(response.status).toBe(status);
      // Apollo Client reads the errors of this type whatever the status.
      expect(response.headers.get('content-type')).toBe('application/graphql-response+json; charset=utf-8');
      expect(JSON.parse(await ended()).errors).toEqual([expect.objectContaining({ extensions: { code } })]);
    }
  });

  it(`refuses a stream beyond the client address's maximum with 429, over either transport`, async () => {
    const { url, engine, subscriptions } = await serve({ maxStreamsPerAddress: 2 });
    const token = await staffToken();
    const first = await subscribe(url, 'sse', FEED, { token });
    await subscribe(url, 'multipart', FEED, { token });
    await vi.waitFor(() => expect(engine.activeSubscriptions()).toBe(2));
    for (const transport of ['sse', 'multipart'] as const) {
      const refused = await subscribe(url, transport, FEED, { token });
      expect(refused.response.status).toBe(429);
      expect(JSON.parse(await refused.ended())).toEqual({
        errors: [
          {
            message: 'at most 2 subscriptions over HTTP (SSE, multipart) per client address',
            extensions: { code: 'TOO_MANY_SUBSCRIPTIONS', max: 2, scope: 'address' },
          },
        ],
      });
    }
    // A slot freed is a slot to use again.
    first.leave();
    await vi.waitFor(() => expect(subscriptions.streams()).toBe(1));
    const again = await subscribe(url, 'sse', FEED, { token });
    expect(again.response.status).toBe(200);
    await vi.waitFor(() => expect(engine.activeSubscriptions()).toBe(2));
  });

  it('refuses a browser page from an origin that is not allowed (403)', async () => {
    const { url } = await serve({
      allowsOrigin: (origin) => origin === undefined || origin === 'https://shop.example',
    });
    const token = await staffToken();
    const foreign = await subscribe(url, 'sse', FEED, { token, headers: { origin: 'https://evil.example' } });
    expect(foreign.response.status).toBe(403);
    const own = await subscribe(url, 'sse', FEED, { token, headers: { origin: 'https://shop.example' } });
    expect(own.response.status).toBe(200);
  });
});

describe('a stream', () => {
  it('sends heartbeats while nothing happens: comments over SSE, `{}` parts over multipart', async () => {
    const { url } = await serve({}, 30);
    const token = await staffToken();
    const sse = await subscribe(url, 'sse', FEED, { token });
    const multipart = await subscribe(url, 'multipart', FEED, { token });
    expect(multipart.response.headers.get('content-type')).toBe(
      'multipart/mixed;boundary="graphql";subscriptionSpec="1.0"',
    );
    await vi.waitFor(() => {
      expect(sse.body.text.split(':\n\n').length).toBeGreaterThan(3);
      expect(multipart.body.text.split('\r\n\r\n{}\r\n--graphql').length).toBeGreaterThan(3);
    });
    expect(sse.body.text).toMatch(/^(:\n\n)+$/);
  });

  it('ends its subscription when the client goes away mid-stream', async () => {
    const { url, engine, subscriptions } = await serve();
    const token = await staffToken();
    const raw = await subscribe(url, 'multipart', FEED, { token });
    const client = sseClient(url, token);
    record(client, FEED);
    await vi.waitFor(() => expect(engine.activeSubscriptions()).toBe(2));
    expect(subscriptions.streams()).toBe(2);
    raw.leave();
    await vi.waitFor(() => expect(engine.activeSubscriptions()).toBe(1));
    client.dispose();
    await vi.waitFor(() => {
      expect(engine.activeSubscriptions()).toBe(0);
      expect(subscriptions.streams()).toBe(0);
      expect(engine.topicCount()).toBe(0);
    });
  });

  it('ends with UNAUTHENTICATED when its token expires', async () => {
    const { url, engine } = await serve();
    // Expires within one to two seconds (expiry has whole seconds).
    const token = await testAccessToken(STAFF_ID, 'STAFF', { ttlSeconds: 2 });
    const sse = await subscribe(url, 'sse', FEED, { token });
    const multipart = await subscribe(url, 'multipart', FEED, { token });
    const [sseBody, multipartBody] = await Promise.all([sse.ended(), multipart.ended()]);
    const expired = { message: 'Token expired', extensions: { code: 'UNAUTHENTICATED' } };
    expect(sseBody).toBe(
      `:\n\nid: 1\nevent: next\ndata: ${JSON.stringify({ errors: [expired] })}\n\nevent: complete\ndata:\n\n`,
    );
    expect(multipartBody).toBe(
      `\r\n--graphql\r\ncontent-type: application/json\r\n\r\n${JSON.stringify({ payload: null, errors: [expired] })}\r\n--graphql--\r\n`,
    );
    expect(engine.activeSubscriptions()).toBe(0);
  });

  it('at shutdown: SSE ends without `complete`, multipart with a retryable error and the final boundary; new ones get 503', async () => {
    const { url, engine, subscriptions } = await serve();
    const token = await staffToken();
    const sse = await subscribe(url, 'sse', FEED, { token });
    const multipart = await subscribe(url, 'multipart', FEED, { token });
    await vi.waitFor(() => expect(engine.activeSubscriptions()).toBe(2));
    await subscriptions.close();
    expect(subscriptions.streams()).toBe(0);
    expect(engine.activeSubscriptions()).toBe(0);
    expect(await sse.ended()).toBe(':\n\n');
    expect(await multipart.ended()).toBe(
      '\r\n--graphql\r\ncontent-type: application/json\r\n\r\n' +
        JSON.stringify({
          payload: null,
          errors: [
            {
              message: 'the gateway is shutting down; subscribe again',
              extensions: { code: 'SUBSCRIPTIONS_UNAVAILABLE', retryable: true },
            },
          ],
        }) +
        '\r\n--graphql--\r\n',
    );
    const late = await subscribe(url, 'sse', FEED, { token });
    expect(late.response.status).toBe(503);
  });

  it('is started again by a graphql-sse client when it ends without `complete`', async () => {
    const served = await serve();
    const reconnected = vi.fn();
    const client = sseClient(served.url, await staffToken(), {
      retryAttempts: 5,
      retry: () => new Promise((resolve) => setTimeout(resolve, 50)),
      on: { connected: (retried: boolean) => retried && reconnected() },
    });
    const feed = record(client, FEED);
    await vi.waitFor(() => expect(served.engine.activeSubscriptions()).toBe(1));
    await served.subscriptions.close();
    served.restart();
    await vi.waitFor(() => expect(reconnected).toHaveBeenCalledTimes(1));
    await vi.waitFor(() => expect(served.engine.activeSubscriptions()).toBe(1));
    expect(feed.state).toEqual({ completed: false });
  });
});
