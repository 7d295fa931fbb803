import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { autocannonPath, loadtestPath } from './peers.js';

/**
 * The load generator: autocannon in its own process (started by workloads.ts), never in a process that
 * also serves. Gets a LoadSpec over IPC, runs the warm-up, says `measuring`, runs the measured load,
 * and answers with a LoadResult. Every response body is checked for GraphQL `errors`.
 */

export interface LoadSpec {
  url: string;
  connections: number;
  warmupSeconds: number;
  durationSeconds: number;
  /**
   * `query`: one body, identities rotated per request; `mutations`: placeOrder then payForOrder;
   * `requests`: the prepared `requests` in turn, each once, the warm-up's and the measured run's
   * together (a status change cannot be made twice); when they run out they start again, and
   * `LoadResult.sent` says how many were taken.
   */
  kind: 'query' | 'mutations' | 'requests';
  body?: string;
  /** Headers of each identity (a JWT for ours, a static internal token for the peers). */
  identities: Record<string, string>[];
  /**
   * The identity the first request takes (then each request the next, across the warm-up and the
   * measured run); `LoadResult.identitiesUsed` says where the next run should go on. Default 0.
   */
  firstIdentity?: number;
  /** Available meals to order (mutations). */
  mealIds?: string[];
  /** `requests`: each request's headers and body. */
  requests?: { headers: Record<string, string>; body: string }[];
  /**
   * `requests` only: send at this many requests per second, evenly spaced whatever the answers (an open
   * model, as wrk2 and k6's constant-arrival-rate do; by loadtest, its `requestsPerSecond`), for
   * latency at a fixed load below saturation; `connections` is then unused (loadtest opens what the
   * rate needs). Unset: autocannon, every connection sending its next request as soon as it has an
   * answer, which measures throughput, and latency then is mostly the queue (connections /
   * throughput). autocannon's own `overallRate` is no substitute: each connection sends its share as
   * fast as it can at the start of every second, a burst per second.
   */
  fixedRate?: number;
}

export interface LoadResult {
  durationSeconds: number;
  responses: number;
  rps: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  non2xx: number;
  /** Connection errors and timeouts. */
  connectionErrors: number;
  timeouts: number;
  /** 2xx responses whose body carried GraphQL `errors`. */
  graphqlErrors: number;
  /** Mutation pairs abandoned because placeOrder gave no order. */
  resets: number;
  /** Response body sizes: the same query should answer the same bytes on every target. */
  bodyBytes: { min: number; mean: number; max: number };
  statusCodes: Record<string, number>;
  sampleErrors: string[];
  /** `requests`: how many of the prepared requests were taken, warm-up included. */
  sent?: number;
  /** Requests that took an identity, warm-up included (from `firstIdentity`). */
  identitiesUsed: number;
}

interface Request {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
}
type Context = { identity?: Record<string, string>; orderId?: string };
interface AutocannonResult {
  duration: number;
  requests: { total: number };
  latency: { p50: number; p90: number; p99: number; max: number; average: number; totalCount?: number };
  non2xx: number;
  errors: number;
  timeouts: number;
  resets?: number;
  statusCodeStats?: Record<string, { count: number }>;
}
type Autocannon = (options: Record<string, unknown>) => Promise<AutocannonResult>;

const PLACE_ORDER = `mutation PlaceOrder($input: PlaceOrderInput!) { placeOrder(input: $input) { id status total { amount currency } } }`;
const PAY = `mutation Pay($input: PayForOrderInput!) { payForOrder(input: $input) { id status } }`;

/** `requests`: the next prepared request, across the warm-up and the measured run. */
let nextPrepared = 0;
/** Identities taken, across the warm-up and the measured run. */
let taken = 0;

