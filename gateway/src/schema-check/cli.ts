import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { readSupergraphConfig } from '../compose/compose.js';
import { readAllowList } from './changes.js';
import { formatReport, runSchemaCheck } from './check.js';

/**
 * `pnpm schema:check [--base <git ref> | --against <file>] [--report <file>]`
 * Compares with the API schema committed on the base branch (default: $SCHEMA_CHECK_BASE, else
 * origin/main, else main), prints the report and writes it as JSON; exits 1 when the check fails.
 */
const root = fileURLToPath(new URL('../../../', import.meta.url));
const { values } = parseArgs({
  options: {
    base: { type: 'string' },
    against: { type: 'string' },
    report: { type: 'string', default: 'schema-check-report.json' },
  },
});

const apiSchemaFile = 'gateway/api-schema.graphql';
const git = (...args: string[]) =>
  execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });

function baseSchema(): { source: string; sdl: string } | undefined {
  if (values.against) return { source: values.against, sdl: readFileSync(values.against, 'utf8') };
  const candidates = values.base
    ? [values.base]
    : [process.env.SCHEMA_CHECK_BASE, 'origin/main', 'main'].filter(Boolean);
  for (const ref of candidates as string[]) {
    try {
      return { source: `${apiSchemaFile} at ${ref}`, sdl: git('show', `${ref}:${apiSchemaFile}`) };
    } catch {
      // try the next ref
    }
  }
  return undefined;
}

const report = await runSchemaCheck({
  subgraphs: readSupergraphConfig().map(({ name, file }) => ({
    name,
    path: file,
    sdl: readFileSync(`${root}${file}`, 'utf8'),
  })),
  base: baseSchema(),
  operationsDirectory: `${root}operations/src`,
  allowList: readAllowList(`${root}gateway/allowed-breaking-changes.json`),
});
writeFileSync(values.report, `${JSON.stringify(report, null, 2)}\n`);
console.log(formatReport(report));
console.log(`report: ${relative(process.cwd(), values.report) || values.report}`);
process.exit(report.ok ? 0 : 1);
