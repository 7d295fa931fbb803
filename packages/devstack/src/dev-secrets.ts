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
}

/**
 * Secrets for the development stack: random, made on first start and kept beside the embedded data,
 * so encrypted personal data stays readable and sessions survive a restart. Production takes them
 * from the environment (Kubernetes Secrets); this file is only ever used by the dev start command.
 */
export function loadOrCreateDevSecrets(path: string): DevSecrets {
  if (existsSync(path)) {
    const kept = JSON.parse(readFileSync(path, 'utf8')) as Partial<DevSecrets> & { JWT_SECRET?: string };
    if (kept.USERS_SIGNING_KEYS && kept.USERS_SIGNING_ACTIVE_KEY_ID) return kept as DevSecrets;
    // A file from before asymmetric tokens: the key pair is added, the other secrets kept.
    const { JWT_SECRET: _replaced, ...rest } = kept;
    return write(path, { ...(rest as DevSecrets), ...newSigningKey() });
  }
  return write(path, {
    INTERNAL_TOKEN_SECRET: randomBytes(32).toString('base64url'),
    ...newSigningKey(),
    USERS_ENCRYPTION_KEYS: `dev1:${randomBytes(32).toString('base64')}`,
    USERS_ENCRYPTION_ACTIVE_KEY_ID: 'dev1',
  });
}

/** A P-256 key pair for access tokens, named by the day it was made. */
function newSigningKey(): Pick<DevSecrets, 'USERS_SIGNING_KEYS' | 'USERS_SIGNING_ACTIVE_KEY_ID'> {
  const kid = `dev-${new Date().toISOString().slice(0, 10)}`;
  return { USERS_SIGNING_KEYS: JSON.stringify([generateSigningJwk(kid)]), USERS_SIGNING_ACTIVE_KEY_ID: kid };
}

function write(path: string, secrets: DevSecrets): DevSecrets {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return secrets;
}
