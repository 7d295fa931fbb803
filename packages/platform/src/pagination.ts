import { z } from 'zod';
import { badInput } from './errors.js';

/** Cursors are opaque to clients: base64url of the row id. */
export const encodeCursor = (id: string) => Buffer.from(id, 'utf8').toString('base64url');

export function decodeCursor(cursor: string): string {
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!z.uuid().safeParse(id).success) throw badInput('Invalid cursor', { argument: 'after' });
  return id;
}

/**
 * A keyset cursor of several values, for a list sorted by more than the id (e.g. status, then time,
 * then id): opaque to clients, base64url of the values as JSON. Decoded against the list's own schema.
 */
export const encodeKeysetCursor = (values: readonly string[]) =>
  Buffer.from(JSON.stringify(values), 'utf8').toString('base64url');

export function decodeKeysetCursor<T>(cursor: string, schema: z.ZodType<T>): T {
  let values: unknown;
  try {
    values = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw badInput('Invalid cursor', { argument: 'after' });
  }
  const parsed = schema.safeParse(values);
  if (!parsed.success) throw badInput('Invalid cursor', { argument: 'after' });
  return parsed.data;
}

/** Validates `first` against the connection's bounds; a client never gets an unbounded list. */
export function pageSize(first: number | null | undefined, { fallback, max }: { fallback: number; max: number }) {
  const size = first ?? fallback;
  if (!Number.isInteger(size) || size < 1 || size > max) {
    throw badInput(`"first" must be between 1 and ${max}`, { argument: 'first', max });
  }
  return size;
}

/** Builds a Relay connection from `size + 1` fetched rows; each cursor is the row's id unless `cursorOf` says. */
export function toConnection<T extends { id: string }>(
  rows: T[],
  size: number,
  cursorOf: (node: T) => string = (node) => encodeCursor(node.id),
) {
  const page = rows.slice(0, size);
  return {
    edges: page.map((node) => ({ cursor: cursorOf(node), node })),
    pageInfo: {
      hasNextPage: rows.length > size,
      endCursor: page.length > 0 ? cursorOf(page[page.length - 1]!) : null,
    },
  };
}
