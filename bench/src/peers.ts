import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { peersDir } from './config.js';

const STAMP = `${peersDir}node_modules/.bench-lock-hash`;

/**
 * The peers (Hive Gateway, stock Apollo) and autocannon live in bench/peers, an npm project outside the
 * workspace: Hive alone is ~500 MB, which CI and `pnpm install` must never pay for. Installed on first
 * use, again only when its package-lock.json changes.
 */
export async function ensurePeers(log: (line: string) => void): Promise<void> {
  const lockHash = createHash('sha256')
    .update(readFileSync(`${peersDir}package-lock.json`))
    .digest('hex');
  if (existsSync(STAMP) && readFileSync(STAMP, 'utf8') === lockHash) return;
  log(
    'installing bench/peers (npm ci: Hive Gateway, stock Apollo, autocannon, loadtest; first run only, about a minute)',
  );
  await new Promise<void>((resolve, reject) => {
    // No install scripts: nothing the peers need builds or downloads anything at install time.
    // pnpm's npm_config_* settings mean nothing to npm (it would warn about each).
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)));
    const args = ['ci', '--prefix', peersDir, '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'];
    const child = spawn('npm', args, { stdio: ['ignore', 'inherit', 'inherit'], env });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`npm ci in bench/peers failed (${code})`))));
  });
  writeFileSync(STAMP, lockHash);
}

const peerRequire = () => createRequire(`${peersDir}package.json`);

export function peerVersion(name: string): string {
  try {
    const manifest = readFileSync(peerRequire().resolve(`${name}/package.json`), 'utf8');
    return (JSON.parse(manifest) as { version: string }).version;
  } catch {
    // Some packages do not export their package.json; read it from node_modules.
    try {
      return (JSON.parse(readFileSync(`${peersDir}node_modules/${name}/package.json`, 'utf8')) as { version: string })
        .version;
    } catch {
      return 'not installed';
    }
  }
}

export const hiveBin = () => `${peersDir}node_modules/@graphql-hive/gateway/dist/bin.js`;
export const autocannonPath = () => peerRequire().resolve('autocannon');
export const loadtestPath = () => peerRequire().resolve('loadtest');