/** Counts an answer; true when it is a 2xx with data and no GraphQL errors. */
function checkAnswer(status: number, body: string, counters: Counters): boolean {
  counters.responses++;
  counters.bytes += body.length;
  counters.minBytes = Math.min(counters.minBytes, body.length);
  counters.maxBytes = Math.max(counters.maxBytes, body.length);
  const ok = status >= 200 && status < 300;
  if (ok && body.includes('"data"') && !body.includes('"errors"')) return true;
  if (ok) counters.graphqlErrors++;
  if (counters.samples.length < 5) counters.samples.push(`${status} ${body.slice(0, 300)}`);
  return false;
}

interface LoadtestResult {
  totalRequests: number;
  totalErrors: number;
  elapsedSeconds: number;
  meanLatencyMs: number;
  maxLatencyMs: number;
  percentiles: Record<'50' | '90' | '95' | '99', number | false>;
  errorCodes: Record<string, number>;
}
type Loadtest = (options: Record<string, unknown>) => Promise<LoadtestResult>;

/** `fixedRate`: loadtest at a constant arrival rate, the prepared requests in turn, as autocannon takes them. */
async function runAtRate(spec: LoadSpec, seconds: number, counters: Counters): Promise<AutocannonResult> {
  const { loadTest } = (await import(pathToFileURL(loadtestPath()).href)) as { loadTest: Loadtest };
  let failed = 0;
  const result = await loadTest({
    url: spec.url,
    method: 'POST',
    requestsPerSecond: spec.fixedRate,
    maxSeconds: seconds,
    agentKeepAlive: true,
    timeout: 30_000,
    quiet: true,
    // Each request its prepared headers (the caller's token) and body.
    requestGenerator: (
      _options: unknown,
      params: { headers: Record<string, string | number> },
      request: (params: unknown, onResponse: unknown) => { write(body: string): void },
      onResponse: unknown,
    ) => {
      const { headers, body } = spec.requests![nextPrepared++ % spec.requests!.length]!;
      params.headers = {
        ...params.headers,
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        ...headers,
      };
      const sent = request(params, onResponse);
      sent.write(body);
      return sent;
    },
    // Called with the answer for every response (4xx/5xx included); without one on a connection error.
    statusCallback: (_error: unknown, answer?: { statusCode: number; body: string }) => {
      if (answer) checkAnswer(answer.statusCode, answer.body, counters);
      else failed++;
    },
  });
  const p = (k: '50' | '90' | '99') => Number(result.percentiles[k] || 0);
  const non2xx = Object.entries(result.errorCodes)
    .filter(([code]) => code !== '-1')
    .reduce((sum, [, count]) => sum + count, 0);
  return {
    duration: result.elapsedSeconds,
    requests: { total: result.totalRequests },
    latency: { p50: p('50'), p90: p('90'), p99: p('99'), max: result.maxLatencyMs, average: result.meanLatencyMs },
    non2xx,
    errors: failed,
    timeouts: 0,
  };
}

