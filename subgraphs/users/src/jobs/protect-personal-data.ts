import type { BlindIndex, JobHandler, Logger, PersonalDataCipher } from '@food/platform';
import { sweepUsersPersonalData } from '../data/personal-data-sweep.js';
import type { UsersPrisma } from '../data/prisma.js';

/**
 * Job `protect-personal-data` (no payload): moves legacy plaintext emails into their encrypted column
 * and blind index, and re-encrypts every value sealed under another key than the active one
 * (USERS_ENCRYPTION_ACTIVE_KEY_ID), in batches. Run by the users worker once at its start (a changed
 * active key means a restart) and then every PROTECT_PERSONAL_DATA_EVERY_MS, for rows an older
 * replica wrote during a roll-out. Idempotent and safe on several workers at once (see the sweep).
 */
export const PROTECT_PERSONAL_DATA = 'protect-personal-data';
export const PROTECT_PERSONAL_DATA_EVERY_MS = 15 * 60_000;
const BATCH_SIZE = 500;

export function protectPersonalData(deps: {
  prisma: UsersPrisma;
  cipher: PersonalDataCipher;
  emailIndex: BlindIndex;
  logger: Logger;
  batchSize?: number;
}): JobHandler {
  return async () => {
    const result = await sweepUsersPersonalData(deps.prisma, deps, {
      batchSize: deps.batchSize ?? BATCH_SIZE,
      logger: deps.logger,
    });
    if (result.moved + result.resealed + result.conflicts > 0) {
      deps.logger.info({ ...result, activeKeyId: deps.cipher.activeKeyId }, 'personal data protected');
    }
  };
}
