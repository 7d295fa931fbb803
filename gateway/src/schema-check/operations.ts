import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type {
  ASTNode,
  DocumentNode,
  FragmentDefinitionNode,
  GraphQLSchema,
  OperationDefinitionNode,
  TypeNode,
} from 'graphql';
import { parse, TypeInfo, validate, visit, visitWithTypeInfo } from '../graphql-js.js';

/** One operation the frontend keeps under operations/ (a `.graphql` file may hold several). */
export interface Operation {
  name: string;
  file: string;
  document: DocumentNode;
}

export interface OperationProblem {
  operation: string;
  file: string;
  message: string;
}

/** Every `.graphql` file under `directory`, recursively, with its operations. */
export function readOperations(
  directory: string,
  root = directory,
): { operations: Operation[]; problems: OperationProblem[] } {
  const operations: Operation[] = [];
  const problems: OperationProblem[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory() && entry.name !== 'node_modules' && !entry.name.startsWith('__')) walk(path);
      if (!entry.isFile() || !entry.name.endsWith('.graphql')) continue;
      const file = relative(root, path);
      let document: DocumentNode;
      try {
        document = parse(readFileSync(path, 'utf8'));
      } catch (error) {
        problems.push({ operation: '(file)', file, message: (error as Error).message });
        continue;
      }
      for (const definition of document.definitions) {
        if (definition.kind !== 'OperationDefinition') continue;
        if (!definition.name) {
          problems.push({ operation: '(anonymous)', file, message: 'every operation needs a name' });
          continue;
        }
        // Each operation with the fragments it uses, so it validates (and is blamed) on its own.
        operations.push({
          name: definition.name.value,
          file,
          document: { ...document, definitions: [definition, ...fragmentsUsedBy(definition, document)] },
        });
      }
    }
  };
  walk(directory);
  return { operations, problems };
}

/** The fragments an operation spreads, directly or through other fragments. */
function fragmentsUsedBy(operation: OperationDefinitionNode, document: DocumentNode): FragmentDefinitionNode[] {
  const byName = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === 'FragmentDefinition') byName.set(definition.name.value, definition);
  }
  const used = new Map<string, FragmentDefinitionNode>();
  const collect = (node: ASTNode) =>
    visit(node, {
      FragmentSpread(spread) {
        const fragment = byName.get(spread.name.value);
        if (!fragment || used.has(fragment.name.value)) return;
        used.set(fragment.name.value, fragment);
        collect(fragment);
      },
    });
  collect(operation);
  return [...used.values()];
}

/** Operations that are not valid against `schema`, with graphql-js's reason (naming the field). */
export function validateOperations(schema: GraphQLSchema, operations: Operation[]): OperationProblem[] {
  return operations.flatMap((operation) =>
    validate(schema, operation.document).map((error) => ({
      operation: operation.name,
      file: operation.file,
      message: error.message,
    })),
  );
}

/**
 * The schema coordinates an operation uses, resolved against `schema` (the base schema, where a
 * removed field still exists): `Type.field` and `Type.field.argument`, plus every type it touches.
 */
export function coordinatesOf(schema: GraphQLSchema, operation: Operation): Set<string> {
  const used = new Set<string>();
  const typeInfo = new TypeInfo(schema);
  visit(
    operation.document,
    visitWithTypeInfo(typeInfo, {
      Field(node) {
        const parent = typeInfo.getParentType();
        if (!parent) return;
        used.add(parent.name);
        used.add(`${parent.name}.${node.name.value}`);
        for (const argument of node.arguments ?? [])
          used.add(`${parent.name}.${node.name.value}.${argument.name.value}`);
        const type = typeInfo.getType();
        if (type) used.add(namedTypeName(type.toString()));
      },
      Argument() {
        const input = typeInfo.getInputType();
        if (input) used.add(namedTypeName(input.toString()));
      },
      VariableDefinition(node) {
        used.add(namedTypeName(print(node.type)));
      },
    }),
  );
  return used;
}

const namedTypeName = (type: string) => type.replace(/[[\]!]/g, '');
const print = (type: TypeNode): string =>
  type.kind === 'NamedType'
    ? type.name.value
    : type.kind === 'ListType'
      ? `[${print(type.type)}]`
      : `${print(type.type)}!`;

/**
 * Which operations a change reaches: those that use its coordinate or anything under it (`T`
 * reaches every operation that selects a T), those that call the field whose argument changed
 * (`Query.meals.first`), and those that use the enum or input type whose value or field changed.
 */
export function operationsAffectedBy(
  change: { path?: string; type: string },
  usage: Map<string, Set<string>>,
): string[] {
  const { path } = change;
  if (!path) return [];
  const parent = path.includes('.') ? path.slice(0, path.lastIndexOf('.')) : undefined;
  const memberOfType = /^(ENUM_VALUE|INPUT_FIELD)/.test(change.type);
  const affected: string[] = [];
  for (const [operation, coordinates] of usage) {
    const uses =
      coordinates.has(path) ||
      [...coordinates].some((coordinate) => coordinate.startsWith(`${path}.`)) ||
      (parent !== undefined && (parent.includes('.') || memberOfType) && coordinates.has(parent));
    if (uses) affected.push(operation);
  }
  return affected.sort();
}
