import type { RedisConnection } from '@food/platform';
import type { LoginAttempts, ThrottleRule } from '../domain/login-throttle.js';

/**
 * One failure, atomically, on one key (a hash: failures `n`, blocked `until`): safe on a Redis Cluster,
 * where a script may touch only keys of one slot. The key expires a window after its last failure.
 */
const RECORD_FAILURE = `
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local now = tonumber(ARGV[1])
local free = tonumber(ARGV[2])
local ttl = tonumber(ARGV[5])
if n > free then
  local delay = math.min(tonumber(ARGV[3]) * 2 ^ (n - free - 1), tonumber(ARGV[4]))
  redis.call('HSET', KEYS[1], 'until', math.floor(now + delay))
  ttl = math.max(ttl, delay)
end
redis.call('PEXPIRE', KEYS[1], math.ceil(ttl))
return n
`;

/** Failed-login counters in Redis, under `<prefix>:login:`. */
export class RedisLoginAttempts implements LoginAttempts {
  constructor(
    private readonly redis: RedisConnection,
    private readonly prefix: string,
  ) {}

  async blockedUntil(key: string): Promise<number> {
    return Number((await this.redis.hget(this.key(key), 'until')) ?? 0);
  }

  async recordFailure(key: string, rule: ThrottleRule, nowMs: number): Promise<void> {
    await this.redis.eval(
      RECORD_FAILURE,
      1,
      this.key(key),
      nowMs,
      rule.freeFailures,
      rule.baseDelayMs,
      rule.maxDelayMs,
      rule.windowMs,
    );
  }

  async reset(key: string): Promise<void> {
    await this.redis.del(this.key(key));
  }

  private key(key: string): string {
    return `${this.prefix}:login:${key}`;
  }
}

/** The same counters in this process's memory: the start command without a Redis (one process only). */
export class InMemoryLoginAttempts implements LoginAttempts {
  private readonly counters = new Map<string, { n: number; until: number; expiresAt: number }>();

  async blockedUntil(key: string, nowMs: number): Promise<number> {
    const counter = this.counters.get(key);
    if (!counter || counter.expiresAt <= nowMs) return 0;
    return counter.until;
  }

  async recordFailure(key: string, rule: ThrottleRule, nowMs: number): Promise<void> {
    const current = this.counters.get(key);
    const counter = current && current.expiresAt > nowMs ? current : { n: 0, until: 0, expiresAt: 0 };
    counter.n += 1;
    let ttl = rule.windowMs;
    if (counter.n > rule.freeFailures) {
      const delay = Math.min(rule.baseDelayMs * 2 ** (counter.n - rule.freeFailures - 1), rule.maxDelayMs);
      counter.until = nowMs + delay;
      ttl = Math.max(ttl, delay);
    }
    counter.expiresAt = nowMs + ttl;
    this.counters.set(key, counter);
  }

  async reset(key: string): Promise<void> {
    this.counters.delete(key);
  }
}
