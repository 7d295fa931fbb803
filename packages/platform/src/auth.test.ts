import { createPrivateKey, createPublicKey, type JsonWebKey } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeProtectedHeader, SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InternalTokens, type Caller } from './auth.js';
import { testSecrets, testUserTokenSigner, testUserTokenVerifier } from './testing/index.js';
import {
  generateSigningJwk,
  JWKS_PATH,
  publicJwks,
  remoteUserKeys,
  signingKeysEnv,
  UserTokenVerifier,
} from './user-tokens.js';

const secret = 'auth-test-secret-0123456789abcdef0123456789';
const user: Caller = { kind: 'user', userId: '6f1c1f5e-8a1b-4f55-9a57-0d6f6b7f1c11', role: 'CUSTOMER' };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('tokens, with signing and verification remembered', () => {
  it('reuses one internal token per caller, and a different caller gets its own', async () => {
    const tokens = new InternalTokens(secret);
    const first = await tokens.sign(user);
    expect(await tokens.sign(user)).toBe(first);
    expect(await tokens.sign({ ...user, role: 'STAFF' })).not.toBe(first);
    expect(await tokens.verify(first)).toEqual(user);
    expect(await new InternalTokens(secret).verify(first)).toEqual(user);
  });

  it("carries the user's session, and signs apart for each session of the same user", async () => {
    const tokens = new InternalTokens(secret);
    const inSession = { ...user, sessionId: '0f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a' } as Caller;
    const other = { ...user, sessionId: '1f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a' } as Caller;
    const token = await tokens.sign(inSession);
    expect(await tokens.sign(other)).not.toBe(token);
    expect(await new InternalTokens(secret).verify(token)).toEqual(inSession);
  });

  it('carries "read from the primary" signed, apart from the plain token of the same caller', async () => {
    const tokens = new InternalTokens(secret);
    const plain = await tokens.sign(user);
    const primary = await tokens.sign(user, { readFromPrimary: true });
    expect(primary).not.toBe(plain);
    expect(await tokens.verifyRequest(primary)).toEqual({ caller: user, readFromPrimary: true });
    expect(await tokens.verifyRequest(plain)).toEqual({ caller: user, readFromPrimary: false });
    expect(await tokens.verify(primary)).toEqual(user);
  });

  it('still refuses a remembered internal token once it has expired, and never remembers a forged one', async () => {
    // Two seconds, not one: expiry is in whole seconds, so a 1 s token signed late in a second can
    // be expired a few milliseconds later.
    const tokens = new InternalTokens(secret, 2);
    const token = await tokens.sign(user);
    expect(await tokens.verify(token)).toEqual(user);
    await sleep(3_100);
    await expect(tokens.verify(token)).rejects.toThrow('Invalid internal token');
    // After half its lifetime a fresh token is signed, which verifies.
    expect(await tokens.verify(await tokens.sign(user))).toEqual(user);
    const forged = await new InternalTokens('another-secret-0123456789abcdef0123456789').sign(user);
    await expect(tokens.verify(forged)).rejects.toThrow('Invalid internal token');
    await expect(tokens.verify(forged)).rejects.toThrow('Invalid internal token');
  });

  it('refuses a remembered access token once it has expired', async () => {
    const signer = testUserTokenSigner({ ttlSeconds: 1 });
    const verifier = testUserTokenVerifier({ clockToleranceSeconds: 0 });
    const { token } = await signer.issue({ userId: user.userId, role: 'CUSTOMER', sessionId: SESSION });
    expect(await verifier.verify(token)).toEqual({ ...user, sessionId: SESSION });
    expect(await verifier.verify(token)).toEqual({ ...user, sessionId: SESSION });
    await sleep(2_100);
    await expect(verifier.verify(token)).rejects.toThrow('Token expired');
  });
});

const SESSION = '0f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a';
const testKey = () => signingKeysEnv.parse(testSecrets.USERS_SIGNING_KEYS).get('test-1')!;
const now = () => Math.floor(Date.now() / 1000);
/** A token as an attacker (or a buggy issuer) might build it: the test key unless said otherwise. */
const craft = (claims: Record<string, unknown>, header: Record<string, unknown> = {}) =>
  new SignJWT({ role: 'CUSTOMER', sid: SESSION, ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: 'test-1', ...header } as { alg: string })
    .setSubject(user.kind === 'user' ? user.userId : '');

