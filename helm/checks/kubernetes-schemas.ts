import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

// Rendered manifests checked offline against the Kubernetes API, with the kubernetes-models packages
// (generated from the API's OpenAPI spec): kubernetes-models for the built-in kinds,
// @kubernetes-models/prometheus-operator for ServiceMonitor and PrometheusRule. Two checks:
//
// 1. Each model's own validate(): the JSON schema of its kind (types, required fields, enums and
//    formats), compiled by ajv into the package.
// 2. Unknown fields. Those schemas, like the OpenAPI spec they come from, do not forbid fields they
//    do not define (no `additionalProperties: false`: a misspelt field passes them), and the package
//    ships them compiled, so ajv cannot be handed them again in a strict mode. The package's
//    TypeScript declarations, generated from the same spec, list every field of every object
//    exactly: each manifest's shape is type-checked as an object literal of its kind's interface, and
//    TypeScript's excess-property check rejects a field the API does not define, at any depth.

/**
 * The Kubernetes version the installed kubernetes-models models, and so the `--kube-version` the
 * chart is rendered for. kubernetes-models 4.5 models the 1.33.0 API (its changelog: "Update schema
 * version to v1.33.0"); 5.x models 1.36 but requires Node 22, and this repository runs on Node 20.
 * Chart.yaml's kubeVersion (>=1.29.0-0) admits it.
 */
export const MODELLED_KUBE_VERSION = '1.33.0';
const MODELS_RELEASE = '4.5';

// kubernetes-models first: it is the one whose release says which Kubernetes is modelled.
const MODEL_PACKAGES = ['kubernetes-models', '@kubernetes-models/prometheus-operator'];
const require = createRequire(import.meta.url);
const checksDir = fileURLToPath(new URL('./', import.meta.url));

export interface Manifest {
  apiVersion?: unknown;
  kind?: unknown;
  metadata?: { name?: unknown };
  [field: string]: unknown;
}

type Path = (string | number)[];

/** `spec.template.spec.containers[0].image`, `metadata.labels["app.kubernetes.io/name"]`. */
export function formatPath(path: Path): string {
  return path
    .map((part, i) =>
      typeof part === 'number'
        ? `[${part}]`
        : /^[A-Za-z_$][\w$]*$/.test(part)
          ? `${i ? '.' : ''}${part}`
          : `[${JSON.stringify(part)}]`,
    )
    .join('');
}

const identify = (m: Manifest) => `${String(m.kind)}/${String(m.metadata?.name)}`;

/** The module of kubernetes-models (or a CRD package of the family) that models apiVersion/kind. */
function modelModule(m: Manifest): string | undefined {
  if (typeof m.apiVersion !== 'string' || typeof m.kind !== 'string') return undefined;
  const [group, version] = m.apiVersion.includes('/') ? m.apiVersion.split('/') : ['', m.apiVersion];
  for (const pkg of MODEL_PACKAGES) {
    const specifier = `${pkg}/${group ? `${group}/` : ''}${version}/${m.kind}`;
    try {
      require.resolve(specifier);
      return specifier;
    } catch {
      // Not modelled by this package; try the next.
    }
  }
  return undefined;
}

/** Fails, saying how to fix it, when a model package is missing or models another Kubernetes. */
function assertModelsInstalled(): void {
  const versions = MODEL_PACKAGES.map((pkg) => {
    try {
      return JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')).version as string;
    } catch {
      throw new Error(
        `${pkg} (Kubernetes API schemas of the chart checks) is not installed: run npx -y pnpm@10.34.8 install`,
      );
    }
  });
  if (!versions[0]!.startsWith(`${MODELS_RELEASE}.`)) {
    throw new Error(
      `kubernetes-models is ${versions[0]}, but MODELLED_KUBE_VERSION (${MODELLED_KUBE_VERSION}) is the API of ` +
        `${MODELS_RELEASE}.x: set both to what ${versions[0]} models (see its changelog)`,
    );
  }
}

