import type { GraphQLDataSource, GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { Agent, request as httpRequest } from 'undici';
import {
  callerKey,
  CHANGED_ENTITIES_EXTENSION,
  CLIENT_ADDRESS_HEADER,
  ErrorCode,
  histogram,
  injectTraceContext,
  INTERNAL_TOKEN_HEADER,
  REQUEST_ID_HEADER,
  type Caller,
  type EntityReference,
  type InternalTokens,
  type Logger,
} from '@food/platform';
import type { GatewayContext } from './context.js';
import type { EntitiesResponse, EntityCache } from './edge/entity-cache.js';

type SubgraphResponse = Awaited<ReturnType<GraphQLDataSource<GatewayContext>['process']>>;

export interface SubgraphDataSourceOptions {
  name: string;
  url: string;
  timeoutMs: number;
  internalTokens: InternalTokens;
  logger: Logger;
  /** Answers `_entities` fetches for cached types. */
  entityCache?: EntityCache;
  /** Drops, from every cache, the entities a subgraph reports its mutation changed (edge `entitiesChanged`). */
  entitiesChanged?: (entities: EntityReference[]) => Promise<void>;
}

/**
 * Connections to subgraphs, kept alive and shared by every data source of the process. undici's own
 * `request`, not `fetch`: no WHATWG streams, Request/Response objects or abort-signal timers per
 * call, which were most of the gateway's own CPU per subgraph fetch.
 */
const subgraphAgent = new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 600_000 });

/**
 * How the gateway calls a subgraph. The outgoing request carries only what the gateway decides:
 * a signed internal token naming the caller, the request id and the trace context. Nothing the
 * client sent as a header is forwarded, so a client cannot pose as another user.
 *
 * A subgraph that is down, answers with an HTTP error, or does not answer within the timeout (for
 * its headers, and again for its body) costs only its part of the answer: the fetch resolves to a
 * coded error (UPSTREAM_UNAVAILABLE / UPSTREAM_TIMEOUT, with the service's name) that the gateway
 * places at the missing fields, and the other subgraphs' data is returned.
 */
export class SubgraphDataSource implements GraphQLDataSource<GatewayContext> {
  /** Identical query fetches in flight, by caller, query and variables: the body text they share. */
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(private readonly options: SubgraphDataSourceOptions) {}

  async process(options: GraphQLDataSourceProcessOptions<GatewayContext>): Promise<SubgraphResponse> {
    const { entityCache, name } = this.options;
    const { request } = options;
    const { query, variables } = request;
    try {
      const scope =
        entityCache && query && variables && isClientOperation(options)
          ? entityCache.scopeOf(query, variables, privateCacheKey(options))
          : undefined;
      if (entityCache && scope && query && variables) {
        return (await entityCache.resolve(name, { query, variables }, scope, async (missing) => {
          const partial = {
            ...options,
            request: { ...request, variables: { ...request.variables, representations: missing } },
          };
          return (await this.fetchTimed(partial)) as EntitiesResponse;
        })) as SubgraphResponse;
      }
      const response = await this.fetchTimed(options);
      const changed = response.extensions?.[CHANGED_ENTITIES_EXTENSION] as EntityReference[] | undefined;
      // Before the client hears of the change, no replica may serve the old entity.
      if (this.options.entitiesChanged && Array.isArray(changed)) await this.options.entitiesChanged(changed);
      return response;
    } catch (error) {
      if (!isClientOperation(options)) throw error;
      return this.unavailable(error);
    }
  }

  /**
   * The subgraph's answer. A query fetch identical to one in flight (same caller, query and
   * variables: the same answer) waits for that one instead of calling again, as Apollo Router's and
   * Hive Gateway's deduplication do. Each waiter parses its own copy: the gateway merges later
   * fetches into the objects it gets, so two requests must never share them.
   */
  private async fetchTimed(options: GraphQLDataSourceProcessOptions<GatewayContext>): Promise<SubgraphResponse> {
    const caller = callerOf(options.context);
    if (!isClientOperation(options) || options.incomingRequestContext.operation?.operation !== 'query') {
      return JSON.parse(await this.fetchOnce(options, caller)) as SubgraphResponse;
    }
    const { request } = options;
    // A fetch that must read from the primary (after the caller's write) never waits for one that may not.
    const key = `${callerKey(caller)}\n${readsFromPrimary(options.context)}\n${request.query}\n${JSON.stringify(request.variables ?? {})}`;
    let text = this.inflight.get(key);
    if (!text) {
      text = this.fetchOnce(options, caller).finally(() => this.inflight.delete(key));
      this.inflight.set(key, text);
    }
    return JSON.parse(await text) as SubgraphResponse;
  }