describe('access tokens: asymmetric, by kid, with every claim checked', () => {
  const verifier = testUserTokenVerifier({ maxTokenAgeSeconds: 3_600 });
  const valid = (header: Record<string, unknown> = {}) =>
    craft({}, header)
      .setIssuer('food-users')
      .setAudience('food-supergraph')
      .setIssuedAt()
      .setNotBefore(now())
      .setExpirationTime('10m');

  it('accepts what the users service signs, with its kid and ES256', async () => {
    const { token } = await testUserTokenSigner().issue({ userId: user.userId, role: 'STAFF', sessionId: SESSION });
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'ES256', typ: 'JWT', kid: 'test-1' });
    expect(await verifier.verify(token)).toEqual({ ...user, role: 'STAFF', sessionId: SESSION });
    expect(await verifier.verify(await valid().sign(testKey()))).toMatchObject({ sessionId: SESSION });
  });

  it('refuses alg "none"', async () => {
    const unsigned = new UnsecuredJWT({ role: 'ADMIN', sid: SESSION })
      .setSubject(user.kind === 'user' ? user.userId : '')
      .setIssuer('food-users')
      .setAudience('food-supergraph')
      .setIssuedAt()
      .setExpirationTime('10m')
      .encode();
    await expect(verifier.verify(unsigned)).rejects.toThrow('Invalid token');
    // The same with a kid the JWKS has.
    const [, payload] = unsigned.split('.');
    const header = Buffer.from(JSON.stringify({ alg: 'none', kid: 'test-1' })).toString('base64url');
    await expect(verifier.verify(`${header}.${payload}.`)).rejects.toThrow('Invalid token');
  });

  it('refuses HS256 signed with the public key as the HMAC secret (algorithm confusion)', async () => {
    const publicKey = createPublicKey(testKey());
    const secrets = [
      publicKey.export({ format: 'pem', type: 'spki' }),
      JSON.stringify(publicKey.export({ format: 'jwk' })),
      JSON.stringify(publicJwks(signingKeysEnv.parse(testSecrets.USERS_SIGNING_KEYS))),
    ];
    for (const secret of secrets) {
      const token = await valid({ alg: 'HS256' }).sign(new TextEncoder().encode(String(secret)));
      await expect(verifier.verify(token)).rejects.toThrow('Invalid token');
    }
  });

  it('refuses an unknown kid, and a known kid signed by another key', async () => {
    const other = createPrivateKey({ key: generateSigningJwk('other') as JsonWebKey, format: 'jwk' });
    await expect(verifier.verify(await valid({ kid: 'other' }).sign(other))).rejects.toThrow('Invalid token');
    await expect(verifier.verify(await valid().sign(other))).rejects.toThrow('Invalid token');
  });

  it('refuses a token without exp, an expired one and one not yet valid', async () => {
    const noExp = craft({}).setIssuer('food-users').setAudience('food-supergraph').setIssuedAt();
    await expect(verifier.verify(await noExp.sign(testKey()))).rejects.toThrow('Invalid token');
    const expired = craft({})
      .setIssuer('food-users')
      .setAudience('food-supergraph')
      .setIssuedAt(now() - 1_200)
      .setExpirationTime(now() - 300);
    await expect(verifier.verify(await expired.sign(testKey()))).rejects.toThrow('Token expired');
    const notYet = craft({})
      .setIssuer('food-users')
      .setAudience('food-supergraph')
      .setIssuedAt(now())
      .setNotBefore(now() + 300)
      .setExpirationTime(now() + 900);
    await expect(verifier.verify(await notYet.sign(testKey()))).rejects.toThrow('Invalid token');
    const issuedLater = craft({})
      .setIssuer('food-users')
      .setAudience('food-supergraph')
      .setIssuedAt(now() + 300)
      .setExpirationTime(now() + 900);
    await expect(verifier.verify(await issuedLater.sign(testKey()))).rejects.toThrow('Invalid token');
    // A far-off exp does not outlive the largest token age the gateway allows.
    const ancient = craft({})
      .setIssuer('food-users')
      .setAudience('food-supergraph')
      .setIssuedAt(now() - 7_200)
      .setExpirationTime(now() + 900);
    await expect(verifier.verify(await ancient.sign(testKey()))).rejects.toThrow();
  });

  it('refuses the wrong issuer, the wrong audience, and a token without a session', async () => {
    await expect(verifier.verify(await valid().setIssuer('someone-else').sign(testKey()))).rejects.toThrow(
      'Invalid token',
    );
    await expect(verifier.verify(await valid().setAudience('another-api').sign(testKey()))).rejects.toThrow(
      'Invalid token',
    );
    await expect(
      verifier.verify(
        await craft({ sid: undefined })
          .setIssuer('food-users')
          .setAudience('food-supergraph')
          .setIssuedAt()
          .setExpirationTime('10m')
          .sign(testKey()),
      ),
    ).rejects.toThrow('Invalid token');
  });

  it('refuses configured keys that are not P-256 private keys, and serves only public halves', () => {
    const { d: _d, ...publicOnly } = generateSigningJwk('pub');
    for (const value of [
      'not json',
      '[]',
      JSON.stringify([publicOnly]),
      JSON.stringify([{ ...publicOnly, kty: 'RSA' }]),
    ]) {
      expect(signingKeysEnv.safeParse(value).success).toBe(false);
    }
    const jwks = publicJwks(signingKeysEnv.parse(testSecrets.USERS_SIGNING_KEYS));
    expect(jwks.keys).toEqual([expect.objectContaining({ kid: 'test-1', alg: 'ES256', kty: 'EC', crv: 'P-256' })]);
    expect(jwks.keys[0]).not.toHaveProperty('d');
  });
});

