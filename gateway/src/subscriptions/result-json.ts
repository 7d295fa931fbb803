import type { ExecutionResult } from 'graphql';

/**
 * A result's JSON, made once: a topic hands the same result object to every subscriber of it, and
 * each transport writes this text (graphql-ws splices it into its message) instead of serialising
 * the result again per subscriber. Kept only while the result itself is.
 */
const texts = new WeakMap<object, string>();
const bytes = new WeakMap<object, Buffer>();

export function resultJson(result: ExecutionResult): string {
  let text = texts.get(result);
  if (text === undefined) texts.set(result, (text = JSON.stringify(result)));
  return text;
}

/** The same JSON as UTF-8 bytes, encoded once, for transports that write buffers. */
export function resultBytes(result: ExecutionResult): Buffer {
  let buffer = bytes.get(result);
  if (buffer === undefined) bytes.set(result, (buffer = Buffer.from(resultJson(result))));
  return buffer;
}
