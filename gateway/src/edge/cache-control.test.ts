import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { composeSubgraphs, supergraphPath } from '../compose/compose.js';
import { Supergraph } from '@apollo/federation-internals';
import { cacheScopesOf } from './cache-control.js';

/** A supergraph of one subgraph whose SDL links Apollo's cache-control spec as `link` says. */
function supergraphWith(types: string, link = 'import: ["@cacheControl"]', directive = 'cacheControl') {
  const sdl = `
    extend schema
      @link(url: "https://specs.apollo.dev/federation/v2.7", import: ["@key", "@composeDirective"])
      @link(url: "https://specs.apollo.dev/cache-control/v0.1", ${link})
      @composeDirective(name: "@${directive}")
    enum CacheControlScope { PUBLIC PRIVATE }
    directive @${directive}(maxAge: Int, scope: CacheControlScope, inheritMaxAge: Boolean)
      on FIELD_DEFINITION | OBJECT | INTERFACE | UNION
    ${types}
    type Query { account: Account shop: Shop }
  `;
  return composeSubgraphs([{ name: 'accounts', sdl }]).supergraphSdl;
}

const scopes = (supergraphSdl: string) => cacheScopesOf(Supergraph.build(supergraphSdl));

describe('cached entity types from the supergraph', () => {
  it('are the object types declared @cacheControl(scope: PRIVATE) per caller, (scope: PUBLIC) for all', () => {
    const supergraph = supergraphWith(`
      type Account @key(fields: "id") @cacheControl(scope: PRIVATE) { id: ID! email: String }
      type Shop @key(fields: "id") @cacheControl(scope: PUBLIC) { id: ID! name: String }
      type Note @key(fields: "id") { id: ID! }
    `);
    expect(scopes(supergraph)).toEqual({ PRIVATE: new Set(['Account']), PUBLIC: new Set(['Shop']) });
  });

  it('follow the name the @link gives the directive', () => {
    const supergraph = supergraphWith(
      `type Account @key(fields: "id") @perCaller(scope: PRIVATE) { id: ID! }
       type Shop @key(fields: "id") { id: ID! }`,
      'import: [{ name: "@cacheControl", as: "@perCaller" }]',
      'perCaller',
    );
    expect(scopes(supergraph).PRIVATE).toEqual(new Set(['Account']));
  });

  it('are none in a supergraph that does not link the cache-control spec', () => {
    const sdl = `
      extend schema @link(url: "https://specs.apollo.dev/federation/v2.7", import: ["@key"])
      type Account @key(fields: "id") { id: ID! }
      type Query { account: Account }
    `;
    expect(scopes(composeSubgraphs([{ name: 'accounts', sdl }]).supergraphSdl)).toEqual({
      PUBLIC: new Set(),
      PRIVATE: new Set(),
    });
  });

  it('are User and Order per caller, Meal for all, in the committed supergraph', () => {
    expect(scopes(readFileSync(supergraphPath, 'utf8'))).toEqual({
      PRIVATE: new Set(['Order', 'User']),
      PUBLIC: new Set(['Meal']),
    });
  });
});
