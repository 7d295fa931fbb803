import { readFileSync } from 'node:fs';
import { composeServices } from '@apollo/composition';
import type { ASTNode, GraphQLError } from 'graphql';
// Composition's schema objects come from the graphql instance @apollo/composition loads.
import { parse, printSchema, Source } from '../graphql-js.js';
import { liveDeclarationProblems } from '../subscriptions/checks.js';

/**
 * The subgraphs of the supergraph, with the URLs the committed supergraph names (local development).
 * Deployments override each URL with `<NAME>_SUBGRAPH_URL` at run time; the schema stays the same.
 */
export const subgraphNames = ['users', 'meals', 'orders', 'payments'] as const;
export type SubgraphName = (typeof subgraphNames)[number];

export const defaultSubgraphPorts: Record<SubgraphName, number> = {
  users: 4001,
  meals: 4002,
  orders: 4003,
  payments: 4004,
};

/** The composed supergraph (what the gateway runs) and the public API schema (what clients see). */
export const supergraphPath = new URL('../../supergraph.graphql', import.meta.url);
export const apiSchemaPath = new URL('../../api-schema.graphql', import.meta.url);
const schemaPathOf = (name: SubgraphName) => new URL(`../../../subgraphs/${name}/schema.graphql`, import.meta.url);

export interface SubgraphSdl {
  name: string;
  sdl: string;
}

/** A composition error or hint, with where it comes from: `subgraph:line` for each node involved. */
export interface CompositionProblem {
  code: string;
  message: string;
  locations: string[];
}

export interface Composition {
  supergraphSdl: string;
  /** The supergraph without federation internals, as clients introspect it. */
  apiSchemaSdl: string;
  /** Hints that call for a change (level WARN); INFO hints are left out. */
  hints: CompositionProblem[];
}

export class CompositionError extends Error {
  constructor(readonly problems: CompositionProblem[]) {
    super(`composition failed:\n${problems.map((problem) => `  - ${describeProblem(problem)}`).join('\n')}`);
  }
}

export const describeProblem = (problem: CompositionProblem) =>
  `[${problem.code}] ${problem.message}${problem.locations.length ? ` (${problem.locations.join(', ')})` : ''}`;

/** The four SDL files, the source of truth. */
export function readSubgraphSdls(): SubgraphSdl[] {
  return subgraphNames.map((name) => ({ name, sdl: readFileSync(schemaPathOf(name), 'utf8') }));
}

/** Composes subgraph SDLs into the supergraph, or throws every error with its subgraph and line. */
export function composeSubgraphs(subgraphs: SubgraphSdl[]): Composition {
  const result = composeServices(
    subgraphs.map(({ name, sdl }) => ({
      name,
      url: `http://127.0.0.1:${defaultSubgraphPorts[name as SubgraphName] ?? 4000}/graphql`,
      // Named sources, so every error and hint can say which subgraph file it is about.
      typeDefs: parse(new Source(sdl, name)),
    })),
  );
  if (result.errors) throw new CompositionError(result.errors.map(problemOf));
  // Composition keeps @subscribe as it is; what it says must hold against the events and the types.
  const live = liveDeclarationProblems(result.supergraphSdl);
  if (live.length)
    throw new CompositionError(live.map((message) => ({ code: 'LIVE_DECLARATION', message, locations: [] })));
  const hints = result.hints
    .filter((hint) => hint.definition.level.name === 'WARN')
    .map((hint) => ({
      code: hint.definition.code,
      message: hint.message,
      locations: locationsOf(hint.nodes ?? []),
    }));
  return {
    supergraphSdl: `${result.supergraphSdl.trimEnd()}\n`,
    apiSchemaSdl: `${printSchema(result.schema.toAPISchema().toGraphQLJSSchema()).trimEnd()}\n`,
    hints,
  };
}

export function composeSupergraph(): Composition {
  return composeSubgraphs(readSubgraphSdls());
}

function problemOf(error: GraphQLError): CompositionProblem {
  return {
    code: String(error.extensions.code ?? 'COMPOSITION_ERROR'),
    message: error.message,
    locations: locationsOf(error.nodes ?? []),
  };
}

function locationsOf(nodes: readonly ASTNode[] | ASTNode): string[] {
  const list = Array.isArray(nodes) ? nodes : [nodes];
  return list.flatMap((node: ASTNode) => {
    // The line of the name, not of the description above it.
    const loc = ('name' in node && node.name?.loc) || node.loc;
    if (!loc) return [];
    const line = loc.source.body.slice(0, loc.start).split('\n').length;
    return [`${loc.source.name}:${line}`];
  });
}
