import { GraphQLError } from '../graphql-js.js';
import { ErrorCode, hashTag, type Caller, type Logger, type RedisConnection } from '@food/platform';

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
 * its user budget. Every process sharing the store must see the same budgets.
 */
export interface RateLimitStore {
  /**
   * `flag`: a key whose existence is read in the same call (read-your-writes' mark of a recent
   * write), in the slot of the first bucket on a cluster (the caller's hash tag). `flagged` is
   * undefined where the store cannot read it (then the caller asks for it itself).
   */
  take(buckets: Bucket[], flag?: string): Promise<{ decision: RateDecision | undefined; flagged?: boolean }>;
}

/** One bucket's answer to taking a token from it. */
interface BucketAnswer {
  allowed: boolean;
  limit: number;
  remaining: number;
  resetMs: number;
  retryAfterMs: number;
}

/** A request's answer from its buckets': the refusal that lasts longest, else the bucket with the least left. */
function decide(answers: BucketAnswer[]): RateDecision {
  let pick = 0;
  answers.forEach((answer, index) => {
    const best = answers[pick]!;
    const better = answer.allowed
      ? best.allowed && answer.remaining < best.remaining
      : best.allowed || answer.retryAfterMs > best.retryAfterMs;
    if (better) pick = index;
  });
  return { ...answers[pick]!, bucket: pick };
}

/**
 * GCRA (the generic cell rate algorithm, a token bucket that stores one timestamp per key): `limit`
 * operations at once, then one every `window / limit`. The bucket's state is its "theoretical arrival
 * time" (TAT): full when TAT <= now. Redis' own clock is used so every replica agrees.
 * KEYS: the bucket, and a flag key to read (optional); ARGV: limit, window (ms). Returns { allowed,
 * remaining, resetMs, retryAfterMs, flag } (flag: 1 or 0 whether the flag key exists, -1 without one).
 */
const takeScript = `
local flag = -1
if KEYS[2] then flag = redis.call('EXISTS', KEYS[2]) end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local interval = window / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local newTat = tat + interval
local allowAt = newTat - window
if allowAt > now then
  return { 0, 0, math.ceil(tat - now), math.ceil(allowAt - now), flag }
end
redis.call('SET', KEYS[1], tostring(newTat), 'PX', math.ceil(newTat - now))
return { 1, math.floor((now - allowAt) / interval), math.ceil(newTat - now), 0, flag }
`;

/** Gives back the token `takeScript` took (moves the TAT back one interval). KEYS: the bucket; ARGV: interval (ms). */
const refundScript = `
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat then return 0 end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local newTat = tat - tonumber(ARGV[1])
if newTat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], tostring(newTat), 'PX', math.ceil(newTat - now))
end
return 1
`;

/**
 * `takeScript` for every bucket at once, all or none, on one node: KEYS: the buckets, then a flag key
 * to read (optional); ARGV: the number of buckets, then limit and window (ms) of each, in turn.
 * Returns each bucket's { allowed, remaining, resetMs, retryAfterMs }, one after the other, then the
 * flag (1 or 0 whether its key exists, -1 without one); when one refuses, none is spent.
 */
const takeAllScript = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local count = tonumber(ARGV[1])
local answers = {}
local writes = {}
local refused = false
for i = 1, count do
  local key = KEYS[i]
  local limit = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  local interval = window / limit
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local newTat = tat + interval
  local allowAt = newTat - window
  if allowAt > now then
    refused = true
    for _, value in ipairs({ 0, 0, math.ceil(tat - now), math.ceil(allowAt - now) }) do table.insert(answers, value) end
  else
    writes[key] = newTat
    for _, value in ipairs({ 1, math.floor((now - allowAt) / interval), math.ceil(newTat - now), 0 }) do
      table.insert(answers, value)
    end
  end
end
if not refused then
  for key, newTat in pairs(writes) do
    redis.call('SET', key, tostring(newTat), 'PX', math.ceil(newTat - now))
  end
