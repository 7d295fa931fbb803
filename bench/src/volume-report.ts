import { median } from './results.js';
import { volumeWorkloads, type VolumeResults, type VolumeRun, type VolumeWorkload } from './volume.js';

/** Issue 15's goals: at the largest size each p99 within this times its smallest-size figure... */
export const VOLUME_P99_GOAL = 1.5;
/** ...and with one replica, the primary's CPU per read at most this times its figure without. */
export const REPLICA_CPU_GOAL = 0.5;

const labels: Record<VolumeWorkload | 'read-mix', string> = {
  'my-orders': '`myOrders(first: 10)`',
  order: '`order(id)`',
  'place-order': '`placeOrder`',
  kitchen: 'kitchen `changeOrderStatus` (PAID -> ACCEPTED)',
  'read-mix': 'read mix (`myOrders` and `order(id)`, half each)',
};

const fmt = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');
const n = (value: number) => value.toLocaleString('en');
const table = (head: string[], rows: string[][]) =>
  [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');

interface Summary {
  rounds: number;
  p50: number;
  p99: number;
  rps: number;
  /** ms of CPU per request, per process group (median over rounds). */
  cpuMsPerRequest: Record<string, number>;
  replicaReads: number;
  /** % of one core that processes outside the bench used during the runs (median): noise. */
  other: number;
  problems: string[];
}

const isValid = (run: VolumeRun) => run.result !== undefined && run.problems.length === 0;

function summarize(runs: VolumeRun[]): Summary | undefined {
  const valid = runs.filter(isValid);
  const problems = runs.flatMap((run) => run.problems.map((p) => `round ${run.round}: ${p}`));
  if (valid.length === 0)
    return problems.length
      ? { rounds: 0, p50: NaN, p99: NaN, rps: NaN, cpuMsPerRequest: {}, replicaReads: 0, other: NaN, problems }
      : undefined;
  const perRequest = (run: VolumeRun, group: string) =>
    // % of one core over the window -> core-ms over the window -> per response.
    (((run.cpu[group] ?? 0) / 100) * run.result!.durationSeconds * 1000) / run.result!.responses;
  const groups = Object.keys(valid[0]!.cpu);
  return {
    rounds: valid.length,
    p50: median(valid.map((run) => run.result!.latencyMs.p50)),
    p99: median(valid.map((run) => run.result!.latencyMs.p99)),
    rps: median(valid.map((run) => run.result!.rps)),
    cpuMsPerRequest: Object.fromEntries(groups.map((g) => [g, median(valid.map((run) => perRequest(run, g)))])),
    replicaReads: valid.reduce((sum, run) => sum + (run.replicaReads ?? 0), 0),
    other: median(valid.map((run) => run.cpu.other ?? NaN)),
    problems,
  };
}

/** `load`: the saturated runs, or the runs held at a fixed rate (volume.ts's FIXED_RATE_SHARE). */
type Load = 'saturated' | 'fixed';
const loadOf = (run: VolumeRun): Load => (run.rate === undefined ? 'saturated' : 'fixed');

const pick = (
  results: VolumeResults,
  size: number,
  workload: VolumeWorkload | 'read-mix',
  replicas = 0,
  load: Load = 'saturated',
) =>
  summarize(
    results.runs.filter(
      (r) => r.size === size && r.workload === workload && r.replicas === replicas && loadOf(r) === load,
    ),
  );

/**
 * `workload`'s p99 at `size` over its p99 at `base`, within each round (the two measured minutes
 * apart: volume.ts interleaves the sizes), in round order; the median of these is the reported ratio.
 */
function roundRatios(
  results: VolumeResults,
  workload: VolumeWorkload,
  size: number,
  base: number,
  load: Load,
): number[] {
  const run = (s: number, round: number) =>
    results.runs.find(
      (r) => r.size === s && r.workload === workload && r.replicas === 0 && r.round === round && loadOf(r) === load,
    );
  const rounds = [...new Set(results.runs.map((r) => r.round))].sort((a, b) => a - b);
  return rounds.flatMap((round) => {
    const [a, b] = [run(base, round), run(size, round)];
    return a && b && isValid(a) && isValid(b) ? [b.result!.latencyMs.p99 / a.result!.latencyMs.p99] : [];
  });
}

export function volumeMarkdown(results: VolumeResults): string {
  const sizes = results.sizes.map((s) => s.size);
  const smallest = sizes[0]!;
  const largest = sizes.at(-1)!;
  const out: string[] = [];
  out.push(`# Volume: the orders database at ${sizes.map(n).join(', ')} orders (issue 15)`);
  out.push('');
  out.push(
    `Run ${results.date}, ${Math.round(results.wallSeconds / 60)} min, by \`BENCH_VOLUME=1 pnpm bench\` (bench/src/volume.ts). ` +
      'Raw JSON and every process log: `bench/results/raw/` (not committed).',
  );
  if (results.partial) {
    out.push('');
    out.push(
      `> **Partial**: written after round ${Math.max(0, ...results.runs.map((r) => r.round))} of ` +
        `${results.settings.BENCH_VOLUME_ROUNDS}, with rounds still to come (the run was stopped, or is still ` +
        'running): the replica comparison and the EXPLAINs come after the last round.',
    );
  }
  const errors = [
    ...results.errors,
    ...results.runs.flatMap((r) => r.problems.map((p) => `${r.size} ${r.workload} round ${r.round}: ${p}`)),
  ];
  if (errors.length > 0) {
    out.push('');
    out.push(`> **Warning**: ${errors.length} problem(s); runs with any are left out of the medians:`);
    for (const error of errors.slice(0, 20)) out.push(`> - ${error.slice(0, 400)}`);
  }

  // Goals.
  const goals: { goal: string; measured: string; met: boolean | undefined }[] = [];
  const notMet = new Set<VolumeWorkload | 'read-mix'>();
  for (const workload of volumeWorkloads) {
    const small = pick(results, smallest, workload, 0, 'fixed');
    const large = pick(results, largest, workload, 0, 'fixed');
    const perRound = roundRatios(results, workload, largest, smallest, 'fixed');
    const rate = results.runs.find((r) => r.workload === workload && r.rate !== undefined)?.rate;
    const ratio = median(perRound);
    const met = Number.isFinite(ratio) ? ratio <= VOLUME_P99_GOAL : undefined;
    if (met === false) notMet.add(workload);
    goals.push({
      goal:
        `${labels[workload]}: p99 at ${n(largest)} <= ${VOLUME_P99_GOAL}x its p99 at ${n(smallest)}` +
        (rate !== undefined ? ` (at ${rate} requests/s)` : ''),
      measured: Number.isFinite(ratio)
        ? `${fmt(ratio, 2)}x (each round: ${perRound.map((r) => `${fmt(r, 2)}x`).join(', ')}; ` +
          `medians ${fmt(large!.p99)} ms vs ${fmt(small!.p99)} ms)`
        : 'not measured',
      met,
    });
  }
  const none = pick(results, largest, 'read-mix', 0);
  const one = pick(results, largest, 'read-mix', 1);
  const primary = (s?: Summary) => s?.cpuMsPerRequest['orders primary'] ?? NaN;
  const cpuRatio = primary(one) / primary(none);
  const replicaMet = Number.isFinite(cpuRatio) ? cpuRatio <= REPLICA_CPU_GOAL : undefined;
  if (replicaMet === false) notMet.add('read-mix');
  goals.push({
    goal: `read mix at ${n(largest)}: with one replica, the primary's CPU per read <= ${REPLICA_CPU_GOAL}x without`,
    measured: Number.isFinite(cpuRatio)
      ? `${fmt(primary(one), 3)} vs ${fmt(primary(none), 3)} ms per request: ${fmt(cpuRatio, 2)}x`
      : 'not measured',
    met: replicaMet,
  });
  out.push('', '## Goals', '');
  out.push(
    table(
      ['goal', 'measured', 'met'],
      goals.map((g) => [g.goal, g.measured, g.met === undefined ? 'not measured' : g.met ? 'met' : '**not met**']),
    ),
  );

  out.push('', '## Latency and throughput, by size', '');
  out.push(
    'Each workload runs twice at each size in each round. Saturated: every connection sends its next request as ' +
      'soon as it has an answer, which measures requests/s; its latency is then mostly the queue (the connections ' +
      'over the throughput: a p99 that moves with requests/s). Fixed rate: the same requests held at ' +
      `${fmt(Number(results.settings.FIXED_RATE_SHARE) * 100, 0)} % of the smallest size's saturated requests/s ` +
      "(its first round's, then the same for every size and round; sent evenly spaced by loadtest, an open model), below saturation, " +
      "so latency is the requests' own time, as load tools measure latency (wrk2, k6's constant arrival rate): " +
      `the goals use this p99. The fixed-rate runs measure for twice the saturated runs' time (as many answers).`,
  );
  out.push('');
  out.push(
    `Through our gateway (production settings), medians of ${results.settings.BENCH_VOLUME_ROUNDS} rounds of ` +
      `${results.settings.BENCH_DURATION_SECONDS} s (after ${results.settings.BENCH_WARMUP_SECONDS} s of warm-up each); ` +
      `reads at ${results.settings.BENCH_CONNECTIONS} connections, writes at ${results.settings.BENCH_MUTATION_CONNECTIONS}. ` +
      'Each round measures every size in turn (its own database, the first size rotating from round to round); ' +
      '"p99 ratio" is the median over the rounds of the p99 over the smallest size\'s in the same round. ' +
      "Before a size's stack starts, its database's tables and indexes are read into the OS page cache (pg_prewarm, " +
      "'read'), as on a server that has been serving them, and the standby rests (stopped, catching up afterwards): " +
      "this machine's memory holds one copy of every size but not two, and with both servers up the rounds measured " +
      'their pages evicting each other. ' +
      '"other CPU %": what processes outside the bench used during ' +
      'the runs (% of one core, median; the machine is shared): above ~20 the figures are disturbed.',
  );
  out.push('');
  const rows: string[][] = [];
  for (const workload of volumeWorkloads) {
    for (const size of sizes) {
      const s = pick(results, size, workload);
      const f = pick(results, size, workload, 0, 'fixed');
      const ratio = median(roundRatios(results, workload, size, smallest, 'fixed'));
      const saturatedRatio = median(roundRatios(results, workload, size, smallest, 'saturated'));
      const rate = results.runs.find((r) => r.workload === workload && r.rate !== undefined)?.rate;
      rows.push([
        labels[workload],
        n(size),
        rate !== undefined ? n(rate) : 'n/a',
        f ? fmt(f.p50) : 'n/a',
        f ? fmt(f.p99) : 'n/a',
        Number.isFinite(ratio) ? `${fmt(ratio, 2)}x` : 'n/a',
        s ? fmt(s.rps, 0) : 'n/a',
        s ? fmt(s.p50) : 'n/a',
        s ? fmt(s.p99) : 'n/a',
        Number.isFinite(saturatedRatio) ? `${fmt(saturatedRatio, 2)}x` : 'n/a',
        s ? fmt(s.cpuMsPerRequest['orders primary'] ?? NaN, 3) : 'n/a',
        s ? fmt(s.cpuMsPerRequest['orders'] ?? NaN, 3) : 'n/a',
        s ? fmt(s.other, 0) : 'n/a',
        s ? String(s.rounds) : '0',
      ]);
    }
  }
  out.push(
    table(
      [
        'workload',
        'orders',
        'fixed rate, req/s',
        'p50 ms at it',
        'p99 ms at it',
        'p99 ratio',
        'saturated requests/s',
        'saturated p50 ms',
        'saturated p99 ms',
        'saturated p99 ratio',
        'orders DB CPU ms/req',
        'orders subgraph CPU ms/req',
        'other CPU %',
        'valid rounds',
      ],
      rows,
    ),
  );

  out.push('', `## One read replica versus none, at ${n(largest)} orders`, '');
  out.push(
    'The same read mix (callers in rotation, half `myOrders(first: 10)`, half `order(id)` of a random order of the ' +
      "caller's) against the orders subgraph without `ORDERS_DATABASE_REPLICA_URLS`, then with the standby in it; " +
      "the server answering the reads read into the page cache first (the primary's copy, then the standby's). " +
      "Primary CPU: utime + stime from /proc of every process of the orders primary's cluster (its postmaster, found " +
      'from a backend, and all its children: backends, WAL sender, checkpointer, ...) over the measured window, per ' +
      'response (pg_stat_statements is not loaded on these servers). The standby likewise.',
  );
  out.push('');
  out.push(
    table(
      [
        'replicas',
        'p50 ms',
        'p99 ms',
        'requests/s',
        'primary CPU ms/req',
        'standby CPU ms/req',
        'orders subgraph CPU ms/req',
        'reads sent to the replica',
        'other CPU %',
      ],
      [
        ['none', none],
        ['one', one],
      ].map(([label, s]) => {
        const summary = s as Summary | undefined;
        return [
          label as string,
          summary ? fmt(summary.p50) : 'n/a',
          summary ? fmt(summary.p99) : 'n/a',
          summary ? fmt(summary.rps, 0) : 'n/a',
          summary ? fmt(primary(summary), 3) : 'n/a',
          summary ? fmt(summary.cpuMsPerRequest['orders standby'] ?? NaN, 3) : 'n/a',
          summary ? fmt(summary.cpuMsPerRequest['orders'] ?? NaN, 3) : 'n/a',
          summary ? n(summary.replicaReads) : 'n/a',
          summary ? fmt(summary.other, 0) : 'n/a',
        ];
      }),
    ),
  );

  out.push('', '## Seeding', '');
  out.push(
    'Server-side `INSERT ... SELECT generate_series` in chunks of 500,000 orders, orders, items and status history ' +
      'at once on three connections, foreign-key triggers off for the seeding sessions (the rows are consistent by ' +
      'construction), then ANALYZE; each size into its own database, from empty. Times include the WAL the standby ' +
      'streams meanwhile.',
  );
  out.push('');
  out.push(
    table(
      [
        'size',
        'seconds to seed',
        'orders',
        'order_items',
        'order_status_changes',
        'on disk (three tables)',
        'partitions with rows (orders)',
      ],
      results.sizes.map((s) => {
        const t = (name: string) => s.tables.find((x) => x.table === name);
        const bytes = s.tables.reduce((sum, x) => sum + x.bytes, 0);
        return [
          n(s.size),
          fmt(s.seedSeconds, 0),
          n(t('orders')?.rows ?? 0),
          n(t('order_items')?.rows ?? 0),
          n(t('order_status_changes')?.rows ?? 0),
          `${fmt(bytes / 1024 ** 3, 2)} GiB`,
          String(t('orders')?.partitions ?? 0),
        ];
      }),
    ),
  );

  if (notMet.size > 0) {
    out.push('', `## EXPLAIN (ANALYZE, BUFFERS) at ${n(largest)}, for the goals not met`, '');
    out.push(
      "Each workload's main statement on the orders primary, as Prisma sends it, written out with a real caller's " +
        'values (writes rolled back), right after the last round (the page cache as the rounds had it).',
    );
    const explained = [...notMet].flatMap((w) => (w === 'read-mix' ? (['my-orders', 'order'] as const) : [w]));
    for (const workload of new Set(explained)) {
      const e = results.explains[workload];
      if (!e) continue;
      out.push(
        '',
        `### ${labels[workload]}`,
        '',
        '```sql',
        e.sql.replace(/\s+/g, ' '),
        '```',
        '',
        '```',
        e.plan,
        '```',
      );
    }
  }

  out.push('', '## What was run', '');
  out.push(
    [
      `- Data: ${results.settings.BENCH_VOLUME_CUSTOMERS} customers (each with size / customers orders, spread over ` +
        `the past 365 days), ${results.settings.meals} meals. Order i has a UUIDv7 id of its time, so the rows land in ` +
        `monthly partitions ${results.partitions[0]} .. ${results.partitions.at(-1)} (the four order tables each), made ` +
        "before seeding, named and bounded as the orders worker's ensurePartitions makes them. The migration's legacy-low " +
        "partitions end at 2026-12-01 (where v7 ids began), so in the bench's fresh database they are remade, empty, to " +
        'end where the first seeded month begins: the layout of a database a year into v7 ids.',
      '- Items: 1 to 3 per order (2 on average). Status history: 2 or 3 rows per order (placed, paid or cancelled, ' +
        'and the step into its current status when past PAID), not every intermediate step, to keep 10M seedable. ' +
        "Statuses: 10 % PAID (the kitchen's queue), 20 % in the kitchen's steps, 5 % cancelled, the rest delivered.",
      `- Callers: the first ${Number(results.settings.BENCH_VOLUME_CUSTOMERS) - Number(results.settings.BENCH_VOLUME_PLACING_CUSTOMERS)} ` +
        'customers read, in rotation (a caller comes again only after every other one: no cache can answer); ' +
        `the last ${results.settings.BENCH_VOLUME_PLACING_CUSTOMERS} place orders (so no reader is pinned to the ` +
        'primary by read-your-writes); staff move PAID orders to ACCEPTED, oldest order number first, each once. JWTs are ' +
        "signed (ES256) with the run's signing key exactly as logIn issues them, the gateway verifying them from the users service's JWKS.",
      '- Queries select orders-subgraph fields only (`myOrders`: id, status, total, createdAt, items; `order(id)`: ' +
        'the same and its status history): what is measured is the orders database at size, not the other subgraphs.',
      '- Every run: autocannon (saturated) or loadtest (fixed rate) in its own process (bench/src/load-client.ts), every response checked for errors; ' +
        'a verification request before it.',
      ...Object.entries(results.settings).map(([k, v]) => `- ${k}: ${v}`),
    ].join('\n'),
  );
  out.push('');
  return out.join('\n');
}
