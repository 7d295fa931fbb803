import { Supergraph } from '@apollo/federation-internals';

/** Apollo's cache hints, which subgraphs compose into the supergraph with `@composeDirective`. */
const CACHE_CONTROL_SPEC = 'https://specs.apollo.dev/cache-control';

/**
 * The object types a supergraph declares `@cacheControl(scope: PRIVATE)`: their fields depend on who
 * asks, so the entity cache keeps them per caller. The directive is looked up by the name the
 * supergraph's `@link` to the cache-control spec gives it (imported, renamed or namespaced), as
 * federation itself resolves it; without that link no type is private.
 */
export function privateTypesOf(supergraphSdl: string): Set<string> {
  const { schema } = Supergraph.build(supergraphSdl);
  const directive = schema.coreFeatures?.getByIdentity(CACHE_CONTROL_SPEC)?.directiveNameInSchema('cacheControl');
  if (!directive) return new Set();
  return new Set(
    schema
      .objectTypes()
      .filter((type) =>
        type
          .appliedDirectivesOf<{ scope?: string }>(directive)
          .some((applied) => applied.arguments().scope === 'PRIVATE'),
      )
      .map((type) => type.name),
  );
}
