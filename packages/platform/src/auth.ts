import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import { z } from 'zod';
import { DomainError, ErrorCode } from './errors.js';

export const Role = z.enum(['CUSTOMER', 'STAFF', 'ADMIN']);
export type Role = z.infer<typeof Role>;

/**
 * Who is calling, as every subgraph sees it. `user` for an end user, `service` when another service
 * calls on its own behalf (e.g. orders asking meals for prices), `anonymous` otherwise.
 */
export type Caller =
  { kind: 'anonymous' } | { kind: 'user'; userId: string; role: Role } | { kind: 'service'; service: string };

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

/** The header that carries the gateway's (or a service's) signed statement of who the caller is. */
export const INTERNAL_TOKEN_HEADER = 'x-internal-token';
const INTERNAL_AUDIENCE = 'food-subgraphs';
const INTERNAL_ISSUER = 'food-internal';

const InternalClaims = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('anonymous') }),
  z.object({ kind: z.literal('user'), sub: z.uuid(), role: Role }),
  z.object({ kind: z.literal('service'), sub: z.string().min(1) }),
]);

/**
 * Internal tokens: short-lived, HS256-signed with a secret only the services share. A client cannot
 * forge one, so a subgraph can trust the identity in it whether the call came through the gateway or
 * not; a call without a valid one is refused.
 */
export class InternalTokens {
  private readonly key: Uint8Array;
  constructor(
    secret: string,
    private readonly ttlSeconds = 60,
  ) {
    this.key = new TextEncoder().encode(secret);
  }

  async sign(caller: Caller): Promise<string> {
    const claims =
      caller.kind === 'user'
        ? { kind: 'user', role: caller.role }
        : caller.kind === 'service'
          ? { kind: 'service' }
          : { kind: 'anonymous' };
    const jwt = new SignJWT(claims)
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
    if (!token) throw new DomainError(ErrorCode.UNAUTHENTICATED, 'Missing internal token: call through the gateway');
    try {
      const { payload } = await jwtVerify(token, this.key, {
        issuer: INTERNAL_ISSUER,
        audience: INTERNAL_AUDIENCE,
        algorithms: ['HS256'],
      });
      const claims = InternalClaims.parse(payload);
      if (claims.kind === 'user') return { kind: 'user', userId: claims.sub, role: claims.role };
      if (claims.kind === 'service') return { kind: 'service', service: claims.sub };
      return anonymous;
    } catch {
      throw new DomainError(ErrorCode.UNAUTHENTICATED, 'Invalid internal token');
    }
  }
}

/** The end user's session token: issued by the users subgraph, verified by the gateway. */
export interface UserTokenOptions {
  secret: string;
  issuer: string;
  audience: string;
  ttlSeconds: number;
}

export class UserTokens {
  private readonly key: Uint8Array;
  constructor(private readonly options: UserTokenOptions) {
    this.key = new TextEncoder().encode(options.secret);
  }

  async issue(userId: string, role: Role, now = new Date()): Promise<{ token: string; expiresAt: Date }> {
    const issuedAt = Math.floor(now.getTime() / 1000);
    const expiresAt = new Date((issuedAt + this.options.ttlSeconds) * 1000);
    const token = await new SignJWT({ role })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(userId)
      .setIssuer(this.options.issuer)
      .setAudience(this.options.audience)
      .setIssuedAt(issuedAt)
      .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
      .sign(this.key);
    return { token, expiresAt };
  }

  /** Verifies signature, expiry, issuer and audience; throws UNAUTHENTICATED with the reason. */
  async verify(token: string): Promise<Extract<Caller, { kind: 'user' }>> {
    try {
      const { payload } = await jwtVerify(token, this.key, {
        issuer: this.options.issuer,
        audience: this.options.audience,
        algorithms: ['HS256'],
      });
      const claims = z.object({ sub: z.uuid(), role: Role }).parse(payload);
      return { kind: 'user', userId: claims.sub, role: claims.role };
    } catch (error) {
      const reason = error instanceof joseErrors.JWTExpired ? 'Token expired' : 'Invalid token';
      throw new DomainError(ErrorCode.UNAUTHENTICATED, reason);
    }
  }
}
