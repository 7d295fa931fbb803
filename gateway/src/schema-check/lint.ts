import { ESLint, type Linter } from 'eslint';
import graphqlPlugin from '@graphql-eslint/eslint-plugin';
import type { GraphQLSchema } from 'graphql';
import {
  buildASTSchema,
  getNamedType,
  getNullableType,
  isEnumType,
  isInputObjectType,
  isListType,
  isObjectType,
  parse,
} from '../graphql-js.js';

/** The conventions every subgraph schema keeps, checked by `pnpm schema:check` (lintSchemas below). */
export const schemaLintConfig: Linter.Config[] = [
  {
    files: ['**/*.graphql'],
    languageOptions: { parser: graphqlPlugin.parser },
    plugins: { '@graphql-eslint': graphqlPlugin as unknown as ESLint.Plugin },
    rules: {
      // Frontend teams read the schema as documentation.
      '@graphql-eslint/require-description': [
        'error',
        {
          types: true,
          FieldDefinition: true,
          // Root types are entry points, not documentation; their fields carry it.
          ignoredSelectors: ['[type=ObjectTypeDefinition][name.value=/^(Query|Mutation|Subscription)$/]'],
        },
      ],
      '@graphql-eslint/naming-convention': [
        'error',
        {
          types: 'PascalCase',
          FieldDefinition: 'camelCase',
          InputValueDefinition: 'camelCase',
          EnumValueDefinition: 'UPPER_CASE',
          'FieldDefinition[parent.name.value=Query]': { forbiddenPrefixes: ['get', 'query'] },
          'FieldDefinition[parent.name.value=Mutation]': { forbiddenPrefixes: ['mutation'] },
        },
      ],
      // Pages follow the Relay connection shape (edges, node, pageInfo; first/after).
      '@graphql-eslint/relay-connection-types': 'error',
      '@graphql-eslint/relay-arguments': ['error', { includeBoth: false }],
      '@graphql-eslint/no-typename-prefix': 'error',
      '@graphql-eslint/require-deprecation-reason': 'error',
      '@graphql-eslint/unique-enum-value-names': 'error',
    },
  },
];

export interface LintProblem {
  file: string;
  line: number;
  rule: string;
  message: string;
}

/**
 * Lints subgraph schema files with @graphql-eslint, plus the one convention it has no rule for. Rules
 * that look fields up resolve them in the composed API schema (a subgraph file alone is not a schema).
 */
export async function lintSchemas(
  files: { path: string; sdl: string }[],
  apiSchemaSdl: string,
): Promise<LintProblem[]> {
  const eslint = new ESLint({
    overrideConfigFile: true,
    overrideConfig: [
      ...schemaLintConfig,
      { files: ['**/*.graphql'], languageOptions: { parserOptions: { graphQLConfig: { schema: apiSchemaSdl } } } },
    ],
  });
  const problems: LintProblem[] = [];
  for (const { path, sdl } of files) {
    const [result] = await eslint.lintText(sdl, { filePath: path });
    for (const message of result?.messages ?? []) {
      problems.push({ file: path, line: message.line, rule: message.ruleId ?? 'parse', message: message.message });
    }
    problems.push(...conventionProblems(path, sdl));
  }
  return problems;
}

/**
 * The conventions @graphql-eslint has no rule for:
 * - a root query that returns a plain list of objects can grow without end, so it must be a connection,
 *   unless a list argument bounds it (`mealsByIds(ids: [ID!]!)`) or it declares `@listSize`;
 * - a mutation takes its data as input objects, which can be validated and grow without breaking
 *   clients; beside them only IDs (what it acts on) and enum values (a choice) are arguments.
 */
export function conventionProblems(path: string, sdl: string): LintProblem[] {
  let schema: GraphQLSchema;
  try {
    schema = buildASTSchema(parse(sdl), { assumeValid: true, assumeValidSDL: true });
  } catch {
    return []; // composition reports SDL that does not build
  }
  const problems: LintProblem[] = [];
  const report = (node: { loc?: { start: number } } | undefined | null, rule: string, message: string) =>
    problems.push({ file: path, line: node?.loc ? sdl.slice(0, node.loc.start).split('\n').length : 1, rule, message });

  for (const field of Object.values(schema.getQueryType()?.getFields() ?? {})) {
    const type = getNullableType(field.type);
    if (!isListType(type) || !isObjectType(getNamedType(type))) continue;
    if (field.args.some((arg) => isListType(getNullableType(arg.type)))) continue;
    if (field.astNode?.directives?.some((directive) => directive.name.value === 'listSize')) continue;
    report(
      field.astNode,
      'connection-for-growing-lists',
      `Query.${field.name} returns a list that can grow: make it a connection (first/after, edges, pageInfo) or declare its @listSize`,
    );
  }
  for (const field of Object.values(schema.getMutationType()?.getFields() ?? {})) {
    for (const arg of field.args) {
      const type = getNamedType(arg.type);
      if (isInputObjectType(type) || isEnumType(type) || type.name === 'ID') continue;
      report(
        arg.astNode,
        'mutation-input-objects',
        `Mutation.${field.name}(${arg.name}: ${type.name}): pass data in an input object (only IDs and enums stand alone)`,
      );
    }
  }
  return problems;
}