interface ModelClass {
  new (data: unknown): { validate(): void };
}
interface AjvError {
  instancePath: string;
  message?: string;
  params?: { allowedValues?: unknown[] };
}

/** Check 1: the model's JSON schema. */
async function modelErrors(m: Manifest, specifier: string): Promise<string[]> {
  const module = (await import(specifier)) as Record<string, ModelClass>;
  const Model = module[String(m.kind)];
  if (!Model) return [`${specifier} exports no ${String(m.kind)}`];
  try {
    new Model(m).validate();
    return [];
  } catch (error) {
    const errors = (error as { errors?: AjvError[] }).errors;
    if (!errors?.length) return [(error as Error).message];
    return errors.map((e) => {
      const path = e.instancePath
        .split('/')
        .slice(1)
        .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
        .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
      const allowed = e.params?.allowedValues
        ? ` (${e.params.allowedValues.map((v) => JSON.stringify(v)).join(', ')})`
        : '';
      return `${formatPath(path) || '(the manifest)'}: ${e.message}${allowed}`;
    });
  }
}

interface SourceLine {
  text: string;
  manifest?: number;
  path?: Path;
}

/**
 * JSON.stringify(value, null, 2)'s layout, each line knowing the manifest and path it shows. Every
 * scalar is written as null (assignable to any field with strictNullChecks off): the values are check
 * 1's concern; this one sees only which fields there are.
 */
function shapeLines(
  value: unknown,
  path: Path,
  lead: string,
  trail: string,
  indent: string,
  out: SourceLine[],
  manifest: number,
) {
  const line = (text: string) => out.push({ text: indent + text, manifest, path });
  if (value === null || typeof value !== 'object') return line(`${lead}null${trail}`);
  const entries: [string | number, unknown][] = Array.isArray(value)
    ? value.map((v, i) => [i, v])
    : Object.entries(value);
  const [open, close] = Array.isArray(value) ? ['[', ']'] : ['{', '}'];
  if (!entries.length) return line(`${lead}${open}${close}${trail}`);
  line(`${lead}${open}`);
  entries.forEach(([key, v], i) => {
    const keyText = typeof key === 'number' ? '' : `${/^[A-Za-z_$][\w$]*$/.test(key) ? key : JSON.stringify(key)}: `;
    shapeLines(v, [...path, key], keyText, i < entries.length - 1 ? ',' : '', `${indent}  `, out, manifest);
  });
  line(`${close}${trail}`);
}

/** TypeScript's codes for "Object literal may only specify known properties, and 'x' does not exist in type 'T'". */
const UNKNOWN_FIELD_CODES = new Set([2353, 2561]);

interface Diagnostic {
  /** Undefined for a diagnostic that is not on a manifest's line: a fault of the check itself. */
  manifest?: number;
  path?: Path;
  unknownField: boolean;
  message: string;
}

/** One type-check of the manifests as object literals of their kinds' interfaces. */
function typeCheck(manifests: { manifest: Manifest; specifier: string }[]): Diagnostic[] {
  const lines: SourceLine[] = manifests.map(({ manifest, specifier }, i) => ({
    text: `import type { I${String(manifest.kind)} as Kind${i} } from ${JSON.stringify(specifier)};`,
  }));
  manifests.forEach(({ manifest }, i) =>
    shapeLines(manifest, [], `export const manifest${i}: Kind${i} = `, ';', '', lines, i),
  );

  // A file that is never written: it sits in this folder so that the imports resolve from here.
  const fileName = `${checksDir}rendered-manifests.generated.ts`;
  const source = lines.map((l) => l.text).join('\n');
  const options: ts.CompilerOptions = {
    strict: true,
    // Off: every scalar is written as null (see shapeLines), and the API reads null as "not set".
    strictNullChecks: false,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2022.d.ts'],
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists } = host;
  host.fileExists = (name) => name === fileName || fileExists.call(host, name);
  host.getSourceFile = (name, languageVersion, ...rest) =>
    name === fileName
      ? ts.createSourceFile(name, source, languageVersion)
      : getSourceFile.call(host, name, languageVersion, ...rest);
  return ts.getPreEmitDiagnostics(ts.createProgram([fileName], options, host)).map((diagnostic) => {
    const at =
      diagnostic.file?.fileName === fileName && diagnostic.start !== undefined
        ? lines[diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start).line]
        : undefined;
    return {
      manifest: at?.manifest,
      path: at?.path,
      unknownField: UNKNOWN_FIELD_CODES.has(diagnostic.code),
      message: ts.flattenDiagnosticMessageText(diagnostic.messageText, ' '),
    };
  });
}

