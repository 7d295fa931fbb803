import { CLUSTER_GOAL_RATIO, peerNames, targetLabels, targetNames, type TargetName } from './config.js';
import { isValid, median, NOISY_CPU, pairedRatio, summarize, type BenchResults } from './results.js';
import type { SubscriptionRun } from './subscriptions.js';
import { WHOLE_RESPONSES, type HttpWorkload } from './workloads.js';

const httpWorkloads: HttpWorkload[] = ['one-subgraph', 'federated', 'federated-cold', 'gateway-overhead', 'mutations'];

const fmt = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');
const mib = (bytes: number) => (bytes > 0 ? (bytes / 1024 / 1024).toFixed(0) : 'n/a');
const kib = (bytes: number) => (Number.isFinite(bytes) ? (bytes / 1024).toFixed(1) : 'n/a');
const table = (head: string[], rows: string[][]) =>
  [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');

/** A target as it ran a workload: the peers ran the repeat readers with their response caches on. */
const labelOf = (workload: HttpWorkload, target: TargetName) =>
  workload === 'federated' && (peerNames as readonly TargetName[]).includes(target)
    ? `${targetLabels[target]} (response cache)`
    : targetLabels[target];

export interface Goal {
  goal: string;
  measured: string;
  met: boolean | undefined;
}

export function goals(results: BenchResults): Goal[] {
  const list: Goal[] = [];
  const rps = (r: { rps: number }) => r.rps;
  const p99 = (r: { latencyMs: { p99: number } }) => r.latencyMs.p99;
  const rounds = (perRound: number[]) => perRound.map((r) => fmt(r, 2)).join(', ');
  /** ours / `peer` in requests/s >= factor (and, with `latency`, p99 no worse), median of the rounds. */
  const ratioGoal = (workload: HttpWorkload, peer: TargetName, factor: number, latency: boolean) => {
    const throughput = pairedRatio(results, workload, peer, rps);
    const tail = pairedRatio(results, workload, peer, p99);
    const measured = Number.isFinite(throughput.median);
    list.push({
      goal: `${workload}: ours >= ${factor}x ${targetLabels[peer]} in requests/s` + (latency ? ', p99 no worse' : ''),
      measured: measured
        ? `${fmt(throughput.median, 2)}x requests/s (rounds: ${rounds(throughput.perRound)})` +
          (latency ? `; p99 ours/${peer} ${fmt(tail.median, 2)}x` : '')
        : 'not measured',
      met: measured ? throughput.median >= factor && (!latency || tail.median <= 1) : undefined,
    });
  };
  ratioGoal('gateway-overhead', 'hive-router', 1, false);
  ratioGoal('gateway-overhead', 'apollo', 3, false);
  ratioGoal('gateway-overhead', 'ceiling', 0.5, false);
  for (const peer of peerNames) ratioGoal('federated-cold', peer, 1.5, true);
  // federated: repeat readers, every peer with its response cache on (cache against cache).
  for (const peer of peerNames) ratioGoal('federated', peer, 1.5, false);
  for (const peer of peerNames) ratioGoal('mutations', peer, 1, false);
  const ceiling = pairedRatio(results, 'one-subgraph', 'direct', rps);
  list.push({
    goal: 'one-subgraph: ours >= 0.7x the meals subgraph direct (requests/s)',
    measured: Number.isFinite(ceiling.median)
      ? `${fmt(ceiling.median, 2)}x (rounds: ${rounds(ceiling.perRound)})`
      : 'not measured',
    met: Number.isFinite(ceiling.median) ? ceiling.median >= 0.7 : undefined,
  });
  list.push(...subscriptionGoals(results));
  const compared = clusterComparison(results);
  if (results.cluster) {
    const measured = compared.filter((row) => Number.isFinite(row.ratio));
    list.push({
      goal: `Redis Cluster: no workload below ${CLUSTER_GOAL_RATIO}x its one-node figure (our gateway)`,
      measured:
        compared.length > 0
          ? compared
              .map((row) => `${row.workload} ${Number.isFinite(row.ratio) ? `${fmt(row.ratio, 2)}x` : 'not on both'}`)
              .join(', ')
          : 'not measured (no workload ran on both)',
      met:
        measured.length === 0
          ? undefined
          : measured.length === compared.length && measured.every((row) => row.ratio >= CLUSTER_GOAL_RATIO),
    });
  }
  return list;
}

/** The cluster's runs of BENCH_REDIS=both, as results of their own. */
const clusterView = (results: BenchResults): BenchResults | undefined =>
  results.cluster && {
    ...results,
    errors: [],
    runs: results.cluster.runs,
    subscriptions: results.cluster.subscriptions,
  };

/** The one node's runs that BENCH_REDIS=both paired with the cluster's (the main pass's in older results). */
const baselineView = (results: BenchResults): BenchResults =>
  results.clusterBaseline
    ? {
        ...results,
        errors: [],
        runs: results.clusterBaseline.runs,
        subscriptions: results.clusterBaseline.subscriptions,
      }
    : results;

export interface ClusterRow {
  workload: string;
  figure: string;
  single: string;
  cluster: string;
  /** The median over the pairs of passes of the cluster's figure / the one node's, "higher is better" (NaN: not on both). */
  ratio: number;
  /** Each pair's ratio, in pair order. */
  perPair: number[];
}

/**
 * BENCH_REDIS=both: each workload on both, in pairs of passes back to back; each pair's ratio, then
 * the median. HTTP: our gateway's requests/s. Subscriptions: the one node's p99 latency / the
 * cluster's (below 1: slower on the cluster), and no more than its delivered share.
 */
export function clusterComparison(results: BenchResults): ClusterRow[] {
  const cluster = clusterView(results);
  if (!cluster) return [];
  const baseline = baselineView(results);
  const pairs = [...new Set([...baseline.runs, ...cluster.runs].map((run) => run.round))].sort((a, b) => a - b);
  const rows: ClusterRow[] = [];
  for (const workload of httpWorkloads) {
    const one = summarize(baseline, workload, 'ours');
    const other = summarize(cluster, workload, 'ours');
    if (!one && !other) continue;
    const text = (s: typeof one) =>
      s ? `${fmt(s.rps, 0)} req/s, p99 ${fmt(s.p99, 1)} ms (${s.validRuns}/${s.runs} valid)` : 'not run';
    const perPair = pairs.flatMap((round) => {
      const find = (view: BenchResults) =>
        view.runs.find((run) => run.workload === workload && run.target === 'ours' && run.round === round);
      const [a, b] = [find(baseline), find(cluster)];
      return a && b && isValid(a) && isValid(b) ? [b.result!.rps / a.result!.rps] : [];
    });
    rows.push({
      workload,
      figure: 'requests/s',
      single: text(one),
      cluster: text(other),
      ratio: median(perPair),
      perPair,
    });
  }
  const key = (run: SubscriptionRun) => `${run.scenario} ${(run.asked ?? run.subscribers).toLocaleString('en')}`;
  const names = new Set([...baseline.subscriptions, ...cluster.subscriptions].map(key));
  const ratioOf = (one: SubscriptionRun, other: SubscriptionRun) =>
    Math.min(one.latencyMs.p99 / other.latencyMs.p99, other.deliveryRatio / Math.max(one.deliveryRatio, 1e-9));
  for (const name of names) {
    const ones = baseline.subscriptions.filter((run) => key(run) === name);
    const others = cluster.subscriptions.filter((run) => key(run) === name);
    const text = (runs: SubscriptionRun[]) =>
      runs.length > 0
        ? `p99 ${runs.map((run) => fmt(run.latencyMs.p99)).join(' / ')} ms, ` +
          `${fmt(Math.min(...runs.map((run) => run.deliveryRatio)) * 100, 2)} % delivered (lowest), ` +
          runs.map(connectedText).join(' / ')
        : 'not run';
    const perPair = ones.flatMap((one) => {
      const other = others.find((run) => run.round === one.round);
      return other ? [ratioOf(one, other)] : [];
    });
    rows.push({
      workload: `subscriptions ${name}`,
      figure: '1 / p99 latency, and the share delivered',
      single: text(ones),
      cluster: text(others),
      ratio: median(perPair),
      perPair,
    });
  }
  return rows;
}

/**
 * The order scenario at 1,000 and 5,000 subscribers in the last report before the scenarios
 * (bench/results/latest.md of 2026-11-29, @food/gateway git b7bb1a3, a quiet machine): at 5,000 the
 * goal is to be no worse than it. Update it on purpose, with the report it comes from.
 */
export const ORDER_BASELINE = {
  report: '2026-11-29, git b7bb1a3',
  runs: [
    { subscribers: 1_000, connectSeconds: 13.5, p50: 17.3, p99: 59.1, max: 79.1, rssKiB: 58.2, heapKiB: 17.9 },
    { subscribers: 5_000, connectSeconds: 50.0, p50: 18.1, p99: 87.3, max: 106.9, rssKiB: 9.7, heapKiB: 8.6 },
  ],
} as const;

/** The run of a scenario at the goal's size (asked for: the open-files limit may have cut it). */
const runAt = (results: BenchResults, scenario: SubscriptionRun['scenario'], size: number) =>
  results.subscriptions.find((run) => run.scenario === scenario && (run.asked ?? run.subscribers) === size);

const allConnected = (run: SubscriptionRun) =>
  run.asked === undefined &&
  run.connected === run.subscribers &&
  run.registered >= run.subscribers &&
  run.dropped === 0;

const connectedText = (run: SubscriptionRun) =>
  `${run.connected}/${run.subscribers} connected` +
  (run.asked !== undefined ? ` (**${run.asked} asked for: the open-files limit allowed ${run.subscribers}**)` : '') +
  (run.dropped > 0 ? `, ${run.dropped} dropped` : '');

const kibText = (run: SubscriptionRun) =>
  `${kib(run.memory.rssPerSubscriber)} KiB RSS (${kib(run.memory.heapPerSubscriber)} KiB heap) per subscriber`;

function subscriptionGoals(results: BenchResults): Goal[] {
  const list: Goal[] = [];
  const order = runAt(results, 'order', 5_000);
  list.push({
    goal: 'order, 5,000 subscribers: 100% delivery, p99 <= 200 ms, <= 20 KiB gateway memory per idle subscriber (RSS and heap)',
    measured: order
      ? `${connectedText(order)}, ${fmt(order.deliveryRatio * 100, 2)} % of changes delivered, ` +
        `p99 ${fmt(order.latencyMs.p99)} ms, ${kibText(order)}`
      : 'not measured',
    met: order
      ? allConnected(order) &&
        order.deliveryRatio === 1 &&
        order.latencyMs.p99 <= 200 &&
        order.memory.rssPerSubscriber <= 20 * 1024 &&
        order.memory.heapPerSubscriber <= 20 * 1024
      : undefined,
  });
  const last = ORDER_BASELINE.runs[1];
  // Compared at the precision the last report gave (0.1 ms, 0.1 KiB).
  const tenths = (value: number) => Math.round(value * 10) / 10;
  list.push({
    goal:
      `order, 5,000 subscribers: no worse than the last report (${ORDER_BASELINE.report}): ` +
      `p99 <= ${last.p99} ms, <= ${last.rssKiB} KiB RSS per idle subscriber`,
    measured: order
      ? `p99 ${fmt(order.latencyMs.p99)} ms (last ${last.p99}), ${kib(order.memory.rssPerSubscriber)} KiB RSS ` +
        `(last ${last.rssKiB}); all delivered: ${order.deliveryRatio === 1 ? 'yes' : 'no'}`
      : 'not measured',
    met: order
      ? order.deliveryRatio === 1 &&
        tenths(order.latencyMs.p99) <= last.p99 &&
        tenths(order.memory.rssPerSubscriber / 1024) <= last.rssKiB
      : undefined,
  });
  const feed = runAt(results, 'feed', 5_000);
  list.push({
    goal: "feed, 5,000 staff on orderUpdates: 100% delivered, every change's p99 <= 200 ms",
    measured: feed
      ? `${connectedText(feed)}, ${feed.delivered}/${feed.expected} (${fmt(feed.deliveryRatio * 100, 2)} %) delivered, ` +
        `worst change's p99 ${fmt(feed.worstChangeP99Ms ?? NaN)} ms (all: p99 ${fmt(feed.latencyMs.p99)} ms)`
      : 'not measured',
    met: feed
      ? allConnected(feed) && feed.deliveryRatio === 1 && (feed.worstChangeP99Ms ?? Infinity) <= 200
      : undefined,
  });
  const menu = runAt(results, 'menu', 20_000);
  list.push({
    goal:
      "menu, 20,000 anonymous subscribers on one gateway: 100% delivered, every change's p99 <= 300 ms, " +
      '<= 10 KiB gateway memory (RSS) per idle subscriber',
    measured: menu
      ? `${connectedText(menu)}, ${menu.delivered}/${menu.expected} (${fmt(menu.deliveryRatio * 100, 2)} %) delivered, ` +
        `worst change's p99 ${fmt(menu.worstChangeP99Ms ?? NaN)} ms (all: p99 ${fmt(menu.latencyMs.p99)} ms), ` +
        kibText(menu)
      : 'not measured',
    // At fewer subscribers than the goal's, it is not measured, whatever the figures.
    met:
      menu && menu.asked === undefined
        ? allConnected(menu) &&
          menu.deliveryRatio === 1 &&
          (menu.worstChangeP99Ms ?? Infinity) <= 300 &&
          menu.memory.rssPerSubscriber <= 10 * 1024
        : undefined,
  });
  return list;
}

const subscriptionProblemsOf = (results: BenchResults) =>
  results.subscriptions.filter(
    (run) =>
      run.connectFailed > 0 ||
      run.changeErrors > 0 ||
      run.dropped > 0 ||
      run.registered < run.connected ||
      run.errors.length > 0,
  );

/** Which Redis the runs used, in words. */
function redisText(results: BenchResults): string {
  const { single, cluster } = results.redis ?? {};
  if (single && cluster)
    return `BENCH_REDIS=both: every workload on ${single}; then federated, mutations and the subscriptions (our gateway) on ${cluster} and on the one node again, in pairs of passes (see "Redis Cluster against one node")`;
  if (cluster) return `BENCH_REDIS=cluster, ${cluster}`;
  return single ? `BENCH_REDIS=single, ${single}` : 'not recorded';
}

/** Why the runs of `results` are not all results, one line each. */
function runProblems(results: BenchResults): string[] {
  return [
    ...results.runs
      .filter((run) => !isValid(run))
      .map((run) => `${run.workload} on ${run.target}, round ${run.round}: ${run.problems.join('; ')}`),
    ...results.runs.flatMap((run) =>
      (run.result?.sampleErrors ?? [])
        .slice(0, 2)
        .map((sample) => `${run.workload}/${run.target}/${run.round} sample: ${sample}`),
    ),
    ...subscriptionProblemsOf(results).map(
      (run) =>
        `subscriptions, ${run.scenario} ${run.subscribers}: ${run.connectFailed} failed to connect, ` +
        `${run.connected - Math.min(run.connected, run.registered)} not registered at the gateway, ` +
        `${run.dropped} dropped, ${run.changeErrors} change errors; ${run.errors.join('; ')}`,
    ),
  ];
}

export function markdown(results: BenchResults): string {
  const out: string[] = [];
  const cluster = clusterView(results);
  const paired = results.clusterBaseline && baselineView(results);
  const invalid = [...results.runs, ...(cluster?.runs ?? []), ...(paired?.runs ?? [])].filter((run) => !isValid(run));
  const subscriptionProblems = [
    ...subscriptionProblemsOf(results),
    ...(cluster ? subscriptionProblemsOf(cluster) : []),
    ...(paired ? subscriptionProblemsOf(paired) : []),
  ];
  out.push(`# Gateway benchmark: ${results.date}`, '');
  if (invalid.length > 0 || results.errors.length > 0 || subscriptionProblems.length > 0) {
    out.push(
      '> [!CAUTION]',
      `> **ERRORS IN THIS RUN.** ${invalid.length} HTTP run(s) had errors and are not results (left out of every median);` +
        ` ${subscriptionProblems.length} subscription run(s) had errors; ${results.errors.length} other problem(s).` +
        ' See "Errors" below.',
      '',
    );
  }
  const noisy = results.runs.filter((run) => (run.cpu.other ?? 0) > NOISY_CPU);
  if (noisy.length > 0) {
    out.push(
      '> [!WARNING]',
      `> **A NOISY MACHINE.** During ${noisy.length} of ${results.runs.length} HTTP runs, processes that are not part ` +
        `of the bench used more than ${NOISY_CPU} % of a core (column "other" below) even after one repeat: ` +
        'something else was running here, and those numbers understate their target by an unknown amount. ' +
        'Re-run on a quiet machine before trusting ratios.',
      '',
    );
  }
  const m = results.machine;
  out.push(
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB memory, ${m.os}; load average at the start ` +
      `${m.loadAverageAtStart ?? 'n/a'}. Whole run: ${fmt(results.wallSeconds / 60)} min.`,
    '',
    `Versions: ${Object.entries(results.versions)
      .map(([name, version]) => `${name} ${version}`)
      .join(', ')}.`,
    '',
    `Settings: ${Object.entries(results.settings)
      .map(([name, value]) => `${name}=${value}`)
      .join(', ')}.`,
    '',
    `Redis: ${redisText(results)}.`,
    '',
    '![requests/s and p99 per workload and target](latest.svg)',
    '',
  );

  out.push('## Goals', '');
  out.push(
    table(
      ['goal', 'measured (median of per-round ratios)', 'met'],
      goals(results).map((g) => [
        g.goal,
        g.measured,
        g.met === undefined ? 'not measured' : g.met ? 'met' : '**not met**',
      ]),
    ),
    '',
  );

  out.push('## HTTP workloads (median of valid rounds)', '');
  const rows: string[][] = [];
  for (const workload of httpWorkloads) {
    for (const target of targetNames) {
      const s = summarize(results, workload, target);
      if (!s) continue;
      const vs = () => {
        if (target === 'ours') return '';
        const ratio = pairedRatio(results, workload, target, (r) => r.rps);
        return Number.isFinite(ratio.median) ? `${fmt(ratio.median, 2)}x` : 'n/a';
      };
      rows.push([
        workload,
        labelOf(workload, target),
        fmt(s.rps, 0),
        fmt(s.p50, 1),
        fmt(s.p99, 1),
        String(s.errors),
        `${s.validRuns}/${s.runs}`,
        target === 'direct' || target === 'ceiling' ? 'n/a' : fmt(s.gatewayCpu, 0),
        target === 'direct' || target === 'ceiling' ? 'n/a' : mib(s.gatewayPeakRss),
        fmt(s.subgraphCallsPerResponse, 2),
        fmt(s.bodyBytes, 0),
        vs(),
      ]);
    }
  }
  out.push(
    table(
      [
        'workload',
        'target',
        'req/s',
        'p50 ms',
        'p99 ms',
        'errors',
        'valid rounds',
        'gateway CPU %',
        'gateway peak RSS MiB',
        'subgraph calls / response',
        'body bytes',
        'ours / this (req/s)',
      ],
      rows,
    ),
    '',
    'Gateway CPU is % of one core over the measured window (/proc/<pid>/stat); the machine has ' +
      `${m.cores} cores, shared by the gateway, the four subgraphs, the four workers, Postgres, Redis and the load client. ` +
      '"ours / this" is ours divided by that target, round by round, then the median.',
    '',
  );

  out.push('## Where the CPU went (median % of one core during the measured window)', '');
  const groups = [
    'gateway',
    'users',
    'meals',
    'orders',
    'payments',
    'workers',
    'fixtures',
    'postgres',
    'redis',
    'client',
    'bench',
  ];
  const cpuRows: string[][] = [];
  for (const workload of httpWorkloads) {
    for (const target of targetNames) {
      const s = summarize(results, workload, target);
      if (!s) continue;
      const busiest = groups.reduce((a, b) => ((s.cpu[b] ?? 0) > (s.cpu[a] ?? 0) ? b : a));
      cpuRows.push([
        workload,
        target,
        ...groups.map((group) => fmt(s.cpu[group] ?? NaN, 0)),
        `${fmt(s.cpu.machine ?? NaN, 0)} / ${m.cores * 100}`,
        fmt(s.cpu.other ?? NaN, 0),
        busiest,
      ]);
    }
  }
  out.push(
    table(
      ['workload', 'target', ...groups.map((g) => (g === 'client' ? 'load client' : g)), 'machine', 'other', 'busiest'],
      cpuRows,
    ),
    '',
    'A machine near its cores x 100 % is CPU-bound as a whole: then requests/s measure how little CPU each ' +
      'process spends per request, the gateway and the subgraphs it makes work alike.',
    '',
  );

  const cached = results.runs.filter((run) =>
    Object.values(run.entityCache ?? {}).some((counts) => counts.hits + counts.misses > 0),
  );
  if (cached.length > 0) {
    out.push("## Our gateway's caches during each measured run (its own counters)", '');
    out.push(
      table(
        ['workload', 'round', 'hits / misses by type', 'hits per response'],
        cached.map((run) => {
          const entries = Object.entries(run.entityCache!).sort(([a], [b]) => a.localeCompare(b));
          const hits = entries.reduce((sum, [, counts]) => sum + counts.hits, 0);
          return [
            run.workload,
            String(run.round),
            entries.map(([type, counts]) => `${type} ${counts.hits} / ${counts.misses}`).join(', '),
            fmt(hits / Math.max(1, run.result?.responses ?? 0), 2),
          ];
        }),
      ),
      '',
      'From gateway_entity_cache_hits_total and _misses_total (by entity type) and gateway_response_cache_hits_total ' +
        `and _misses_total ("${WHOLE_RESPONSES}") on its /metrics, before and after the measured window. A response ` +
        'answered whole never reaches the entity cache. federated-cold runs with the entity cache shared by every ' +
        'caller off (ENTITY_CACHE_TYPES empty) and its per-caller caches as shipped: with a new customer on every ' +
        'request, they can only miss.',
      '',
    );
  }

  out.push('## Every round', '');
  out.push(
    table(
      [
        'workload',
        'target',
        'round',
        'req/s',
        'p50 ms',
        'p99 ms',
        'max ms',
        'responses',
        'non-2xx',
        'GraphQL errors',
        'conn errors',
        'other CPU %',
        'result',
      ],
      results.runs.map((run) => {
        const r = run.result;
        return [
          run.workload,
          run.target,
          String(run.round),
          r ? fmt(r.rps, 0) : '-',
          r ? fmt(r.latencyMs.p50) : '-',
          r ? fmt(r.latencyMs.p99) : '-',
          r ? fmt(r.latencyMs.max) : '-',
          r ? String(r.responses) : '-',
          r ? String(r.non2xx) : '-',
          r ? String(r.graphqlErrors) : '-',
          r ? String(r.connectionErrors + r.timeouts) : '-',
          `${fmt(run.cpu.other ?? NaN, 0)}${(run.attempts ?? 1) > 1 ? ' (repeated)' : ''}`,
          isValid(run) ? 'ok' : '**not a result**',
        ];
      }),
    ),
    '',
  );

  if (results.subscriptions.length > 0) {
    out.push('## Subscriptions (our gateway only: its subscriptions come from Redis events)', '');
    out.push(
      table(
        [
          'scenario',
          'subscribed to',
          'subscribers',
          'connected',
          'registered',
          'connect s',
          'changes (rate/s)',
          'changes delivered',
          'p50 ms',
          'p99 ms',
          "worst change's p99 ms",
          'max ms',
          'RSS / subscriber KiB',
          'heap / subscriber KiB',
          'gateway CPU % (changes)',
          'client CPU % (changes)',
          'gateway peak RSS MiB',
          'gateway open files',
          'other CPU %',
        ],
        results.subscriptions.map((run) => [
          run.scenario,
          run.subscribedTo,
          `${run.subscribers}${run.asked !== undefined ? ` (of ${run.asked} asked)` : ''}`,
          `${run.connected}/${run.subscribers}${run.dropped > 0 ? `, ${run.dropped} dropped` : ''}`,
          String(run.registered),
          fmt(run.connectSeconds),
          `${run.changes} (${fmt(run.changeRate, 0)})`,
          `${run.delivered}/${run.expected} (${fmt(run.deliveryRatio * 100, 2)} %)`,
          fmt(run.latencyMs.p50),
          fmt(run.latencyMs.p99),
          run.worstChangeP99Ms === undefined ? '-' : fmt(run.worstChangeP99Ms),
          fmt(run.latencyMs.max),
          kib(run.memory.rssPerSubscriber),
          kib(run.memory.heapPerSubscriber),
          fmt(run.gatewayCpu, 0),
          `${fmt(run.clientCpu, 0)}${run.clientProcesses > 1 ? ` (${run.clientProcesses} processes)` : ''}`,
          mib(run.gatewayPeakRss),
          String(run.gatewayOpenFiles),
          fmt(run.cpu.other ?? NaN, 0),
        ]),
      ),
      '',
      "Latency: from the change mutation's response (as staff, through the gateway) to the subscriber's receipt of " +
        'that change; "registered": subscriptions the gateway counted once all had connected; memory per ' +
        "subscriber: the gateway's RSS and V8 heap after a full collection, connected and idle, minus the same " +
        'before, divided by the subscribers. Each scenario is described under "How it was measured".',
      '',
    );
    const orders = results.subscriptions.filter((run) => run.scenario === 'order');
    if (orders.length > 0) {
      out.push(`### Order scenario against the last report (${ORDER_BASELINE.report})`, '');
      const pair = (before: number | undefined, now: number) =>
        before === undefined ? fmt(now) : `${fmt(before)} -> ${fmt(now)}`;
      out.push(
        table(
          ['subscribers', 'connect s', 'p50 ms', 'p99 ms', 'max ms', 'RSS / subscriber KiB', 'heap / subscriber KiB'],
          orders.map((run) => {
            const last = ORDER_BASELINE.runs.find((b) => b.subscribers === run.subscribers);
            return [
              String(run.subscribers),
              pair(last?.connectSeconds, run.connectSeconds),
              pair(last?.p50, run.latencyMs.p50),
              pair(last?.p99, run.latencyMs.p99),
              pair(last?.max, run.latencyMs.max),
              pair(last?.rssKiB, run.memory.rssPerSubscriber / 1024),
              pair(last?.heapKiB, run.memory.heapPerSubscriber / 1024),
            ];
          }),
        ),
        '',
        'Last report -> this run. The last report ran the order mode alone (a gateway process for 1,000 then ' +
          '5,000 subscribers, graphql-ws clients); it had no feed or menu run after it.',
        '',
      );
    }
  }

  if (cluster) {
    out.push('## Redis Cluster against one node (BENCH_REDIS=both, our gateway)', '');
    out.push(
      table(
        [
          'workload',
          'figure',
          'one node',
          'Redis Cluster',
          'cluster / one node (median of pairs)',
          'each pair',
          `>= ${CLUSTER_GOAL_RATIO}x`,
        ],
        clusterComparison(results).map((row) => [
          row.workload,
          row.figure,
          row.single,
          row.cluster,
          Number.isFinite(row.ratio) ? `${fmt(row.ratio, 2)}x` : 'n/a',
          row.perPair.map((ratio) => fmt(ratio, 2)).join(', ') || '-',
          Number.isFinite(row.ratio) ? (row.ratio >= CLUSTER_GOAL_RATIO ? 'met' : '**not met**') : 'not measured',
        ]),
      ),
      '',
      results.clusterBaseline
        ? 'After the main pass, pairs of passes back to back, our gateway only: the cluster then one node, then one ' +
            'node then the cluster, and so on (BENCH_ROUNDS pairs), each a fresh backend and gateway on the same ' +
            'databases, later PAID orders for the subscriptions. The ratio is taken within each pair, so that the ' +
            "machine's drift over the run (it moves these figures by tens of per cent here) falls on both sides of " +
            'it; the median of the pairs is the result, and the one-node and cluster figures are medians of their ' +
            "passes. The cluster is the bench's own on this machine: its six redis-server processes share the cores " +
            'with everything else, and its persistence is in the Redis line above.'
        : 'One node first (with the peers, in rounds), then the cluster: a fresh backend and gateway on it, the same ' +
            "databases, later PAID orders for the subscriptions. The cluster is the bench's own on this machine: its " +
            'six redis-server processes share the cores with everything else, and its persistence is in the Redis line above.',
      '',
    );
  }

  const problems = [
    ...results.errors,
    ...runProblems(results),
    ...(cluster ? runProblems(cluster).map((problem) => `on the cluster: ${problem}`) : []),
    ...(paired ? runProblems(paired).map((problem) => `on one node, paired with the cluster: ${problem}`) : []),
  ];
  out.push('## Errors', '', problems.length === 0 ? 'None: every run answered 2xx without GraphQL errors.' : '');
  for (const problem of problems) out.push(`- ${problem.replace(/\n/g, ' ')}`);
  out.push('', '## How it was measured', '');
  for (const note of results.notes) out.push(`- ${note}`);
  out.push('');
  return out.join('\n');
}
