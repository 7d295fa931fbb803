import type { Supergraph } from '@apollo/federation-internals';

/** Apollo's cache hints, which subgraphs compose into the supergraph with `@composeDirective`. */
const CACHE_CONTROL_SPEC = 'https://specs.apollo.dev/cache-control';

export type CacheScope = 'PUBLIC' | 'PRIVATE';

/**
 * The object types a supergraph declares `@cacheControl(scope: PUBLIC)` or `(scope: PRIVATE)`: the
 * entity cache keeps a PUBLIC type's entities once for every caller, a PRIVATE type's (its fields
 * depend on who asks) per caller, and any other type's not at all. The directive is looked up by the
 * name the supergraph's `@link` to the cache-control spec gives it (imported, renamed or namespaced),
 * as federation itself resolves it; without that link no type is cached.
 */
export function cacheScopesOf(supergraph: Supergraph): Record<CacheScope, Set<string>> {
  const { schema } = supergraph;
  const scopes: Record<CacheScope, Set<string>> = { PUBLIC: new Set(), PRIVATE: new Set() };
  const directive = schema.coreFeatures?.getByIdentity(CACHE_CONTROL_SPEC)?.directiveNameInSchema('cacheControl');
  if (!directive) return scopes;
  for (const type of schema.objectTypes()) {
    const declared = type
      .appliedDirectivesOf<{ scope?: string }>(directive)
      .map((applied) => applied.arguments().scope);
    // PRIVATE wins: one subgraph's caller-dependent fields make the whole entity per caller.
    if (declared.includes('PRIVATE')) scopes.PRIVATE.add(type.name);
    else if (declared.includes('PUBLIC')) scopes.PUBLIC.add(type.name);
  }
  return scopes;
}
