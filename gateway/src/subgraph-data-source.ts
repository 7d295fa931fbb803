import { RemoteGraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { INTERNAL_TOKEN_HEADER, type InternalTokens } from '@food/platform';
import type { GatewayContext } from './context.js';

/**
 * How the gateway calls a subgraph. The outgoing request carries only what the gateway decides:
 * a freshly signed internal token naming the caller, and the request id. Nothing the client sent as
 * a header is forwarded, so a client cannot pose as another user.
 */
export class SubgraphDataSource extends RemoteGraphQLDataSource<GatewayContext> {
  constructor(
    options: { url: string; timeoutMs: number },
    private readonly internalTokens: InternalTokens,
  ) {
    super({
      url: options.url,
      // Node's own fetch (undici): keep-alive connections to subgraphs, and no request waits forever.
      fetcher: (url, init) => fetch(url, { ...init, signal: AbortSignal.timeout(options.timeoutMs) } as RequestInit),
    });
  }

  override async willSendRequest({ request, context }: GraphQLDataSourceProcessOptions<GatewayContext>) {
    if (!request.http) return;
    // Health checks and schema loads have no request context: they call as the gateway itself.
    const caller =
      'caller' in context && context.caller ? context.caller : { kind: 'service' as const, service: 'gateway' };
    request.http.headers.set(INTERNAL_TOKEN_HEADER, await this.internalTokens.sign(caller));
    if ('requestId' in context && context.requestId) request.http.headers.set('x-request-id', context.requestId);
  }
}