end
if KEYS[count + 1] then table.insert(answers, redis.call('EXISTS', KEYS[count + 1])) else table.insert(answers, -1) end
return answers
`;

interface RateLimitCommands {
  foodRateLimitTake(key: string, limit: number, windowMs: number): Promise<number[]>;
  foodRateLimitTakeFlagged(key: string, flag: string, limit: number, windowMs: number): Promise<number[]>;
  foodRateLimitTakeAll(count: number, ...keysAndArguments: (string | number)[]): Promise<number[]>;
  foodRateLimitRefund(key: string, intervalMs: number): Promise<number>;
}

/**
 * Buckets in Redis, shared by every gateway replica, on one node or a cluster.
 *
 * On one node, one script takes all of a request's buckets, all or none. On a cluster, a user's bucket
 * is shared by all its addresses and an address's by all its users, so no hash tag
 * puts every request's buckets in one slot short of one tag for all, which would put all rate
 * limiting on one master. So there each bucket is taken by its own script call, atomically on the master
 * that owns it (with that master's clock), all at once; when one refuses, the tokens the others took
 * are given back. The trade-off: between a take and its refund (one round trip) a concurrent request
 * sees that bucket one token lower, so near its limit it may be refused where an all-or-none take
 * would not have been; never the other way round, and a lost refund (Redis failing in between) only
 * costs the caller one token. Never more than the limit gets through.
 */
export class RedisRateLimitStore implements RateLimitStore {
  private readonly redis: RedisConnection & RateLimitCommands;

  constructor(
    redis: RedisConnection,
    private readonly logger?: Logger,
  ) {
    // Fixed key counts: on a cluster, auto-pipelining routes a command by its first argument, which
    // must then be its first key.
    redis.defineCommand('foodRateLimitTake', { lua: takeScript, numberOfKeys: 1 });
    redis.defineCommand('foodRateLimitTakeFlagged', { lua: takeScript, numberOfKeys: 2 });
    redis.defineCommand('foodRateLimitTakeAll', { lua: takeAllScript });
    redis.defineCommand('foodRateLimitRefund', { lua: refundScript, numberOfKeys: 1 });
    this.redis = redis as RedisConnection & RateLimitCommands;
    // ioredis' own mark: `instanceof` fails across copies of the package.
    this.oneNode = !redis.isCluster;
  }

  /** On one node every bucket is on it: one script takes them all, all or none, in one call. */
  private readonly oneNode: boolean;

  async take(buckets: Bucket[], flag?: string): Promise<{ decision: RateDecision | undefined; flagged?: boolean }> {
    if (buckets.length === 0) {
      return { decision: undefined, ...(flag && { flagged: (await this.redis.exists(flag)) === 1 }) };
    }
    const answerOf = (bucket: Bucket, values: number[]): BucketAnswer => {
      const [allowed, remaining, resetMs, retryAfterMs] = values as [number, number, number, number];
      return { allowed: allowed === 1, limit: bucket.limit, remaining, resetMs, retryAfterMs };
    };
    const flaggedOf = (value: number | undefined) => (flag === undefined ? undefined : value === 1);
    if (this.oneNode && buckets.length > 1) {
      const keys = [...buckets.map((bucket) => bucket.key), ...(flag ? [flag] : [])];
      const reply = await this.redis.foodRateLimitTakeAll(
        keys.length,
        ...keys,
        buckets.length,
        ...buckets.flatMap((bucket) => [bucket.limit, bucket.windowMs]),
      );
      const values = reply.map(Number);
      return {
        decision: decide(buckets.map((bucket, i) => answerOf(bucket, values.slice(4 * i, 4 * i + 4)))),
        flagged: flaggedOf(values[4 * buckets.length]),
      };
    }
    // The flag goes with the first bucket, whose slot it shares (the caller's hash tag).
    const replies = await Promise.all(
      buckets.map((bucket, i) =>
        i === 0 && flag
          ? this.redis.foodRateLimitTakeFlagged(bucket.key, flag, bucket.limit, bucket.windowMs)
          : this.redis.foodRateLimitTake(bucket.key, bucket.limit, bucket.windowMs),
      ),
    );
    const answers = replies.map((reply, i) => answerOf(buckets[i]!, reply.map(Number)));
    if (answers.some((answer) => !answer.allowed)) {
      const taken = buckets.filter((_, index) => answers[index]!.allowed);
      // A refund that fails must not turn the refusal into a pass (the limiter lets a failed take through).
      await Promise.all(
        taken.map((bucket) =>
          this.redis.foodRateLimitRefund(bucket.key, bucket.windowMs / bucket.limit).catch((error: unknown) => {
            this.logger?.warn({ err: error, bucket: bucket.key }, 'rate limit refund failed: one token lost');
          }),
        ),
      );
    }
    return { decision: decide(answers), flagged: flaggedOf(Number(replies[0]![4])) };
  }
}

/** The same algorithm in this process's memory: the stand-in without Redis (one process only). */
export class InMemoryRateLimitStore implements RateLimitStore {
  private readonly tats = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Reads no flag: read-your-writes asks its own store. */
  async take(buckets: Bucket[]): Promise<{ decision: RateDecision | undefined }> {
    if (buckets.length === 0) return { decision: undefined };
    const now = this.now();
    const next: number[] = [];
    const answers = buckets.map((bucket, index): BucketAnswer => {
      const interval = bucket.windowMs / bucket.limit;
      const tat = Math.max(this.tats.get(bucket.key) ?? now, now);
      const newTat = tat + interval;
      const allowAt = newTat - bucket.windowMs;
      if (allowAt > now) {
        const [resetMs, retryAfterMs] = [Math.ceil(tat - now), Math.ceil(allowAt - now)];
        return { allowed: false, limit: bucket.limit, remaining: 0, resetMs, retryAfterMs };
      }
      next[index] = newTat;
      const remaining = Math.floor((now - allowAt) / interval);
      return { allowed: true, limit: bucket.limit, remaining, resetMs: Math.ceil(newTat - now), retryAfterMs: 0 };
    });
    // One process: nothing runs between the look and the write, so all or none is spent at once.
    if (answers.every((answer) => answer.allowed)) {
      buckets.forEach((bucket, index) => this.tats.set(bucket.key, next[index]!));
      this.sweep(now);
    }
    return { decision: decide(answers) };
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
    return (await this.takeAndRead(kind, caller, clientAddress)).outcome;
  }

  /**
   * `take`, reading `flag` in the same call to the store (a key in the caller's hash tag, `callerTag`):
   * `flagged` is whether it exists, undefined where the store could not tell (it failed, or reads no
   * flags).
   */
  async takeAndRead(
    kind: OperationKind,
    caller: Caller,
    clientAddress: string,
    flag?: string,
  ): Promise<{ outcome?: RateLimitOutcome; flagged?: boolean }> {
    const windowMs = this.budgets.windowSeconds * 1000;
    const candidates: { scope: RateLimitScope; bucket: Bucket }[] = [];
    const userLimit = this.budgets.user[kind];
    if (caller.kind === 'user' && userLimit > 0) {
      // In the caller's hash tag: on a cluster the flag is read by the same script call.
      const key = `${this.keyPrefix}:ratelimit:${kind}:user:${callerTag(caller)}`;
      candidates.push({ scope: 'user', bucket: { key, limit: userLimit, windowMs } });
    }
    const ipLimit = this.budgets.ip[kind];
    if (ipLimit > 0) {
      const key = `${this.keyPrefix}:ratelimit:${kind}:ip:${clientAddress}`;
      candidates.push({ scope: 'ip', bucket: { key, limit: ipLimit, windowMs } });
    }
    if (candidates.length === 0 && !flag) return {};
    try {
      // The flag shares the user bucket's slot only: without one, it is left to the caller to read.
      const together = candidates.length === 0 || candidates[0]!.scope === 'user' ? flag : undefined;
      const { decision, flagged } = await this.store.take(
        candidates.map((candidate) => candidate.bucket),
        together,
      );
      const outcome = decision && {
        decision,
        scope: candidates[decision.bucket]!.scope,
        windowSeconds: this.budgets.windowSeconds,
      };
      return { ...(outcome && { outcome }), ...(flagged !== undefined && { flagged }) };
    } catch (error) {
      this.logger.warn({ err: error }, 'rate limit store unavailable: request let through');
      return {};
    }
  }
}

/**
 * The hash tag of a signed-in caller's keys: its rate budgets and its read-your-writes mark share a
 * slot, so on a cluster one script call spends the one and reads the other.
 */
export const callerTag = (caller: Extract<Caller, { kind: 'user' }>) => hashTag(`user:${caller.userId}`);

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
