import type { z } from 'zod';
import { badInput } from './errors.js';

/**
 * Parses client input with a zod schema, or raises BAD_USER_INPUT naming the first bad field
 * (e.g. `items.0.quantity must be at most 50`), with the field in `extensions.field`.
 */
export function parseInput<T>(schema: z.ZodType<T>, input: unknown): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = issue.path.join('.');
  throw badInput(`${field || 'input'} ${issue.message}`, { field });
}
