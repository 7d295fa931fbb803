import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { GatewayConfigSchema, loadGatewayConfig, readSupergraphConfig } from '@food/gateway';
import { loadMealsConfig, MealsConfigSchema } from '@food/meals-subgraph';
import { loadOrdersConfig, OrdersConfigSchema } from '@food/orders-subgraph';
import { loadPaymentsConfig, PaymentsConfigSchema } from '@food/payments-subgraph';
import { generateSigningJwk, OPERATIONS_PATHS } from '@food/platform';
import { databaseServices } from '@food/prisma';
import { loadUsersConfig, UsersConfigSchema } from '@food/users-subgraph';
import { readBake } from './bake.js';
import { MODELLED_KUBE_VERSION, schemaProblems } from './kubernetes-schemas.js';
import { chartDir, fixturesDir, lint, NAMESPACE, removeScratch, render, repoRoot, valuesFile } from './render.js';

// The chart's checks: the real helm lints it (--strict) and renders it (`helm template`) for the
// defaults, everything switched on and production; every manifest is validated against the
// Kubernetes API schemas, and checked against the kinds' rules and against the code it deploys: the
// services' own config schemas, their probe paths, the images docker-bake.hcl builds from the
// Dockerfile, and the metrics.

type Manifest = any;
type Env = Record<string, string>;

const chartValues = parse(readFileSync(join(chartDir, 'values.yaml'), 'utf8'));
const productionValues = parse(readFileSync(join(chartDir, 'values-production.yaml'), 'utf8'));

/** The least a default install needs: every secret, database and Redis, inline. */
const minimalValuesFile = join(fixturesDir, 'minimal-values.yaml');
const minimalValues = parse(readFileSync(minimalValuesFile, 'utf8'));

/** Everything switched on, secrets inline (production uses existingSecret references). */
const fullValues = {
  ...minimalValues,
  tracing: { otlpEndpoint: 'http://otel-collector:4318' },
  gateway: {
    persistedQueriesManifest: JSON.stringify({ format: 'apollo-persisted-query-manifest', version: 1, operations: [] }),
    env: { RATE_LIMIT_USER_QUERIES: 300, CORS_ORIGINS: 'https://app.example', TRUST_PROXY: '1' },
  },
  ordersWorker: { env: { ORDERS_UNPAID_TIMEOUT_SECONDS: 600 } },
  ingress: { enabled: true, host: 'api.example.test', certManager: { clusterIssuer: 'letsencrypt' } },
  monitoring: {
    serviceMonitor: { enabled: true },
    prometheusRule: { enabled: true },
    grafanaDashboard: { enabled: true },
  },
};

/** A Redis Cluster instead of one node: seeds, an inline password, TLS with a CA from a Secret, partitions. */
const CLUSTER_PASSWORD = 'cluster-password-of-the-chart-checks';
const clusterRedis = {
  cluster: {
    nodes: ['redis-0.redis.food.svc:6379', 'redis-1.redis.food.svc:6379', 'redis-2.redis.food.svc'],
    password: CLUSTER_PASSWORD,
    tls: true,
  },
  tlsCa: { secretName: 'redis-ca' },
  streamPartitions: 16,
  publishReplicas: 1,
};
/** Everything switched on, on a Redis Cluster. */
const clusterValues = { ...fullValues, redis: clusterRedis };

const scenarios = {
  defaults: () => ['-f', minimalValuesFile],
  everything: () => ['-f', valuesFile(fullValues)],
  production: () => ['-f', join(chartDir, 'values-production.yaml')],
  cluster: () => ['-f', valuesFile(clusterValues)],
};
const scenarioValues = {
  defaults: merge(chartValues, minimalValues),
  everything: merge(chartValues, fullValues),
  production: merge(chartValues, productionValues),
  cluster: merge(chartValues, clusterValues),
};

/** The components that talk to Redis; each gets the same Redis environment. */
const REDIS_USERS = ['gateway', 'users', 'users-worker', 'meals-worker', 'orders-worker', 'payments-worker'];
/**
 * Variables the chart sets for settings other branches of issue 14 add to the services (partitioned
 * streams, replica-confirmed publishing): accepted while the services' schemas do not know them yet.
 * Remove a name here once its service schema reads it.
 */
/** What each component runs: its config loader and schema, and the variable naming its port. */
const components = {
  gateway: { load: loadGatewayConfig, schema: GatewayConfigSchema, portVar: 'GATEWAY_PORT', kind: 'graphql' },
  users: { load: loadUsersConfig, schema: UsersConfigSchema, portVar: 'USERS_PORT', kind: 'graphql' },
  meals: { load: loadMealsConfig, schema: MealsConfigSchema, portVar: 'MEALS_PORT', kind: 'graphql' },
  orders: { load: loadOrdersConfig, schema: OrdersConfigSchema, portVar: 'ORDERS_PORT', kind: 'graphql' },
  payments: { load: loadPaymentsConfig, schema: PaymentsConfigSchema, portVar: 'PAYMENTS_PORT', kind: 'graphql' },
  'users-worker': {
    load: loadUsersConfig,
    schema: UsersConfigSchema,
    portVar: 'USERS_WORKER_PORT',
    kind: 'worker',
  },
  'meals-worker': {
    load: loadMealsConfig,
    schema: MealsConfigSchema,
    portVar: 'MEALS_WORKER_PORT',
    kind: 'worker',
  },
  'orders-worker': {
    load: loadOrdersConfig,
    schema: OrdersConfigSchema,
    portVar: 'ORDERS_WORKER_PORT',
    kind: 'worker',
  },
  'payments-worker': {
    load: loadPaymentsConfig,
    schema: PaymentsConfigSchema,
    portVar: 'PAYMENTS_WORKER_PORT',
    kind: 'worker',
  },
} as const;
type Component = keyof typeof components;

/** The package each component's image is built from, and the chart's values key of that image. */
const imageOf: Record<Component | 'migrations', { image: string; packageDir: string }> = {
  gateway: { image: 'gateway', packageDir: 'gateway' },
  users: { image: 'users', packageDir: 'subgraphs/users' },
  meals: { image: 'meals', packageDir: 'subgraphs/meals' },
  orders: { image: 'orders', packageDir: 'subgraphs/orders' },
  payments: { image: 'payments', packageDir: 'subgraphs/payments' },
  'users-worker': { image: 'users', packageDir: 'subgraphs/users' },
  'meals-worker': { image: 'meals', packageDir: 'subgraphs/meals' },
  'orders-worker': { image: 'orders', packageDir: 'subgraphs/orders' },
  'payments-worker': { image: 'payments', packageDir: 'subgraphs/payments' },
  migrations: { image: 'migrations', packageDir: 'prisma' },
};

/** The metrics the services export (the contract the dashboard and alerts are written against). */
const METRICS: Record<string, Record<string, string[] | null>> = {
  graphql_requests_total: {
    server: ['gateway', 'users', 'meals', 'orders', 'payments'],
    operation: null,
    outcome: ['ok', 'client_error', 'server_error'],
  },
  graphql_request_duration_seconds: {
    server: ['gateway', 'users', 'meals', 'orders', 'payments'],
    operation: null,
    outcome: ['ok', 'client_error', 'server_error'],
  },
  gateway_subgraph_fetch_duration_seconds: {
    subgraph: ['users', 'meals', 'orders', 'payments'],
    outcome: ['ok', 'error', 'timeout', 'unavailable'],
  },
  gateway_active_subscriptions: {},
  gateway_websocket_connections: {},
  gateway_http_subscription_streams: {},
  gateway_entity_cache_hits_total: { type: null },
  gateway_entity_cache_misses_total: { type: null },
  gateway_rate_limited_total: { scope: null, operation: null },
  gateway_operations_refused_total: { reason: null },
  events_published_total: { stream: null, type: null },
  events_consumed_total: { stream: null, group: null, outcome: ['ok', 'retry', 'dead_letter'] },
  outbox_pending_events: { outbox: ['meals', 'orders', 'payments'] },
  outbox_lag_seconds: { outbox: ['meals', 'orders', 'payments'] },
  db_replica_lag_seconds: { database: ['users', 'meals', 'orders', 'payments'], replica: null },
  db_replica_up: { database: ['users', 'meals', 'orders', 'payments'], replica: null },
  job_queue_depth: { queue: null },
  job_queue_failed_jobs: { queue: null },
  jobs_processed_total: { queue: null, job: null, outcome: ['ok', 'failed'] },
};
/** prom-client's collectDefaultMetrics, and Prometheus' own series. */
const NODE_METRICS = [
  'process_cpu_seconds_total',
  'process_resident_memory_bytes',
  'nodejs_eventloop_lag_p99_seconds',
  'nodejs_heap_size_used_bytes',
];
/** Labels Prometheus (with the Operator's ServiceMonitor) puts on every target's series. */
const TARGET_LABELS = ['namespace', 'service', 'job', 'pod', 'container', 'endpoint', 'instance', 'le'];

