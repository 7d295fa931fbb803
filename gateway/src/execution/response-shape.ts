import type {
  DirectiveNode,
  DocumentNode,
  FieldNode,
  FragmentDefinitionNode,
  GraphQLCompositeType,
  GraphQLNamedType,
  GraphQLOutputType,
  GraphQLSchema,
  OperationDefinitionNode,
  SelectionNode,
} from 'graphql';
import {
  executeSync,
  GraphQLError,
  isAbstractType,
  isCompositeType,
  isEnumType,
  isListType,
  isNonNullType,
  isObjectType,
  isSpecifiedScalarType,
  Kind,
  OperationTypeNode,
  visit,
} from '../graphql-js.js';

/**
 * The last step of executing a federated operation: the data the plan's fetches gathered (with the
 * keys, required fields and `__typename`s the planner added) becomes the client's response, in the
 * operation's field order, with `@skip`/`@include` applied, every value checked against its type, and
 * nulls bubbling to the nearest nullable parent where a non-null field has none.
 *
 * The rules are @apollo/gateway's `computeResponse`, field for field (its messages and error codes
 * included), so that answers do not change with the executor; what differs is when the work is done.
 * `computeResponse` walks the operation's federation-internals selection sets on every request,
 * evaluating directives and type conditions as it goes; here each selection is compiled once per
 * runtime type and directive values into a flat list of field steps, which every later response of
 * that operation reuses.
 */

/** How a value of one output type is completed. */
type Completion =
  | { kind: 'nonNull'; of: Completion; inner: string }
  | { kind: 'list'; of: Completion }
  | { kind: 'leaf'; type: string; valid: (value: unknown) => boolean }
  | { kind: 'composite'; type: GraphQLCompositeType };

/** One response key of a selection, for one runtime type: every occurrence merged. */
interface FieldStep {
  readonly key: string;
  readonly kind: 'typename' | 'introspection' | 'value';
  /** The type the field was selected on (a fragment's condition, or the object's type): error messages name it. */
  readonly parent: GraphQLCompositeType;
  readonly completion: Completion | undefined;
  /** Every occurrence of the key, in order: their sub-selections merge. */
  readonly nodes: FieldNode[];
  /** The merged sub-selection's steps by the runtime type of the value (its `__typename`, or none). */
  readonly steps: Map<string, FieldStep[]>;
}

/** A null that must bubble to the nearest nullable parent (a non-null value was missing). */
const BUBBLE = Symbol('bubble');
/** A null whose error was already reported (so a non-null parent reports none of its own). */
const REPORTED = Symbol('reported');

type Completed = unknown;

const INTEGER = /^-?(?:0|[1-9][0-9]*)$/;

/** The tag of one entity in a response: its type and id. */
export const entityTag = (typename: string, id: unknown) => `entity:${typename}:${String(id)}`;

/** What shaping produced: the response data and the errors of values that did not fit their types. */
export interface Shaped {
  data: Record<string, unknown> | null;
  errors: GraphQLError[];
  /** An object of a tagged type had no id: the tags do not name every entity in the response. */
  untagged: boolean;
}

/** The response shape of one operation: compiled step lists, per set of `@skip`/`@include` values. */
export class ResponseShape {
  private readonly fragments: ReadonlyMap<string, FragmentDefinitionNode>;
  private readonly rootType: GraphQLCompositeType;
  /** Variables `@skip`/`@include` read: a compiled shape holds for one set of their values. */
  private readonly conditionVariables: readonly string[];
  private readonly defaults: Record<string, unknown>;
  private readonly roots = new Map<string, FieldStep[]>();
  private readonly completions = new Map<string, Completion>();

  constructor(
    private readonly schema: GraphQLSchema,
    private readonly document: DocumentNode,
    private readonly operation: OperationDefinitionNode,
    /** The operation's variables' default values (from their definitions). */
    defaults: Record<string, unknown>,
  ) {
    this.fragments = new Map(
      document.definitions.flatMap((d) => (d.kind === Kind.FRAGMENT_DEFINITION ? [[d.name.value, d] as const] : [])),
    );
    const root = schema.getRootType(operation.operation);
    if (!root) throw new GraphQLError(`The schema has no ${operation.operation} type`);
    this.rootType = root;
    this.defaults = defaults;
    const used = new Set<string>();
    visit(document, {
      Directive(directive) {
        if (directive.name.value !== 'skip' && directive.name.value !== 'include') return;
        for (const argument of directive.arguments ?? []) {
          if (argument.value.kind === Kind.VARIABLE) used.add(argument.value.name.value);
        }
      },
    });
    this.conditionVariables = [...used];
  }

