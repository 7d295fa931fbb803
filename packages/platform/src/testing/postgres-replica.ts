import { execFile } from 'node:child_process';
import { appendFile, chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './redis-server.js';

const run = promisify(execFile);

/** The installed PostgreSQL server binaries (`pg_config --bindir`: not on PATH on Debian). */
async function binDir(): Promise<string> {
  const { stdout } = await run('pg_config', ['--bindir']);
  return stdout.trim();
}

/**
 * A primary and one streaming standby of our own, from the installed binaries (`initdb`,
 * `pg_basebackup -R`, `pg_ctl`), on free ports under a temporary directory that `stop()` removes.
 * The machine's own Postgres is never touched. The servers refuse to run as root, so as root they
 * run as the `postgres` OS user, which then owns the directory.
 */
export class PostgresReplicaPair {
  private constructor(
    private readonly bin: string,
    private readonly dir: string,
    readonly primaryPort: number,
    readonly replicaPort: number,
    private readonly uid: { uid: number; gid: number } | undefined,
  ) {}

  static async start(): Promise<PostgresReplicaPair> {
    const bin = await binDir();
    const dir = await mkdtemp(join(tmpdir(), 'pg-replica-test-'));
    let uid: { uid: number; gid: number } | undefined;
    if (process.getuid?.() === 0) {
      const [user, group] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
      uid = { uid: Number(user.stdout), gid: Number(group.stdout) };
      await chown(dir, uid.uid, uid.gid);
    }
    await chmod(dir, 0o700);
    const pair = new PostgresReplicaPair(bin, dir, await freePort(), await freePort(), uid);
    try {
      await pair.init();
    } catch (error) {
      await pair.stop();
      throw error;
    }
    return pair;
  }

  private get primaryDir() {
    return join(this.dir, 'primary');
  }

  private get replicaDir() {
    return join(this.dir, 'replica');
  }

  /** Runs one server binary, as `postgres` when we are root. */
  private async pg(tool: string, args: string[]): Promise<string> {
    const command = join(this.bin, tool);
    const { stdout } = this.uid
      ? await run('runuser', ['-u', 'postgres', '--', command, ...args], { cwd: this.dir })
      : await run(command, args, { cwd: this.dir });
    return stdout;
  }

  private async init(): Promise<void> {
    await this.pg('initdb', ['-D', this.primaryDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8']);
    await appendFile(
      join(this.primaryDir, 'postgresql.conf'),
      [
        `port = ${this.primaryPort}`,
        `listen_addresses = '127.0.0.1'`,
        `unix_socket_directories = '${this.dir}'`,
        'wal_level = replica',
        'max_wal_senders = 5',
        'hot_standby = on',
        'fsync = off',
        'synchronous_commit = on',
        'shared_buffers = 32MB',
        'max_connections = 60',
        '',
      ].join('\n'),
    );
    // initdb's trust configuration already admits local replication connections.
    await this.startPrimary();
    await this.pg('pg_basebackup', [
      '-h',
      '127.0.0.1',
      '-p',
      String(this.primaryPort),
      '-U',
      'postgres',
      '-D',
      this.replicaDir,
      '-R',
      '-X',
      'stream',
      '--no-sync',
    ]);
    await appendFile(join(this.replicaDir, 'postgresql.conf'), `port = ${this.replicaPort}\n`);
    await this.startReplica();
  }

  url(database: string, port = this.primaryPort): string {
    return `postgresql://postgres@127.0.0.1:${port}/${database}`;
  }

  primaryUrl(database = 'postgres'): string {
    return this.url(database, this.primaryPort);
  }

  replicaUrl(database = 'postgres'): string {
    return this.url(database, this.replicaPort);
  }

  startPrimary(): Promise<string> {
    return this.pg('pg_ctl', ['-D', this.primaryDir, '-l', join(this.dir, 'primary.log'), '-w', 'start']);
  }

  /** Stops the primary at once, as a crash would (`-m immediate`): clients see their connections drop. */
  stopPrimary(): Promise<string> {
    return this.pg('pg_ctl', ['-D', this.primaryDir, '-m', 'immediate', '-w', 'stop']);
  }

  startReplica(): Promise<string> {
    return this.pg('pg_ctl', ['-D', this.replicaDir, '-l', join(this.dir, 'replica.log'), '-w', 'start']);
  }

  /** Kills the standby (`-m immediate`: no shutdown checkpoint, connections cut). */
  killReplica(): Promise<string> {
    return this.pg('pg_ctl', ['-D', this.replicaDir, '-m', 'immediate', '-w', 'stop']);
  }

  /** One statement on one server. */
  async sql<T extends pg.QueryResultRow = Record<string, unknown>>(
    url: string,
    text: string,
    params: unknown[] = [],
  ): Promise<T[]> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      return (await client.query<T>(text, params)).rows;
    } finally {
      await client.end();
    }
  }

  /** Stops applying WAL on the standby: it keeps answering, with the data it had (`pg_wal_replay_pause()`). */
  async pauseReplay(): Promise<void> {
    await this.sql(this.replicaUrl(), 'SELECT pg_wal_replay_pause()');
  }

  async resumeReplay(): Promise<void> {
    await this.sql(this.replicaUrl(), 'SELECT pg_wal_replay_resume()');
  }

  /** Waits until the standby has replayed everything the primary has written so far. */
  async waitForReplay(timeoutMs = 15_000): Promise<void> {
    const [{ lsn }] = (await this.sql<{ lsn: string }>(
      this.primaryUrl(),
      'SELECT pg_current_wal_lsn()::text AS lsn',
    )) as [{ lsn: string }];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const [row] = await this.sql<{ done: boolean }>(
        this.replicaUrl(),
        'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done',
        [lsn],
      );
      if (row?.done) return;
      if (Date.now() > deadline) throw new Error(`the standby did not replay up to ${lsn} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Stops both servers and removes their directory. */
  async stop(): Promise<void> {
    for (const dir of [this.replicaDir, this.primaryDir]) {
      await this.pg('pg_ctl', ['-D', dir, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}
