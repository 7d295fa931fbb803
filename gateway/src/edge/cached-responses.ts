import { createHash } from 'node:crypto';
import type { ApolloServerPlugin } from '@apollo/server';
import { LRUCache } from 'lru-cache';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { callerKey, REQUEST_ID_HEADER, type Caller, type GraphQLRequestTelemetry } from '@food/platform';
import { authenticate, type AccessTokens } from '../auth.js';
import type { GatewayContext } from '../context.js';
import { clientAddress } from './client-address.js';
import type { OperationGuard, Spend } from './operation-guard.js';
import { rateLimitHeaders } from './rate-limit.js';
import type { ReadYourWrites } from './read-your-writes.js';
import type { ResponseCache } from './response-cache.js';

/**
 * The HTTP side of the response cache (edge/response-cache.ts): a request the cache can answer is
 * answered before Apollo Server parses it, with what every answer of the gateway has (the request
 * id, CORS, the rate budget spent and its headers, the request's log line and metrics, its trace
 * span); every other request goes on, and its answer is kept when the executor says it may be.
 *
 * Only what negotiates to the body that was kept is answered: a POST whose `Accept` asks for
 * `application/json` (or says nothing). A caller that wrote within the replica lag bound is never
 * answered from the cache.
 */

/** The key of a request's answer: its document (by SHA-256, as APQ names it), operation name and variables. */
export const requestKeyOf = (queryHash: string, operationName: string | null | undefined, variables: unknown) =>
  `${queryHash}\u0000${operationName ?? ''}\u0000${JSON.stringify(variables ?? {})}`;

/** Documents' hashes, by text: a client sends the same few documents over and over. */
const hashes = new LRUCache<string, string>({
  max: 1_000,
  maxSize: 4 * 1024 * 1024,
  sizeCalculation: (_, text) => text.length,
});
const sha256 = (text: string) => {
  let hash = hashes.get(text);
  if (hash === undefined) hashes.set(text, (hash = createHash('sha256').update(text).digest('hex')));
  return hash;
};

const isRecord = (value: unknown): value is Record<string, unknown> =>
  !!value && typeof value === 'object' && !Array.isArray(value);
/** Absent, null or an object: what Apollo Server accepts for `variables` and `extensions` in a POST. */
const objectOrNothing = (value: unknown) => value === undefined || value === null || isRecord(value);

/**
 * The key of a POST body; undefined for a body the cache cannot answer, among them every body
 * Apollo Server would refuse (`variables` or `extensions` not an object, `operationName` not a
 * string): those go on to be refused there.
 */
function bodyKey(body: unknown): string | undefined {
  if (!isRecord(body)) return undefined;
  const { query, operationName, variables, extensions } = body;
  if (operationName !== undefined && operationName !== null && typeof operationName !== 'string') return undefined;
  if (!objectOrNothing(variables) || !objectOrNothing(extensions)) return undefined;
  const persisted = (extensions as { persistedQuery?: { sha256Hash?: unknown } } | undefined)?.persistedQuery;
  const hash = typeof persisted?.sha256Hash === 'string' ? persisted.sha256Hash : undefined;
  if (typeof query === 'string') {
    const queryHash = sha256(query);
    // A registration whose hash is not its document's is Apollo Server's to refuse.
    if (hash !== undefined && hash !== queryHash) return undefined;
    return requestKeyOf(queryHash, operationName, variables);
  }
  return hash === undefined ? undefined : requestKeyOf(hash, operationName, variables);
}

/** `Accept` values that negotiate to `application/json; charset=utf-8`, the type the kept bodies went out as. */
const JSON_ACCEPTS = new Set([undefined, '', '*/*', 'application/json', 'application/json; charset=utf-8']);

/** The rate budget a request already spent on the way to Apollo Server (so it is not spent twice). */
const spentBudgets = new WeakMap<IncomingMessage, Spend>();
export const budgetSpentBy = (request: IncomingMessage): Spend | undefined => spentBudgets.get(request);

export interface CachedResponsesOptions {
  cache: ResponseCache;
  userTokens: AccessTokens;
  guard: OperationGuard;
  readYourWrites: ReadYourWrites;
  trustProxy: (address: string, hop: number) => boolean;
  telemetry: GraphQLRequestTelemetry;
}

/**
 * For /graphql before Express (serveGraphQL's `preempt`): answers from the cache when it can, and
 * resolves whether it did. Never rejects once it has written.
 */
export function serveCachedResponses(
  options: CachedResponsesOptions,
): (req: IncomingMessage & { body: Record<string, unknown> }, res: ServerResponse) => Promise<boolean> {
  const { cache, userTokens, guard, readYourWrites, trustProxy, telemetry } = options;
  return async (req, res) => {
    if (!JSON_ACCEPTS.has(req.headers.accept)) return false;
    const key = bodyKey(req.body);
    if (key === undefined) return false;
    const started = process.hrtime.bigint();
    let caller: Caller;
    try {
      caller = await authenticate(req.headers, userTokens);
    } catch {
      // Apollo Server answers a bad token (401) as it always does.
      return false;
    }
    const entry = cache.get(key, callerKey(caller));
    if (!entry) return false;
    // The budget, and read-your-writes' mark of the caller, in one call to Redis where it can.
    const spend = await guard.spendRateBudget(
      'query',
      caller,
      clientAddress(req, trustProxy),
      readYourWrites.markOf(caller),
    );
    const { outcome } = spend;
    const wrote = spend.flagged ?? (await readYourWrites.wroteRecently(caller));
    // Over budget (Apollo Server answers the refusal, from this spend), or a recent writer, who
    // must see its write.
    spentBudgets.set(req, { outcome, flagged: wrote });
    if ((outcome && !outcome.decision.allowed) || wrote) return false;
    // Headers set before (the request id, CORS) are merged with these by writeHead.
    const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8' };
    for (const [name, value] of outcome ? rateLimitHeaders(outcome) : []) headers[name] = value;
    res.writeHead(200, headers).end(entry.body);
    telemetry.record({
      requestId: req.headers[REQUEST_ID_HEADER],
      operationName: entry.operationName,
      operationType: 'query',
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
      status: 200,
      errors: [],
      cached: true,
    });
    return true;
  };
}

/**
 * The Apollo Server plugin that keeps answers: those the executor marked (`context.keep`: an
 * operation the cache may keep, answered without errors), of POST requests.
 */
export function keepResponses(cache: ResponseCache): ApolloServerPlugin<GatewayContext> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse({ contextValue, request, response, queryHash, operationName }) {
          const { keep } = contextValue;
          if (!keep || request.http?.method !== 'POST' || response.body.kind !== 'single') return;
          const result = response.body.singleResult;
          if (result.errors?.length || (response.http.status ?? 200) !== 200) return;
          // As Apollo Server writes it (its field order, and a newline).
          const body = Buffer.from(`${JSON.stringify({ data: result.data, extensions: result.extensions })}\n`);
          cache.set(
            requestKeyOf(queryHash, request.operationName, request.variables),
            keep.scope,
            callerKey(contextValue.caller),
            { body, operationName: operationName ?? undefined, tags: keep.tags },
            keep.mark,
          );
        },
      };
    },
  };
}
