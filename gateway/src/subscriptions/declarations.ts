import type {
  ConstDirectiveNode,
  DirectiveNode,
  DocumentNode,
  FieldDefinitionNode,
  ObjectTypeDefinitionNode,
  ObjectTypeExtensionNode,
  ValueNode,
} from 'graphql';
import { Kind, parse, valueFromASTUntyped } from '../graphql-js.js';

/** The spec a subgraph links to declare a subscription field served from events (`@subscribe`). */
export const LIVE_SPEC_URL = 'https://specs.food-supergraph.dev/live/v0.1';

/** Who may share one resolution of an event (see the directive's `audience`). */
export type Audience = 'PUBLIC' | 'ROLE' | 'CALLER';
const audiences: readonly Audience[] = ['PUBLIC', 'ROLE', 'CALLER'];

/** A literal to compare with, or `{ argument }`: the value of the subscription field's argument. */
export type Operand = { literal: unknown } | { argument: string };

/** Event data fields and what each must equal (a list: any of its values). All of them must hold. */
export type Condition = ReadonlyMap<string, Operand>;

/**
 * One subscription field as its subgraph declared it with `@subscribe`: the event it follows and how
 * an event becomes the entity to resolve. Read from the supergraph; the gateway knows nothing else of it.
 */
export interface LiveField {
  /** The Subscription field. */
  field: string;
  event: string;
  /** The type the field returns (an entity). */
  entityType: string;
  /** The entity's key fields, each from a field of the event's data. */
  key: ReadonlyMap<string, string>;
  /** Which events match: any of these conditions (none: every event of the type). */
  where: readonly Condition[];
  /** Entity fields as of the event, from its data: each result shows the change, not a later state. */
  fields: ReadonlyMap<string, string>;
  /** An entity field (among `fields`) that grows with every change. */
  version?: string;
  /** Entity field values after which the subscription completes (each: any of the listed values). */
  until?: ReadonlyMap<string, readonly unknown[]>;
  audience: Audience;
  /** Who may subscribe: any one of these lists of scopes, all of it. Absent: anyone. */
  scopes?: readonly (readonly string[])[];
}

export class LiveDeclarationError extends Error {
  override name = 'LiveDeclarationError';
}

/** Every `@subscribe` declaration of a supergraph (or a subgraph's) SDL, by field name. */
export function readLiveFields(sdl: string | DocumentNode): Map<string, LiveField> {
  const document = typeof sdl === 'string' ? parse(sdl) : sdl;
  const directiveName = importedName(document);
  const fields = new Map<string, LiveField>();
  if (!directiveName) return fields;
  const subscriptionType = rootTypeName(document, 'subscription') ?? 'Subscription';
  for (const definition of document.definitions) {
    if (!isObjectType(definition) || definition.name.value !== subscriptionType) continue;
    for (const field of definition.fields ?? []) {
      const directive = field.directives?.find((d) => d.name.value === directiveName);
      if (directive) fields.set(field.name.value, liveFieldOf(field, directive));
    }
  }
  return fields;
}

/** The name `@subscribe` has in this document: as imported by its @link, else the spec's prefixed one. */
function importedName(document: DocumentNode): string | undefined {
  for (const definition of document.definitions) {
    if (definition.kind !== Kind.SCHEMA_DEFINITION && definition.kind !== Kind.SCHEMA_EXTENSION) continue;
    for (const link of definition.directives ?? []) {
      if (link.name.value !== 'link' || stringArgument(link, 'url') !== LIVE_SPEC_URL) continue;
      const imports = argument(link, 'import');
      for (const entry of imports?.kind === Kind.LIST ? imports.values : []) {
        if (entry.kind === Kind.STRING && entry.value === '@subscribe') return 'subscribe';
        if (entry.kind === Kind.OBJECT) {
          const value = (name: string) => {
            const found = entry.fields.find((f) => f.name.value === name)?.value;
            return found?.kind === Kind.STRING ? found.value : undefined;
          };
          if (value('name') === '@subscribe') return (value('as') ?? '@subscribe').slice(1);
        }
      }
      return `${stringArgument(link, 'as') ?? 'live'}__subscribe`;
    }
  }
  return undefined;
}

