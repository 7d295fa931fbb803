import { readFileSync } from 'node:fs';

// docker-bake.hcl, read as `docker buildx bake --print` would: the HCL it uses (blocks,
// attributes, strings with ${} templates, lists, objects, attribute access, variables, user
// functions, ==, != and ?:) evaluated, and matrix targets forked. Anything else is an error, so a
// bake file this cannot read fails the checks.

export interface Bake {
  /** Each group's targets, its groups and matrix targets expanded. */
  groups: Record<string, string[]>;
  targets: Record<string, Record<string, unknown>>;
}

type Scope = Record<string, unknown>;
type Expr = (scope: Scope) => unknown;
type Item = { attr: string; expr: Expr } | { block: string; labels: string[]; body: Item[] };

class HclParser {
  private i = 0;
  constructor(
    private readonly src: string,
    private readonly file: string,
    private readonly functions: Record<string, (...args: unknown[]) => unknown>,
  ) {}

  fail(message: string, at = this.i): never {
    throw new Error(`${this.file}:${this.src.slice(0, at).split('\n').length}: ${message}`);
  }
  private skip() {
    const space = /(?:\s+|#[^\n]*|\/\/[^\n]*|\/\*[\s\S]*?\*\/)+/y;
    space.lastIndex = this.i;
    if (space.exec(this.src)) this.i = space.lastIndex;
  }
  private eat(token: string): boolean {
    this.skip();
    if (!this.src.startsWith(token, this.i)) return false;
    this.i += token.length;
    return true;
  }
  private expect(token: string) {
    if (!this.eat(token)) this.fail(`expected ${token}`);
  }
  private ident(): string | undefined {
    this.skip();
    const re = /[A-Za-z_][\w-]*/y;
    re.lastIndex = this.i;
    const m = re.exec(this.src);
    if (m) this.i = re.lastIndex;
    return m?.[0];
  }

  body(closing?: string): Item[] {
    const items: Item[] = [];
    for (;;) {
      this.skip();
      if (closing ? this.eat(closing) : this.i >= this.src.length) return items;
      const name = this.ident() ?? this.fail('expected an attribute or a block');
      this.skip();
      if (this.src[this.i] === '=' && this.src[this.i + 1] !== '=') {
        this.i++;
        items.push({ attr: name, expr: this.expr() });
        continue;
      }
      const labels: string[] = [];
      while (this.eat('"')) labels.push(String(this.template()({})));
      this.expect('{');
      items.push({ block: name, labels, body: this.body('}') });
    }
  }

  private expr(): Expr {
    const test = this.comparison();
    if (!this.eat('?')) return test;
    const yes = this.expr();
    this.expect(':');
    const no = this.expr();
    return (s) => (test(s) ? yes(s) : no(s));
  }
  private comparison(): Expr {
    const left = this.primary();
    for (const op of ['==', '!=']) {
      if (this.eat(op)) {
        const right = this.primary();
        return (s) => (left(s) === right(s)) === (op === '==');
      }
    }
    return left;
  }
  private primary(): Expr {
    if (this.eat('"')) return this.template();
    if (this.eat('(')) {
      const inner = this.expr();
      this.expect(')');
      return inner;
    }
    if (this.eat('[')) {
      const items = this.exprs(']');
      return (s) => items.map((e) => e(s));
    }
    if (this.eat('{')) {
      const entries: [string, Expr][] = [];
      while (!this.eat('}')) {
        const key = this.eat('"') ? String(this.template()({})) : (this.ident() ?? this.fail('expected a key'));
        if (!this.eat('=')) this.expect(':');
        entries.push([key, this.expr()]);
        this.eat(',');
      }
      return (s) => Object.fromEntries(entries.map(([k, e]) => [k, e(s)]));
    }
    this.skip();
    const number = /-?\d+(\.\d+)?/y;
    number.lastIndex = this.i;
    const n = number.exec(this.src);
    if (n) {
      this.i = number.lastIndex;
      return () => Number(n[0]);
    }
    const at = this.i;
    const name = this.ident() ?? this.fail('expected an expression');
    if (name === 'true' || name === 'false') return () => name === 'true';
    const path: string[] = [];
    while (this.src[this.i] === '.') {
      this.i++;
      path.push(this.ident() ?? this.fail('expected an attribute name'));
    }
    if (path.length) {
      const attribute = (value: unknown, key: string) =>
        value && typeof value === 'object' && key in value
          ? (value as Scope)[key]
          : this.fail(`${name} has no attribute ${key}`, at);
      return (s) => path.reduce(attribute, this.variable(name, s, at));
    }
    if (this.eat('(')) {
      const args = this.exprs(')');
      return (s) => {
        const f = this.functions[name] ?? this.fail(`unknown function ${name}`, at);
        return f(...args.map((e) => e(s)));
      };
    }
    return (s) => this.variable(name, s, at);
  }
  /** Comma-separated expressions up to `closing` (a trailing comma allowed). */
  private exprs(closing: string): Expr[] {
    const list: Expr[] = [];
    while (!this.eat(closing)) {
      list.push(this.expr());
      this.eat(',');
    }
    return list;
  }
  private variable(name: string, scope: Scope, at: number): unknown {
    return name in scope ? scope[name] : this.fail(`unknown variable ${name}`, at);
  }
  /** The rest of a quoted string (the opening quote is read), with its ${} interpolations. */
  private template(): Expr {
    const parts: (string | Expr)[] = [];
    let literal = '';
    for (;;) {
      const c = this.src[this.i++];
      if (c === undefined || c === '\n') this.fail('unterminated string');
      if (c === '"') break;
      if (c === '\\') literal += JSON.parse(`"\\${this.src[this.i++]}"`);
      else if (c === '$' && this.src[this.i] === '{') {
        this.i++;
        parts.push(literal, this.expr());
        literal = '';
        this.expect('}');
      } else literal += c;
    }
    parts.push(literal);
    return (s) => parts.map((p) => (typeof p === 'string' ? p : String(p(s)))).join('');
  }
}

/** The bake file's groups and targets, with its variables' defaults overridden by `variables`. */
export function readBake(file: string, variables: Record<string, string> = {}): Bake {
  const functions: Record<string, (...args: unknown[]) => unknown> = {};
  const parser = new HclParser(readFileSync(file, 'utf8'), file, functions);
  const items = parser.body();
  const blocks = (kind: string) => items.flatMap((i) => ('block' in i && i.block === kind ? [i] : []));
  const attrs = (body: Item[]) =>
    Object.fromEntries(body.flatMap((i) => ('attr' in i ? [[i.attr, i.expr] as const] : [])));
  const scope: Scope = {};
  for (const v of blocks('variable')) {
    const name = v.labels[0]!;
    scope[name] = name in variables ? variables[name] : (attrs(v.body).default?.({}) ?? '');
  }
  for (const f of blocks('function')) {
    const { params, result } = attrs(f.body);
    // Parameters are bare names: read each name as itself.
    const names = params!(new Proxy({}, { get: (_, name) => name, has: () => true })) as string[];
    functions[f.labels[0]!] = (...args) =>
      result!({ ...scope, ...Object.fromEntries(names.map((n, k) => [n, args[k]])) });
  }
  for (const i of items) {
    if ('attr' in i || !['variable', 'function', 'group', 'target'].includes(i.block)) {
      parser.fail(`unexpected ${'attr' in i ? `attribute ${i.attr}` : `block ${i.block}`}`);
    }
  }
  const evaluate = (body: Item[], where: Scope) =>
    Object.fromEntries(Object.entries(attrs(body)).map(([k, e]) => [k, e(where)]));
  const groups: Record<string, string[]> = {};
  const targets: Bake['targets'] = {};
  for (const t of blocks('target')) {
    const { matrix, name, ...rest } = attrs(t.body);
    // A matrix forks the target, one per combination of its axes' values, named by `name`.
    let combinations: Scope[] = [{}];
    for (const [axis, values] of Object.entries((matrix?.(scope) ?? {}) as Record<string, unknown[]>)) {
      combinations = combinations.flatMap((c) => values.map((v) => ({ ...c, [axis]: v })));
    }
    for (const combination of combinations) {
      const where = { ...scope, ...combination };
      const targetName = name ? String(name(where)) : t.labels[0]!;
      targets[targetName] = Object.fromEntries(Object.entries(rest).map(([k, e]) => [k, e(where)]));
      if (matrix) (groups[t.labels[0]!] ??= []).push(targetName);
    }
  }
  const groupTargets = Object.fromEntries(blocks('group').map((g) => [g.labels[0]!, evaluate(g.body, scope).targets]));
  const expand = (n: string): string[] =>
    n in groupTargets ? (groupTargets[n] as string[]).flatMap(expand) : (groups[n] ?? [n]);
  for (const g of Object.keys(groupTargets)) groups[g] = expand(g);
  return { groups, targets };
}
