import { createPrivateKey, createPublicKey, generateKeyPairSync, type JsonWebKey, type KeyObject } from 'node:crypto';
import {
  SignJWT,
  createLocalJWKSet,
  createRemoteJWKSet,
  jwtVerify,
  errors as joseErrors,
  type JSONWebKeySet,
  type JWK,
  type JWTVerifyGetKey,
} from 'jose';
import { LRUCache } from 'lru-cache';
import { z } from 'zod';
import { Role, type Caller } from './auth.js';
import { DomainError, ErrorCode } from './errors.js';

/**
 * End users' access tokens: signed by the users service with an asymmetric key (ES256, a P-256
 * key) named by `kid`, verified by the gateway with the public keys the users service publishes at
 * `/.well-known/jwks.json`. The gateway holds no key that can mint one.
 *
 * Rotation: the users service keeps every key in USERS_SIGNING_KEYS and signs with the active one
 * (USERS_SIGNING_ACTIVE_KEY_ID); the JWKS lists them all, so a token of an older key verifies until
 * it expires. The README gives the steps.
 */
export const USER_TOKEN_ALGORITHM = 'ES256';
/** Where the users service serves its public keys. */
export const JWKS_PATH = '/.well-known/jwks.json';

/** The one user variant of Caller. */
export type UserCaller = Extract<Caller, { kind: 'user' }>;

/** A private signing key as configured: a JWK with its `kid`. */
const ZSigningJwk = z.looseObject({
  kid: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'kid: letters, digits, "_", "." and "-", 1 to 64'),
  kty: z.literal('EC', { error: 'kty must be EC (a P-256 key for ES256)' }),
  crv: z.literal('P-256', { error: 'crv must be P-256 (ES256)' }),
  d: z.string({ error: 'must be a private key (no "d")' }).min(1),
  x: z.string().min(1),
  y: z.string().min(1),
});

/** Signing keys by kid, each a private KeyObject (validated: a P-256 private key Node can load). */
export type SigningKeys = ReadonlyMap<string, KeyObject>;

/**
 * USERS_SIGNING_KEYS: a JSON array (or `{"keys": [...]}`, a JWKS) of private P-256 JWKs, each with a
 * `kid`. Old keys stay listed (their public halves in the JWKS) until every token they signed has expired.
 */
export const signingKeysEnv = z
  .string({ error: 'is required: a JSON array of private P-256 JWKs, each with a kid' })
  .transform((value, ctx): SigningKeys => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be JSON: an array of private JWKs (or {"keys": [...]})' });
      return z.NEVER;
    }
    const list = Array.isArray(parsed) ? parsed : (parsed as { keys?: unknown } | null)?.keys;
    const jwks = z.array(ZSigningJwk).min(1, 'must hold at least one key').safeParse(list);
    if (!jwks.success) {
      for (const issue of jwks.error.issues) {
        ctx.addIssue({ code: 'custom', message: `key ${issue.path.join('.')}: ${issue.message}` });
      }
      return z.NEVER;
    }
    const keys = new Map<string, KeyObject>();
    for (const jwk of jwks.data) {
      if (keys.has(jwk.kid)) {
        ctx.addIssue({ code: 'custom', message: `kid ${jwk.kid} appears twice` });
        return z.NEVER;
      }
      try {
        keys.set(jwk.kid, createPrivateKey({ key: jwk as JsonWebKey, format: 'jwk' }));
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: `key ${jwk.kid} is not a valid P-256 private key (${String(error)})` });
        return z.NEVER;
      }
    }
    return keys;
  });

/** A new private P-256 JWK with `kid`: for the dev stack, tests and the bench (production brings its own). */
export function generateSigningJwk(kid: string): JWK {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...(privateKey.export({ format: 'jwk' }) as JWK), kid, alg: USER_TOKEN_ALGORITHM, use: 'sig' };
}

/** The public JWKS for a set of signing keys: what `/.well-known/jwks.json` serves. */
export function publicJwks(keys: SigningKeys): JSONWebKeySet {
  return {
    keys: [...keys].map(([kid, key]) => {
      const { kty, crv, x, y } = createPublicKey(key).export({ format: 'jwk' }) as JWK;
      return { kty, crv, x, y, kid, alg: USER_TOKEN_ALGORITHM, use: 'sig' };
    }),
  };
}

export interface UserTokenSignerOptions {
  keys: SigningKeys;
  activeKeyId: string;
  issuer: string;
  audience: string;
  ttlSeconds: number;
}

/** What an access token says: who, with which role, in which session. */
export interface AccessClaims {
  userId: string;
  role: Role;
  sessionId: string;
}

/** Signs access tokens (the users service only: it alone holds the private keys). */
export class UserTokenSigner {
  private readonly key: KeyObject;
  constructor(private readonly options: UserTokenSignerOptions) {
    const key = options.keys.get(options.activeKeyId);
    if (!key) throw new Error(`no signing key with kid ${options.activeKeyId}`);
    this.key = key;
  }

  get ttlSeconds(): number {
    return this.options.ttlSeconds;
  }

