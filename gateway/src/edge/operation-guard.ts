import type { DocumentNode, GraphQLError, GraphQLSchema, OperationDefinitionNode } from 'graphql';
import type { Caller } from '@food/platform';
import type { EdgeMetrics } from './metrics.js';
import type { OperationSafelist } from './persisted-queries.js';
import { documentTooLarge, exceededBound, measureOperation, type QueryBounds } from './query-bounds.js';
import { rateLimitedError, type OperationKind, type RateLimiter, type RateLimitOutcome } from './rate-limit.js';

export interface OperationGuardOptions {
  bounds: QueryBounds;
  /** Only these operations are accepted (safelist mode). */
  safelist?: OperationSafelist;
  /** Absent when every budget is 0. */
  rateLimiter?: RateLimiter;
  metrics: EdgeMetrics;
}

/** A spend of a request's rate budget, and the flag read with it (undefined: not read). */
export interface Spend {
  outcome?: RateLimitOutcome;
  flagged?: boolean;
}

/** A refusal: the error for the client, with the rate-limit state when a budget refused it. */
export interface Refusal {
  error: GraphQLError;
  rateLimit?: RateLimitOutcome;
}

/**
 * Everything an operation must pass before the gateway does any work for it, the same for a query or
 * mutation over HTTP and a subscription over WebSockets: the caller's rate budget, the safelist, and
 * the query bounds. Each check refuses with a coded error that says what was exceeded.
 */
export class OperationGuard {
  constructor(private readonly options: OperationGuardOptions) {}

  /**
   * Spends one operation of the caller's budgets; the outcome carries the headers to send. `spent`:
   * a spend already made for this request (by the response cache's path), judged here instead of
   * spending again. `flag`: as for `spendRateBudget`.
   */
  async takeRateBudget(
    kind: OperationKind,
    caller: Caller,
    clientAddress: string,
    spent?: Spend,
    flag?: string,
  ): Promise<{ outcome?: RateLimitOutcome; refusal?: Refusal; flagged?: boolean }> {
    const { outcome, flagged } = spent ?? (await this.spendRateBudget(kind, caller, clientAddress, flag));
    if (!outcome || outcome.decision.allowed) return { outcome, flagged };
    this.options.metrics.rateLimited.inc({ scope: outcome.scope, operation: kind });
    return { outcome, refusal: { error: rateLimitedError(kind, outcome), rateLimit: outcome }, flagged };
  }

  /**
   * Spends one operation of the caller's budgets and says what is left, refusing nothing itself;
   * reads `flag` (read-your-writes' mark) in the same call where the store can (`flagged`).
   */
  async spendRateBudget(kind: OperationKind, caller: Caller, clientAddress: string, flag?: string): Promise<Spend> {
    return (await this.options.rateLimiter?.takeAndRead(kind, caller, clientAddress, flag)) ?? {};
  }

  /** The document's text: its size, and whether it is on the safelist. */
  checkSource(source: string): GraphQLError | undefined {
    const tooLarge = documentTooLarge(source, this.options.bounds);
    if (tooLarge) return this.refused('maxDocumentBytes', tooLarge);
    const unlisted = this.options.safelist?.check(source);
    if (unlisted) return this.refused('safelist', unlisted);
    return undefined;
  }

  /** The parsed and validated operation: depth, aliases, root fields and cost. */
  checkOperation(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Record<string, unknown> | undefined,
  ): GraphQLError | undefined {
    const exceeded = exceededBound(measureOperation(schema, document, operation, variables), this.options.bounds);
    return exceeded ? this.refused(String(exceeded.extensions.bound), exceeded) : undefined;
  }

  private refused(reason: string, error: GraphQLError): GraphQLError {
    this.options.metrics.refused.inc({ reason });
    return error;
  }
}
