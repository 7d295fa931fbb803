import type { IncomingHttpHeaders } from 'node:http';
import { GraphQLError } from './graphql-js.js';
import { anonymous, DomainError, type Caller, type UserCaller } from '@food/platform';

/** What the gateway checks a bearer token with: signature and claims (UserTokenVerifier), then its session. */
export interface AccessTokens {
  verify(token: string): Promise<UserCaller>;
}

/**
 * The caller of a gateway request, from `Authorization: Bearer <jwt>` only. Any identity headers a
 * client sends are ignored: subgraphs learn who the caller is from the token the gateway signs.
 * A token that is present but invalid or expired is refused (401), never downgraded to anonymous.
 */
export async function authenticate(headers: IncomingHttpHeaders, tokens: AccessTokens): Promise<Caller> {
  const header = headers.authorization;
  if (!header) return anonymous;
  const match = /^Bearer ([A-Za-z0-9\-_.]+)$/.exec(header);
  if (!match) throw unauthenticated('Authorization must be "Bearer <token>"');
  try {
    return await tokens.verify(match[1]!);
  } catch (error) {
    throw unauthenticated(error instanceof DomainError ? error.message : 'Invalid token');
  }
}

/**
 * Milliseconds until a verified "Bearer <jwt>" expires, from its `exp` claim: a long-lived
 * subscription (a socket, an event stream) lives no longer than the token it was opened with.
 */
export function msUntilTokenExpiry(authorization: string): number | undefined {
  const payload = authorization.slice('Bearer '.length).split('.')[1];
  if (!payload) return undefined;
  try {
    const { exp } = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof exp === 'number' ? Math.max(0, exp * 1000 - Date.now()) : undefined;
  } catch {
    return undefined;
  }
}

const unauthenticated = (message: string) =>
  new GraphQLError(message, { extensions: { code: 'UNAUTHENTICATED', http: { status: 401 } } });