function liveFieldOf(field: FieldDefinitionNode, directive: ConstDirectiveNode): LiveField {
  const where = `Subscription.${field.name.value}`;
  const text = (name: string) => stringArgument(directive, name);
  const required = (name: string) => text(name) ?? fail(where, `@subscribe needs \`${name}\``);
  const audience = (text('audience') ?? 'CALLER') as Audience;
  if (!audiences.includes(audience)) fail(where, `audience must be one of ${audiences.join(', ')}`);
  const fields = names(where, 'fields', text('fields'));
  const version = text('version');
  if (version !== undefined && !fields.has(version)) fail(where, `version ${version} must be one of \`fields\``);
  const until = text('until') === undefined ? undefined : untilOf(where, text('until')!);
  for (const name of until?.keys() ?? []) {
    if (!fields.has(name)) fail(where, `until's ${name} must be one of \`fields\` (a change must show it)`);
  }
  const scopes = argument(directive, 'scopes');
  return {
    field: field.name.value,
    event: required('event'),
    entityType: namedType(field),
    key: names(where, 'entity', required('entity')),
    where: conditionsOf(where, text('where')),
    fields,
    ...(version !== undefined ? { version } : {}),
    ...(until ? { until } : {}),
    audience,
    ...(scopes ? { scopes: valueFromASTUntyped(scopes) as string[][] } : {}),
  };
}

/** `{ a: b, ... }` with bare names as values: entity field -> event data field. */
function names(where: string, argumentName: string, text: string | undefined): Map<string, string> {
  const map = new Map<string, string>();
  if (text === undefined) return map;
  const value = literal(where, argumentName, text);
  if (value.kind !== Kind.OBJECT) fail(where, `${argumentName} must be an object, e.g. { id: thingId }`);
  for (const entry of value.fields) {
    if (entry.value.kind !== Kind.ENUM)
      fail(where, `${argumentName}.${entry.name.value} must name an event data field`);
    map.set(entry.name.value, entry.value.value);
  }
  return map;
}

function conditionsOf(where: string, text: string | undefined): Condition[] {
  if (text === undefined) return [];
  const value = literal(where, 'where', text);
  const objects = value.kind === Kind.LIST ? value.values : [value];
  return objects.map((object) => {
    if (object.kind !== Kind.OBJECT) fail(where, 'where must be an object or a list of objects');
    return new Map(
      object.fields.map((entry) => [
        entry.name.value,
        entry.value.kind === Kind.VARIABLE
          ? { argument: entry.value.name.value }
          : { literal: valueFromASTUntyped(entry.value) },
      ]),
    );
  });
}

function untilOf(where: string, text: string): Map<string, unknown[]> {
  const value = literal(where, 'until', text);
  if (value.kind !== Kind.OBJECT) fail(where, 'until must be an object, e.g. { state: [DONE] }');
  return new Map(
    value.fields.map((entry) => {
      const values = valueFromASTUntyped(entry.value);
      return [entry.name.value, Array.isArray(values) ? values : [values]];
    }),
  );
}

function literal(where: string, argumentName: string, text: string): ValueNode {
  try {
    return parseValueText(text);
  } catch (error) {
    return fail(where, `${argumentName} is not a GraphQL literal: ${error instanceof Error ? error.message : error}`);
  }
}

/** Parses a value literal (variables allowed) by wrapping it in an argument. */
function parseValueText(text: string): ValueNode {
  const document = parse(`{ f(v: ${text}) }`, { noLocation: true });
  const operation = document.definitions[0];
  if (operation?.kind !== Kind.OPERATION_DEFINITION) throw new Error('not a value');
  const field = operation.selectionSet.selections[0];
  if (field?.kind !== Kind.FIELD || field.arguments?.length !== 1) throw new Error('not a value');
  return field.arguments[0]!.value;
}

function namedType(field: FieldDefinitionNode): string {
  let type = field.type;
  while (type.kind !== Kind.NAMED_TYPE) type = type.type;
  return type.name.value;
}

function rootTypeName(document: DocumentNode, operation: 'subscription'): string | undefined {
  for (const definition of document.definitions) {
    if (definition.kind !== Kind.SCHEMA_DEFINITION && definition.kind !== Kind.SCHEMA_EXTENSION) continue;
    const found = definition.operationTypes?.find((t) => t.operation === operation);
    if (found) return found.type.name.value;
  }
  return undefined;
}

const isObjectType = (
  definition: DocumentNode['definitions'][number],
): definition is ObjectTypeDefinitionNode | ObjectTypeExtensionNode =>
  definition.kind === Kind.OBJECT_TYPE_DEFINITION || definition.kind === Kind.OBJECT_TYPE_EXTENSION;

function argument(directive: DirectiveNode, name: string): ValueNode | undefined {
  return directive.arguments?.find((a) => a.name.value === name)?.value;
}

function stringArgument(directive: DirectiveNode, name: string): string | undefined {
  const value = argument(directive, name);
  return value?.kind === Kind.STRING ? value.value : undefined;
}

function fail(where: string, message: string): never {
  throw new LiveDeclarationError(`${where}: ${message}`);
}
