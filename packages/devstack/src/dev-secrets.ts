import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface DevSecrets {
  INTERNAL_TOKEN_SECRET: string;
  JWT_SECRET: string;
  USERS_ENCRYPTION_KEYS: string;
  USERS_ENCRYPTION_ACTIVE_KEY_ID: string;
  USERS_BLIND_INDEX_KEY: string;
  ORDERS_ENCRYPTION_KEYS: string;
  ORDERS_ENCRYPTION_ACTIVE_KEY_ID: string;
}

const makers: { [K in keyof DevSecrets]: () => string } = {
  INTERNAL_TOKEN_SECRET: () => randomBytes(32).toString('base64url'),
  JWT_SECRET: () => randomBytes(32).toString('base64url'),
  USERS_ENCRYPTION_KEYS: () => `dev1:${randomBytes(32).toString('base64')}`,
  USERS_ENCRYPTION_ACTIVE_KEY_ID: () => 'dev1',
  USERS_BLIND_INDEX_KEY: () => randomBytes(32).toString('base64'),
  ORDERS_ENCRYPTION_KEYS: () => `dev1:${randomBytes(32).toString('base64')}`,
  ORDERS_ENCRYPTION_ACTIVE_KEY_ID: () => 'dev1',
};

/**
 * Secrets for the development stack: random, made on first start and kept beside the embedded data,
 * so encrypted personal data stays readable and sessions survive a restart. A file from an older
 * release gets the secrets it lacks added (its own are kept). Production takes them from the
 * environment (Kubernetes Secrets); this file is only ever used by the dev start command.
 */
export function loadOrCreateDevSecrets(path: string): DevSecrets {
  const kept = existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Partial<DevSecrets>) : {};
  const secrets = Object.fromEntries(
    Object.entries(makers).map(([name, make]) => [name, kept[name as keyof DevSecrets] ?? make()]),
  ) as unknown as DevSecrets;
  if (Object.keys(makers).some((name) => kept[name as keyof DevSecrets] === undefined)) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, JSON.stringify({ ...kept, ...secrets }, null, 2), { mode: 0o600 });
  }
  return secrets;
}