function merge(base: any, override: any): any {
  if (override === null || typeof override !== 'object' || Array.isArray(override)) return override;
  const out = { ...(base ?? {}) };
  for (const [key, value] of Object.entries(override)) {
    out[key] =
      value && typeof value === 'object' && !Array.isArray(value) && typeof out[key] === 'object'
        ? merge(out[key], value)
        : value;
  }
  return out;
}

function parseManifests(stdout: string): Manifest[] {
  return parseAllDocuments(stdout)
    .filter((doc) => doc.contents !== null)
    .map((doc) => {
      expect(doc.errors, `YAML errors: ${doc.errors.join('; ')}`).toEqual([]);
      return doc.toJS();
    });
}

class Release {
  constructor(
    readonly name: keyof typeof scenarios,
    readonly manifests: Manifest[],
    readonly values: any,
  ) {}

  all(kind: string): Manifest[] {
    return this.manifests.filter((m) => m.kind === kind);
  }
  find(kind: string, name: string): Manifest | undefined {
    return this.manifests.find((m) => m.kind === kind && m.metadata.name === name);
  }
  deployment(component: string): Manifest {
    const found = this.all('Deployment').filter((d) => d.metadata.labels['app.kubernetes.io/component'] === component);
    expect(found, `one Deployment for ${component}`).toHaveLength(1);
    return found[0];
  }
  /** Secrets made outside the chart that the values name. */
  externalSecrets(): Set<string> {
    const v = this.values;
    return new Set(
      [
        v.secrets.existingSecret,
        v.redis.existingSecret.name,
        v.redis.cluster.existingSecret.name,
        ...databaseServices.map((s) => v.databases[s].existingSecret.name),
      ].filter(Boolean),
    );
  }
  /** Deployments whose pods a label selector picks. */
  selects(selector: Record<string, string>): Manifest[] {
    return this.all('Deployment').filter((d) => matches(selector, d.spec.template.metadata.labels));
  }
  /** A container's environment as the kubelet builds it (envFrom in order, then env). */
  environment(container: Manifest, owner: string): Env {
    const env: Env = {};
    for (const from of container.envFrom ?? []) {
      const cm = this.find('ConfigMap', from.configMapRef?.name);
      expect(cm, `${owner}: envFrom ConfigMap ${from.configMapRef?.name} is rendered`).toBeDefined();
      for (const [key, value] of Object.entries(cm.data ?? {})) {
        expect(typeof value, `${owner}: ConfigMap value ${key} is a string`).toBe('string');
        env[key] = value as string;
      }
    }
    for (const entry of container.env ?? []) {
      if ('value' in entry) env[entry.name] = String(entry.value);
      else if (entry.valueFrom?.secretKeyRef) env[entry.name] = this.secretValue(entry.valueFrom.secretKeyRef, owner);
      else if (entry.valueFrom?.configMapKeyRef) {
        const { name, key } = entry.valueFrom.configMapKeyRef;
        const value = this.find('ConfigMap', name)?.data?.[key];
        expect(value, `${owner}: ConfigMap ${name} has ${key}`).toBeDefined();
        env[entry.name] = value;
      } else throw new Error(`${owner}: env ${entry.name} has neither a value nor a known valueFrom`);
    }
    // A plausible value for each key read from a Secret made outside the chart.
    for (const [name, value] of Object.entries(env)) {
      if (value !== EXTERNAL) continue;
      if (name.endsWith('_DATABASE_URL')) env[name] = 'postgresql://app:secret@db.example:5432/app';
      else if (name === 'REDIS_URL') env[name] = 'rediss://redis.example:6380';
      else if (name === 'USERS_SIGNING_KEYS')
        env[name] = JSON.stringify([generateSigningJwk(env.USERS_SIGNING_ACTIVE_KEY_ID ?? 'external')]);
      else if (name === 'USERS_ENCRYPTION_KEYS')
        env[name] = `${env.USERS_ENCRYPTION_ACTIVE_KEY_ID}:${Buffer.alloc(32, 2).toString('base64')}`;
      else if (name === 'ORDERS_ENCRYPTION_KEYS')
        env[name] = `${env.ORDERS_ENCRYPTION_ACTIVE_KEY_ID}:${Buffer.alloc(32, 4).toString('base64')}`;
      else if (name === 'USERS_BLIND_INDEX_KEY') env[name] = Buffer.alloc(32, 3).toString('base64');
      else env[name] = 'a-secret-from-an-existing-secret-0123456789';
    }
    return env;
  }
  secretValue(ref: { name: string; key: string }, owner: string): string {
    const secret = this.find('Secret', ref.name);
    if (!secret) {
      expect(
        this.externalSecrets(),
        `${owner}: Secret ${ref.name} is rendered or named as an existingSecret`,
      ).toContain(ref.name);
      expect(ref.key, `${owner}: a key of ${ref.name}`).toBeTruthy();
      return EXTERNAL;
    }
    const encoded = secret.data?.[ref.key];
    expect(encoded, `${owner}: Secret ${ref.name} has the key ${ref.key}`).toBeDefined();
    return Buffer.from(encoded, 'base64').toString('utf8');
  }
}
const EXTERNAL = '\0external';

