import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseServices } from '@food/prisma';
import { createTestDatabase } from '@food/prisma/testing';

type TestDatabase = Awaited<ReturnType<typeof createTestDatabase>>;

const packageDir = fileURLToPath(new URL('..', import.meta.url));

/** `pnpm start` as a user runs it (the same entry file), here with real databases and free ports. */
describe('the start command', () => {
  let databases: TestDatabase[] = [];
  let dataDir: string;

  beforeAll(async () => {
    databases = await Promise.all(databaseServices.map((service) => createTestDatabase(service)));
    dataDir = mkdtempSync(join(tmpdir(), 'devstack-'));
  });
  afterAll(async () => {
    await Promise.all(databases.map((database) => database.drop()));
    rmSync(dataDir, { recursive: true, force: true });
  });

  function start(): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
    const env: NodeJS.ProcessEnv = { ...process.env, DEV_DATA_DIR: `${dataDir}/`, NODE_ENV: 'development' };
    databaseServices.forEach((service, i) => (env[`${service.toUpperCase()}_DATABASE_URL`] = databases[i]!.url));
    for (const name of ['GATEWAY', 'USERS', 'MEALS', 'ORDERS', 'PAYMENTS']) env[`${name}_PORT`] = '0';
    // As on a fresh machine: no Redis configured, so events and jobs run on the in-process stand-ins.
    delete env.REDIS_URL;
    delete env.REDIS_CLUSTER_NODES;
    const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=source', 'src/main.ts'], {
      cwd: packageDir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    return { child, output: () => output, exited };
  }

  async function waitFor(output: () => string, text: string, exited: Promise<unknown>): Promise<void> {
    const deadline = Date.now() + 50_000;
    let done = false;
    void exited.then(() => (done = true));
    while (!output().includes(text)) {
      if (done) throw new Error(`start command exited early:\n${output()}`);
      if (Date.now() > deadline) throw new Error(`start command never printed "${text}":\n${output()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`serves the seeded menu through the gateway, then stops with exit code 0 on ${signal}`, async () => {
      const run = start();
      try {
        await waitFor(run.output, 'Ctrl-C stops everything', run.exited);
        const gatewayUrl = /Gateway:\s+(\S+)/.exec(run.output())?.[1];
        expect(gatewayUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/graphql$/);
        expect(run.output()).toContain('ada@example.com / ada-demo-password');
        expect(run.output()).toContain(
          'in-process stand-ins (no REDIS_URL or REDIS_CLUSTER_NODES set: run only this one process)',
        );

        const response = await fetch(gatewayUrl!, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ query: '{ meals(first: 2) { edges { node { name } } } }' }),
        });
        const body = (await response.json()) as { data: { meals: { edges: unknown[] } } };
        expect(body.data.meals.edges).toHaveLength(2);

        run.child.kill(signal);
        // Generous: a hang (a server or pool that never closes) is what this guards against.
        const stillRunning = new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error(`still running 30 s after ${signal}:\n${run.output()}`)), 30_000).unref(),
        );
        expect(await Promise.race([run.exited, stillRunning])).toBe(0);
        expect(run.output()).toContain('stopped');
        // Nothing is left listening where the gateway was.
        await expect(fetch(gatewayUrl!)).rejects.toThrow();
      } finally {
        run.child.kill('SIGKILL');
      }
    }, 90_000);
  }
});
