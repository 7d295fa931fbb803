import { readFileSync } from 'node:fs';
import { composeServices } from '@apollo/composition';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { ASTNode, GraphQLError } from 'graphql';
// Composition's schema objects come from the graphql instance @apollo/composition loads.
import { parse, printSchema, Source } from '../graphql-js.js';
import { liveDeclarationProblems } from '../subscriptions/checks.js';

/**
 * The subgraphs to compose, in Rover's supergraph config format (supergraph.yaml at the repository's
 * root): each one's SDL file and the URL the committed supergraph names for local development.
 * Deployments override each URL with `<NAME>_SUBGRAPH_URL` at run time; the schema stays the same.
 */
export const supergraphConfigPath = new URL('../../../supergraph.yaml', import.meta.url);

const ZSupergraphConfig = z.object({
  federation_version: z.string().optional(),
  subgraphs: z.record(
    z.string().regex(/^[a-z][a-z0-9_]*$/, 'a subgraph name is lower case letters, digits and _'),
    z.object({ routing_url: z.url(), schema: z.object({ file: z.string().min(1) }) }),
  ),
});

export interface SubgraphSource {
  name: string;
  url: string;
  /** The SDL file, relative to the repository's root. */
  file: string;
}

/** The subgraphs supergraph.yaml lists, in its order. */
export function readSupergraphConfig(path: URL = supergraphConfigPath): SubgraphSource[] {
  const config = ZSupergraphConfig.parse(parseYaml(readFileSync(path, 'utf8')));
  return Object.entries(config.subgraphs).map(([name, subgraph]) => ({
    name,
    url: subgraph.routing_url,
    file: subgraph.schema.file.replace(/^\.\//, ''),
  }));
}

/** The composed supergraph (what the gateway runs) and the public API schema (what clients see). */
export const supergraphPath = new URL('../../supergraph.graphql', import.meta.url);
export const apiSchemaPath = new URL('../../api-schema.graphql', import.meta.url);

export interface SubgraphSdl {
  name: string;
  sdl: string;
  /** Where the committed supergraph says it is served (local development). */
  url?: string;
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

/** Every subgraph's SDL file, the source of truth, as supergraph.yaml lists them. */
export function readSubgraphSdls(): SubgraphSdl[] {
  return readSupergraphConfig().map(({ name, url, file }) => ({
    name,
    url,
    sdl: readFileSync(new URL(file, supergraphConfigPath), 'utf8'),
  }));
}

/** Composes subgraph SDLs into the supergraph, or throws every error with its subgraph and line. */
export function composeSubgraphs(subgraphs: SubgraphSdl[]): Composition {
  const result = composeServices(
    subgraphs.map(({ name, sdl, url }) => ({
      name,
      url: url ?? `http://${name}.invalid/graphql`,
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
