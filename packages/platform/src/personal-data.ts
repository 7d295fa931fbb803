import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { z } from 'zod';

/**
 * Personal data at rest, for every service that stores some (users: email, phone, address; orders:
 * the delivery address copied onto each order). Each service has its own keys.
 */

/**
 * Encrypts personal data with AES-256-GCM. Each value records the id of the key that sealed it
 * ("keyId:iv:tag:ciphertext", base64), so the active key can rotate while older rows stay readable
 * under the keys kept for them, and a background job can find and re-encrypt those rows.
 */
export class PersonalDataCipher {
  constructor(
    private readonly keys: ReadonlyMap<string, Buffer>,
    /** The key new values are sealed with. */
    readonly activeKeyId: string,
  ) {
    if (!keys.has(activeKeyId)) throw new Error(`no encryption key with id ${activeKeyId}`);
  }

  encrypt(plaintext: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.activeKeyId)!, iv);
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [
      this.activeKeyId,
      iv.toString('base64'),
      cipher.getAuthTag().toString('base64'),
      ciphertext.toString('base64'),
    ].join(':');
  }

  decrypt(sealed: string): string {
    const [keyId, iv, tag, ciphertext] = sealed.split(':');
    const key = keyId ? this.keys.get(keyId) : undefined;
    if (!key || !iv || !tag || ciphertext === undefined)
      throw new Error(`cannot decrypt: unknown key id ${keyId ?? ''}`);
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'));
    decipher.setAuthTag(Buffer.from(tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64')), decipher.final()]).toString('utf8');
  }

  /** True when the value was sealed with another key than the active one and should be re-encrypted. */
  needsRotation(sealed: string): boolean {
    return keyIdOf(sealed) !== this.activeKeyId;
  }

  /** The value sealed again under the active key (the same value when it already is). */
  reseal(sealed: string): string {
    return this.needsRotation(sealed) ? this.encrypt(this.decrypt(sealed)) : sealed;
  }
}

/** The id of the key a sealed value was encrypted with. */
export const keyIdOf = (sealed: string): string => sealed.slice(0, Math.max(0, sealed.indexOf(':')));

/**
 * A keyed blind index: HMAC-SHA256 (hex) of a value already normalised by its owner (e.g. an email
 * trimmed and lower-cased), so a column can be looked up by equality and made unique without storing
 * the value. The key is separate from the encryption keys, and does not rotate: rotating it would
 * mean recomputing every index from the decrypted values.
 */
export class BlindIndex {
  constructor(private readonly key: Buffer) {
    if (key.length < 32) throw new Error('a blind index key must be at least 32 bytes');
  }

  of(normalised: string): string {
    return createHmac('sha256', this.key).update(normalised, 'utf8').digest('hex');
  }
}

const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;

/** `keyId:base64key` pairs, comma-separated, each key 32 bytes: a service's `<SERVICE>_ENCRYPTION_KEYS`. */
export const encryptionKeys = z
  .string({ error: 'is required: comma-separated keyId:base64 pairs of 32-byte keys' })
  .transform((value, ctx) => {
    const keys = new Map<string, Buffer>();
    for (const pair of value.split(',')) {
      const [keyId, encoded] = pair.trim().split(':');
      const key = Buffer.from(encoded ?? '', 'base64');
      if (!keyId || !KEY_ID.test(keyId) || key.length !== 32) {
        ctx.addIssue({ code: 'custom', message: 'each entry must be keyId:base64 of exactly 32 bytes' });
        return z.NEVER;
      }
      keys.set(keyId, key);
    }
    return keys;
  });

/** `<SERVICE>_ENCRYPTION_ACTIVE_KEY_ID`: the key id new values are sealed with. */
export const encryptionActiveKeyId = z
  .string({ error: 'is required: the id of the key to encrypt with' })
  .regex(KEY_ID, 'letters, digits, "_" and "-" only, at most 32');

/** A blind index key: base64 of at least 32 bytes. */
export const blindIndexKey = z
  .string({ error: 'is required: base64 of a key of at least 32 bytes' })
  .transform((value, ctx) => {
    const key = Buffer.from(value, 'base64');
    if (key.length < 32) {
      ctx.addIssue({ code: 'custom', message: 'must be base64 of at least 32 bytes' });
      return z.NEVER;
    }
    return key;
  });

/**
 * A config refinement: the active key id must name one of the keys, e.g.
 * `schema.superRefine(activeKeyIn('USERS_ENCRYPTION_KEYS', 'USERS_ENCRYPTION_ACTIVE_KEY_ID'))`.
 */
export const activeKeyIn =
  <K extends string, A extends string>(keysField: K, activeField: A) =>
  (config: Record<K, ReadonlyMap<string, Buffer>> & Record<A, string>, ctx: z.RefinementCtx) => {
    if (!config[keysField].has(config[activeField])) {
      ctx.addIssue({ code: 'custom', message: `must name a key in ${keysField}`, path: [activeField] });
    }
  };
