import { RemoteGraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import {
  CHANGED_ENTITIES_EXTENSION,
  ErrorCode,
  histogram,
  injectTraceContext,
  INTERNAL_TOKEN_HEADER,
  REQUEST_ID_HEADER,
  type EntityReference,
  type InternalTokens,
  type Logger,
} from '@food/platform';
import type { GatewayContext } from './context.js';
import type { EntitiesResponse, EntityCache } from './edge/entity-cache.js';

type SubgraphResponse = Awaited<ReturnType<RemoteGraphQLDataSource['process']>>;

export interface SubgraphDataSourceOptions {
  name: string;
  url: string;
  timeoutMs: number;
  internalTokens: InternalTokens;
  logger: Logger;
  /** Answers `_entities` fetches for cached types; dropped entities are reported by the subgraph. */
  entityCache?: EntityCache;
}

/**
 * How the gateway calls a subgraph. The outgoing request carries only what the gateway decides:
 * a freshly signed internal token naming the caller, and the request id. Nothing the client sent as
 * a header is forwarded, so a client cannot pose as another user.
 *
 * A subgraph that is down or does not answer within the timeout costs only its part of the answer:
 * the fetch resolves to a coded error (UPSTREAM_UNAVAILABLE / UPSTREAM_TIMEOUT, with the service's
 * name) that the gateway places at the missing fields, and the other subgraphs' data is returned.
 */
export class SubgraphDataSource extends RemoteGraphQLDataSource<GatewayContext> {
  private readonly options: SubgraphDataSourceOptions;

  constructor(options: SubgraphDataSourceOptions) {
    super({
      url: options.url,
      // Node's own fetch (undici): keep-alive connections to subgraphs, and no request waits forever.
      fetcher: (url, init) => fetch(url, { ...init, signal: AbortSignal.timeout(options.timeoutMs) } as RequestInit),
    });
    this.options = options;
  }

  override async willSendRequest({ request, context }: GraphQLDataSourceProcessOptions<GatewayContext>) {
    if (!request.http) return;
    // Health checks and schema loads have no request context: they call as the gateway itself.
    const caller =
      'caller' in context && context.caller ? context.caller : { kind: 'service' as const, service: 'gateway' };
    request.http.headers.set(INTERNAL_TOKEN_HEADER, await this.options.internalTokens.sign(caller));
    if ('requestId' in context && context.requestId) request.http.headers.set(REQUEST_ID_HEADER, context.requestId);
    // The subgraph's spans continue this fetch's (Apollo's `gateway.fetch` span is active here).
    injectTraceContext(request.http.headers);
  }

  override async process(options: GraphQLDataSourceProcessOptions<GatewayContext>): Promise<SubgraphResponse> {
    const { entityCache, name } = this.options;
    const { request } = options;
    try {
      if (
        entityCache &&
        isClientOperation(options) &&
        request.query &&
        entityCache.handles(request.query, request.variables)
      ) {
        const representations = request.variables!.representations as { __typename: string; id: string }[];
        return (await entityCache.resolve(name, request.query, representations, async (missing) => {
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
      if (entityCache && Array.isArray(changed)) await entityCache.invalidate(name, changed);
      return response;
    } catch (error) {
      if (!isClientOperation(options)) throw error;
      return this.unavailable(error);
    }
  }

  /** One call to the subgraph, timed in `gateway_subgraph_fetch_duration_seconds`. */
  private async fetchTimed(options: GraphQLDataSourceProcessOptions<GatewayContext>): Promise<SubgraphResponse> {
    const end = fetchDurations.startTimer({ subgraph: this.options.name });
    try {
      const response = await super.process(options);
      end({ outcome: response.errors?.length ? 'error' : 'ok' });
      return response;
    } catch (error) {
      end({ outcome: isTimeout(error) ? 'timeout' : 'unavailable' });
      throw error;
    }
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

const fetchDurations = histogram(
  'gateway_subgraph_fetch_duration_seconds',
  'Calls from the gateway to a subgraph, by outcome: ok, error (it answered with errors), timeout, unavailable.',
  ['subgraph', 'outcome'],
);

const isTimeout = (error: unknown) => error instanceof Error && error.name === 'TimeoutError';

/** A fetch for a client's operation (not a health check or schema load): it has the incoming request. */
const isClientOperation = (options: GraphQLDataSourceProcessOptions<GatewayContext>) =>
  'incomingRequestContext' in options;
