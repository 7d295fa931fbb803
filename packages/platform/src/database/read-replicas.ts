import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { readReplicas } from '@prisma/extension-read-replicas';
import type { Logger } from '../logger.js';
import { replicaReadsAllowed } from '../read-consistency.js';
import { counter, sampledGauge } from '../telemetry/metrics.js';

/** What this module needs of a service's generated PrismaClient (structural: any service's fits). */
export interface ReplicableClient {
  $connect(): Promise<void>;
  $disconnect(): Promise<void>;
  $extends(extension: unknown): unknown;
}

/**
 * Every service's interactive transactions (`new PrismaClient({ transactionOptions })`). Prisma waits
 * 2 s by default for a pooled connection to start one, so a burst of writes larger than the pool (30
 * orders at once, seen in CI) failed fast while the pool was busy for well under a second; 5 s of
 * queueing plus the 5 s a transaction may run stays within the gateway's 10 s subgraph timeout. What
 * still cannot start is the retryable UPSTREAM_UNAVAILABLE (errors.ts), with nothing written.
 */
export const TRANSACTION_OPTIONS = { maxWait: 5_000, timeout: 5_000 } as const;

/** Pool settings given to each replica's driver adapter: a replica that hangs must fail a read, not stall it. */
export interface ReplicaPoolSettings {
  connectionTimeoutMillis: number;
}

export interface ReadReplicaSettings<C extends ReplicableClient> {
  /** The database's name in metrics and logs: the service that owns it (`orders`). */
  database: string;
  /** The primary, for the lag checks (the primary's current WAL position). */
  primaryUrl: string;
  /** `<SERVICE>_DATABASE_REPLICA_URLS`; none means `withReadReplicas` returns the primary as it is. */
  replicaUrls: readonly string[];
  /** A replica whose data is older than this is skipped (DATABASE_REPLICA_MAX_LAG_SECONDS). */
  maxLagSeconds: number;
  /** Builds a client on one replica, the same way the primary's is built. */
  connect: (url: string, pool: ReplicaPoolSettings) => C;
  logger?: Logger;
}

/**
 * The primary's client, extended so that reads may go to a streaming replica: Prisma's read-replicas
 * extension (`@prisma/extension-read-replicas` 0.4, the line for Prisma 6) decides what is a read (a
 * `find*`, `count`, `aggregate`, `groupBy` outside a transaction); writes, raw queries and every
 * `$transaction` stay on the primary. The extension picks among a fixed list at random and knows
 * nothing of health, so it is given one "replica", a router, which for each read picks:
 *
 * - the primary, unless the work in progress allows replica reads (a subgraph request whose token
 *   does not ask for the primary: see read-consistency.ts; workers always read the primary);
 * - else a replica that is up and whose data is at most `maxLagSeconds` old (ReplicaMonitor);
 * - else, none being so, the primary.
 *
 * A read that fails on a replica (killed between two checks) is asked again of the primary, and the
 * replica is skipped until a check finds it well: a replica never costs the caller an error.
 *
 * The client keeps its own type: the extension adds only `$primary()`/`$replica()`, unused here.
 */
export function withReadReplicas<C extends ReplicableClient>(primary: C, settings: ReadReplicaSettings<C>): C {
  if (settings.replicaUrls.length === 0) return primary;
  const pool = { connectionTimeoutMillis: Math.max(500, settings.maxLagSeconds * 1_000) };
  const monitor = new ReplicaMonitor(
    settings,
    settings.replicaUrls.map((url) => ({ url, client: settings.connect(url, pool) })),
  );
  monitor.start();
  const router = readRouter(primary, monitor);
  return primary.$extends(readReplicas({ replicas: [router] })) as C;
}

type Operation = (args: unknown) => Promise<unknown>;
type Delegates = Record<string, Record<string, Operation> | undefined>;

/** The one "replica" the extension sees: `router[model][operation](args)` runs on the client chosen now. */
function readRouter<C extends ReplicableClient>(primary: C, monitor: ReplicaMonitor<C>): never {
  const run = async (model: string, operation: string, args: unknown) => {
    const on = (client: C) => (client as unknown as Delegates)[model]![operation]!(args);
    const replica = replicaReadsAllowed() ? monitor.pick() : undefined;
    if (!replica) return on(primary);
    replicaReads.inc({ database: monitor.database, replica: replica.name });
    try {
      return await on(replica.client);
    } catch (error) {
      // If the primary fails too, the caller gets the primary's error: the replica was not the cause.
      const answer = await on(primary);
      monitor.markDown(replica, error);
      return answer;
    }
  };
  const client = {
    $connect: () => monitor.connect(),
    $disconnect: () => monitor.stop(),
  };
  return new Proxy(client, {
    get: (target, model) =>
      typeof model === 'string' && !(model in target)
        ? new Proxy({}, { get: (_, operation) => (args: unknown) => run(model, String(operation), args) })
        : Reflect.get(target, model),
  }) as never;
}

interface ReplicaState<C> {
  url: string;
  /** host:port/database, no credentials: the `replica` label. */
  name: string;
  client: C;
  pool: pg.Pool;
  up: boolean;
  /** The primary's state this replica has replayed, as of when (performance.now() ms); undefined: none seen. */
  freshAsOf: number | undefined;
}

const lagGauge = sampledGauge(
  'db_replica_lag_seconds',
  'How old the data a read replica serves is: now minus the last moment whose primary WAL position it has replayed.',
  ['database', 'replica'],
);
const replicaReads = counter('db_replica_reads_total', 'Reads sent to a read replica (failed ones included).', [
  'database',
  'replica',
]);
const upGauge = sampledGauge(
  'db_replica_up',
  'Whether a read replica answered its last lag check as a streaming standby (1) or not (0).',
  ['database', 'replica'],
);