  /**
   * The response for `input`, the data the plan gathered, with the client's `variables`. With `tags`,
   * each object of a type in `taggedTypes` adds `<type>:<id>` to it; one without its id makes the
   * response untagged (`Shaped.untagged`).
   */
  shape(
    input: Record<string, unknown> | null | undefined,
    variables: Record<string, unknown> | undefined,
    tags?: { types: ReadonlySet<string>; into: Set<string> },
  ): Shaped {
    if (!input) return { data: input ?? null, errors: [], untagged: false };
    const values = { ...this.defaults, ...variables };
    let key = '';
    for (const name of this.conditionVariables) key += values[name] === true ? '1' : '0';
    let steps = this.roots.get(key);
    if (!steps) {
      steps = this.collect(this.operation.selectionSet.selections, this.rootType, this.rootType, values);
      this.roots.set(key, steps);
    }
    const run: Run = { shape: this, values, errors: [], path: [], conditionKey: key, tags, untagged: false };
    const data = Object.create(null) as Record<string, unknown>;
    const outcome = applySteps(run, input, steps, data, this.rootType);
    return { data: outcome === BUBBLE ? null : data, errors: run.errors, untagged: run.untagged };
  }

  /** The steps of a merged sub-selection for a value whose runtime type is `typename` (or unknown). */
  stepsOf(run: Run, step: FieldStep, typename: string | undefined, type: GraphQLCompositeType): FieldStep[] {
    const cacheKey = `${run.conditionKey}\u0000${typename ?? ''}`;
    let steps = step.steps.get(cacheKey);
    if (!steps) {
      const selections = step.nodes.flatMap((node) => node.selectionSet?.selections ?? []);
      steps = this.collect(selections, typename === undefined ? undefined : type, type, run.values);
      step.steps.set(cacheKey, steps);
    }
    return steps;
  }

  /**
   * The field steps of `selections` for an object whose runtime type is `runtime` (undefined when its
   * `__typename` is unknown), selected within `parent`: fragments whose condition applies inlined,
   * skipped selections left out, occurrences of a response key merged in first-seen order.
   */
  private collect(
    selections: readonly SelectionNode[],
    runtime: GraphQLNamedType | undefined,
    parent: GraphQLCompositeType,
    values: Record<string, unknown>,
  ): FieldStep[] {
    const byKey = new Map<string, FieldStep>();
    const visitSelections = (list: readonly SelectionNode[], scope: GraphQLCompositeType, seen: Set<string>) => {
      for (const selection of list) {
        if (skipped(selection.directives, values)) continue;
        if (selection.kind === Kind.FIELD) {
          const key = selection.alias?.value ?? selection.name.value;
          const existing = byKey.get(key);
          if (existing) {
            existing.nodes.push(selection);
            continue;
          }
          byKey.set(key, this.fieldStep(selection, key, scope));
          continue;
        }
        const fragment = selection.kind === Kind.INLINE_FRAGMENT ? selection : this.fragments.get(selection.name.value);
        if (!fragment) continue;
        if (selection.kind === Kind.FRAGMENT_SPREAD) {
          if (seen.has(selection.name.value)) continue;
          if (skipped((fragment as FragmentDefinitionNode).directives, values)) continue;
        }
        const condition = fragment.typeCondition
          ? (this.schema.getType(fragment.typeCondition.name.value) as GraphQLCompositeType | undefined)
          : undefined;
        if (condition && !this.applies(condition, runtime ?? scope)) continue;
        const inner = selection.kind === Kind.FRAGMENT_SPREAD ? new Set([...seen, selection.name.value]) : seen;
        visitSelections(fragment.selectionSet.selections, condition ?? scope, inner);
      }
    };
    visitSelections(selections, parent, new Set());
    return [...byKey.values()];
  }

  private fieldStep(node: FieldNode, key: string, parent: GraphQLCompositeType): FieldStep {
    const name = node.name.value;
    if (name === '__typename')
      return { key, kind: 'typename', parent, completion: undefined, nodes: [node], steps: new Map() };
    if (name === '__schema' || name === '__type') {
      return { key, kind: 'introspection', parent, completion: undefined, nodes: [node], steps: new Map() };
    }
    const definition = 'getFields' in parent ? parent.getFields()[name] : undefined;
    if (!definition) throw new GraphQLError(`Cannot query field "${name}" on type "${parent.name}".`);
    return {
      key,
      kind: 'value',
      parent,
      completion: this.completionOf(definition.type),
      nodes: [node],
      steps: new Map(),
    };
  }

