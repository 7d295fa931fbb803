import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { packagedChromium } from './browser.js';

describe("the browser tests' Chromium (@sparticuz/chromium)", () => {
  const parentDir = mkdtempSync(join(tmpdir(), 'food-e2e-browser-'));
  afterAll(() => rmSync(parentDir, { recursive: true, force: true }));

  it('is unpacked complete and runnable even when two test files unpack it at once', async () => {
    const [first, second] = await Promise.all([packagedChromium(parentDir), packagedChromium(parentDir)]);
    expect(second).toBe(first);
    expect(dirname(dirname(first))).toBe(parentDir);
    // The loser of the race removed its own copy: only the one folder is left.
    expect(readdirSync(parentDir)).toEqual([dirname(first).slice(parentDir.length + 1)]);
    const version = spawnSync(first, ['--version'], { encoding: 'utf8' });
    expect(version.stdout).toMatch(/^Chromium \d+\./);
    // Asked again, it is the unpacked one, not unpacked anew.
    expect(await packagedChromium(parentDir)).toBe(first);
  }, 120_000);
});