function matches(selector: Record<string, string>, labels: Record<string, string> = {}): boolean {
  return Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function hookOf(m: Manifest): { events: string[]; weight: number; deletePolicy: string } | undefined {
  const a = m.metadata.annotations ?? {};
  if (!a['helm.sh/hook']) return undefined;
  return {
    events: String(a['helm.sh/hook']).split(','),
    weight: Number(a['helm.sh/hook-weight'] ?? 0),
    deletePolicy: a['helm.sh/hook-delete-policy'] ?? '',
  };
}

// ---- Images: docker-bake.hcl's targets, each a stage of the root Dockerfile with its build args.

interface Image {
  /** The bake target. */
  target: string;
  title: string;
  tags: string[];
  packageName: string;
  packageDir: string;
  user: string;
  workdir: string;
  /** Where the deployed package lands in the image. */
  appRoot: string;
  cmd: string[];
}

const bakeFile = join(repoRoot, 'docker-bake.hcl');
const workspaceDirs = ['gateway', 'prisma', ...readdirSync(join(repoRoot, 'subgraphs')).map((d) => `subgraphs/${d}`)];
const packageDirOf = (name: string) =>
  workspaceDirs.find((dir) => JSON.parse(readFileSync(join(repoRoot, dir, 'package.json'), 'utf8')).name === name);

interface Stage {
  name: string;
  from: string;
  lines: string[];
}
const dockerfileText = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
const dockerfileLines = dockerfileText
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const globalArgs = Object.fromEntries(
  dockerfileLines
    .slice(
      0,
      dockerfileLines.findIndex((l) => l.startsWith('FROM ')),
    )
    .filter((l) => l.startsWith('ARG '))
    .map((l) => l.slice(4).split('=') as [string, string]),
);
const stages: Stage[] = dockerfileLines
  .join('\n')
  .split(/^(?=FROM )/m)
  .filter((s) => s.startsWith('FROM '))
  .map((text) => {
    const [first, ...lines] = text.trim().split('\n');
    const [, from, name] = first!.match(/^FROM (\S+)(?: AS (\S+))?$/i) ?? [];
    return { name: name ?? '', from: from!.replace(/\$\{(\w+)\}/g, (_, k) => globalArgs[k] ?? ''), lines };
  });

/** What the image of a bake target holds and runs, read from its Dockerfile stage and build args. */
function imageOfTarget(target: string, spec: Record<string, unknown>): Image {
  const where = `docker-bake.hcl target ${target}`;
  expect(spec.dockerfile ?? 'Dockerfile', where).toBe('Dockerfile');
  expect(spec.context ?? '.', where).toBe('.');
  const args = (spec.args ?? {}) as Record<string, string>;
  const stageNamed = (name: string) => {
    const stage = stages.find((s) => s.name === name);
    expect(stage, `${where}: the Dockerfile has a stage ${name}`).toBeDefined();
    return stage!;
  };
  /** The stage and the stages it is built FROM, the target's own first. */
  const chain = (stage: Stage): Stage[] => {
    const parent = stages.find((s) => s.name === stage.from);
    return parent ? [stage, ...chain(parent)] : [stage];
  };
  const image = chain(stageNamed(String(spec.target)));
  const copy = image
    .flatMap((s) => s.lines)
    .map((l) => l.match(/^COPY --from=(\S+) (\S+) (\S+)$/))
    .find(Boolean);
  expect(copy, `${where}: the image copies a deployed package`).toBeDefined();
  const [, fromStage, out, appRoot] = copy!;
  const deploy = chain(stageNamed(fromStage!));
  // Every arg the target passes is one its stages declare (a misspelt arg would be silently unused).
  const declared = (stageList: Stage[]) => stageList.flatMap((s) => s.lines).filter((l) => l.startsWith('ARG '));
  const argValues: Record<string, string> = {};
  for (const line of [...declared(deploy), ...declared(image)]) {
    const [name, value] = line.slice(4).split('=') as [string, string | undefined];
    argValues[name] = args[name] ?? value ?? '';
  }
  for (const name of Object.keys(args)) expect(Object.keys(argValues), `${where}: arg ${name}`).toContain(name);
  const expand = (text: string) => text.replace(/\$\{?(\w+)\}?/g, (_, k) => argValues[k] ?? '');
  const deployLine = deploy.flatMap((s) => s.lines).find((l) => / deploy --prod/.test(l));
  const deployed = deployLine && expand(deployLine).match(/--filter "?([^\s"]+)"? deploy --prod(?: --legacy)? (\S+)/);
  expect(deployed, `${where}: pnpm --filter <package> deploy --prod ${out}`).toBeTruthy();
  expect(deployed![2], `${where}: the image copies what pnpm deployed`).toBe(out);
  const last = (instr: string) =>
    image
      .flatMap((s) => s.lines.filter((l) => l.startsWith(`${instr} `)).reverse())
      .shift()
      ?.slice(instr.length + 1);
  return {
    target,
    title: expand(last('LABEL')?.match(/org\.opencontainers\.image\.title="([^"]+)"/)?.[1] ?? ''),
    tags: (spec.tags ?? []) as string[],
    packageName: deployed![1]!,
    packageDir: packageDirOf(deployed![1]!) ?? '',
    user: last('USER') ?? '',
    workdir: last('WORKDIR') ?? '/',
    appRoot: appRoot!,
    cmd: JSON.parse(last('CMD') ?? '[]'),
  };
}

/** The images `docker buildx bake` builds (its default group), with the chart's registry and tag. */
function bakedImages(registry: string, tag: string): Image[] {
  const bake = readBake(bakeFile, { REGISTRY: registry, ...(tag ? { TAG: tag } : {}) });
  const targets = bake.groups.default ?? [];
  expect(targets.length, 'docker-bake.hcl: the default group builds the images').toBeGreaterThan(0);
  return targets.map((t) => {
    expect(bake.targets[t], `docker-bake.hcl: the default group's target ${t}`).toBeDefined();
    return imageOfTarget(t, bake.targets[t]!);
  });
}

/** The TypeScript source a `node <script>` command runs in an image, or why it has none. */
function sourceOfCommand(image: Image, command: string[]): string {
  expect(command[0], `${image.target}: runs node`).toBe('node');
  const script = posix.resolve(image.workdir, command[1]!);
  const inPackage = posix.relative(image.appRoot, script);
  expect(inPackage.startsWith('..'), `${command[1]} is inside the deployed package`).toBe(false);
  const build = JSON.parse(readFileSync(join(repoRoot, image.packageDir, 'tsconfig.build.json'), 'utf8'));
  const { outDir, rootDir } = build.compilerOptions;
  expect(inPackage.startsWith(`${outDir}/`), `${command[1]} is in the build output ${outDir}/`).toBe(true);
  return join(image.packageDir, rootDir, inPackage.slice(outDir.length + 1).replace(/\.js$/, '.ts'));
}

// ---- PromQL: the metric names and labels an expression uses.

function promqlUses(expr: string): { metrics: Map<string, string[]>; byLabels: string[] } {
  const metrics = new Map<string, string[]>();
  for (const [, name, matchers] of expr.matchAll(/\b([a-z_:][a-z0-9_:]*)\{([^}]*)\}/g)) {
    metrics.set(name!, [...(metrics.get(name!) ?? []), matchers!]);
  }
  const byLabels = [...expr.matchAll(/\bby \(([^)]*)\)/g)].flatMap(([, l]) => l!.split(',').map((s) => s.trim()));
  return { metrics, byLabels };
}

/** Fails unless every series and label the expression reads is one the services export. */
function checkPromql(expr: string, where: string) {
  const { metrics, byLabels } = promqlUses(expr);
  expect(metrics.size, `${where}: reads some metric`).toBeGreaterThan(0);
  const labelsInExpr = new Set(TARGET_LABELS);
  for (const [series, matcherSets] of metrics) {
    const base = series.replace(/_(bucket|count|sum)$/, '');
    const known = METRICS[series] ?? METRICS[base];
    if (!known) {
      expect([...NODE_METRICS, 'up'], `${where}: ${series} is a metric the services export`).toContain(series);
      continue;
    }
    for (const label of Object.keys(known)) labelsInExpr.add(label);
    for (const matchers of matcherSets) {
      for (const [, label, op, value] of matchers.matchAll(/(\w+)\s*(=~|!=|!~|=)\s*"([^"]*)"/g)) {
        if (TARGET_LABELS.includes(label!)) continue;
        expect(Object.keys(known), `${where}: ${series} has a label ${label}`).toContain(label);
        const allowed = known[label!];
        if (allowed && !value!.includes('$')) {
          const values = op === '=~' || op === '!~' ? value!.split('|') : [value!];
          for (const v of values) expect(allowed, `${where}: ${series}{${label}} takes ${v}`).toContain(v);
        }
      }
    }
  }
  for (const label of byLabels) expect([...labelsInExpr], `${where}: grouping label ${label}`).toContain(label);
}

