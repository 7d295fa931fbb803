import { buildSchema } from '../graphql-js.js';
import { composeSubgraphs, CompositionError, describeProblem, type CompositionProblem } from '../compose/compose.js';
import { applyAllowList, classifyChanges, type AllowList, type SchemaChange } from './changes.js';
import { lintSchemas, type LintProblem } from './lint.js';
import {
  coordinatesOf,
  operationsAffectedBy,
  readOperations,
  validateOperations,
  type OperationProblem,
} from './operations.js';

export interface SchemaCheckInput {
  /** Each subgraph's SDL and the file it came from (for lint locations). */
  subgraphs: { name: string; path: string; sdl: string }[];
  /** The API schema to compare with (the base branch's, or a given file), and where it came from. */
  base?: { source: string; sdl: string };
  /** Where the frontend's operations live (`.graphql` files). */
  operationsDirectory: string;
  allowList: AllowList;
}

export interface SchemaCheckReport {
  ok: boolean;
  composition: { errors: CompositionProblem[]; hints: CompositionProblem[] };
  /** Where the base schema came from, or why there is none. */
  base: string;
  changes: (SchemaChange & { operations: string[] })[];
  /** Allow-list entries that match no change: stale, to be removed. */
  unusedAllowListEntries: AllowList;
  operations: { checked: number; problems: OperationProblem[] };
  lint: LintProblem[];
}

/**
 * The schema check a pull request must pass: the subgraphs compose (no error, no warning hint); the
 * new API schema's changes against the base are classified and none is breaking unless allowed;
 * every operation of the frontend is valid against the new schema; the subgraph schemas keep the
 * conventions. The report names subgraphs, coordinates and operations.
 */
export async function runSchemaCheck(input: SchemaCheckInput): Promise<SchemaCheckReport> {
  const report: SchemaCheckReport = {
    ok: false,
    composition: { errors: [], hints: [] },
    base: input.base?.source ?? 'none',
    changes: [],
    unusedAllowListEntries: [],
    operations: { checked: 0, problems: [] },
    lint: [],
  };
  let apiSchemaSdl: string;
  try {
    const composed = composeSubgraphs(input.subgraphs);
    apiSchemaSdl = composed.apiSchemaSdl;
    report.composition.hints = composed.hints;
  } catch (error) {
    if (!(error instanceof CompositionError)) throw error;
    report.composition.errors = error.problems;
    return report; // nothing else can be checked without a supergraph
  }

  const { operations, problems } = readOperations(input.operationsDirectory);
  report.operations.checked = operations.length;
  report.operations.problems = [...problems, ...validateOperations(buildSchema(apiSchemaSdl), operations)];

  if (input.base) {
    const changes = await classifyChanges(input.base.sdl, apiSchemaSdl);
    report.unusedAllowListEntries = applyAllowList(changes, input.allowList);
    const baseSchema = buildSchema(input.base.sdl);
    const usage = new Map(operations.map((operation) => [operation.name, coordinatesOf(baseSchema, operation)]));
    report.changes = changes.map((change) => ({ ...change, operations: operationsAffectedBy(change, usage) }));
  }

  report.lint = await lintSchemas(
    input.subgraphs.map(({ path, sdl }) => ({ path, sdl })),
    apiSchemaSdl,
  );
  report.ok =
    report.composition.hints.length === 0 &&
    report.changes.every((change) => change.criticality !== 'breaking' || change.allowedBecause) &&
    report.operations.problems.length === 0 &&
    report.lint.length === 0;
  return report;
}

/** The report for a human: failures first, each naming where to look. */
export function formatReport(report: SchemaCheckReport): string {
  const lines: string[] = [];
  const section = (title: string, items: string[]) => {
    if (items.length > 0) lines.push(title, ...items.map((item) => `  ${item}`), '');
  };
  section('Composition errors:', report.composition.errors.map(describeProblem));
  section('Composition hints that need a change:', report.composition.hints.map(describeProblem));
  const breaking = report.changes.filter((change) => change.criticality === 'breaking');
  section(
    'Breaking changes:',
    breaking.map(
      (change) =>
        `${change.allowedBecause ? 'allowed' : 'NOT ALLOWED'}  ${change.path ?? ''}  ${change.message}` +
        (change.operations.length ? `  (breaks operations: ${change.operations.join(', ')})` : '') +
        (change.allowedBecause ? `  reason: ${change.allowedBecause}` : ''),
    ),
  );
  section(
    'Dangerous changes (they pass; check clients):',
    report.changes
      .filter((change) => change.criticality === 'dangerous')
      .map((change) => `${change.path ?? ''}  ${change.message}`),
  );
  section(
    'Safe changes:',
    report.changes
      .filter((change) => change.criticality === 'safe')
      .map((change) => `${change.path ?? ''}  ${change.message}`),
  );
  section(
    'Operations that no longer validate:',
    report.operations.problems.map(
      (problem) => `${problem.operation} (operations/${problem.file}): ${problem.message}`,
    ),
  );
  section(
    'Schema conventions:',
    report.lint.map((problem) => `${problem.file}:${problem.line}  ${problem.message}  [${problem.rule}]`),
  );
  section(
    'Allow-list entries that match no change (remove them):',
    report.unusedAllowListEntries.map((entry) => `${entry.path}${entry.type ? ` ${entry.type}` : ''}`),
  );
  lines.push(
    `Compared with: ${report.base}. ${report.changes.length} change(s), ${breaking.length} breaking; ` +
      `${report.operations.checked} operation(s) checked.`,
    report.ok ? 'schema check passed' : 'schema check FAILED',
  );
  return lines.join('\n');
}
