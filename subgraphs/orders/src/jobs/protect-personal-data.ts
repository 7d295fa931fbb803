import type { JobHandler, Logger, PersonalDataCipher } from '@food/platform';
import { sweepOrdersPersonalData } from '../data/personal-data-sweep.js';
import type { OrdersPrisma } from '../data/prisma.js';

/**
 * Job `protect-personal-data` (no payload): seals the plaintext delivery address of orders from
 * before addresses were encrypted, and re-encrypts addresses sealed under another key than the active
 * one (ORDERS_ENCRYPTION_ACTIVE_KEY_ID), in batches. Run by the orders worker once at its start (a
 * changed active key means a restart) and then every PROTECT_PERSONAL_DATA_EVERY_MS, for orders an
 * older replica wrote during a roll-out. Idempotent and safe on several workers at once (see the sweep).
 */
export const PROTECT_PERSONAL_DATA = 'protect-personal-data';
export const PROTECT_PERSONAL_DATA_EVERY_MS = 15 * 60_000;
const BATCH_SIZE = 1_000;

export function protectPersonalData(deps: {
  prisma: OrdersPrisma;
  cipher: PersonalDataCipher;
  logger: Logger;
  batchSize?: number;
}): JobHandler {
  return async () => {
    const result = await sweepOrdersPersonalData(deps.prisma, deps.cipher, { batchSize: deps.batchSize ?? BATCH_SIZE });
    if (result.moved + result.resealed > 0) {
      deps.logger.info({ ...result, activeKeyId: deps.cipher.activeKeyId }, 'personal data protected');
    }
  };
}
