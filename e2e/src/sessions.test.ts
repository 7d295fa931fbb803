import { createClient as createSseClient, type Client as SseClient } from 'graphql-sse';
import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { codes, startTestSupergraph } from './harness.js';
import { FEED, record, wsClient } from './tracking-clients.js';

/**
 * Sessions through the whole supergraph: a refresh rotates, a log-out reaches the gateway through
 * the users outbox, its relay and Redis, and from then on the session's access tokens are refused
 * and its live subscriptions (WebSocket and SSE) are closed.
 */

let t: Awaited<ReturnType<typeof startTestSupergraph>>;
const clients: Client[] = [];
const sseClients: SseClient[] = [];
const AUTH = `token refreshToken user { id role }`;
const LOG_IN = `mutation ($input: LogInInput!) { logIn(input: $input) { ${AUTH} } }`;
const REFRESH = `mutation ($token: String!) { refreshSession(input: { refreshToken: $token }) { ${AUTH} } }`;
const ME = `{ me { id } }`;
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

beforeAll(async () => {
  // Tight login throttling, for the last case (it leaves 127.0.0.1 waiting).
  t = await startTestSupergraph({
    env: { LOGIN_THROTTLE_ACCOUNT_FREE_FAILURES: '3', LOGIN_THROTTLE_ADDRESS_FREE_FAILURES: '3' },
  });
}, 120_000);

afterAll(async () => {
  await Promise.all(clients.map((client) => client.dispose()));
  for (const client of sseClients) client.dispose();
  await t?.stop();
});

const logIn = async (email: string, password: string) => {
  const response = await t.gateway(LOG_IN, { input: { email, password } });
  expect(response.errors).toBeUndefined();
  return response.data.logIn as { token: string; refreshToken: string; user: { id: string; role: string } };
};

describe('sessions through the gateway', () => {
  it('refreshes with a new pair, and refuses a revoked session at once: requests, WebSocket and SSE', async () => {
    const session = await logIn('chef@example.com', 'chef-demo-password');
    const other = await logIn('chef@example.com', 'chef-demo-password');
    const refreshed = (await t.gateway(REFRESH, { token: session.refreshToken })).data.refreshSession;
    expect(refreshed.refreshToken).not.toBe(session.refreshToken);
    expect((await t.gateway(ME, {}, bearer(refreshed.token))).data.me.id).toBe(session.user.id);

    // Live subscriptions with the session's first access token (still valid: same session).
    const ws = wsClient(t.supergraph.gatewayUrl, session.token);
    clients.push(ws);
    const overWs = record(ws, FEED);
    const sse = createSseClient({ url: t.supergraph.gatewayUrl, headers: bearer(session.token), retryAttempts: 0 });
    sseClients.push(sse);
    const overSse = record(sse, FEED);
    await vi.waitFor(() => expect(t.supergraph.gateway.subscriptions.activeSubscriptions()).toBe(2), {
      timeout: 10_000,
    });

    const loggedOut = await t.gateway(`mutation { logOut }`, {}, bearer(refreshed.token));
    expect(loggedOut.data).toEqual({ logOut: true });
    // The event's way: outbox, relay (woken by NOTIFY), Redis, the gateway's tail: well under a second or two.
    const started = Date.now();
    await overWs.ended(10_000);
    await overSse.ended(10_000);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(overWs.state.error).toMatchObject({ code: 4403, reason: 'Session revoked' });
    expect(overSse.results.at(-1)).toEqual({
      errors: [expect.objectContaining({ message: 'Session revoked', extensions: { code: 'UNAUTHENTICATED' } })],
    });
    for (const token of [session.token, refreshed.token]) {
      const refused = await t.gateway(ME, {}, bearer(token));
      expect(refused.status).toBe(401);
      expect(codes(refused)).toEqual(['UNAUTHENTICATED']);
    }
    expect(codes(await t.gateway(REFRESH, { token: refreshed.refreshToken }))).toEqual(['UNAUTHENTICATED']);
    // The user's other session is untouched.
    expect((await t.gateway(ME, {}, bearer(other.token))).data.me.id).toBe(session.user.id);
  });

  it('ends the sessions of a user whose role an admin changes', async () => {
    const grace = await logIn('grace@example.com', 'grace-demo-password');
    const admin = await logIn('admin@example.com', 'admin-demo-password');
    const promoted = await t.gateway(
      `mutation ($id: ID!) { setUserRole(userId: $id, role: STAFF) { role } }`,
      { id: grace.user.id },
      bearer(admin.token),
    );
    expect(promoted.data.setUserRole.role).toBe('STAFF');
    await vi.waitFor(async () => expect((await t.gateway(ME, {}, bearer(grace.token))).status).toBe(401), {
      timeout: 5_000,
    });
    expect((await logIn('grace@example.com', 'grace-demo-password')).user.role).toBe('STAFF');
  });

  // Last: it leaves this client's address throttled.
  it('throttles failed logins by the address the gateway sees, whatever address header the client sends', async () => {
    for (let i = 0; i < 4; i += 1) {
      const failed = await t.gateway(
        LOG_IN,
        { input: { email: `nobody-${i}@example.com`, password: 'wrong password' } },
        { 'x-client-address': `198.51.100.${i}`, 'x-forwarded-for': `198.51.100.${i}` },
      );
      expect(codes(failed)).toEqual(['INVALID_CREDENTIALS']);
    }
    const refused = await t.gateway(LOG_IN, { input: { email: 'fresh@example.com', password: 'wrong password' } });
    expect(codes(refused)).toEqual(['RATE_LIMITED']);
    expect(refused.errors![0]!.extensions).toMatchObject({ retryAfterSeconds: expect.any(Number) });
  });
});
