import { SignJWT, jwtVerify, type JWTPayload } from 'jose';
import { LRUCache } from 'lru-cache';
import { z } from 'zod';
import { DomainError, ErrorCode } from './errors.js';

export const Role = z.enum(['CUSTOMER', 'STAFF', 'ADMIN']);
export type Role = z.infer<typeof Role>;

/**
 * Who is calling, as every subgraph sees it. `user` for an end user, `service` when another service
 * calls on its own behalf (e.g. orders asking meals for prices), `anonymous` otherwise.
 */
export type Caller =
  | { kind: 'anonymous' }
  /** `sessionId`: the session the user's access token belongs to (absent where no session applies, e.g. tests). */
  | { kind: 'user'; userId: string; role: Role; sessionId?: string }
  | { kind: 'service'; service: string };

export const anonymous: Caller = { kind: 'anonymous' };

export const isStaff = (caller: Caller) =>
  caller.kind === 'service' || (caller.kind === 'user' && (caller.role === 'STAFF' || caller.role === 'ADMIN'));

export function requireUser(caller: Caller): Extract<Caller, { kind: 'user' }> {
  if (caller.kind !== 'user') throw new DomainError(ErrorCode.UNAUTHENTICATED, 'You must be logged in');
  return caller;
}

export function requireStaff(caller: Caller): void {
  if (caller.kind === 'anonymous') throw new DomainError(ErrorCode.UNAUTHENTICATED, 'You must be logged in');
  if (!isStaff(caller)) throw new DomainError(ErrorCode.FORBIDDEN, 'Only staff may do this');
}

/** One string per distinct identity: callers with the same key are the same caller. */
export const callerKey = (caller: Caller): string =>
  caller.kind === 'user'
    ? `user:${caller.userId}:${caller.role}`
    : caller.kind === 'service'
      ? `service:${caller.service}`
      : 'anonymous';

/** The header that carries the gateway's (or a service's) signed statement of who the caller is. */
export const INTERNAL_TOKEN_HEADER = 'x-internal-token';
/**
 * The end client's address, as the gateway saw it (after its trusted proxies), on each subgraph call:
 * believed only on a request whose internal token verifies, i.e. one the gateway (or a service) sent.
 */
export const CLIENT_ADDRESS_HEADER = 'x-client-address';
const INTERNAL_AUDIENCE = 'food-subgraphs';
const INTERNAL_ISSUER = 'food-internal';

const InternalClaims = z.intersection(
  z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('anonymous') }),
    z.object({ kind: z.literal('user'), sub: z.uuid(), role: Role, sid: z.uuid().optional() }),
    z.object({ kind: z.literal('service'), sub: z.string().min(1) }),
  ]),
  /** Read from the primary database (read-your-writes, see read-consistency.ts); absent means replicas may serve. */
  z.object({ primary: z.literal(true).optional() }),
);

/** What an internal token says: who calls, and whether its reads must see the primary's latest writes. */
export interface InternalRequest {
  caller: Caller;
  readFromPrimary: boolean;
}

/** How a token is signed besides its caller. */
export interface SignOptions {
  /** The subgraph must read from the primary database, not a replica (see read-consistency.ts). */
  readFromPrimary?: boolean;
}

/**
 * Tokens already verified, until they expire: the same string verifies the same way until then, and
 * checking an HMAC through WebCrypto on every request was the gateway's largest CPU cost. Bounded, so
 * a flood of distinct tokens costs memory no longer than the LRU holds.
 */
class VerifiedTokens<T extends object> {
  private readonly cache = new LRUCache<string, T>({ max: 10_000 });

  async verify(token: string, verify: (token: string) => Promise<{ value: T; payload: JWTPayload }>): Promise<T> {
    const cached = this.cache.get(token);
    if (cached !== undefined) return cached;
    const { value, payload } = await verify(token);
    const ttlMs = (payload.exp ?? 0) * 1_000 - Date.now();
    if (ttlMs > 0) this.cache.set(token, value, { ttl: ttlMs });
    return value;
  }
}

/**
 * Internal tokens: short-lived, HS256-signed with a secret only the services share. A client cannot
 * forge one, so a subgraph can trust the identity in it whether the call came through the gateway or
 * not; a call without a valid one is refused.
 *
 * A token signed for a caller is reused for half its lifetime (each subgraph fetch used to sign a new
 * one), and a verified one is remembered until it expires.
 */
export class InternalTokens {
  private readonly key: Uint8Array;
  private readonly signed = new LRUCache<string, string>({ max: 10_000 });
  private readonly verified = new VerifiedTokens<InternalRequest>();
  constructor(
    secret: string,
    private readonly ttlSeconds = 60,
  ) {
    this.key = new TextEncoder().encode(secret);
  }

  async sign(caller: Caller, options: SignOptions = {}): Promise<string> {
    const primary = options.readFromPrimary === true;
    // The session too: a subgraph acts on "the current session" (logOut, changePassword).
    const session = caller.kind === 'user' && caller.sessionId ? `\n${caller.sessionId}` : '';
    const key = `${callerKey(caller)}${session}${primary ? '\nprimary' : ''}`;
    const reusable = this.signed.get(key);
    if (reusable) return reusable;
    const token = await this.signNew(caller, primary);
    this.signed.set(key, token, { ttl: (this.ttlSeconds * 1_000) / 2 });
    return token;
  }

  private async signNew(caller: Caller, primary: boolean): Promise<string> {
    const claims =
      caller.kind === 'user'
        ? { kind: 'user', role: caller.role, ...(caller.sessionId ? { sid: caller.sessionId } : {}) }
        : caller.kind === 'service'
          ? { kind: 'service' }
          : { kind: 'anonymous' };
    const jwt = new SignJWT(primary ? { ...claims, primary: true } : claims)
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(INTERNAL_ISSUER)
      .setAudience(INTERNAL_AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(`${this.ttlSeconds}s`);
    if (caller.kind === 'user') jwt.setSubject(caller.userId);
    if (caller.kind === 'service') jwt.setSubject(caller.service);
    return jwt.sign(this.key);
  }

  /** Returns the caller, or throws UNAUTHENTICATED when the token is missing, forged or expired. */
  async verify(token: string | undefined): Promise<Caller> {
    return (await this.verifyRequest(token)).caller;
  }

  /** The caller and its read consistency; throws UNAUTHENTICATED as `verify` does. */
  async verifyRequest(token: string | undefined): Promise<InternalRequest> {
    if (!token) throw new DomainError(ErrorCode.UNAUTHENTICATED, 'Missing internal token: call through the gateway');
    try {
      return await this.verified.verify(token, async (candidate) => {
        const { payload } = await jwtVerify(candidate, this.key, {
          issuer: INTERNAL_ISSUER,
          audience: INTERNAL_AUDIENCE,
          algorithms: ['HS256'],
        });
        const claims = InternalClaims.parse(payload);
        const caller: Caller =
          claims.kind === 'user'
            ? { kind: 'user', userId: claims.sub, role: claims.role, ...(claims.sid ? { sessionId: claims.sid } : {}) }
            : claims.kind === 'service'
              ? { kind: 'service', service: claims.sub }
              : anonymous;
        return { value: { caller, readFromPrimary: claims.primary === true }, payload };
      });
    } catch {
      throw new DomainError(ErrorCode.UNAUTHENTICATED, 'Invalid internal token');
    }
  }
}
