import { z } from 'zod';
import { badInput } from './errors.js';

/** Cursors are opaque to clients: base64url of the row id. */
export const encodeCursor = (id: string) => Buffer.from(id, 'utf8').toString('base64url');

export function decodeCursor(cursor: string): string {
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!z.uuid().safeParse(id).success) throw badInput('Invalid cursor', { argument: 'after' });
  return id;
}

/** Validates `first` against the connection's bounds; a client never gets an unbounded list. */
export function pageSize(first: number | null | undefined, { fallback, max }: { fallback: number; max: number }) {
  const size = first ?? fallback;
  if (!Number.isInteger(size) || size < 1 || size > max) {
    throw badInput(`"first" must be between 1 and ${max}`, { argument: 'first', max });
  }
  return size;
}

/** Builds a Relay connection from `size + 1` fetched rows. */
export function toConnection<T extends { id: string }>(rows: T[], size: number) {
  const page = rows.slice(0, size);
  return {
    edges: page.map((node) => ({ cursor: encodeCursor(node.id), node })),
    pageInfo: {
      hasNextPage: rows.length > size,
      endCursor: page.length > 0 ? encodeCursor(page[page.length - 1]!.id) : null,
    },
  };
}
