import { createHash, randomBytes } from 'node:crypto';
import { DomainError, ErrorCode, newEvent, newId, type DomainEvent, type EventOf, type Role } from '@food/platform';

export type RevokeReason = EventOf<'session.revoked'>['data']['reason'];

/** What a rotation found for a refresh token. */
export type Rotation =
  | { kind: 'rotated'; userId: string; sessionId: string; sessionExpiresAt: Date }
  /** Already exchanged once: someone holds a copy. Its session has been revoked with `events`. */
  | { kind: 'reused'; sessionId: string }
  /** Unknown, or its session is revoked or past its end. */
  | { kind: 'invalid' };

/** The persistence sessions need; implemented over Prisma in ../data. Every revocation writes its events in the same transaction. */
export interface SessionStore {
  create(session: { id: string; userId: string; expiresAt: Date; tokenHash: string }): Promise<void>;
  /**
   * Marks the token used and stores the next one, in one transaction, if the token is unused and its
   * session live; a used one revokes its session (reason refresh_token_reused) with the events
   * `revocation` builds.
   */
  rotate(tokenHash: string, nextHash: string, now: Date, revocation: RevocationEvents): Promise<Rotation>;
  /** Revokes the live sessions that match, writing one event per session; returns their ids. */
  revoke(
    match: { sessionId: string } | { userId: string; exceptSessionId?: string },
    revocation: RevocationEvents,
  ): Promise<string[]>;
  /** A new password hash and the revocation of the user's other sessions, in one transaction. */
  changePassword(
    userId: string,
    passwordHash: string,
    keepSessionId: string | undefined,
    revocation: RevocationEvents,
  ): Promise<void>;
}

/** Builds the session.revoked event for a session the store revokes, inside its transaction. */
export interface RevocationEvents {
  reason: RevokeReason;
  event(sessionId: string, userId: string): DomainEvent;
}

export interface SessionSettings {
  /** How long a login lasts, refreshes included. */
  refreshTtlSeconds: number;
  /** Access tokens' lifetime: a revoked session's tokens are refused by the gateways until then. */
  accessTtlSeconds: number;
}

export interface AccessTokenIssuer {
  issue(claims: { userId: string; role: Role; sessionId: string }): Promise<{ token: string; expiresAt: Date }>;
}

/** A refresh token's value (given to the client once) and the hash it is stored as. */
const newRefreshToken = () => {
  const token = `rt_${randomBytes(32).toString('base64url')}`;
  return { token, hash: hashRefreshToken(token) };
};
export const hashRefreshToken = (token: string) => createHash('sha256').update(token).digest('hex');

/**
 * Logins: a session per login, its refresh tokens each used once (rotation), revocations announced
 * as session.revoked events so that every gateway refuses the session's access tokens at once.
 */
export class Sessions {
  constructor(
    private readonly store: SessionStore,
    private readonly tokens: AccessTokenIssuer,
    private readonly settings: SessionSettings,
  ) {}

  /** A new session for a user who just proved who they are. */
  async start(userId: string, role: Role, now = new Date()) {
    const sessionId = newId();
    const refresh = newRefreshToken();
    const refreshTokenExpiresAt = new Date(now.getTime() + this.settings.refreshTtlSeconds * 1000);
    await this.store.create({ id: sessionId, userId, expiresAt: refreshTokenExpiresAt, tokenHash: refresh.hash });
    const access = await this.tokens.issue({ userId, role, sessionId });
    return { ...access, refreshToken: refresh.token, refreshTokenExpiresAt, sessionId };
  }

  /**
   * Exchanges a refresh token for a new access token and a new refresh token; `roleOf` reads the
   * user's role as it is now, so a refreshed token never carries an old one. A token used before
   * revokes its whole session: whoever holds the copy and whoever holds the original are both out.
   */
  async refresh(refreshToken: string, roleOf: (userId: string) => Promise<Role | null>, now = new Date()) {
    const next = newRefreshToken();
    const rotation = await this.store.rotate(
      hashRefreshToken(refreshToken),
      next.hash,
      now,
      this.revocation('refresh_token_reused', now),
    );
    if (rotation.kind !== 'rotated') throw invalidRefreshToken();
    const role = await roleOf(rotation.userId);
    if (!role) throw invalidRefreshToken();
    const access = await this.tokens.issue({ userId: rotation.userId, role, sessionId: rotation.sessionId });
    return {
      ...access,
      refreshToken: next.token,
      refreshTokenExpiresAt: rotation.sessionExpiresAt,
      userId: rotation.userId,
    };
  }

  async logOut(sessionId: string): Promise<void> {
    await this.store.revoke({ sessionId }, this.revocation('logout'));
  }

  /** Every session of the user: a role change takes effect at once, not at the next refresh. */
  async revokeAll(userId: string, reason: RevokeReason): Promise<string[]> {
    return this.store.revoke({ userId }, this.revocation(reason));
  }

  changePassword(userId: string, passwordHash: string, keepSessionId: string | undefined): Promise<void> {
    return this.store.changePassword(userId, passwordHash, keepSessionId, this.revocation('password_changed'));
  }

  private revocation(reason: RevokeReason, now = new Date()): RevocationEvents {
    // The last access token of the session expires by then: the gateways forget it after that.
    const tokensExpireAt = new Date(now.getTime() + this.settings.accessTtlSeconds * 1000).toISOString();
    return {
      reason,
      event: (sessionId, userId) =>
        newEvent('session.revoked', sessionId, { sessionId, userId, reason, tokensExpireAt }),
    };
  }
}

const invalidRefreshToken = () =>
  new DomainError(ErrorCode.UNAUTHENTICATED, 'The refresh token is invalid, expired or revoked: log in again');