describe('the food-supergraph chart', () => {
  const releases = {} as Record<keyof typeof scenarios, Release>;

  beforeAll(() => {
    for (const name of Object.keys(scenarios) as (keyof typeof scenarios)[]) {
      const result = render(chartDir, scenarios[name]());
      if (result.status !== 0) throw new Error(`rendering ${name} failed: ${result.stderr}`);
      releases[name] = new Release(name, parseManifests(result.stdout), scenarioValues[name]);
    }
  }, 60_000);
  afterAll(removeScratch);

  describe('helm lint and kubeVersion', () => {
    it.each(Object.keys(scenarios) as (keyof typeof scenarios)[])('helm lint --strict passes for %s', (scenario) => {
      const result = lint(chartDir, scenarios[scenario]());
      expect(result.status, `${result.stdout}${result.stderr}`).toBe(0);
      expect(result.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    });

    it('every values file the repository ships is one of the scenarios (so it is linted, rendered and checked)', () => {
      const shipped = [
        ...readdirSync(fixturesDir)
          .filter((f) => /\.ya?ml$/.test(f))
          .map((f) => join(fixturesDir, f)),
        ...readdirSync(chartDir)
          .filter((f) => /^values-.+\.ya?ml$/.test(f))
          .map((f) => join(chartDir, f)),
      ];
      expect(shipped.length).toBeGreaterThanOrEqual(2);
      const used = Object.values(scenarios).flatMap((args) => args());
      for (const file of shipped) expect(used, file).toContain(file);
    });

    it(`Chart.yaml's kubeVersion admits the ${MODELLED_KUBE_VERSION} the schemas model, and helm refuses an older cluster`, () => {
      const chart = parse(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8'));
      expect(chart.kubeVersion).toBe('>=1.29.0-0');
      // Every scenario rendered for MODELLED_KUBE_VERSION (beforeAll); the minimum is the floor.
      expect(render(chartDir, ['-f', minimalValuesFile, '--kube-version', '1.29.0']).status).toBe(0);
      const old = render(chartDir, ['-f', minimalValuesFile, '--kube-version', '1.28.15']);
      expect(old.status).toBe(1);
      expect(old.stderr).toContain('chart requires kubeVersion: >=1.29.0-0');
    });
  });

  describe('values', () => {
    const schema = JSON.parse(readFileSync(join(chartDir, 'values.schema.json'), 'utf8'));
    const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
    const errors = () => JSON.stringify(validate.errors, null, 2);

    it('values.yaml and each scenario validate against values.schema.json', () => {
      for (const [name, values] of Object.entries({ 'values.yaml': chartValues, ...scenarioValues })) {
        expect(validate(values), `${name}: ${errors()}`).toBe(true);
      }
    });

    it('values.schema.json rejects a wrong type, an unknown key and a bad enum', () => {
      for (const bad of [
        { gateway: { replicaCount: 'two' } },
        { gateway: { replicas: 2 } },
        { logLevel: 'loud' },
        { redis: { url: 'http://redis' } },
        { secrets: { internalTokenSecret: 'too-short' } },
        { secrets: { usersSigningKeys: 'not-a-json-array' } },
        { gateway: { env: { 'lower-case': 'x' } } },
        { redis: { url: 'redis://redis:6379', cluster: { nodes: ['redis-0:6379'] } } },
        { redis: { existingSecret: { name: 'food-redis' }, cluster: { nodes: ['redis-0:6379'] } } },
        { redis: { url: 'redis://redis:6379', cluster: { tls: true } } },
        { redis: { cluster: { nodes: ['redis-0:port'] } } },
        { redis: { tlsCa: { secretName: 'ca', configMapName: 'ca' } } },
        { redis: { streamPartitions: 0 } },
      ]) {
        expect(validate(merge(chartValues, bad)), JSON.stringify(bad)).toBe(false);
      }
    });

    it('rendering without the required values fails with a message naming each one', () => {
      expect(render(chartDir).stderr).toMatch(/^Error: execution error at \(.+\): .+ is required/);
      const required: [string, string][] = [
        ['secrets.internalTokenSecret', 'secrets.internalTokenSecret is required'],
        ['secrets.usersSigningKeys', 'secrets.usersSigningKeys is required'],
        ['users.signingActiveKeyId', 'users.signingActiveKeyId is required'],
        ['secrets.usersEncryptionKeys', 'secrets.usersEncryptionKeys is required'],
        ['users.encryptionActiveKeyId', 'users.encryptionActiveKeyId is required'],
        ['secrets.usersBlindIndexKey', 'secrets.usersBlindIndexKey is required'],
        ['secrets.ordersEncryptionKeys', 'secrets.ordersEncryptionKeys is required'],
        ['orders.encryptionActiveKeyId', 'orders.encryptionActiveKeyId is required'],
        ['redis.url', 'redis.url is required'],
        ...databaseServices.map((s): [string, string] => [`databases.${s}.url`, `databases.${s}.url is required`]),
      ];
      for (const [key, message] of required) {
        const result = render(chartDir, ['-f', valuesFile(minimalValues), '--set-string', `${key}=`]);
        expect(result.status, key).toBe(1);
        expect(result.stderr, key).toContain(message);
      }
      // helm checks values.schema.json before it renders; the template's own check stands behind it
      // for an install that skips the schema.
      const short = ['-f', valuesFile(minimalValues), '--set-string', 'secrets.internalTokenSecret=short'];
      const refusedBySchema = render(chartDir, short);
      expect(refusedBySchema.status).toBe(1);
      expect(refusedBySchema.stderr).toContain("at '/secrets/internalTokenSecret': minLength: got 5, want 32");
      const refusedByTemplate = render(chartDir, [...short, '--skip-schema-validation']);
      expect(refusedByTemplate.status).toBe(1);
      expect(refusedByTemplate.stderr).toContain('secrets.internalTokenSecret must be at least 32 characters');
      const ingress = render(chartDir, ['-f', valuesFile(minimalValues), '--set', 'ingress.enabled=true']);
      expect(ingress.stderr).toContain('ingress.host is required');
    });

    it('README.md documents every value', () => {
      const readme = readFileSync(join(chartDir, 'README.md'), 'utf8');
      const documented = new Set([...readme.matchAll(/`([A-Za-z0-9_.<>-]+)`/g)].map(([, p]) => p!));
      const perComponent = [
        'gateway',
        'users',
        'meals',
        'orders',
        'payments',
        'usersWorker',
        'mealsWorker',
        'ordersWorker',
        'paymentsWorker',
      ];
      const paths: string[] = [];
      const walk = (value: any, path: string) => {
        if (value && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0) {
          for (const [k, v] of Object.entries(value)) walk(v, path ? `${path}.${k}` : k);
        } else paths.push(path);
      };
      walk(chartValues, '');
      const undocumented = paths.filter((path) => {
        const parts = path.split('.');
        return !parts.some((_, i) => {
          const prefix = parts.slice(0, i + 1);
          const generic = [...prefix];
          if (perComponent.includes(generic[0]!)) generic[0] = '<component>';
          if (generic[0] === 'databases' && generic.length > 1) generic[1] = '<service>';
          return documented.has(prefix.join('.')) || documented.has(generic.join('.'));
        });
      });
      expect(undocumented).toEqual([]);
    });
  });

  describe('read replicas', () => {
    const REPLICAS = ['postgresql://r1.db:5432/orders', 'postgresql://r2.db:5432/orders'];
    const replicated = () => {
      const values = {
        ...minimalValues,
        databaseReplicaMaxLagSeconds: 3,
        databases: {
          ...minimalValues.databases,
          orders: { ...minimalValues.databases.orders, replicas: { urls: REPLICAS } },
          payments: {
            ...minimalValues.databases.payments,
            replicas: { existingSecret: { name: 'payments-replicas', key: 'urls' } },
          },
        },
      };
      const result = render(chartDir, ['-f', valuesFile(values)]);
      if (result.status !== 0) throw new Error(`rendering with replicas failed: ${result.stderr}`);
      // The minimal values plus replicas: rendered as the defaults scenario is.
      return new Release('defaults', parseManifests(result.stdout), merge(chartValues, values));
    };
    const envNames = (release: Release, component: string): string[] =>
      release.deployment(component).spec.template.spec.containers[0].env.map((e: Manifest) => e.name);

    it('gives each subgraph its replica URLs from a Secret, the lag bound to it and the gateway, and the migrations Job neither', () => {
      const release = replicated();
      const ref = (component: string, name: string) =>
        release.deployment(component).spec.template.spec.containers[0].env.find((e: Manifest) => e.name === name)
          ?.valueFrom?.secretKeyRef;
      expect(ref('orders', 'ORDERS_DATABASE_REPLICA_URLS')).toEqual({
        name: 'food',
        key: 'ORDERS_DATABASE_REPLICA_URLS',
      });
      expect(ref('payments', 'PAYMENTS_DATABASE_REPLICA_URLS')).toEqual({ name: 'payments-replicas', key: 'urls' });
      const [secret] = release.all('Secret').filter((s) => s.metadata.name === 'food');
      expect(Buffer.from(secret.data.ORDERS_DATABASE_REPLICA_URLS, 'base64').toString()).toBe(REPLICAS.join(','));
      // Workers read from the primary only; subgraphs without replicas get no variable.
      for (const component of ['orders-worker', 'payments-worker', 'users', 'meals']) {
        expect(
          envNames(release, component).filter((n) => n.endsWith('_REPLICA_URLS')),
          component,
        ).toEqual([]);
      }
      const orders = loadOrdersConfig(
        release.environment(release.deployment('orders').spec.template.spec.containers[0], 'orders'),
      );
      expect(orders.ORDERS_DATABASE_REPLICA_URLS).toEqual(REPLICAS);
      expect(orders.DATABASE_REPLICA_MAX_LAG_SECONDS).toBe(3);
      const gateway = loadGatewayConfig(
        release.environment(release.deployment('gateway').spec.template.spec.containers[0], 'gateway'),
      );
      expect(gateway.DATABASE_REPLICA_MAX_LAG_SECONDS).toBe(3);
      const [job] = release.all('Job');
      expect(JSON.stringify(job)).not.toContain('REPLICA');
    });

    it('without replicas no subgraph gets the variable: every read stays on the primary', () => {
      for (const component of ['users', 'meals', 'orders', 'payments']) {
        expect(
          envNames(releases.defaults, component).filter((n) => n.endsWith('_REPLICA_URLS')),
          component,
        ).toEqual([]);
      }
    });
  });

  describe('Redis: one node or a cluster', () => {
    const redisEnvOf = (release: Release, component: string): Env =>
      Object.fromEntries(
        Object.entries(release.environment(release.deployment(component).spec.template.spec.containers[0], component))
          .filter(([name]) => name.startsWith('REDIS_'))
          .sort(([a], [b]) => a.localeCompare(b)),
      );
    const refOf = (release: Release, component: string, name: string) =>
      release.deployment(component).spec.template.spec.containers[0].env?.find((e: Manifest) => e.name === name)
        ?.valueFrom?.secretKeyRef;
    const renderCluster = (redis: unknown, extra: string[] = []) =>
      render(chartDir, ['-f', valuesFile({ ...minimalValues, redis }), ...extra]);

    it('on a cluster every Redis user gets the same environment: seeds, TLS, the CA file, partitions, the password from a Secret', () => {
      const release = releases.cluster;
      const expected = redisEnvOf(release, 'gateway');
      expect(expected).toEqual({
        REDIS_CLUSTER_NODES: clusterRedis.cluster.nodes.join(','),
        REDIS_KEY_PREFIX: 'food',
        REDIS_PASSWORD: CLUSTER_PASSWORD,
        REDIS_PUBLISH_REPLICAS: '1',
        REDIS_REDELIVER_AFTER_MS: '30000',
        REDIS_STREAM_PARTITIONS: '16',
        REDIS_TLS: 'true',
        REDIS_TLS_CA_FILE: '/etc/food/redis-ca/ca.crt',
      });
      for (const component of REDIS_USERS) {
        expect(redisEnvOf(release, component), component).toEqual(expected);
        expect(refOf(release, component, 'REDIS_PASSWORD'), component).toEqual({ name: 'food', key: 'REDIS_PASSWORD' });
        // REDIS_TLS_CA_FILE is the CA Secret's key, mounted read-only.
        const pod = release.deployment(component).spec.template.spec;
        const mount = pod.containers[0].volumeMounts.find((m: Manifest) => m.name === 'redis-ca');
        expect(mount, `${component} mounts the Redis CA`).toMatchObject({ readOnly: true });
        const volume = pod.volumes.find((v: Manifest) => v.name === 'redis-ca');
        expect(volume.secret).toEqual({ secretName: 'redis-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] });
        expect(posix.join(mount.mountPath, volume.secret.items[0].path)).toBe(expected.REDIS_TLS_CA_FILE);
      }
      for (const component of Object.keys(components).filter((c) => !REDIS_USERS.includes(c))) {
        const pod = release.deployment(component).spec.template.spec;
        expect(
          pod.volumes.map((v: Manifest) => v.name),
          component,
        ).not.toContain('redis-ca');
      }
      // The gateway's config takes the cluster (no REDIS_URL beside it).
      const env = release.environment(release.deployment('gateway').spec.template.spec.containers[0], 'gateway');
      const config = loadGatewayConfig(env);
      expect(config.REDIS_URL).toBeUndefined();
      expect(config.REDIS_TLS).toBe(true);
    });

    it('on one node every Redis user gets REDIS_URL from a Secret and no cluster setting', () => {
      for (const release of [releases.defaults, releases.production]) {
        const expected = redisEnvOf(release, 'gateway');
        expect(Object.keys(expected).sort(), release.name).toEqual([
          'REDIS_KEY_PREFIX',
          'REDIS_REDELIVER_AFTER_MS',
          'REDIS_URL',
        ]);
        for (const component of REDIS_USERS) {
          expect(redisEnvOf(release, component), `${release.name} ${component}`).toEqual(expected);
          expect(refOf(release, component, 'REDIS_URL'), component).toEqual(
            release.name === 'production'
              ? { name: 'food-redis', key: 'REDIS_URL' }
              : { name: 'food', key: 'REDIS_URL' },
          );
        }
      }
    });

    it('the cluster password is only in a Secret: never in a ConfigMap, an env value or the manifests in plain text', () => {
      const inline = releases.cluster;
      const secret = inline.find('Secret', 'food');
      expect(Buffer.from(secret.data.REDIS_PASSWORD, 'base64').toString('utf8')).toBe(CLUSTER_PASSWORD);
      expect(secret.data.REDIS_URL, 'no one-node URL on a cluster').toBeUndefined();
      const plain = JSON.stringify(inline.manifests.filter((m) => m.kind !== 'Secret'));
      expect(plain).not.toContain(CLUSTER_PASSWORD);
      for (const d of inline.all('Deployment')) {
        for (const entry of d.spec.template.spec.containers[0].env ?? []) {
          expect('value' in entry && /PASSWORD/.test(entry.name), `${d.metadata.name} ${entry.name}`).toBe(false);
        }
      }
      // From a Secret made outside the chart: the chart's Secret holds no password and every Redis user reads that one.
      const result = renderCluster({
        ...clusterRedis,
        cluster: { ...clusterRedis.cluster, password: '', existingSecret: { name: 'food-redis', key: 'password' } },
        tlsCa: { configMapName: 'redis-ca-bundle', key: 'bundle.pem' },
      });
      expect(result.status, result.stderr).toBe(0);
      const external = new Release('cluster', parseManifests(result.stdout), merge(chartValues, {}));
      expect(external.find('Secret', 'food').data.REDIS_PASSWORD).toBeUndefined();
      for (const component of REDIS_USERS) {
        expect(refOf(external, component, 'REDIS_PASSWORD'), component).toEqual({
          name: 'food-redis',
          key: 'password',
        });
        const volume = external
          .deployment(component)
          .spec.template.spec.volumes.find((v: Manifest) => v.name === 'redis-ca');
        expect(volume.configMap).toEqual({ name: 'redis-ca-bundle', items: [{ key: 'bundle.pem', path: 'ca.crt' }] });
      }
      // A cluster without a password: no REDIS_PASSWORD at all.
      const open = renderCluster({ cluster: { nodes: ['redis:6379'] } });
      expect(open.status, open.stderr).toBe(0);
      expect(open.stdout).not.toContain('REDIS_PASSWORD');
      expect(open.stdout).toContain('REDIS_TLS: "false"');
    });

    it('helm lint --strict passes for a cluster with its password in an existing Secret', () => {
      const result = lint(chartDir, [
        '-f',
        valuesFile({
          ...minimalValues,
          redis: { cluster: { nodes: ['redis:6379'], existingSecret: { name: 'food-redis' }, tls: true } },
        }),
      ]);
      expect(result.status, `${result.stdout}${result.stderr}`).toBe(0);
    });

    it('one node and a cluster at once are refused, by values.schema.json and by the template', () => {
      const both = { url: 'redis://redis.example:6379', cluster: { nodes: ['redis-0:6379'] } };
      const bySchema = renderCluster(both);
      expect(bySchema.status).toBe(1);
      expect(bySchema.stderr).toContain("at '/redis': 'oneOf' failed");
      const byTemplate = renderCluster(both, ['--skip-schema-validation']);
      expect(byTemplate.status).toBe(1);
      expect(byTemplate.stderr).toContain(
        'redis: set either redis.url / redis.existingSecret.name (one Redis node) or redis.cluster.nodes (a Redis Cluster), not both',
      );
      const existing = renderCluster({ existingSecret: { name: 'food-redis' }, cluster: { nodes: ['redis-0:6379'] } }, [
        '--skip-schema-validation',
      ]);
      expect(existing.stderr).toContain('not both');
      const refusals: [unknown, string][] = [
        [{ url: 'redis://redis:6379', cluster: { tls: true } }, 'are for a Redis Cluster (redis.cluster.nodes)'],
        [{ cluster: { nodes: ['redis 0'] } }, '"redis 0" is not a host:port seed node'],
        [{ cluster: { nodes: ['redis:6379'] }, tlsCa: { secretName: 'ca' } }, 'redis.cluster.tls is false'],
        [
          { url: 'rediss://redis:6380', tlsCa: { secretName: 'ca', configMapName: 'ca' } },
          'redis.tlsCa: set either secretName or configMapName, not both',
        ],
        [{ url: '' }, 'or redis.cluster.nodes for a Redis Cluster'],
      ];
      for (const [redis, message] of refusals) {
        const result = renderCluster(redis, ['--skip-schema-validation']);
        expect(result.status, JSON.stringify(redis)).toBe(1);
        expect(result.stderr, JSON.stringify(redis)).toContain(message);
      }
    });
  });

  describe.each(Object.keys(scenarios) as (keyof typeof scenarios)[])('rendered for %s', (scenario) => {
    const release = () => releases[scenario];

    it(`every manifest is valid for the Kubernetes ${MODELLED_KUBE_VERSION} API, with no field it does not define`, async () => {
      expect(await schemaProblems(release().manifests)).toEqual([]);
    });

    it('every manifest has apiVersion, kind and a valid unique name, with the expected API versions', () => {
      const apiVersions: Record<string, string> = {
        ConfigMap: 'v1',
        Secret: 'v1',
        Service: 'v1',
        ServiceAccount: 'v1',
        Deployment: 'apps/v1',
        HorizontalPodAutoscaler: 'autoscaling/v2',
        PodDisruptionBudget: 'policy/v1',
        Ingress: 'networking.k8s.io/v1',
        Job: 'batch/v1',
        ServiceMonitor: 'monitoring.coreos.com/v1',
        PrometheusRule: 'monitoring.coreos.com/v1',
      };
      const seen = new Set<string>();
      for (const m of release().manifests) {
        expect(apiVersions[m.kind], `kind ${m.kind}`).toBeDefined();
        expect(m.apiVersion, `${m.kind} apiVersion`).toBe(apiVersions[m.kind]);
        expect(m.metadata?.name, `${m.kind} has a name`).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
        expect(m.metadata.name.length).toBeLessThanOrEqual(63);
        const id = `${m.kind}/${m.metadata.name}`;
        expect(seen.has(id), `${id} is unique`).toBe(false);
        seen.add(id);
        for (const [k, v] of Object.entries(m.metadata.labels ?? {})) {
          expect(String(v), `label ${k} of ${id}`).toMatch(/^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/);
        }
      }
    });

    it('deploys the gateway, the four subgraphs and the three workers, each with a Service', () => {
      for (const component of Object.keys(components)) {
        const deployment = release().deployment(component);
        const services = release()
          .all('Service')
          .filter((s) => release().selects(s.spec.selector).includes(deployment));
        expect(services, `one Service selects ${component}`).toHaveLength(1);
        const expectedPort = components[component as Component].kind === 'worker' ? 'metrics' : 'http';
        expect(services[0].spec.type ?? 'ClusterIP').toBe('ClusterIP');
        expect(services[0].spec.ports.map((p: Manifest) => p.name)).toEqual([expectedPort]);
      }
    });

    it('Deployments: selector matches the pod labels; containers have image, resources, probes and a locked-down securityContext', () => {
      for (const d of release().all('Deployment')) {
        const id = d.metadata.name;
        const pod = d.spec.template.spec;
        expect(matches(d.spec.selector.matchLabels, d.spec.template.metadata.labels), `${id} selector`).toBe(true);
        expect(pod.automountServiceAccountToken, id).toBe(false);
        expect(pod.securityContext, `${id} pod securityContext`).toMatchObject({
          runAsNonRoot: true,
          runAsUser: 10001,
          seccompProfile: { type: 'RuntimeDefault' },
        });
        const tmp = pod.volumes.find((v: Manifest) => v.name === 'tmp');
        expect(tmp?.emptyDir, `${id}: /tmp is an emptyDir`).toBeDefined();
        expect(pod.containers.length).toBeGreaterThan(0);
        for (const c of pod.containers) {
          const where = `${id}/${c.name}`;
          expect(c.image, where).toMatch(/^[a-z0-9./-]+:[\w.-]+$/);
          for (const kind of ['requests', 'limits']) {
            expect(c.resources?.[kind]?.cpu, `${where} ${kind}.cpu`).toBeTruthy();
            expect(c.resources?.[kind]?.memory, `${where} ${kind}.memory`).toBeTruthy();
          }
          expect(c.securityContext, `${where} securityContext`).toMatchObject({
            runAsNonRoot: true,
            runAsUser: 10001,
            readOnlyRootFilesystem: true,
            allowPrivilegeEscalation: false,
            seccompProfile: { type: 'RuntimeDefault' },
          });
          expect(c.securityContext.capabilities.drop, where).toContain('ALL');
          expect(c.volumeMounts.find((v: Manifest) => v.mountPath === '/tmp')?.name, `${where} /tmp`).toBe('tmp');
          const ports = c.ports ?? [];
          const declared = (port: string | number) =>
            ports.some((p: Manifest) => p.name === port || p.containerPort === port);
          const probes = {
            livenessProbe: OPERATIONS_PATHS.liveness,
            readinessProbe: OPERATIONS_PATHS.readiness,
            startupProbe: OPERATIONS_PATHS.liveness,
          };
          for (const [probe, path] of Object.entries(probes)) {
            expect(c[probe]?.httpGet?.path, `${where} ${probe}`).toBe(path);
            expect(declared(c[probe].httpGet.port), `${where} ${probe} port is declared`).toBe(true);
          }
        }
      }
    });

    it("each container's environment satisfies its service's config schema, and the ports and URLs line up", () => {
      for (const [component, spec] of Object.entries(components)) {
        const deployment = release().deployment(component);
        const [container] = deployment.spec.template.spec.containers;
        const env = release().environment(container, component);
        let config: Record<string, unknown>;
        try {
          config = spec.load(env) as Record<string, unknown>;
        } catch (error) {
          throw new Error(`${component}'s environment does not pass its config schema:\n${(error as Error).message}`);
        }
        // Nothing the service would ignore (a misspelt variable is a silent misconfiguration).
        const known = Object.keys((spec.schema as unknown as { shape: Record<string, unknown> }).shape);
        expect(known.length, `${component}: schema keys`).toBeGreaterThan(3);
        // The gateway also reads <NAME>_SUBGRAPH_URL for each subgraph of its supergraph (supergraph.yaml's).
        if (component === 'gateway')
          known.push(...readSupergraphConfig().map(({ name }) => `${name.toUpperCase()}_SUBGRAPH_URL`));
        for (const name of Object.keys(env)) {
          expect(known, `${component} reads ${name}`).toContain(name);
        }
        expect(config.HOST, component).toBe('0.0.0.0');
        expect(config.NODE_ENV, component).toBe('production');
        expect(config.OTEL_SERVICE_NAME, component).toBe(component);
        expect(container.ports[0].containerPort, `${component} listens where the probes look`).toBe(
          config[spec.portVar],
        );
        if (REDIS_USERS.includes(component)) {
          if (release().values.redis.cluster.nodes.length > 0) {
            expect(config.REDIS_URL, `${component}: a cluster, not one node`).toBeUndefined();
            expect(config.REDIS_CLUSTER_NODES, `${component} needs the Redis Cluster`).toEqual(
              release().values.redis.cluster.nodes.map((node: string) => {
                const [host, port] = node.split(':');
                return { host, port: Number(port ?? 6379) };
              }),
            );
          } else {
            expect(config.REDIS_URL, `${component} needs Redis`).toMatch(/^rediss?:\/\//);
            expect(config.REDIS_CLUSTER_NODES, component).toBeUndefined();
          }
        } else {
          expect(
            Object.keys(env).filter((name) => /^REDIS_(URL|CLUSTER_NODES|PASSWORD|USERNAME|TLS)/.test(name)),
            `${component} does not talk to Redis`,
          ).toEqual([]);
        }
        if (release().values.tracing.otlpEndpoint) {
          expect(config.OTEL_EXPORTER_OTLP_ENDPOINT).toBe(release().values.tracing.otlpEndpoint);
        }
        for (const [name, value] of Object.entries(env)) {
          const subgraph = name.match(/^([A-Z]+)_SUBGRAPH_URL$/)?.[1]?.toLowerCase();
          if (!subgraph) continue;
          const url = new URL(value);
          const [serviceName, ns, svc] = url.hostname.split('.');
          expect([ns, svc, url.pathname], `${component} ${name}`).toEqual([NAMESPACE, 'svc', '/graphql']);
          const service = release().find('Service', serviceName!);
          expect(service, `${component} ${name}: Service ${serviceName}`).toBeDefined();
          expect(service.spec.ports.find((p: Manifest) => p.port === Number(url.port))?.name).toBe('http');
          expect(release().selects(service.spec.selector)).toEqual([release().deployment(subgraph)]);
        }
      }
      // The gateway reaches all four subgraphs, orders reaches meals, payments reaches orders.
      const urls = (component: string) =>
        Object.keys(release().environment(release().deployment(component).spec.template.spec.containers[0], component))
          .filter((n) => n.endsWith('_SUBGRAPH_URL'))
          .sort();
      expect(urls('gateway')).toEqual([
        'MEALS_SUBGRAPH_URL',
        'ORDERS_SUBGRAPH_URL',
        'PAYMENTS_SUBGRAPH_URL',
        'USERS_SUBGRAPH_URL',
      ]);
      expect(urls('orders')).toEqual(['MEALS_SUBGRAPH_URL']);
      expect(urls('payments')).toEqual(['ORDERS_SUBGRAPH_URL']);
    });

    it('the environment check itself fails when a required variable is missing', () => {
      const container = release().deployment('users').spec.template.spec.containers[0];
      const env = release().environment(container, 'users');
      delete env.INTERNAL_TOKEN_SECRET;
      expect(() => loadUsersConfig(env)).toThrow(/INTERNAL_TOKEN_SECRET/);
      expect(UsersConfigSchema.safeParse({ ...env, USERS_DATABASE_URL: undefined }).success).toBe(false);
    });

    it('Deployments read only Secrets that exist before them (no hook Secret), and roll when config changes', () => {
      for (const d of release().all('Deployment')) {
        const annotations = d.spec.template.metadata.annotations ?? {};
        expect(annotations['checksum/config'], d.metadata.name).toMatch(/^[0-9a-f]{64}$/);
        expect(annotations['checksum/secret'], d.metadata.name).toMatch(/^[0-9a-f]{64}$/);
        for (const entry of d.spec.template.spec.containers[0].env ?? []) {
          const ref = entry.valueFrom?.secretKeyRef;
          if (!ref) continue;
          const secret = release().find('Secret', ref.name);
          if (secret) expect(hookOf(secret), `${d.metadata.name} reads hook Secret ${ref.name}`).toBeUndefined();
          else expect(release().externalSecrets()).toContain(ref.name);
        }
      }
    });

    it('HPAs scale Deployments of the gateway and subgraphs that leave replicas to them', () => {
      const hpas = release().all('HorizontalPodAutoscaler');
      expect(hpas.map((h) => h.metadata.labels['app.kubernetes.io/component']).sort()).toEqual(
        ['gateway', 'meals', 'orders', 'payments', 'users'].sort(),
      );
      for (const hpa of hpas) {
        const target = hpa.spec.scaleTargetRef;
        expect(target.kind).toBe('Deployment');
        expect(target.apiVersion).toBe('apps/v1');
        const deployment = release().find('Deployment', target.name);
        expect(deployment, `HPA ${hpa.metadata.name} target`).toBeDefined();
        expect(deployment.spec.replicas, `${target.name} leaves replicas to its HPA`).toBeUndefined();
        expect(hpa.spec.minReplicas).toBeLessThanOrEqual(hpa.spec.maxReplicas);
        expect(hpa.spec.metrics[0].resource.target.averageUtilization).toBeGreaterThan(0);
        const resources = deployment.spec.template.spec.containers[0].resources;
        expect(resources.requests.cpu, 'CPU utilisation needs a CPU request').toBeTruthy();
      }
    });

    it('PodDisruptionBudgets select the pods of one Deployment each', () => {
      const pdbs = release().all('PodDisruptionBudget');
      expect(pdbs.length).toBe(Object.keys(components).length);
      for (const pdb of pdbs) {
        expect(release().selects(pdb.spec.selector.matchLabels), pdb.metadata.name).toHaveLength(1);
        expect(pdb.spec.maxUnavailable ?? pdb.spec.minAvailable).toBeDefined();
      }
    });

    it('Services target a declared container port of the pods they select', () => {
      for (const service of release().all('Service')) {
        const [deployment] = release().selects(service.spec.selector);
        expect(deployment, `${service.metadata.name} selects a Deployment`).toBeDefined();
        const ports = deployment.spec.template.spec.containers.flatMap((c: Manifest) => c.ports ?? []);
        for (const port of service.spec.ports) {
          const target = port.targetPort ?? port.port;
          expect(
            ports.some((p: Manifest) => p.name === target || p.containerPort === target),
            `${service.metadata.name}:${port.name} -> ${target}`,
          ).toBe(true);
          expect(ports.find((p: Manifest) => p.name === target || p.containerPort === target).containerPort).toBe(
            port.port,
          );
        }
      }
    });

    it('the migrations Job is a pre-install/pre-upgrade hook whose Secrets exist before it runs', () => {
      const job = release().find('Job', 'food-migrations');
      expect(job).toBeDefined();
      const hook = hookOf(job)!;
      expect(hook.events.sort()).toEqual(['pre-install', 'pre-upgrade']);
      expect(hook.deletePolicy).toContain('before-hook-creation');
      const pod = job.spec.template.spec;
      expect(pod.restartPolicy).toBe('Never');
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
      const [container] = pod.containers;
      expect(container.command).toEqual(['node', 'prisma/dist/cli.js', 'deploy']);
      expect(container.securityContext).toMatchObject({
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
      });
      expect(container.resources.limits.memory).toBeTruthy();
      // cli.ts deploy migrates every service from its <SERVICE>_DATABASE_URL.
      const cli = readFileSync(join(repoRoot, 'prisma', 'src', 'cli.ts'), 'utf8');
      expect(cli).toContain("command === 'deploy'");
      // eslint-disable-next-line no-template-curly-in-string -- the source text of cli.ts's template, looked for as written
      expect(cli).toContain('${service.toUpperCase()}_DATABASE_URL');
      expect(container.env.map((e: Manifest) => e.name).sort()).toEqual(
        databaseServices.map((s) => `${s.toUpperCase()}_DATABASE_URL`).sort(),
      );
      for (const entry of container.env) {
        const ref = entry.valueFrom.secretKeyRef;
        const secret = release().find('Secret', ref.name);
        if (secret) {
          // A release Secret does not exist yet on first install: it must be a hook made before the Job.
          const secretHook = hookOf(secret);
          expect(secretHook, `Secret ${ref.name} is a hook`).toBeDefined();
          expect(secretHook!.events.sort()).toEqual(['pre-install', 'pre-upgrade']);
          expect(secretHook!.weight).toBeLessThan(hook.weight);
          expect(secretHook!.deletePolicy).toContain('before-hook-creation');
        }
        expect(release().secretValue(ref, 'migrations')).toMatch(/^(postgres(ql)?:\/\/|\0)/);
      }
    });

    it('images are the ones `docker buildx bake` builds, and every command runs a script they build', () => {
      const { registry, tag } = release().values.image;
      const images = bakedImages(registry, tag);
      const repositories = Object.values(imageOf).map(({ image }) => chartValues[image].image.repository);
      expect(images.map((i) => i.title).sort(), 'one bake target per chart image').toEqual(
        [...new Set(repositories)].sort(),
      );
      for (const built of images) {
        const source = sourceOfCommand(built, built.cmd);
        expect(
          existsSync(join(repoRoot, source)),
          `${built.target}'s CMD runs ${built.cmd.join(' ')} from ${source}`,
        ).toBe(true);
      }
      const workloads: [string, Manifest][] = [
        ...Object.keys(components).map((c): [string, Manifest] => [
          c,
          release().deployment(c).spec.template.spec.containers[0],
        ]),
        ['migrations', release().find('Job', 'food-migrations').spec.template.spec.containers[0]],
      ];
      for (const [component, container] of workloads) {
        const { image, packageDir } = imageOf[component as Component | 'migrations'];
        const repository = chartValues[image].image.repository;
        const expected = `${registry ? `${registry}/` : ''}${repository}:${tag || parse(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')).appVersion}`;
        expect(container.image, component).toBe(expected);
        const built = images.find((i) => i.title === repository);
        expect(built, `a docker-bake.hcl target builds ${repository}`).toBeDefined();
        // Without a tag the chart pulls its appVersion: bake's TAG default must be that.
        expect(built!.tags, `${built!.target} is tagged as the chart pulls it`).toContain(expected);
        expect(built!.packageDir, `${built!.target} deploys ${packageDir}`).toBe(packageDir);
        expect(built!.user, `${built!.target} runs as the chart's uid`).toBe('10001:10001');
        const command = container.command ?? built!.cmd;
        const source = sourceOfCommand(built!, command);
        expect(existsSync(join(repoRoot, source)), `${component} runs ${command.join(' ')} from ${source}`).toBe(true);
      }
    });

    it('the Ingress (off by default) routes its TLS host to the gateway Service, with long WebSocket timeouts', () => {
      const [ingress] = release().all('Ingress');
      if (scenario === 'defaults') return expect(ingress).toBeUndefined();
      expect(ingress).toBeDefined();
      expect(ingress.spec.ingressClassName).toBeTruthy();
      const hosts = ingress.spec.rules.map((r: Manifest) => r.host);
      expect(ingress.spec.tls[0].hosts).toEqual(hosts);
      expect(ingress.spec.tls[0].secretName).toBeTruthy();
      const annotations = ingress.metadata.annotations;
      expect(Number(annotations['nginx.ingress.kubernetes.io/proxy-read-timeout'])).toBeGreaterThanOrEqual(3600);
      expect(Number(annotations['nginx.ingress.kubernetes.io/proxy-send-timeout'])).toBeGreaterThanOrEqual(3600);
      expect(annotations['cert-manager.io/cluster-issuer']).toBeTruthy();
      for (const rule of ingress.spec.rules) {
        for (const path of rule.http.paths) {
          expect(path.path).toBe('/graphql');
          const { name, port } = path.backend.service;
          const service = release().find('Service', name);
          expect(service, `backend ${name}`).toBeDefined();
          expect(service.spec.ports.some((p: Manifest) => p.name === port.name || p.port === port.number)).toBe(true);
          expect(release().selects(service.spec.selector)).toEqual([release().deployment('gateway')]);
        }
      }
    });

    it('the ServiceMonitor (off by default) scrapes /metrics of every Service', () => {
      const [monitor] = release().all('ServiceMonitor');
      if (scenario === 'defaults') return expect(monitor).toBeUndefined();
      expect(monitor).toBeDefined();
      expect(monitor.spec.namespaceSelector.matchNames).toEqual([NAMESPACE]);
      const endpoints = monitor.spec.endpoints;
      for (const e of endpoints) expect(e.path).toBe(OPERATIONS_PATHS.metrics);
      for (const service of release().all('Service')) {
        expect(matches(monitor.spec.selector.matchLabels, service.metadata.labels), service.metadata.name).toBe(true);
        const port = service.spec.ports[0].name;
        expect(
          endpoints.map((e: Manifest) => e.port),
          `${service.metadata.name} port ${port}`,
        ).toContain(port);
      }
    });

    it('the PrometheusRule (off by default) alerts on what on-call needs, over the exported metrics', () => {
      const [rule] = release().all('PrometheusRule');
      if (scenario === 'defaults') return expect(rule).toBeUndefined();
      expect(rule).toBeDefined();
      const alerts = rule.spec.groups.flatMap((g: Manifest) => g.rules);
      const byName = Object.fromEntries(alerts.map((a: Manifest) => [a.alert, a]));
      expect(Object.keys(byName)).toHaveLength(alerts.length);
      for (const alert of alerts) {
        checkPromql(alert.expr, alert.alert);
        expect(alert.labels.severity).toMatch(/^(critical|warning)$/);
        expect(alert.annotations.summary).toBeTruthy();
      }
      const expects: [string, RegExp][] = [
        ['FoodGraphQLErrorRateHigh', /graphql_requests_total\{[^}]*outcome="server_error"/],
        ['FoodGraphQLLatencyP99High', /histogram_quantile\(0\.99, .*graphql_request_duration_seconds_bucket/],
        ['FoodTargetDown', /^up\{.*\} == 0$/],
        [
          'FoodSubgraphUnavailable',
          /gateway_subgraph_fetch_duration_seconds_count\{[^}]*outcome=~"unavailable\|timeout"/,
        ],
        ['FoodOutboxLagHigh', /outbox_lag_seconds/],
        ['FoodDatabaseReplicaLagging', /db_replica_lag_seconds\{.*\}\) > 2$/],
        ['FoodDatabaseReplicaDown', /db_replica_up\{.*\}\) == 0$/],
        ['FoodJobsFailing', /jobs_processed_total\{[^}]*outcome="failed"/],
        ['FoodJobsFailedSetNotEmpty', /job_queue_failed_jobs/],
        ['FoodJobQueueBacklog', /job_queue_depth/],
        ['FoodEventsDeadLettered', /events_consumed_total\{[^}]*outcome="dead_letter"/],
      ];
      for (const [name, pattern] of expects) {
        expect(byName[name], name).toBeDefined();
        expect(byName[name].expr.replace(/\s+/g, ' ').trim(), name).toMatch(pattern);
      }
    });

    it('the Grafana dashboard (off by default) ships in a ConfigMap, over the exported metrics', () => {
      const [cm] = release()
        .all('ConfigMap')
        .filter((c) => c.metadata.labels?.grafana_dashboard === '1');
      if (scenario === 'defaults') return expect(cm).toBeUndefined();
      expect(cm).toBeDefined();
      const file = readFileSync(join(chartDir, 'dashboards', 'food-supergraph.json'), 'utf8');
      expect(cm.data['food-supergraph.json']).toBe(file.trimEnd());
      const dashboard = JSON.parse(cm.data['food-supergraph.json']);
      const panels = dashboard.panels.filter((p: Manifest) => p.type !== 'row');
      expect(panels.length).toBeGreaterThan(10);
      for (const panel of panels) {
        expect(panel.targets.length, panel.title).toBeGreaterThan(0);
        for (const target of panel.targets) checkPromql(target.expr, `panel "${panel.title}"`);
      }
    });
  });

  it('the metrics the dashboard and alerts use are the ones the services define, with the same labels', () => {
    const sources = ['gateway/src', 'packages/platform/src'].flatMap((dir) =>
      (readdirSync(join(repoRoot, dir), { recursive: true }) as string[])
        .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
        .map((f) => readFileSync(join(repoRoot, dir, f), 'utf8')),
    );
    const text = sources.join('\n');
    const defined = new Map<string, string[]>();
    const definition =
      /\b(?:counter|histogram|sampledGauge)\(\s*'([a-z_]+)',\s*(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`[^`]*`),\s*\[([^\]]*)\]/g;
    for (const [, name, labels] of text.matchAll(definition)) {
      defined.set(name!, [...labels!.matchAll(/'(\w+)'/g)].map(([, l]) => l!).sort());
    }
    for (const [name, labels] of Object.entries(METRICS)) {
      expect(defined.get(name), `${name} is defined in the source`).toEqual(Object.keys(labels).sort());
    }
    expect(text).toContain('collectDefaultMetrics(');
  });
});

describe('the Kubernetes schema check', () => {
  it('fails a manifest with a misspelt field and a wrong type, naming the manifest and each path', async () => {
    const result = render(join(fixturesDir, 'broken-chart'));
    expect(result.status, result.stderr).toBe(0);
    expect(await schemaProblems(parseManifests(result.stdout))).toEqual([
      'Deployment/food-web: spec.replicas: must be integer',
      "Deployment/food-web: spec.template.spec.containers[0].resource: unknown field (not in IContainer; did you mean 'resources'?)",
    ]);
  });

  it('fails a kind no schema package models, rather than letting it through unchecked', async () => {
    const widget = { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' }, spec: {} };
    expect(await schemaProblems([widget])).toEqual(['Widget/w: no schema for example.com/v1 Widget']);
  });
});
