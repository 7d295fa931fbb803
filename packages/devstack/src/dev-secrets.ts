import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { generateSigningJwk } from '@food/platform';

export interface DevSecrets {
  INTERNAL_TOKEN_SECRET: string;
  /** The users service's access-token signing keys (private JWKs); the gateway gets only the public JWKS. */
  USERS_SIGNING_KEYS: string;
  USERS_SIGNING_ACTIVE_KEY_ID: string;
  USERS_ENCRYPTION_KEYS: string;
  USERS_ENCRYPTION_ACTIVE_KEY_ID: string;
  USERS_BLIND_INDEX_KEY: string;
  ORDERS_ENCRYPTION_KEYS: string;
  ORDERS_ENCRYPTION_ACTIVE_KEY_ID: string;
}

const makers: { [K in Exclude<keyof DevSecrets, SigningKeyNames>]: () => string } = {
  INTERNAL_TOKEN_SECRET: () => randomBytes(32).toString('base64url'),
  USERS_ENCRYPTION_KEYS: () => `dev1:${randomBytes(32).toString('base64')}`,
  USERS_ENCRYPTION_ACTIVE_KEY_ID: () => 'dev1',
  USERS_BLIND_INDEX_KEY: () => randomBytes(32).toString('base64'),
  ORDERS_ENCRYPTION_KEYS: () => `dev1:${randomBytes(32).toString('base64')}`,
  ORDERS_ENCRYPTION_ACTIVE_KEY_ID: () => 'dev1',
};
type SigningKeyNames = 'USERS_SIGNING_KEYS' | 'USERS_SIGNING_ACTIVE_KEY_ID';

/**
 * Secrets for the development stack: random, made on first start and kept beside the embedded data,
 * so encrypted personal data stays readable and sessions survive a restart. A file from an older
 * release gets the secrets it lacks added (its own are kept; a JWT_SECRET from before asymmetric
 * tokens is dropped). Production takes them from the environment (Kubernetes Secrets); this file is
 * only ever used by the dev start command.
 */
export function loadOrCreateDevSecrets(path: string): DevSecrets {
  const { JWT_SECRET: replaced, ...kept } = existsSync(path)
    ? (JSON.parse(readFileSync(path, 'utf8')) as Partial<DevSecrets> & { JWT_SECRET?: string })
    : ({} as Partial<DevSecrets> & { JWT_SECRET?: string });
  const signing =
    kept.USERS_SIGNING_KEYS && kept.USERS_SIGNING_ACTIVE_KEY_ID
      ? { USERS_SIGNING_KEYS: kept.USERS_SIGNING_KEYS, USERS_SIGNING_ACTIVE_KEY_ID: kept.USERS_SIGNING_ACTIVE_KEY_ID }
      : newSigningKey();
  const secrets = {
    ...Object.fromEntries(
      Object.entries(makers).map(([name, make]) => [name, kept[name as keyof DevSecrets] ?? make()]),
    ),
    ...signing,
  } as DevSecrets;
  const missing = (Object.keys(secrets) as (keyof DevSecrets)[]).some((name) => kept[name] !== secrets[name]);
  if (missing || replaced !== undefined) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, JSON.stringify({ ...kept, ...secrets }, null, 2), { mode: 0o600 });
  }
  return secrets;
}

/** A P-256 key pair for access tokens, named by the day it was made. */
function newSigningKey(): Pick<DevSecrets, SigningKeyNames> {
  const kid = `dev-${new Date().toISOString().slice(0, 10)}`;
  return { USERS_SIGNING_KEYS: JSON.stringify([generateSigningJwk(kid)]), USERS_SIGNING_ACTIVE_KEY_ID: kid };
}