  /** One call to the subgraph, timed in `gateway_subgraph_fetch_duration_seconds`: its body's text. */
  private async fetchOnce(options: GraphQLDataSourceProcessOptions<GatewayContext>, caller: Caller): Promise<string> {
    const end = fetchDurations.startTimer({ subgraph: this.options.name });
    try {
      const text = await this.send(options, caller);
      end({ outcome: text.includes('"errors":') ? 'error' : 'ok' });
      return text;
    } catch (error) {
      end({ outcome: isTimeout(error) ? 'timeout' : 'unavailable' });
      throw error;
    }
  }

  private async send({ request, context }: GraphQLDataSourceProcessOptions<GatewayContext>, caller: Caller) {
    const { url, timeoutMs, internalTokens } = this.options;
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      [INTERNAL_TOKEN_HEADER]: await internalTokens.sign(caller, { readFromPrimary: readsFromPrimary(context) }),
    };
    if ('requestId' in context && context.requestId) headers[REQUEST_ID_HEADER] = context.requestId;
    // Who the client is, as the edge saw it (the users service throttles failed logins by it).
    if ('clientAddress' in context && context.clientAddress) headers[CLIENT_ADDRESS_HEADER] = context.clientAddress;
    // The subgraph's spans continue this fetch's (Apollo's `gateway.fetch` span is active here).
    injectTraceContext({ set: (header, value) => (headers[header] = value) });
    const response = await httpRequest(url, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        query: request.query,
        variables: request.variables,
        operationName: request.operationName,
      }),
      dispatcher: subgraphAgent,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    if (response.statusCode < 200 || response.statusCode >= 300) {
      await response.body.dump();
      throw new Error(`${this.options.name} answered HTTP ${response.statusCode}`);
    }
    return response.body.text();
  }

  private unavailable(error: unknown): SubgraphResponse {
    const { name, timeoutMs, logger } = this.options;
    const timedOut = isTimeout(error);
    logger.warn({ err: error, subgraph: name }, timedOut ? 'subgraph timed out' : 'subgraph unavailable');
    return {
      errors: [
        timedOut
          ? {
              message: `The ${name} service did not answer within ${timeoutMs} ms`,
              extensions: { code: ErrorCode.UPSTREAM_TIMEOUT, service: name },
            }
          : {
              message: `The ${name} service is unavailable`,
              extensions: { code: ErrorCode.UPSTREAM_UNAVAILABLE, service: name },
            },
      ],
    } as SubgraphResponse;
  }
}

/**
 * The caller's key where its private entities may come from the cache: a client's query over HTTP.
 * Not a mutation's follow-up fetches, nor a subscription's results: those follow a change and must
 * see it, even before the event that invalidates the cache has arrived.
 */
const privateCacheKey = (options: GraphQLDataSourceProcessOptions<GatewayContext>): string | undefined =>
  isClientOperation(options) &&
  options.context.transport === 'http' &&
  options.incomingRequestContext.operation?.operation === 'query'
    ? callerKey(callerOf(options.context))
    : undefined;

/**
 * Whether the subgraph must read from its primary database: replicas serve only a client's query
 * over HTTP whose caller made no mutation within the lag bound (edge/read-your-writes.ts). Schema
 * loads and health checks read nothing of a caller's.
 */
const readsFromPrimary = (context: Partial<GatewayContext>): boolean =>
  context.transport !== undefined && (context.transport !== 'http' || context.readFromPrimary !== false);

/** Schema loads and health checks have no request context: they call as the gateway itself. */
const callerOf = (context: Partial<GatewayContext>): Caller =>
  context.caller ?? { kind: 'service', service: 'gateway' };

const fetchDurations = histogram(
  'gateway_subgraph_fetch_duration_seconds',
  'Calls from the gateway to a subgraph, by outcome: ok, error (it answered with errors), timeout, unavailable.',
  ['subgraph', 'outcome'],
);

/** undici's timeouts: no headers, or no body, within the subgraph timeout. */
const isTimeout = (error: unknown) =>
  error instanceof Error &&
  ['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT'].includes((error as { code?: string }).code ?? '');

/** A fetch for a client's operation (not a health check or schema load): it has the incoming request. */
const isClientOperation = (
  options: GraphQLDataSourceProcessOptions<GatewayContext>,
): options is Extract<GraphQLDataSourceProcessOptions<GatewayContext>, { incomingRequestContext: unknown }> =>
  'incomingRequestContext' in options;
