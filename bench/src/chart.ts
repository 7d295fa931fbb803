import { targetLabels, targetNames, type TargetName } from './config.js';
import { summarize, type BenchResults, type Summary } from './results.js';
import type { HttpWorkload } from './workloads.js';

const workloads: HttpWorkload[] = ['one-subgraph', 'federated', 'federated-cold', 'gateway-overhead', 'mutations'];
const colors: Record<TargetName, string> = {
  ours: '#2f6fdf',
  base: '#9bb8ef',
  hive: '#e8a33d',
  'hive-router': '#b5651d',
  apollo: '#8a8f98',
  direct: '#3aa876',
  ceiling: '#5fc9a0',
};

const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A niceish axis maximum: 1, 2 or 5 times a power of ten, above `value`. */
function niceMax(value: number): number {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((step) => step * power).find((candidate) => candidate >= value)!;
}

/** One small panel: a bar per target for one workload and one measure, on its own scale. */
function panel(
  x0: number,
  y0: number,
  width: number,
  height: number,
  title: string,
  value: (s: Summary) => number,
  present: Summary[],
): string {
  const parts: string[] = [];
  const max = niceMax(Math.max(0, ...present.map(value).filter(Number.isFinite)));
  const plotTop = y0 + 34;
  const plotHeight = height - 60;
  const plotLeft = x0 + 48;
  const plotWidth = width - 60;
  parts.push(
    `<text x="${x0 + width / 2}" y="${y0 + 16}" text-anchor="middle" font-weight="bold">${escape(title)}</text>`,
  );
  for (let i = 0; i <= 4; i++) {
    const y = plotTop + plotHeight - (i / 4) * plotHeight;
    parts.push(`<line x1="${plotLeft}" x2="${plotLeft + plotWidth}" y1="${y}" y2="${y}" stroke="#e3e3e3"/>`);
    parts.push(`<text x="${plotLeft - 6}" y="${y + 4}" text-anchor="end" font-size="11">${(max * i) / 4}</text>`);
  }
  const barWidth = Math.min(48, plotWidth / Math.max(1, present.length));
  const start = plotLeft + (plotWidth - barWidth * present.length) / 2;
  present.forEach((s, b) => {
    const v = value(s);
    const h = Number.isFinite(v) ? (v / max) * plotHeight : 0;
    const x = start + b * barWidth;
    const y = plotTop + plotHeight - h;
    const shown = Number.isFinite(v) ? String(Math.round(v)) : 'n/a';
    parts.push(
      `<rect x="${x + 3}" y="${y}" width="${barWidth - 6}" height="${h}" fill="${colors[s.target]}">` +
        `<title>${escape(`${title} / ${targetLabels[s.target]}: ${shown}`)}</title></rect>`,
      `<text x="${x + barWidth / 2}" y="${y - 4}" text-anchor="middle" font-size="11">${shown}</text>`,
    );
  });
  return parts.join('\n');
}

/** Requests/s (top row) and p99 latency (bottom row), median of the valid rounds, a panel per workload. */
export function svgChart(results: BenchResults): string {
  const summaries = workloads.flatMap((workload) =>
    targetNames.map((target) => summarize(results, workload, target)).filter((s): s is Summary => s !== undefined),
  );
  const shown = workloads.filter((workload) => summaries.some((s) => s.workload === workload));
  const width = 1200;
  const panelWidth = width / Math.max(1, shown.length);
  const panelHeight = 220;
  const height = 30 + 2 * panelHeight + 30;
  const present = targetNames.filter((target) => summaries.some((s) => s.target === target));
  const legend = present
    .map(
      (target, i) =>
        `<rect x="${20 + i * 165}" y="${height - 22}" width="12" height="12" fill="${colors[target]}"/>` +
        `<text x="${38 + i * 165}" y="${height - 12}" font-size="12">${escape(targetLabels[target])}</text>`,
    )
    .join('\n');
  const panels = shown.flatMap((workload, i) => {
    const mine = summaries.filter((s) => s.workload === workload);
    return [
      panel(i * panelWidth, 30, panelWidth, panelHeight, `${workload}: requests/s`, (s) => s.rps, mine),
      panel(i * panelWidth, 30 + panelHeight, panelWidth, panelHeight, `${workload}: p99 ms`, (s) => s.p99, mine),
    ];
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="10" y="18" font-size="13">${escape(`Gateway benchmark ${results.date}: median of the valid rounds (higher requests/s and lower p99 are better)`)}</text>`,
    ...panels,
    legend,
    '</svg>',
    '',
  ].join('\n');
}