describe('the JWKS over HTTP: cached, fetched again for a new kid at most once per cooldown', () => {
  let jwks: { keys: unknown[] };
  let fetches = 0;
  let server: Server;
  let url: URL;
  beforeAll(async () => {
    jwks = publicJwks(signingKeysEnv.parse(testSecrets.USERS_SIGNING_KEYS)) as { keys: unknown[] };
    server = createServer((_req, res) => {
      fetches += 1;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(jwks));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}${JWKS_PATH}`);
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  it('verifies tokens of a rotated-in key once fetched, and old ones until they expire', async () => {
    const verifier = new UserTokenVerifier({
      keys: remoteUserKeys(url, { cooldownSeconds: 1, cacheMaxAgeSeconds: 600 }),
      issuer: 'food-users',
      audience: 'food-supergraph',
    });
    const claims = { userId: user.kind === 'user' ? user.userId : '', role: 'CUSTOMER' as const, sessionId: SESSION };
    const old = await testUserTokenSigner().issue(claims);
    expect(await verifier.verify(old.token)).toMatchObject({ sessionId: SESSION });
    expect(fetches).toBe(1);

    // Rotation: the users service gets a second key and signs with it; the JWKS lists both.
    const next = generateSigningJwk('test-2');
    const keys = new Map([
      ...signingKeysEnv.parse(testSecrets.USERS_SIGNING_KEYS),
      ...signingKeysEnv.parse(JSON.stringify([next])),
    ]);
    jwks = publicJwks(keys) as { keys: unknown[] };
    const rotated = await testUserTokenSigner({ keys, activeKeyId: 'test-2' }).issue(claims);
    // Within the cooldown an unknown kid is refused without a fetch: made-up kids cannot flood the users service.
    for (let i = 0; i < 5; i += 1) await expect(verifier.verify(rotated.token)).rejects.toThrow('Invalid token');
    expect(fetches).toBe(1);
    await sleep(1_100);
    expect(await verifier.verify(rotated.token)).toMatchObject({ sessionId: SESSION });
    expect(fetches).toBe(2);
    expect(
      await new UserTokenVerifier({
        keys: remoteUserKeys(url, { cooldownSeconds: 30, cacheMaxAgeSeconds: 600 }),
        issuer: 'food-users',
        audience: 'food-supergraph',
      }).verify(old.token),
    ).toMatchObject({ sessionId: SESSION });
  });
});
