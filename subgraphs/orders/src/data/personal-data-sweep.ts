import type { PersonalDataCipher } from '@food/platform';
import type { OrdersPrisma } from './prisma.js';

export interface OrdersSweepResult {
  /** Legacy orders whose plaintext address was sealed and emptied. */
  moved: number;
  /** Orders whose address was sealed under another key than the active one, sealed again under it. */
  resealed: number;
}

interface SweepRow {
  id: string;
  delivery_address: string | null;
  delivery_address_encrypted: string | null;
}

/**
 * Moves every legacy order's plaintext delivery address into its encrypted column, and re-encrypts
 * every address sealed under another key than the active one, `batchSize` orders at a time. The rows
 * are found by the key id column's index (NULL: legacy, else another key: two range scans), so a
 * run with nothing to do costs one index probe per partition, not a scan of the orders.
 * Each batch is one UPDATE with a compare-and-set on the values read: two workers at once, or an
 * order written meanwhile, never lose a value, and running it again changes nothing.
 */
export async function sweepOrdersPersonalData(
  prisma: OrdersPrisma,
  cipher: PersonalDataCipher,
  options: { batchSize: number },
): Promise<OrdersSweepResult> {
  const active = cipher.activeKeyId;
  const result: OrdersSweepResult = { moved: 0, resealed: 0 };
  for (;;) {
    const rows = await prisma.$queryRaw<SweepRow[]>`
      SELECT id::text, delivery_address, delivery_address_encrypted
        FROM orders
       WHERE delivery_address_key_id IS NULL
          OR delivery_address_key_id < ${active}
          OR delivery_address_key_id > ${active}
       LIMIT ${options.batchSize}`;
    if (rows.length === 0) return result;
    const sealed = rows.map((row) =>
      row.delivery_address_encrypted === null
        ? cipher.encrypt(row.delivery_address!)
        : cipher.reseal(row.delivery_address_encrypted),
    );
    const changed = await prisma.$queryRaw<{ legacy: boolean }[]>`
      UPDATE orders o
         SET delivery_address = NULL,
             delivery_address_encrypted = v.sealed,
             delivery_address_key_id = ${active}
        FROM unnest(${rows.map((row) => row.id)}::uuid[], ${sealed}::text[],
                    ${rows.map((row) => row.delivery_address)}::text[],
                    ${rows.map((row) => row.delivery_address_encrypted)}::text[]) AS v(id, sealed, plain, was)
       WHERE o.id = v.id
         AND o.delivery_address IS NOT DISTINCT FROM v.plain
         AND o.delivery_address_encrypted IS NOT DISTINCT FROM v.was
      RETURNING v.plain IS NOT NULL AS legacy`;
    for (const row of changed) {
      if (row.legacy) result.moved++;
      else result.resealed++;
    }
    // Fewer than asked: none left. (A batch another worker changed first is read again, without them.)
    if (rows.length < options.batchSize) return result;
  }
}
