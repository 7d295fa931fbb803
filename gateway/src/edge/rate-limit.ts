import { GraphQLError } from '../graphql-js.js';
import { ErrorCode, type Caller, type Logger, type RedisConnection } from '@food/platform';

export type OperationKind = 'query' | 'mutation' | 'subscription';
export type RateLimitScope = 'user' | 'ip';

/** How many operations of each kind one user, and one client address, may start per window. 0: no limit. */
export interface RateLimitBudgets {
  windowSeconds: number;
  user: Record<OperationKind, number>;
  ip: Record<OperationKind, number>;
}

/** One budget a request draws on: `limit` operations per `windowMs`, refilled smoothly. */
export interface Bucket {
  key: string;
  limit: number;
  windowMs: number;
}

/** The answer for a request, from the bucket that has the least left (or the one that refused it). */
export interface RateDecision {
  allowed: boolean;
  /** Index in the buckets passed in. */
  bucket: number;
  limit: number;
  remaining: number;
  /** Until the bucket is full again. */
  resetMs: number;
  /** Until one more operation would be allowed (0 when allowed). */
  retryAfterMs: number;
}

/**
 * Takes one token from every bucket, or from none: a request refused by its IP budget does not spend
 * its user budget. Implementations must do it atomically across processes.
 */
export interface RateLimitStore {
  take(buckets: Bucket[]): Promise<RateDecision>;
}

/**
 * GCRA (the generic cell rate algorithm, a token bucket that stores one timestamp per key): `limit`
 * operations at once, then one every `window / limit`. The bucket's state is its "theoretical arrival
 * time" (TAT): full when TAT <= now. Redis' own clock is used so every replica agrees.
 * KEYS: bucket keys; ARGV: limit1, window1, limit2, window2, ...
 * Returns { allowed, bucket index (1-based), limit, remaining, resetMs, retryAfterMs }.
 */
const takeScript = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local tats = {}
local pick, pickLimit, pickRemaining, pickReset = 1, 0, math.huge, 0
local refused, refusedLimit, refusedRetry, refusedReset = 0, 0, -1, 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i - 1])
  local window = tonumber(ARGV[2 * i])
  local interval = window / limit
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local newTat = tat + interval
  local allowAt = newTat - window
  if allowAt > now then
    if allowAt - now > refusedRetry then
      refused, refusedLimit, refusedRetry, refusedReset = i, limit, allowAt - now, tat - now
    end
  else
    tats[i] = newTat
    local remaining = math.floor((now - allowAt) / interval)
    if remaining < pickRemaining then
      pick, pickLimit, pickRemaining, pickReset = i, limit, remaining, newTat - now
    end
  end
end
if refused > 0 then
  return { 0, refused, refusedLimit, 0, math.ceil(refusedReset), math.ceil(refusedRetry) }
