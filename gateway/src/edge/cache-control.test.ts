import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { composeSubgraphs, supergraphPath } from '../compose/compose.js';
import { privateTypesOf } from './cache-control.js';

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

describe('private entity types from the supergraph', () => {
  it('are the object types declared @cacheControl(scope: PRIVATE)', () => {
    const supergraph = supergraphWith(`
      type Account @key(fields: "id") @cacheControl(scope: PRIVATE) { id: ID! email: String }
      type Shop @key(fields: "id") @cacheControl(scope: PUBLIC) { id: ID! name: String }
      type Note @key(fields: "id") { id: ID! }
    `);
    expect(privateTypesOf(supergraph)).toEqual(new Set(['Account']));
  });

  it('follow the name the @link gives the directive', () => {
    const supergraph = supergraphWith(
      `type Account @key(fields: "id") @perCaller(scope: PRIVATE) { id: ID! }
       type Shop @key(fields: "id") { id: ID! }`,
      'import: [{ name: "@cacheControl", as: "@perCaller" }]',
      'perCaller',
    );
    expect(privateTypesOf(supergraph)).toEqual(new Set(['Account']));
  });

  it('are none in a supergraph that does not link the cache-control spec', () => {
    const sdl = `
      extend schema @link(url: "https://specs.apollo.dev/federation/v2.7", import: ["@key"])
      type Account @key(fields: "id") { id: ID! }
      type Query { account: Account }
    `;
    expect(privateTypesOf(composeSubgraphs([{ name: 'accounts', sdl }]).supergraphSdl)).toEqual(new Set());
  });

  it('are User and Order in the committed supergraph', () => {
    expect(privateTypesOf(readFileSync(supergraphPath, 'utf8'))).toEqual(new Set(['Order', 'User']));
  });
});