  private completionOf(type: GraphQLOutputType): Completion {
    const printed = String(type);
    let completion = this.completions.get(printed);
    if (completion) return completion;
    if (isNonNullType(type))
      completion = { kind: 'nonNull', of: this.completionOf(type.ofType), inner: String(type.ofType) };
    else if (isListType(type)) completion = { kind: 'list', of: this.completionOf(type.ofType) };
    else if (isCompositeType(type)) completion = { kind: 'composite', type };
    else completion = { kind: 'leaf', type: type.name, valid: leafValidator(type) };
    this.completions.set(printed, completion);
    return completion;
  }

  /** Whether a fragment on `condition` applies to a value of `type` (federation's `isSubtype`). */
  private applies(condition: GraphQLCompositeType, type: GraphQLNamedType): boolean {
    return (
      condition === type ||
      (isAbstractType(condition) &&
        (isObjectType(type) || 'getInterfaces' in type) &&
        this.schema.isSubType(condition, type as never))
    );
  }

  /** A value's runtime type from its `__typename`, if the API schema has it. */
  typeNamed(name: string): GraphQLNamedType | undefined {
    return this.schema.getType(name) ?? undefined;
  }

  /** `__schema` / `__type`, which no subgraph answers: run against the API schema itself. */
  introspect(step: FieldStep, values: Record<string, unknown>): unknown {
    const used = new Set<string>();
    visit(step.nodes[0]!, { Variable: (variable) => void used.add(variable.name.value) });
    const result = executeSync({
      schema: this.schema,
      document: {
        kind: Kind.DOCUMENT,
        definitions: [
          {
            kind: Kind.OPERATION_DEFINITION,
            operation: OperationTypeNode.QUERY,
            variableDefinitions: (this.operation.variableDefinitions ?? []).filter((d) =>
              used.has(d.variable.name.value),
            ),
            selectionSet: { kind: Kind.SELECTION_SET, selections: step.nodes },
          },
          ...this.fragments.values(),
        ],
      },
      rootValue: {},
      variableValues: values,
    });
    return (result.data as Record<string, unknown> | null | undefined)?.[step.key] ?? null;
  }
}

/** One shaping: the variables, the errors so far, and the path being completed. */
interface Run {
  readonly shape: ResponseShape;
  readonly values: Record<string, unknown>;
  readonly errors: GraphQLError[];
  readonly path: (string | number)[];
  readonly conditionKey: string;
  readonly tags: { types: ReadonlySet<string>; into: Set<string> } | undefined;
  untagged: boolean;
}

const own = (object: Record<string, unknown>, key: string): unknown =>
  Object.prototype.hasOwnProperty.call(object, key) ? object[key] : undefined;

function applySteps(
  run: Run,
  input: Record<string, unknown>,
  steps: readonly FieldStep[],
  output: Record<string, unknown>,
  type: GraphQLCompositeType,
): typeof BUBBLE | undefined {
  for (const step of steps) {
    const { key } = step;
    if (step.kind === 'typename') {
      // A root type's __typename is never fetched (subgraphs may name their roots differently), and an
      // @interfaceObject subgraph answers with the interface's name if the fetch that would have told
      // the implementation failed: the value then comes from the schema, or the object is nulled.
      let value = own(input, key) ?? null;
      if (value === null && key !== '__typename') value = input.__typename ?? null;
      const named = typeof value === 'string' ? (run.shape.typeNamed(value) ?? step.parent) : step.parent;
      if (!isObjectType(named)) return BUBBLE;
      output[key] = named.name;
      continue;
    }
    if (step.kind === 'introspection') {
      output[key] = run.shape.introspect(step, run.values);
      continue;
    }
    run.path.push(key);
    const value = complete(run, step, own(input, key) ?? null, step.completion!, type);
    run.path.pop();
    if (value === BUBBLE) {
      output[key] = null;
      return BUBBLE;
    }
    output[key] = value === REPORTED ? null : value;
  }
  return undefined;
}

