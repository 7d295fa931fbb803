import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

export const helmDir = fileURLToPath(new URL('../', import.meta.url));
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const chartDir = join(helmDir, 'food-supergraph');

const scratch = mkdtempSync(join(tmpdir(), 'food-helm-checks-'));
let binary: string | undefined;

/** Removes the renderer and the values files written for this test file. */
export function removeScratch(): void {
  rmSync(scratch, { recursive: true, force: true });
}

/** Builds the Go renderer (helm/render) into a temporary directory, once per test file. */
export function buildRenderer(): string {
  if (binary) return binary;
  const out = join(scratch, 'render');
  const result = spawnSync('sh', [join(helmDir, 'render', 'build.sh'), out], { encoding: 'utf8' });
  if (result.error || result.status !== 0) {
    throw new Error(
      `could not build the chart renderer (helm/render/build.sh): ${result.stderr || result.error?.message}\n` +
        'It needs Go and sprig from Debian: apt-get install -y golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v3-dev',
    );
  }
  binary = out;
  return out;
}

export interface Rendered {
  status: number | null;
  stdout: string;
  stderr: string;
}

let files = 0;
/** A values object as a file for -f. */
export function valuesFile(values: unknown): string {
  const file = join(scratch, `values-${++files}.yaml`);
  writeFileSync(file, stringify(values));
  return file;
}

/** `helm template`-like rendering: release "food" in namespace "food" unless args say otherwise. */
export function render(chart: string, args: string[] = []): Rendered {
  const result = spawnSync(buildRenderer(), ['--name', 'food', '--namespace', 'food', ...args, chart], {
    encoding: 'utf8',
  });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}
