import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { helmBinary } from './helm-binary.js';
import { MODELLED_KUBE_VERSION } from './kubernetes-schemas.js';

export const helmDir = fileURLToPath(new URL('../', import.meta.url));
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const chartDir = join(helmDir, 'food-supergraph');
export const fixturesDir = join(helmDir, 'checks', 'fixtures');

/** The release the checks install, as the chart's README does: `helm install food ... --namespace food`. */
export const RELEASE = 'food';
export const NAMESPACE = 'food';

const scratch = mkdtempSync(join(tmpdir(), 'food-helm-checks-'));

/** Removes the values files written for this test file. */
export function removeScratch(): void {
  rmSync(scratch, { recursive: true, force: true });
}

let files = 0;
/** A values object as a file for -f. */
export function valuesFile(values: unknown): string {
  const file = join(scratch, `values-${++files}.yaml`);
  writeFileSync(file, stringify(values));
  return file;
}

export interface HelmResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs helm (see helm-binary.ts for which one). */
export function helm(args: string[]): HelmResult {
  const result = spawnSync(helmBinary(), args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * `helm template` of release "food" in namespace "food" (a later `--namespace` in `args` wins), for
 * the Kubernetes version whose API the manifests are validated against. `args` are helm's own flags:
 * `-f`, `--set`, `--set-string`, `--is-upgrade`, ...
 */
export function render(chart: string, args: string[] = []): HelmResult {
  return helm(['template', RELEASE, chart, '--namespace', NAMESPACE, '--kube-version', MODELLED_KUBE_VERSION, ...args]);
}

/** `helm lint --strict` (warnings fail too), with the same release settings as `render`. */
export function lint(chart: string, args: string[] = []): HelmResult {
  return helm(['lint', '--strict', chart, '--namespace', NAMESPACE, '--kube-version', MODELLED_KUBE_VERSION, ...args]);
}
