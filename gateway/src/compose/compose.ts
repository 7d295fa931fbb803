import { readFileSync } from 'node:fs';
import { composeServices } from '@apollo/composition';
import { parse } from 'graphql';

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

export const supergraphPath = new URL('../../supergraph.graphql', import.meta.url);
const schemaPathOf = (name: SubgraphName) => new URL(`../../../subgraphs/${name}/schema.graphql`, import.meta.url);

export class CompositionError extends Error {}

/** Composes the four SDL files (the source of truth) into the supergraph, or lists every error. */
export function composeSupergraph(): string {
  const result = composeServices(
    subgraphNames.map((name) => ({
      name,
      url: `http://127.0.0.1:${defaultSubgraphPorts[name]}/graphql`,
      typeDefs: parse(readFileSync(schemaPathOf(name), 'utf8')),
    })),
  );
  if (result.errors) {
    throw new CompositionError(
      `composition failed:\n${result.errors.map((error) => `  - ${error.message}`).join('\n')}`,
    );
  }
  return `${result.supergraphSdl.trimEnd()}\n`;
}