function complete(
  run: Run,
  step: FieldStep,
  input: unknown,
  completion: Completion,
  parent: GraphQLCompositeType,
): Completed {
  switch (completion.kind) {
    case 'nonNull': {
      const value = complete(run, step, input, completion.of, parent);
      if (value === null) {
        run.errors.push(
          invalid(`Cannot return null for non-nullable ${described(run.path, completion.inner, step)}.`, run.path),
        );
        return BUBBLE;
      }
      return value === REPORTED || value === BUBBLE ? BUBBLE : value;
    }
    case 'list': {
      if (input === null) return null;
      if (!Array.isArray(input)) {
        throw new Error(`Invalid non-list value ${String(input)} returned by subgraph for list type`);
      }
      const out = new Array<unknown>(input.length);
      let nullify = false;
      for (let i = 0; i < input.length; i++) {
        run.path.push(i);
        const value = complete(run, step, input[i] ?? null, completion.of, parent);
        run.path.pop();
        if (value === BUBBLE) nullify = true;
        out[i] = value === BUBBLE || value === REPORTED ? null : value;
      }
      return nullify ? REPORTED : out;
    }
    case 'composite': {
      if (input === null) return null;
      if (typeof input !== 'object') {
        throw new Error(`Invalid non-object value ${String(input)} returned by subgraph for composite type`);
      }
      const object = input as Record<string, unknown>;
      const typename = object.__typename;
      let type: GraphQLCompositeType = completion.type;
      if (typeof typename === 'string') {
        const named = run.shape.typeNamed(typename);
        if (!named || !isCompositeType(named)) {
          // An @inaccessible implementation's name must not leak: the message names the field's type only.
          run.errors.push(
            invalid(
              `Invalid __typename found for object at ${described(run.path, String(completion.type), step)}.`,
              run.path,
            ),
          );
          return REPORTED;
        }
        type = named;
      }
      if (run.tags?.types.has(type.name)) {
        const id = object.id;
        if (typeof id === 'string' || typeof id === 'number') run.tags.into.add(entityTag(type.name, id));
        else run.untagged = true;
      }
      const steps = run.shape.stepsOf(run, step, typeof typename === 'string' ? typename : undefined, type);
      const out = Object.create(null) as Record<string, unknown>;
      return applySteps(run, object, steps, out, type) === BUBBLE ? REPORTED : out;
    }
    case 'leaf': {
      if (input === null) return null;
      if (completion.valid(input)) return input;
      run.errors.push(invalid(`Invalid value found for ${described(run.path, completion.type, step)}.`, run.path));
      return REPORTED;
    }
  }
}

/** What the last element of `path` is, as @apollo/gateway words it. */
function described(path: readonly (string | number)[], type: string, step: FieldStep): string {
  const last = path[path.length - 1];
  return typeof last === 'string'
    ? `field ${step.parent.name}.${last}`
    : `array element of type ${type} at index ${last}`;
}

const invalid = (message: string, path: readonly (string | number)[]) =>
  new GraphQLError(message, { path: [...path], extensions: { code: 'INVALID_GRAPHQL' } });

/** Whether `@skip`/`@include` leave a selection out. */
function skipped(directives: readonly DirectiveNode[] | undefined, values: Record<string, unknown>): boolean {
  if (!directives) return false;
  for (const directive of directives) {
    const name = directive.name.value;
    if (name !== 'skip' && name !== 'include') continue;
    const argument = directive.arguments?.find((a) => a.name.value === 'if');
    if (!argument) continue;
    const value =
      argument.value.kind === Kind.BOOLEAN
        ? argument.value.value
        : argument.value.kind === Kind.VARIABLE
          ? values[argument.value.name.value] === true
          : false;
    if (name === 'skip' ? value : !value) return true;
  }
  return false;
}

/** federation-internals' `isValidLeafValue`, one function per leaf type. */
function leafValidator(type: GraphQLNamedType): (value: unknown) => boolean {
  if (isEnumType(type)) {
    const names = new Set(type.getValues().map((value) => value.name));
    return (value) => typeof value === 'string' && names.has(value);
  }
  if (!isSpecifiedScalarType(type as never)) return () => true;
  switch (type.name) {
    case 'Boolean':
      return (value) => typeof value === 'boolean';
    case 'Int':
      return (value) => typeof value === 'number' && Number.isFinite(value) && INTEGER.test(String(value));
    case 'ID':
      return (value) =>
        typeof value === 'string' ||
        (typeof value === 'number' && Number.isFinite(value) && INTEGER.test(String(value)));
    case 'Float':
      return (value) => typeof value === 'number' && Number.isFinite(value);
    default:
      return (value) => typeof value === 'string';
  }
}
