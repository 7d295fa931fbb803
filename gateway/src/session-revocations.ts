import {
  DomainError,
  ErrorCode,
  EventStreams,
  type DomainEvent,
  type EventBus,
  type EventSubscription,
  type Logger,
  type UserCaller,
  type UserTokenVerifier,
} from '@food/platform';
import type { AccessTokens } from './auth.js';

/**
 * Sessions the users service has revoked (log-out, password or role change, a reused refresh
 * token), each remembered until the last access token it issued expires: a request with such a
 * token is refused, and a subscription opened with one is closed. Generic auth: the gateway knows
 * sessions by id, nothing of why they end.
 */
export class RevokedSessions {
  private readonly until = new Map<string, number>();
  private readonly watchers = new Map<string, Set<() => void>>();
  private readonly sweep: NodeJS.Timeout;

  constructor() {
    this.sweep = setInterval(() => this.forgetExpired(), 60_000).unref();
  }

  revoke(sessionId: string, tokensExpireAtMs: number): void {
    if (tokensExpireAtMs <= Date.now()) return;
    this.until.set(sessionId, Math.max(tokensExpireAtMs, this.until.get(sessionId) ?? 0));
    const watching = this.watchers.get(sessionId);
    this.watchers.delete(sessionId);
    for (const end of watching ?? []) end();
  }

  isRevoked(sessionId: string | undefined): boolean {
    if (!sessionId) return false;
    const until = this.until.get(sessionId);
    return until !== undefined && until > Date.now();
  }

  /** Calls `end` once if the session is revoked (at once if it already is); returns the way to stop watching. */
  watch(sessionId: string | undefined, end: () => void): () => void {
    if (!sessionId) return () => undefined;
    if (this.isRevoked(sessionId)) {
      end();
      return () => undefined;
    }
    let watching = this.watchers.get(sessionId);
    if (!watching) this.watchers.set(sessionId, (watching = new Set()));
    watching.add(end);
    return () => {
      watching.delete(end);
      if (watching.size === 0 && this.watchers.get(sessionId) === watching) this.watchers.delete(sessionId);
    };
  }

  /** Sessions remembered (for tests and metrics). */
  size(): number {
    return this.until.size;
  }

  close(): void {
    clearInterval(this.sweep);
  }

  private forgetExpired(): void {
    const now = Date.now();
    for (const [sessionId, until] of this.until) if (until <= now) this.until.delete(sessionId);
  }
}

/**
 * Feeds `revoked` from the session.revoked events of every users replica, starting with those of
 * the last `lookbackSeconds` still in the stream (a gateway that starts after a revocation still
 * refuses that session's tokens), then each as it is published.
 */
export async function followSessionRevocations(
  bus: EventBus,
  revoked: RevokedSessions,
  lookbackSeconds: number,
  logger: Logger,
): Promise<EventSubscription> {
  const onEvent = (event: DomainEvent) => {
    if (event.type !== 'session.revoked') return;
    revoked.revoke(event.data.sessionId, Date.parse(event.data.tokensExpireAt));
  };
  const tail = await bus.tail(EventStreams.sessions, onEvent, { sinceMs: Date.now() - lookbackSeconds * 1000 });
  logger.info('sessions: refusing the tokens of revoked sessions');
  return tail;
}

/** Access tokens as the gateway takes them: verified (signature, claims), then not of a revoked session. */
export function sessionCheckedTokens(verifier: UserTokenVerifier, revoked: RevokedSessions): AccessTokens {
  return {
    async verify(token: string): Promise<UserCaller> {
      const caller = await verifier.verify(token);
      if (revoked.isRevoked(caller.sessionId)) {
        throw new DomainError(ErrorCode.UNAUTHENTICATED, 'Session revoked: log in again');
      }
      return caller;
    },
  };
}
