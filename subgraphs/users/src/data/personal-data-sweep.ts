import type { BlindIndex, Logger, PersonalDataCipher } from '@food/platform';
import { normaliseEmail } from '../domain/users.js';
import type { UsersPrisma } from './prisma.js';

export interface UsersSweepResult {
  /** Legacy rows whose plaintext email was sealed, indexed and emptied. */
  moved: number;
  /** Rows with a value sealed under another key than the active one, sealed again under it. */
  resealed: number;
  /** Legacy rows left as they are: their email's blind index is another account's (a person must look). */
  conflicts: number;
}

interface SweepRow {
  id: string;
  email: string | null;
  email_encrypted: string | null;
  phone_encrypted: string | null;
  delivery_address_encrypted: string | null;
}

const FIRST_ID = '00000000-0000-0000-0000-000000000000';

/**
 * One pass over the users table, in batches of `batchSize` in id order: each legacy row (plaintext
 * email) gets its email sealed and its blind index, and loses the plaintext; each value sealed under an
 * older key is sealed again under the active one. Each row is written with a compare-and-set on the
 * values read, so several workers (or a profile update meanwhile) never overwrite each other: the
 * loser's write matches nothing, and the row already holds active-key values. Running it again
 * changes nothing.
 */
export async function sweepUsersPersonalData(
  prisma: UsersPrisma,
  protection: { cipher: PersonalDataCipher; emailIndex: BlindIndex },
  options: { batchSize: number; logger: Logger },
): Promise<UsersSweepResult> {
  const { cipher, emailIndex } = protection;
  const active = cipher.activeKeyId;
  const result: UsersSweepResult = { moved: 0, resealed: 0, conflicts: 0 };
  let after = FIRST_ID;
  for (;;) {
    const rows = await prisma.$queryRaw<SweepRow[]>`
      SELECT id::text, email, email_encrypted, phone_encrypted, delivery_address_encrypted
        FROM users
       WHERE id > ${after}::uuid
         AND (email IS NOT NULL
              OR split_part(email_encrypted, ':', 1) <> ${active}
              OR split_part(phone_encrypted, ':', 1) <> ${active}
              OR split_part(delivery_address_encrypted, ':', 1) <> ${active})
       ORDER BY id
       LIMIT ${options.batchSize}`;
    for (const row of rows) {
      const legacy = row.email === null ? null : normaliseEmail(row.email);
      const sealed = {
        email: legacy === null ? cipher.reseal(row.email_encrypted!) : cipher.encrypt(legacy),
        phone: row.phone_encrypted && cipher.reseal(row.phone_encrypted),
        address: row.delivery_address_encrypted && cipher.reseal(row.delivery_address_encrypted),
      };
      try {
        const changed = await prisma.$executeRaw`
          UPDATE users
             SET email = NULL,
                 email_encrypted = ${sealed.email},
                 email_blind_index = COALESCE(${legacy === null ? null : emailIndex.of(legacy)}::text, email_blind_index),
                 phone_encrypted = ${sealed.phone}::text,
                 delivery_address_encrypted = ${sealed.address}::text
           WHERE id = ${row.id}::uuid
             AND email IS NOT DISTINCT FROM ${row.email}::text
             AND email_encrypted IS NOT DISTINCT FROM ${row.email_encrypted}::text
             AND phone_encrypted IS NOT DISTINCT FROM ${row.phone_encrypted}::text
             AND delivery_address_encrypted IS NOT DISTINCT FROM ${row.delivery_address_encrypted}::text`;
        if (changed === 1 && legacy !== null) result.moved++;
        else if (changed === 1) result.resealed++;
      } catch (error) {
        if (legacy === null || !isUniqueViolation(error)) throw error;
        // Two accounts with one email: one written before this release, one after it (by an older
        // replica during the roll-out). Left as it is, and reported each run until someone merges them.
        result.conflicts++;
        options.logger.error({ userId: row.id }, 'a legacy account shares its email with another: not moved');
      }
    }
    if (rows.length < options.batchSize) return result;
    after = rows.at(-1)!.id;
  }
}

function isUniqueViolation(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  return (error as { code?: string }).code === 'P2002' || /23505|unique constraint/i.test(message);
}