/**
 * "unknown field (not in IContainer; did you mean 'resources'?)" from TypeScript's message, without
 * the inline type it spells out in full for a CRD's nested objects.
 */
function unknownFieldMessage(message: string): string {
  const type = message.match(/does not exist in type '([\w.]+)'/)?.[1];
  const suggestion = message.match(/Did you mean to write '([^']+)'\?/)?.[1];
  const notes = [type && `not in ${type}`, suggestion && `did you mean '${suggestion}'?`].filter(Boolean);
  return `unknown field${notes.length ? ` (${notes.join('; ')})` : ''}`;
}

/**
 * Check 2: fields the API does not define. TypeScript reports one unknown field of an object literal
 * (not every one), so each pass removes the fields it reported and checks again, until a pass
 * reports no new one: every unknown field is named in one run.
 */
function unknownFields(manifests: { manifest: Manifest; specifier: string }[]): Map<number, string[]> {
  const remaining = manifests.map((m) => ({ ...m, manifest: structuredClone(m.manifest) }));
  const problems = new Map<number, Set<string>>();
  const report = (i: number, problem: string) => problems.set(i, (problems.get(i) ?? new Set()).add(problem));
  // Each pass that reports an unknown field removes it, so the passes end.
  for (let removed = true; removed;) {
    removed = false;
    for (const d of typeCheck(remaining)) {
      if (d.manifest === undefined) {
        // An import that does not resolve, a bad compiler option: fail every manifest, pass none.
        remaining.forEach((_, i) => report(i, `(the check): ${d.message}`));
        continue;
      }
      const message = d.unknownField ? unknownFieldMessage(d.message) : d.message;
      report(d.manifest, `${formatPath(d.path ?? []) || '(the manifest)'}: ${message}`);
      if (d.unknownField && d.path?.length) {
        type Node = Record<string | number, unknown>;
        const parent = d.path
          .slice(0, -1)
          .reduce((node, key) => node[key] as Node, remaining[d.manifest]!.manifest as Node);
        delete parent[d.path.at(-1)!];
        removed = true;
      }
    }
  }
  return new Map([...problems].map(([i, set]) => [i, [...set]]));
}

/**
 * Every problem the Kubernetes API schemas find in the manifests, one line each:
 * `Deployment/food-gateway: spec.template.spec.containers[0].imagePullPolicy: must be equal to ...`.
 * A manifest of a kind no package models is a problem too (it cannot be checked).
 */
export async function schemaProblems(manifests: Manifest[]): Promise<string[]> {
  assertModelsInstalled();
  const problems: string[] = [];
  const modelled: { manifest: Manifest; specifier: string }[] = [];
  for (const manifest of manifests) {
    const specifier = modelModule(manifest);
    if (!specifier) {
      problems.push(`${identify(manifest)}: no schema for ${String(manifest.apiVersion)} ${String(manifest.kind)}`);
      continue;
    }
    modelled.push({ manifest, specifier });
    for (const error of await modelErrors(manifest, specifier)) problems.push(`${identify(manifest)}: ${error}`);
  }
  for (const [i, errors] of unknownFields(modelled)) {
    for (const error of errors) problems.push(`${identify(modelled[i]!.manifest)}: ${error}`);
  }
  return problems;
}
