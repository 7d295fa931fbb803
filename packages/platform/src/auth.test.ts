import { describe, expect, it } from 'vitest';
import { InternalTokens, UserTokens, type Caller } from './auth.js';

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

  it('refuses a remembered session token once it has expired', async () => {
    const sessions = new UserTokens({ secret, issuer: 'i', audience: 'a', ttlSeconds: 1 });
    const { token } = await sessions.issue('6f1c1f5e-8a1b-4f55-9a57-0d6f6b7f1c11', 'CUSTOMER');
    expect(await sessions.verify(token)).toEqual(user);
    expect(await sessions.verify(token)).toEqual(user);
    await sleep(2_100);
    await expect(sessions.verify(token)).rejects.toThrow('Token expired');
  });
});
