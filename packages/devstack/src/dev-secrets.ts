import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface DevSecrets {
  INTERNAL_TOKEN_SECRET: string;
  JWT_SECRET: string;
  USERS_ENCRYPTION_KEYS: string;
  USERS_ENCRYPTION_ACTIVE_KEY_ID: string;
}

/**
 * Secrets for the development stack: random, made on first start and kept beside the embedded data,
 * so encrypted personal data stays readable and sessions survive a restart. Production takes them
 * from the environment (Kubernetes Secrets); this file is only ever used by the dev start command.
 */
export function loadOrCreateDevSecrets(path: string): DevSecrets {
  if (existsSync(path)) return JSON.parse(readFileSync(path, 'utf8')) as DevSecrets;
  const secrets: DevSecrets = {
    INTERNAL_TOKEN_SECRET: randomBytes(32).toString('base64url'),
    JWT_SECRET: randomBytes(32).toString('base64url'),
    USERS_ENCRYPTION_KEYS: `dev1:${randomBytes(32).toString('base64')}`,
    USERS_ENCRYPTION_ACTIVE_KEY_ID: 'dev1',
  };
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return secrets;
}
