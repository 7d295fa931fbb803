import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';

// The browser tests drive a Chromium that npm installs (@sparticuz/chromium: a headless-shell build
// with no system dependencies, brotli-packed inside the package), or the browser CHROMIUM_PATH names.

const PACKAGE = '@sparticuz/chromium';
const INSTALL = 'npx -y pnpm@10.34.8 install';

/** This machine has no network: these keep Chromium from trying to reach one. */
const OFFLINE_FLAGS = [
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A headless Chromium: CHROMIUM_PATH's when set, else the one @sparticuz/chromium ships. */
export async function launchChromium(): Promise<Browser> {
  const systemBrowser = process.env.CHROMIUM_PATH;
  if (systemBrowser) {
    if (!existsSync(systemBrowser)) throw new Error(`CHROMIUM_PATH=${systemBrowser} does not exist`);
    return chromium.launch({
      executablePath: systemBrowser,
      args: ['--headless', '--no-sandbox', '--disable-gpu', ...OFFLINE_FLAGS],
    });
  }
  const entry = packageEntry();
  const executablePath = await unpackedChromium(entry);
  const { default: packaged } = (await import(pathToFileURL(entry).href)) as typeof import('@sparticuz/chromium');
  // Its own flags (headless shell, no sandbox, no zygote, software GL), less --single-process: that
  // one is for AWS Lambda, and with it the browser dies when a second browser context opens (each
  // newPage opens one).
  const args = packaged.args.filter((flag) => flag !== '--single-process');
  return chromium.launch({ executablePath, args: [...args, ...OFFLINE_FLAGS] });
}

/** The package's Chromium binary, unpacked on first use into `parentDir` (see unpackedChromium). */
export function packagedChromium(parentDir = tmpdir()): Promise<string> {
  return unpackedChromium(packageEntry(), parentDir);
}

function packageEntry(): string {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(
      `${PACKAGE} ships Chromium for linux-x64 only, and this is ${process.platform}-${process.arch}: ` +
        'set CHROMIUM_PATH to a Chromium or Chrome binary',
    );
  }
  try {
    return createRequire(import.meta.url).resolve(PACKAGE);
  } catch {
    throw new Error(`${PACKAGE} (the browser of the browser tests) is not installed: run ${INSTALL}`);
  }
}

/**
 * The package's Chromium, unpacked once per package version into <parentDir>/food-e2e-chromium-<version>.
 * The package unpacks into the temporary directory and takes any `chromium` already there as complete,
 * so two test files unpacking at once could run a half-written one (and a /tmp/chromium of another
 * version would be used as it is). So each unpacks in a process of its own whose TMPDIR is a fresh
 * folder, then renames that folder into place: rename is atomic, and the loser of a race finds the
 * winner's complete folder.
 */
async function unpackedChromium(entry: string, parentDir = tmpdir()): Promise<string> {
  const { version } = JSON.parse(readFileSync(join(dirname(entry), '..', 'package.json'), 'utf8')) as {
    version: string;
  };
  const dir = join(parentDir, `food-e2e-chromium-${version}`);
  const binary = join(dir, 'chromium');
  if (existsSync(binary)) return binary;
  const staging = mkdtempSync(`${dir}.partial-`);
  try {
    const unpacked = await unpackInto(staging, entry);
    if (unpacked !== join(staging, 'chromium')) throw new Error(`${PACKAGE} unpacked to ${unpacked}, not ${staging}`);
    try {
      renameSync(staging, dir);
    } catch (error) {
      if (!existsSync(binary)) throw error;
    }
    return binary;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

function unpackInto(tmp: string, entry: string): Promise<string> {
  const script = `const { default: c } = await import(${JSON.stringify(pathToFileURL(entry).href)}); console.log(await c.executablePath());`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, TMPDIR: tmp },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(stdout.trim()) : reject(new Error(`unpacking ${PACKAGE} failed (${code}): ${stderr}`)),
    );
  });
}
