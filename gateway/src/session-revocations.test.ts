import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger, newEvent } from '@food/platform';
import { EmitterBus, testAccessToken, testUserTokenVerifier } from '@food/platform/testing';
import { followSessionRevocations, RevokedSessions, sessionCheckedTokens } from './session-revocations.js';

const USER = '7c6d5e4f-3a2b-4c1d-9e8f-0a1b2c3d4e5f';
const revoked: RevokedSessions[] = [];
const sessions = () => {
  const made = new RevokedSessions();
  revoked.push(made);
  return made;
};
afterEach(() => {
  for (const made of revoked.splice(0)) made.close();
  vi.useRealTimers();
});

const revocation = (sessionId: string, tokensExpireAt: Date) =>
  newEvent('session.revoked', sessionId, {
    sessionId,
    userId: USER,
    reason: 'logout',
    tokensExpireAt: tokensExpireAt.toISOString(),
  });

describe('revoked sessions, fed by session.revoked events', () => {
  it("refuses a revoked session's access tokens, and only that session's", async () => {
    const bus = new EmitterBus();
    const revokedSessions = sessions();
    const tail = await followSessionRevocations(bus, revokedSessions, 3_600, createLogger('test', 'silent'));
    const tokens = sessionCheckedTokens(testUserTokenVerifier(), revokedSessions);
    const [mine, other] = [randomUUID(), randomUUID()];
    const token = await testAccessToken(USER, 'CUSTOMER', { sessionId: mine });
    const otherToken = await testAccessToken(USER, 'CUSTOMER', { sessionId: other });
    expect(await tokens.verify(token)).toMatchObject({ sessionId: mine });
    await bus.publish('sessions', revocation(mine, new Date(Date.now() + 60_000)));
    await expect(tokens.verify(token)).rejects.toThrow('Session revoked');
    expect(await tokens.verify(otherToken)).toMatchObject({ sessionId: other });
    await tail.close();
  });

  it('ends what watches a session when it is revoked (at once when it already is), and forgets it after its tokens expire', () => {
    vi.useFakeTimers();
    const revokedSessions = sessions();
    const [a, b] = [randomUUID(), randomUUID()];
    const ended = vi.fn();
    const unwatched = vi.fn();
    revokedSessions.watch(a, ended);
    const stop = revokedSessions.watch(b, unwatched);
    stop();
    revokedSessions.revoke(a, Date.now() + 120_000);
    revokedSessions.revoke(b, Date.now() + 120_000);
    expect(ended).toHaveBeenCalledTimes(1);
    expect(unwatched).not.toHaveBeenCalled();
    const late = vi.fn();
    revokedSessions.watch(a, late);
    expect(late).toHaveBeenCalledTimes(1);
    // An event for tokens already expired changes nothing.
    revokedSessions.revoke(randomUUID(), Date.now() - 1);
    expect(revokedSessions.size()).toBe(2);
    vi.advanceTimersByTime(180_000);
    expect(revokedSessions.isRevoked(a)).toBe(false);
    expect(revokedSessions.size()).toBe(0);
  });
});
