import { writeOutbox } from '@food/platform';
import type { Prisma } from './generated/prisma/client.js';
import type { UsersPrisma } from './prisma.js';
import type { RevocationEvents, Rotation, SessionStore } from '../domain/sessions.js';

type Transaction = Prisma.TransactionClient;

/** Sessions and refresh tokens over Prisma; each revocation and its events in one transaction. */
export class PrismaSessionStore implements SessionStore {
  constructor(private readonly prisma: UsersPrisma) {}

  async create(session: { id: string; userId: string; expiresAt: Date; tokenHash: string }): Promise<void> {
    await this.prisma.session.create({
      data: {
        id: session.id,
        userId: session.userId,
        expiresAt: session.expiresAt,
        refreshTokens: { create: { tokenHash: session.tokenHash } },
      },
    });
  }

  rotate(tokenHash: string, nextHash: string, now: Date, revocation: RevocationEvents): Promise<Rotation> {
    return this.prisma.$transaction(async (tx) => {
      const found = await tx.refreshToken.findUnique({
        where: { tokenHash },
        select: { sessionId: true, session: { select: { userId: true, revokedAt: true, expiresAt: true } } },
      });
      if (!found || found.session.revokedAt || found.session.expiresAt <= now) return { kind: 'invalid' };
      // One winner per token, even for two refreshes at the same instant: the second finds it used.
      const { count } = await tx.refreshToken.updateMany({ where: { tokenHash, usedAt: null }, data: { usedAt: now } });
      if (count === 0) {
        await revokeSessions(tx, { id: found.sessionId }, revocation);
        return { kind: 'reused', sessionId: found.sessionId };
      }
      await tx.refreshToken.create({ data: { tokenHash: nextHash, sessionId: found.sessionId } });
      return {
        kind: 'rotated',
        userId: found.session.userId,
        sessionId: found.sessionId,
        sessionExpiresAt: found.session.expiresAt,
      };
    });
  }

  revoke(
    match: { sessionId: string } | { userId: string; exceptSessionId?: string },
    revocation: RevocationEvents,
  ): Promise<string[]> {
    const where: Prisma.SessionWhereInput =
      'sessionId' in match
        ? { id: match.sessionId }
        : { userId: match.userId, ...(match.exceptSessionId ? { id: { not: match.exceptSessionId } } : {}) };
    return this.prisma.$transaction((tx) => revokeSessions(tx, where, revocation));
  }

  async changePassword(
    userId: string,
    passwordHash: string,
    keepSessionId: string | undefined,
    revocation: RevocationEvents,
  ): Promise<void> {
    await this.prisma.$transaction(async (tx) => {
      await tx.user.update({ where: { id: userId }, data: { passwordHash }, select: { id: true } });
      await revokeSessions(tx, { userId, ...(keepSessionId ? { id: { not: keepSessionId } } : {}) }, revocation);
    });
  }
}

/** Revokes the live sessions that match and writes a session.revoked event for each to the outbox. */
async function revokeSessions(
  tx: Transaction,
  where: Prisma.SessionWhereInput,
  revocation: RevocationEvents,
): Promise<string[]> {
  const live = await tx.session.findMany({
    where: { ...where, revokedAt: null, expiresAt: { gt: new Date() } },
    select: { id: true, userId: true },
  });
  if (live.length === 0) return [];
  await tx.session.updateMany({
    where: { id: { in: live.map((session) => session.id) }, revokedAt: null },
    data: { revokedAt: new Date(), revokedReason: revocation.reason },
  });
  await writeOutbox(
    tx,
    live.map((session) => revocation.event(session.id, session.userId)),
  );
  return live.map((session) => session.id);
}
