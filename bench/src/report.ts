import { targetLabels, targetNames } from './config.js';
import { isValid, NOISY_CPU, pairedRatio, summarize, type BenchResults } from './results.js';
import type { HttpWorkload } from './workloads.js';

const httpWorkloads: HttpWorkload[] = ['one-subgraph', 'federated', 'mutations'];

const fmt = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');
const mib = (bytes: number) => (bytes > 0 ? (bytes / 1024 / 1024).toFixed(0) : 'n/a');
const kib = (bytes: number) => (Number.isFinite(bytes) ? (bytes / 1024).toFixed(1) : 'n/a');
const table = (head: string[], rows: string[][]) =>
  [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');

export interface Goal {
  goal: string;
  measured: string;
  met: boolean | undefined;
}

export function goals(results: BenchResults): Goal[] {
  const list: Goal[] = [];
  const rps = (r: { rps: number }) => r.rps;
  const p99 = (r: { latencyMs: { p99: number } }) => r.latencyMs.p99;
  for (const [peer, factor] of [
    ['hive', 1.5],
    ['apollo', 3],
  ] as const) {
    const throughput = pairedRatio(results, 'federated', peer, rps);
    const latency = pairedRatio(results, 'federated', peer, p99);
    const measured = Number.isFinite(throughput.median);
    list.push({
      goal: `federated: ours >= ${factor}x ${targetLabels[peer]} in requests/s, p99 no worse`,
      measured: measured
        ? `${fmt(throughput.median, 2)}x requests/s (rounds: ${throughput.perRound.map((r) => fmt(r, 2)).join(', ')}); ` +
          `p99 ours/${peer} ${fmt(latency.median, 2)}x`
        : 'not measured',
      met: measured ? throughput.median >= factor && latency.median <= 1 : undefined,
    });
  }
  const ceiling = pairedRatio(results, 'one-subgraph', 'direct', rps);
  list.push({
    goal: 'one-subgraph: ours >= 0.7x the meals subgraph direct (requests/s)',
    measured: Number.isFinite(ceiling.median)
      ? `${fmt(ceiling.median, 2)}x (rounds: ${ceiling.perRound.map((r) => fmt(r, 2)).join(', ')})`
      : 'not measured',
    met: Number.isFinite(ceiling.median) ? ceiling.median >= 0.7 : undefined,
  });
  const big = results.subscriptions.find((run) => run.subscribers === 5_000);
  list.push({
    goal: '5,000 subscribers: 100% delivery, p99 <= 200 ms, <= 20 KiB gateway memory per idle subscriber (RSS and heap)',
    measured: big
      ? `${big.connected}/${big.subscribers} connected, ${fmt(big.deliveryRatio * 100, 2)} % of changes delivered, ` +
        `p99 ${fmt(big.latencyMs.p99)} ms, ` +
        `${kib(big.memory.rssPerSubscriber)} KiB RSS (${kib(big.memory.heapPerSubscriber)} KiB heap) per subscriber`
      : 'not measured',
    met: big
      ? big.connected === big.subscribers &&
        big.deliveryRatio === 1 &&
        big.latencyMs.p99 <= 200 &&
        big.memory.rssPerSubscriber <= 20 * 1024 &&
        big.memory.heapPerSubscriber <= 20 * 1024
      : undefined,
  });
  return list;
}

export function markdown(results: BenchResults): string {
  const out: string[] = [];
  const invalid = results.runs.filter((run) => !isValid(run));
  const subscriptionProblems = results.subscriptions.filter(
    (run) => run.connectFailed > 0 || run.changeErrors > 0 || run.errors.length > 0,
  );
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
        'of the bench used more than ${NOISY_CPU} % of a core (column "other" below) even after one repeat: ' +
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
        targetLabels[target],
        fmt(s.rps, 0),
        fmt(s.p50, 1),
        fmt(s.p99, 1),
        String(s.errors),
        `${s.validRuns}/${s.runs}`,
        target === 'direct' ? 'n/a' : fmt(s.gatewayCpu, 0),
        target === 'direct' ? 'n/a' : mib(s.gatewayPeakRss),
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
      `${m.cores} cores, shared by the gateway, the four subgraphs, the three workers, Postgres, Redis and the load client. ` +
      '"ours / this" is ours divided by that target, round by round, then the median.',
    '',
  );

  out.push('## Where the CPU went (median % of one core during the measured window)', '');
  const groups = ['gateway', 'users', 'meals', 'orders', 'payments', 'workers', 'postgres', 'redis', 'client', 'bench'];
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
          'subscribers',
          'mode',
          'connected',
          'connect s',
          'changes (rate/s)',
          'changes delivered',
          'p50 ms',
          'p99 ms',
          'max ms',
          'RSS / subscriber KiB',
          'heap / subscriber KiB',
          'gateway CPU % (changes)',
          'gateway peak RSS MiB',
          'other CPU %',
        ],
        results.subscriptions.map((run) => [
          String(run.subscribers),
          run.mode,
          `${run.connected}/${run.subscribers}${run.mode === 'order' ? ' (each got its first result)' : ''}`,
          fmt(run.connectSeconds),
          `${run.changes} (${fmt(run.changeRate, 0)})`,
          `${run.delivered}/${run.expected} (${fmt(run.deliveryRatio * 100, 2)} %)`,
          fmt(run.latencyMs.p50),
          fmt(run.latencyMs.p99),
          fmt(run.latencyMs.max),
          kib(run.memory.rssPerSubscriber),
          kib(run.memory.heapPerSubscriber),
          fmt(run.gatewayCpu, 0),
          mib(run.gatewayPeakRss),
          fmt(run.cpu.other ?? NaN, 0),
        ]),
      ),
      '',
      "Latency: from the `changeOrderStatus` response (as staff, through the gateway) to the subscriber's receipt of " +
        'that change, both clocks of this machine; it includes the orders outbox relay, Redis and the gateway ' +
        "resolving the federated selection per subscriber. Memory per subscriber: the gateway's " +
        '`process_resident_memory_bytes` / `nodejs_heap_size_used_bytes` (lowest of six readings over 2.5 s, after 5 s idle) with the ' +
        'subscribers connected and idle, minus the same before they connected, divided by the subscribers.',
      '',
    );
  }

  const problems = [
    ...results.errors,
    ...invalid.map((run) => `${run.workload} on ${run.target}, round ${run.round}: ${run.problems.join('; ')}`),
    ...results.runs.flatMap((run) =>
      (run.result?.sampleErrors ?? [])
        .slice(0, 2)
        .map((sample) => `${run.workload}/${run.target}/${run.round} sample: ${sample}`),
    ),
    ...subscriptionProblems.map(
      (run) =>
        `subscriptions ${run.subscribers}: ${run.connectFailed} failed to connect, ${run.changeErrors} change errors; ` +
        run.errors.join('; '),
    ),
  ];
  out.push('## Errors', '', problems.length === 0 ? 'None: every run answered 2xx without GraphQL errors.' : '');
  for (const problem of problems) out.push(`- ${problem.replace(/\n/g, ' ')}`);
  out.push('', '## How it was measured', '');
  for (const note of results.notes) out.push(`- ${note}`);
  out.push('');
  return out.join('\n');
}