end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, tostring(tats[i]), 'PX', math.ceil(tats[i] - now))
end
return { 1, pick, pickLimit, pickRemaining, math.ceil(pickReset), 0 }
`;

/** Buckets in Redis, shared by every gateway replica. */
export class RedisRateLimitStore implements RateLimitStore {
  constructor(private readonly redis: RedisConnection) {
    redis.defineCommand('foodRateLimitTake', { lua: takeScript });
  }

  async take(buckets: Bucket[]): Promise<RateDecision> {
    const args = buckets.flatMap((bucket) => [bucket.limit, bucket.windowMs]);
    const reply = (await (this.redis as unknown as RateLimitCommands).foodRateLimitTake(
      buckets.length,
      ...buckets.map((bucket) => bucket.key),
      ...args,
    )) as number[];
    const [allowed, bucket, limit, remaining, resetMs, retryAfterMs] = reply.map(Number) as [
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    return { allowed: allowed === 1, bucket: bucket - 1, limit, remaining, resetMs, retryAfterMs };
  }
}

interface RateLimitCommands {
  foodRateLimitTake(keyCount: number, ...keysAndArgs: (string | number)[]): Promise<unknown>;
}

/** The same algorithm in this process's memory: the stand-in without Redis (one process only). */
export class InMemoryRateLimitStore implements RateLimitStore {
  private readonly tats = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  async take(buckets: Bucket[]): Promise<RateDecision> {
    const now = this.now();
    const next: number[] = [];
    let best: RateDecision | undefined;
    let refusal: RateDecision | undefined;
    buckets.forEach((bucket, index) => {
      const interval = bucket.windowMs / bucket.limit;
      const tat = Math.max(this.tats.get(bucket.key) ?? now, now);
      const newTat = tat + interval;
      const allowAt = newTat - bucket.windowMs;
      if (allowAt > now) {
        if (!refusal || allowAt - now > refusal.retryAfterMs) {
          refusal = {
            allowed: false,
            bucket: index,
            limit: bucket.limit,
            remaining: 0,
            resetMs: Math.ceil(tat - now),
            retryAfterMs: Math.ceil(allowAt - now),
          };
        }
        return;
      }
      next[index] = newTat;
      const remaining = Math.floor((now - allowAt) / interval);
      if (!best || remaining < best.remaining) {
        best = {
          allowed: true,
          bucket: index,
          limit: bucket.limit,
          remaining,
          resetMs: Math.ceil(newTat - now),
          retryAfterMs: 0,
        };
      }
    });
    if (refusal) return refusal;
    buckets.forEach((bucket, index) => this.tats.set(bucket.key, next[index]!));
    this.sweep(now);
    return best!;
  }

  /** Full buckets hold no information; dropping them keeps memory bounded by active callers. */
  private sweep(now: number): void {
    if (this.tats.size < 10_000) return;
    for (const [key, tat] of this.tats) if (tat <= now) this.tats.delete(key);
  }
}

/** What a request is told about its budget, as `RateLimit-*` headers (and `Retry-After` when refused). */
export interface RateLimitOutcome {
  decision: RateDecision;
  scope: RateLimitScope;
  windowSeconds: number;
}

/**
 * Per-user and per-address budgets for each kind of operation. A signed-in caller draws on both its
 * user budget and its address's; an anonymous one on its address's only. If the store fails (Redis
 * down), requests are let through and the failure logged: the limiter must not take the API down.
 */
export class RateLimiter {
  constructor(
    private readonly store: RateLimitStore,
    private readonly budgets: RateLimitBudgets,
    private readonly keyPrefix: string,
    private readonly logger: Logger,
  ) {}

  /** Takes one operation of `kind` from the caller's budgets; undefined when no budget applies. */
  async take(kind: OperationKind, caller: Caller, clientAddress: string): Promise<RateLimitOutcome | undefined> {
    const windowMs = this.budgets.windowSeconds * 1000;
    const candidates: { scope: RateLimitScope; bucket: Bucket }[] = [];
    const userLimit = this.budgets.user[kind];
    if (caller.kind === 'user' && userLimit > 0) {
      const key = `${this.keyPrefix}:ratelimit:${kind}:user:${caller.userId}`;
      candidates.push({ scope: 'user', bucket: { key, limit: userLimit, windowMs } });
    }
    const ipLimit = this.budgets.ip[kind];
    if (ipLimit > 0) {
      const key = `${this.keyPrefix}:ratelimit:${kind}:ip:${clientAddress}`;
      candidates.push({ scope: 'ip', bucket: { key, limit: ipLimit, windowMs } });
    }
    if (candidates.length === 0) return undefined;
    let decision: RateDecision;
    try {
      decision = await this.store.take(candidates.map((candidate) => candidate.bucket));
    } catch (error) {
      this.logger.warn({ err: error }, 'rate limit store unavailable: request let through');
      return undefined;
    }
    return { decision, scope: candidates[decision.bucket]!.scope, windowSeconds: this.budgets.windowSeconds };
  }
}

/** The IETF draft's `RateLimit-*` fields, plus `Retry-After` on a refusal. */
export function rateLimitHeaders({ decision, windowSeconds }: RateLimitOutcome): [string, string][] {
  const headers: [string, string][] = [
    ['ratelimit-limit', String(decision.limit)],
    ['ratelimit-remaining', String(decision.remaining)],
    ['ratelimit-reset', String(Math.ceil(decision.resetMs / 1000))],
    ['ratelimit-policy', `${decision.limit};w=${windowSeconds}`],
  ];
  if (!decision.allowed) headers.push(['retry-after', String(retryAfterSeconds(decision))]);
  return headers;
}

const retryAfterSeconds = (decision: RateDecision) => Math.max(1, Math.ceil(decision.retryAfterMs / 1000));

/** RATE_LIMITED, naming the budget and when to come back. */
export function rateLimitedError(kind: OperationKind, outcome: RateLimitOutcome): GraphQLError {
  const seconds = retryAfterSeconds(outcome.decision);
  const plural = kind === 'query' ? 'queries' : `${kind}s`;
  return new GraphQLError(
    `Too many ${plural} from this ${outcome.scope === 'user' ? 'user' : 'address'}: the limit is ` +
      `${outcome.decision.limit} per ${outcome.windowSeconds} s; retry in ${seconds} s`,
    {
      extensions: {
        code: ErrorCode.RATE_LIMITED,
        scope: outcome.scope,
        operationType: kind,
        limit: outcome.decision.limit,
        windowSeconds: outcome.windowSeconds,
        retryAfterSeconds: seconds,
      },
    },
  );
}