  async issue(claims: AccessClaims, now = new Date()): Promise<{ token: string; expiresAt: Date }> {
    const issuedAt = Math.floor(now.getTime() / 1000);
    const expiresAt = new Date((issuedAt + this.options.ttlSeconds) * 1000);
    const token = await new SignJWT({ role: claims.role, sid: claims.sessionId })
      .setProtectedHeader({ alg: USER_TOKEN_ALGORITHM, typ: 'JWT', kid: this.options.activeKeyId })
      .setSubject(claims.userId)
      .setIssuer(this.options.issuer)
      .setAudience(this.options.audience)
      .setIssuedAt(issuedAt)
      .setNotBefore(issuedAt)
      .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
      .sign(this.key);
    return { token, expiresAt };
  }

  /** The public keys, for `/.well-known/jwks.json`. */
  jwks(): JSONWebKeySet {
    return publicJwks(this.options.keys);
  }
}

export interface UserTokenVerifierOptions {
  /** Public keys by kid: `remoteUserKeys(url)` in the gateway, `localUserKeys(jwks)` in tests. */
  keys: JWTVerifyGetKey;
  issuer: string;
  audience: string;
  /** A token older than this (by `iat`) is refused whatever its `exp`: the longest access TTL allowed. */
  maxTokenAgeSeconds?: number;
  /** Clock skew allowed on `exp`, `nbf` and `iat`. Default 5 s. */
  clockToleranceSeconds?: number;
}

/**
 * The users service's JWKS over HTTP, cached (`cacheMaxAgeSeconds`), fetched again when a token names
 * a kid it does not have, at most once per `cooldownSeconds` (jose's createRemoteJWKSet), so a flood
 * of made-up kids costs one fetch per cooldown, not one per request.
 */
export function remoteUserKeys(
  url: URL,
  options: { cooldownSeconds: number; cacheMaxAgeSeconds: number; timeoutMs?: number },
): JWTVerifyGetKey {
  return createRemoteJWKSet(url, {
    cooldownDuration: options.cooldownSeconds * 1000,
    cacheMaxAge: options.cacheMaxAgeSeconds * 1000,
    timeoutDuration: options.timeoutMs ?? 5_000,
  });
}

/** A fixed set of public keys (tests; a deployment that mounts the JWKS as a file). */
export const localUserKeys = (jwks: JSONWebKeySet): JWTVerifyGetKey => createLocalJWKSet(jwks);

const ZAccessClaims = z.object({
  sub: z.uuid(),
  role: Role,
  sid: z.uuid(),
  exp: z.number(),
  iat: z.number(),
});

/**
 * Verifies access tokens (the gateway): ES256 only (no `none`, no HMAC with the public key as its
 * secret), a known `kid`, `exp` required and not passed, `nbf` and `iat` not in the future, the
 * issuer and audience. A verified token is remembered until it expires: the same string verifies
 * the same way until then (revocation is checked apart, on every request).
 */
export class UserTokenVerifier {
  private readonly verified = new LRUCache<string, UserCaller & { expiresAtMs: number }>({ max: 10_000 });
  private readonly toleranceSeconds: number;
  constructor(private readonly options: UserTokenVerifierOptions) {
    this.toleranceSeconds = options.clockToleranceSeconds ?? 5;
  }

  /** The caller and when its token expires; throws UNAUTHENTICATED with the reason. */
  async verifyWithExpiry(token: string): Promise<UserCaller & { expiresAtMs: number }> {
    const cached = this.verified.get(token);
    if (cached !== undefined) {
      if (cached.expiresAtMs > Date.now()) return cached;
      this.verified.delete(token);
      throw new DomainError(ErrorCode.UNAUTHENTICATED, 'Token expired');
    }
    try {
      const { payload } = await jwtVerify(token, this.options.keys, {
        algorithms: [USER_TOKEN_ALGORITHM],
        issuer: this.options.issuer,
        audience: this.options.audience,
        requiredClaims: ['exp', 'iat', 'sub', 'sid'],
        clockTolerance: this.toleranceSeconds,
        ...(this.options.maxTokenAgeSeconds ? { maxTokenAge: this.options.maxTokenAgeSeconds } : {}),
      });
      const claims = ZAccessClaims.parse(payload);
      // jose checks `iat` only against maxTokenAge: a token issued in the future is refused here.
      if (claims.iat > Date.now() / 1000 + this.toleranceSeconds) throw new Error('iat is in the future');
      const caller = {
        kind: 'user' as const,
        userId: claims.sub,
        role: claims.role,
        sessionId: claims.sid,
        expiresAtMs: claims.exp * 1000,
      };
      this.verified.set(token, caller, { ttl: Math.max(1, caller.expiresAtMs - Date.now()) });
      return caller;
    } catch (error) {
      const reason = error instanceof joseErrors.JWTExpired ? 'Token expired' : 'Invalid token';
      throw new DomainError(ErrorCode.UNAUTHENTICATED, reason);
    }
  }

  /** Verifies the token; throws UNAUTHENTICATED with the reason. */
  async verify(token: string): Promise<UserCaller> {
    const { expiresAtMs: _expiresAtMs, ...caller } = await this.verifyWithExpiry(token);
    return caller;
  }
}
