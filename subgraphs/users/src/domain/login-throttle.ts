import { createHash } from 'node:crypto';
import { DomainError, ErrorCode } from '@food/platform';

/** One kind of counter: how many failures pass freely, then how the wait grows. */
export interface ThrottleRule {
  /** Failures within the window before any wait. */
  freeFailures: number;
  /** The first wait; each further failure doubles it, up to `maxDelayMs`. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** How long failures are remembered after the last one. */
  windowMs: number;
}

/** Counters of failed logins, each under one key (Redis in production: one key per operation, cluster-safe). */
export interface LoginAttempts {
  /** Until when (epoch ms) the key is blocked; 0 when it is not. */
  blockedUntil(key: string, nowMs: number): Promise<number>;
  /** Counts a failure; a key past its free failures is blocked for a wait that doubles with each one. */
  recordFailure(key: string, rule: ThrottleRule, nowMs: number): Promise<void>;
  reset(key: string): Promise<void>;
}

export interface LoginThrottleSettings {
  account: ThrottleRule;
  address: ThrottleRule;
}

/**
 * Failed logins slow down whoever keeps failing: per account (the email, hashed: the same whether or
 * not it exists, so the answer says nothing about who has an account) and per client address (many
 * accounts from one place), each with free failures and then a doubling wait. A throttled attempt is
 * refused at once with RATE_LIMITED and `retryAfterSeconds`, its password not even checked.
 */
export class LoginThrottle {
  constructor(
    private readonly attempts: LoginAttempts,
    private readonly settings: LoginThrottleSettings,
  ) {}

  /** Throws RATE_LIMITED when either counter is blocked now. */
  async check(email: string, clientAddress: string | undefined, nowMs = Date.now()): Promise<void> {
    const keys = this.keys(email, clientAddress);
    const until = Math.max(...(await Promise.all(keys.map((key) => this.attempts.blockedUntil(key, nowMs)))));
    if (until > nowMs) {
      const retryAfterSeconds = Math.ceil((until - nowMs) / 1000);
      throw new DomainError(ErrorCode.RATE_LIMITED, `Too many failed logins: try again in ${retryAfterSeconds} s`, {
        retryAfterSeconds,
      });
    }
  }

  async failed(email: string, clientAddress: string | undefined, nowMs = Date.now()): Promise<void> {
    const [account, address] = this.keys(email, clientAddress);
    await Promise.all([
      this.attempts.recordFailure(account!, this.settings.account, nowMs),
      address ? this.attempts.recordFailure(address, this.settings.address, nowMs) : undefined,
    ]);
  }

  /** A success clears the account's failures (not the address's: one right password does not vouch for the rest). */
  async succeeded(email: string): Promise<void> {
    await this.attempts.reset(this.keys(email, undefined)[0]!);
  }

  private keys(email: string, clientAddress: string | undefined): string[] {
    const account = `account:${createHash('sha256').update(email.trim().toLowerCase()).digest('hex')}`;
    return clientAddress ? [account, `address:${clientAddress}`] : [account];
  }
}
