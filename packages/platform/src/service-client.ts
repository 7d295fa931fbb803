import { DomainError, ErrorCode } from './errors.js';
import { INTERNAL_TOKEN_HEADER, type InternalTokens } from './auth.js';
import { readsFromPrimary } from './read-consistency.js';
import { injectTraceContext } from './telemetry/tracing.js';

/**
 * How one service asks another for data it owns (orders asks meals for prices, payments asks orders
 * for an amount): a GraphQL call to the owner's subgraph, signed as that service. Never its database.
 */
export class ServiceClient {
  constructor(
    private readonly options: {
      /** The calling service, as it appears in the internal token. */
      caller: string;
      url: string;
      tokens: InternalTokens;
      timeoutMs?: number;
    },
  ) {}

  async request<T>(query: string, variables: Record<string, unknown>): Promise<T> {
    const headers = new Headers({
      'content-type': 'application/json',
      // A request that must see the primary's latest writes asks the service it calls to as well.
      [INTERNAL_TOKEN_HEADER]: await this.options.tokens.sign(
        { kind: 'service', service: this.options.caller },
        { readFromPrimary: readsFromPrimary() },
      ),
    });
    // The owner's spans join the caller's trace.
    injectTraceContext(headers);
    let response: Response;
    try {
      response = await fetch(this.options.url, {
        method: 'POST',
        headers,
        body: JSON.stringify({ query, variables }),
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 5_000),
      });
    } catch (error) {
      throw new DomainError(ErrorCode.UPSTREAM_UNAVAILABLE, `A service this needs is unavailable`, {
        cause: error instanceof Error ? error.message : String(error),
      });
    }
    const body = (await response.json().catch(() => ({}))) as {
      data?: T;
      errors?: { message: string; extensions?: { code?: string } }[];
    };
    if (body.errors?.length || !body.data) {
      throw new ServiceCallError(
        this.options.url,
        response.status,
        (body.errors ?? []).map((error) => ({ message: error.message, code: error.extensions?.code })),
      );
    }
    return body.data;
  }
}

/** The owning service answered with errors; their codes let the caller tell NOT_FOUND from a fault. */
export class ServiceCallError extends Error {
  override name = 'ServiceCallError';
  constructor(
    readonly url: string,
    readonly status: number,
    readonly errors: { message: string; code: string | undefined }[],
  ) {
    super(`service call to ${url} failed (${status}): ${errors.map((e) => e.message).join('; ') || 'no data'}`);
  }

  hasCode(code: string): boolean {
    return this.errors.some((error) => error.code === code);
  }
}