async function run(spec: LoadSpec, seconds: number, counters: Counters): Promise<AutocannonResult> {
  if (spec.fixedRate !== undefined) return runAtRate(spec, seconds, counters);
  const autocannon = createRequire(import.meta.url)(autocannonPath()) as Autocannon;
  const baseHeaders = { 'content-type': 'application/json' };
  const first = spec.firstIdentity ?? 0;
  let next = 0;
  const identity = () => spec.identities[(first + taken++) % spec.identities.length]!;
  const check = (status: number, body: string) => checkAnswer(status, body, counters);
  const prepared = (request: Request) => {
    const { headers, body } = spec.requests![nextPrepared++ % spec.requests!.length]!;
    return { ...request, headers: { ...baseHeaders, ...headers }, body };
  };
  const requests =
    spec.kind === 'requests'
      ? [
          {
            method: 'POST',
            setupRequest: prepared,
            onResponse: (status: number, body: string) => void check(status, body),
          },
        ]
      : spec.kind === 'query'
        ? [
            {
              method: 'POST',
              setupRequest: (request: Request) => ({
                ...request,
                headers: { ...baseHeaders, ...identity() },
                body: spec.body,
              }),
              onResponse: (status: number, body: string) => void check(status, body),
            },
          ]
        : [
            {
              method: 'POST',
              setupRequest: (request: Request, context: Context) => {
                next++;
                context.identity = identity();
                const meals = spec.mealIds!;
                const items = [{ mealId: meals[next % meals.length], quantity: 1 + (next % 2) }];
                if (next % 3 === 0) items.push({ mealId: meals[(next * 7) % meals.length], quantity: 1 });
                // A new key for every request: each one places an order, none is answered as a repeat.
                const input = {
                  deliveryAddress: '1 Benchmark Street, Berlin',
                  items,
                  idempotencyKey: `bench-${randomUUID()}`,
                };
                return {
                  ...request,
                  headers: { ...baseHeaders, ...context.identity },
                  body: JSON.stringify({ query: PLACE_ORDER, variables: { input } }),
                };
              },
              onResponse: (status: number, body: string, context: Context) => {
                context.orderId = undefined;
                if (!check(status, body)) return;
                context.orderId = (JSON.parse(body) as { data?: { placeOrder?: { id?: string } } }).data?.placeOrder
                  ?.id;
              },
            },
            {
              method: 'POST',
              setupRequest: (request: Request, context: Context) => {
                if (!context.orderId) return undefined; // placeOrder failed: counted, start over
                const input = {
                  orderId: context.orderId,
                  paymentToken: 'tok_sandbox_success',
                  idempotencyKey: `bench-${randomUUID()}`,
                };
                return {
                  ...request,
                  headers: { ...baseHeaders, ...context.identity },
                  body: JSON.stringify({ query: PAY, variables: { input } }),
                };
              },
              onResponse: (status: number, body: string) => void check(status, body),
            },
          ];
  return autocannon({
    url: spec.url,
    connections: spec.connections,
    duration: seconds,
    requests,
    timeout: 30,
  });
}

interface Counters {
  responses: number;
  graphqlErrors: number;
  samples: string[];
  bytes: number;
  minBytes: number;
  maxBytes: number;
}

const counters = (): Counters => ({
  responses: 0,
  graphqlErrors: 0,
  samples: [],
  bytes: 0,
  minBytes: Infinity,
  maxBytes: 0,
});

process.on('message', (message: { spec: LoadSpec }) => {
  void (async () => {
    const { spec } = message;
    if (spec.warmupSeconds > 0) await run(spec, spec.warmupSeconds, counters());
    process.send!({ type: 'measuring' });
    const counted = counters();
    const result = await run(spec, spec.durationSeconds, counted);
    const statusCodes = Object.fromEntries(
      Object.entries(result.statusCodeStats ?? {}).map(([code, { count }]) => [code, Number(count)]),
    );
    const loadResult: LoadResult = {
      durationSeconds: result.duration,
      responses: counted.responses,
      rps: counted.responses / result.duration,
      latencyMs: {
        p50: result.latency.p50,
        p90: result.latency.p90,
        p99: result.latency.p99,
        max: result.latency.max,
        mean: result.latency.average,
      },
      non2xx: result.non2xx,
      connectionErrors: result.errors,
      timeouts: result.timeouts,
      graphqlErrors: counted.graphqlErrors,
      resets: result.resets ?? 0,
      bodyBytes: {
        min: counted.responses ? counted.minBytes : 0,
        mean: counted.responses ? counted.bytes / counted.responses : 0,
        max: counted.maxBytes,
      },
      statusCodes,
      sampleErrors: counted.samples,
      ...(spec.kind === 'requests' && { sent: nextPrepared }),
      identitiesUsed: taken,
    };
    process.send!({ type: 'result', result: loadResult }, () => process.exit(0));
  })().catch((error: unknown) => {
    process.send!({ type: 'failed', error: String(error instanceof Error ? error.stack : error) }, () =>
      process.exit(1),
    );
  });
});
