import type { ApolloServerPlugin } from '@apollo/server';

/** The response extension in which a subgraph names the entities a request changed. */
export const CHANGED_ENTITIES_EXTENSION = 'changedEntities';

/** An entity as federation references it: its type and its `@key(fields: "id")`. */
export interface EntityReference {
  __typename: string;
  id: string;
}

/**
 * Entities one request changed. A subgraph's mutation resolvers record them once the write has
 * succeeded; the response carries them to the gateway, whose entity cache drops them (this
 * subgraph's fields of them) before the client gets its answer, so no replica serves the old version
 * afterwards.
 */
export class ChangedEntities {
  private readonly references = new Map<string, EntityReference>();

  add(typename: string, id: string): void {
    this.references.set(`${typename}:${id}`, { __typename: typename, id });
  }

  /**
   * Records entities a write changed and hands back its result, for a mutation resolver to return:
   * `changedEntities.with(order, ['Order', order.id], ['User', order.customerId])`.
   */
  with<T>(result: T, ...entities: [typename: string, id: string][]): T {
    for (const [typename, id] of entities) this.add(typename, id);
    return result;
  }

  list(): EntityReference[] {
    return [...this.references.values()];
  }
}

/** Puts a request's changed entities (context field `changedEntities`) into the response's extensions. */
export function reportChangedEntities<Ctx extends object>(): ApolloServerPlugin<Ctx> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse({ contextValue, response }) {
          const changed = 'changedEntities' in contextValue ? contextValue.changedEntities : undefined;
          if (!(changed instanceof ChangedEntities) || response.body.kind !== 'single') return;
          const references = changed.list();
          if (references.length === 0) return;
          const result = response.body.singleResult;
          result.extensions = { ...result.extensions, [CHANGED_ENTITIES_EXTENSION]: references };
        },
      };
    },
  };
}