/**
 * Checks each replica every quarter of the lag bound. Lag is measured by WAL position, not by
 * `now() - pg_last_xact_replay_timestamp()`: on an idle primary the last replayed transaction is
 * old although the replica has everything, and right after a write on an idle primary it is old
 * for a replica that is behind by milliseconds. Instead each check notes the primary's
 * `pg_current_wal_lsn()` with the time it was read, then asks each replica for
 * `pg_last_wal_replay_lsn()`: the replica holds every write committed before the newest noted
 * moment whose position it has replayed. Its data is as old as that moment, and grows older until
 * the next check says otherwise, so a replica that stops replaying (or stops answering) drops out
 * within the bound even between checks.
 */
class ReplicaMonitor<C extends ReplicableClient> {
  readonly database: string;
  private readonly primaryPool: pg.Pool;
  private readonly states: ReplicaState<C>[];
  /** The primary's WAL position over the last few bounds, oldest first. */
  private samples: { at: number; lsn: bigint }[] = [];
  private readonly boundMs: number;
  private readonly startedAt = performance.now();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private untrack: (() => void)[] = [];
  private next = 0;

  constructor(
    private readonly settings: ReadReplicaSettings<C>,
    replicas: { url: string; client: C }[],
  ) {
    this.database = settings.database;
    this.boundMs = settings.maxLagSeconds * 1_000;
    const timeout = Math.max(500, this.boundMs);
    const checkPool = (url: string) => {
      const pool = new pg.Pool({
        connectionString: url,
        max: 1,
        connectionTimeoutMillis: timeout,
        query_timeout: timeout,
      });
      // A server that goes away errors its idle connection: the next check reports it, not a crash.
      pool.on('error', () => undefined);
      return pool;
    };
    this.primaryPool = checkPool(settings.primaryUrl);
    this.states = replicas.map(({ url, client }) => ({
      url,
      name: replicaName(url),
      client,
      pool: checkPool(url),
      up: false,
      freshAsOf: undefined,
    }));
  }

  start(): void {
    this.untrack = [
      lagGauge.track(async () =>
        this.states.map((state) => [{ database: this.database, replica: state.name }, this.lagMs(state) / 1_000]),
      ),
      upGauge.track(async () =>
        this.states.map((state) => [{ database: this.database, replica: state.name }, state.up ? 1 : 0]),
      ),
    ];
    void this.checkAndReschedule();
  }

  /** A replica to read from now, round-robin over those up and within the bound; none: the primary. */
  pick(): ReplicaState<C> | undefined {
    const now = performance.now();
    const usable = this.states.filter((state) => state.up && this.lagMs(state, now) < this.boundMs);
    if (usable.length === 0) return undefined;
    return usable[this.next++ % usable.length];
  }

  markDown(state: ReplicaState<C>, error: unknown): void {
    if (state.up)
      this.settings.logger?.warn({ err: error, replica: state.name }, 'replica read failed: reading from the primary');
    state.up = false;
  }

  async connect(): Promise<void> {
    await Promise.all(this.states.map((state) => state.client.$connect()));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const untrack of this.untrack) untrack();
    await Promise.all([
      this.primaryPool.end(),
      ...this.states.flatMap((state) => [state.pool.end(), state.client.$disconnect()]),
    ]);
  }

  private lagMs(state: ReplicaState<C>, now = performance.now()): number {
    return now - (state.freshAsOf ?? this.startedAt);
  }

  private async checkAndReschedule(): Promise<void> {
    await this.check();
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.checkAndReschedule(), Math.max(100, this.boundMs / 4));
    this.timer.unref();
  }

  private async check(): Promise<void> {
    const at = performance.now();
    try {
      const { rows } = await this.primaryPool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
      this.samples.push({ at, lsn: parseLsn(rows[0]!.lsn) });
    } catch {
      // The primary is away: nothing new to compare with. Replicas age as they are until it is back.
      return;
    }
    // Enough history to date a replica up to four bounds behind; further behind is "too old" anyway.
    this.samples = this.samples.filter(
      (sample, index) => index === this.samples.length - 1 || at - sample.at < 4 * this.boundMs,
    );
    await Promise.all(this.states.map((state) => this.checkReplica(state)));
  }

  private async checkReplica(state: ReplicaState<C>): Promise<void> {
    const wasUp = state.up;
    try {
      const { rows } = await state.pool.query<{ lsn: string | null }>('SELECT pg_last_wal_replay_lsn()::text AS lsn');
      const replayed = rows[0]?.lsn;
      // Not in recovery: a promoted or mistaken server, which no longer follows this primary.
      if (!replayed) throw new Error('not a streaming standby (pg_last_wal_replay_lsn() is null)');
      const position = parseLsn(replayed);
      const caughtUp = this.samples.findLast((sample) => sample.lsn <= position);
      if (caughtUp && (state.freshAsOf === undefined || caughtUp.at > state.freshAsOf)) state.freshAsOf = caughtUp.at;
      state.up = true;
      if (!wasUp) this.settings.logger?.info({ replica: state.name, database: this.database }, 'replica up');
    } catch (error) {
      state.up = false;
      if (wasUp) this.settings.logger?.warn({ err: error, replica: state.name }, 'replica check failed: skipped');
    }
  }
}

/** `16/B374D848` to a number that orders as WAL positions do. */
export function parseLsn(lsn: string): bigint {
  const [high, low] = lsn.split('/');
  return (BigInt(`0x${high}`) << 32n) + BigInt(`0x${low}`);
}

const replicaName = (url: string) => {
  const parsed = new URL(url);
  return `${parsed.hostname}:${parsed.port || '5432'}${parsed.pathname}`;
};
