import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { GraphQLError } from '../graphql-js.js';
import { mediaRangesOf } from './http-streams.js';
import { EventStreamFraming, serverSentEvents } from './sse.js';

/** The event stream's bytes; a real graphql-sse client reads them in http-streams.test.ts. */

const requestWith = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;

describe('Server-Sent Events framing', () => {
  it('frames each result as a `next` event with an id, and the end as `complete` with empty data', () => {
    const framing = new EventStreamFraming(0, 12_000);
    expect(framing.opening).toBe(':\n\n');
    expect(framing.next({ data: { orderStatusChanged: { status: 'PAID' } } })).toBe(
      'id: 1\nevent: next\ndata: {"data":{"orderStatusChanged":{"status":"PAID"}}}\n\n',
    );
    expect(framing.next({ data: { orderStatusChanged: { status: 'ACCEPTED' } } })).toMatch(/^id: 2\nevent: next\n/);
    expect(framing.completed).toBe('event: complete\ndata:\n\n');
    expect(framing.heartbeat).toBe(':\n\n');
  });

  it('keeps a result on one data line: newlines in values are escaped by JSON', () => {
    const event = new EventStreamFraming(0, 12_000).next({ data: { note: 'line one\nline two' } });
    expect(event.split('\n')).toEqual([
      'id: 1',
      'event: next',
      'data: {"data":{"note":"line one\\nline two"}}',
      '',
      '',
    ]);
  });

  it('ends with errors as one `next` with `errors`, then `complete`; a retry ends without `complete`', () => {
    const framing = new EventStreamFraming(0, 12_000);
    const error = new GraphQLError('You may not subscribe to orderUpdates', { extensions: { code: 'FORBIDDEN' } });
    expect(framing.failed([error.toJSON()])).toBe(
      'id: 1\nevent: next\ndata: {"errors":[{"message":"You may not subscribe to orderUpdates",' +
        '"extensions":{"code":"FORBIDDEN"}}]}\n\nevent: complete\ndata:\n\n',
    );
    expect(framing.retry()).toBe('');
  });

  it('goes on from the Last-Event-ID a reconnecting client sends, and ignores one that is not ours', () => {
    const protocol = serverSentEvents();
    expect(protocol.open(requestWith({ 'last-event-id': '41' })).next({ data: {} })).toMatch(/^id: 42\n/);
    for (const foreign of ['abc', '-3', '1e5', '']) {
      expect(protocol.open(requestWith({ 'last-event-id': foreign })).next({ data: {} })).toMatch(/^id: 1\n/);
    }
    expect(protocol.open(requestWith({})).next({ data: {} })).toMatch(/^id: 1\n/);
  });

  it('is asked for with Accept: text/event-stream', () => {
    const protocol = serverSentEvents();
    const asks = (accept: string) => mediaRangesOf(accept).some((range) => protocol.accepts(range));
    expect(asks('text/event-stream')).toBe(true);
    expect(asks('application/json, Text/Event-Stream;q=0.5')).toBe(true);
    expect(asks('text/event-stream;q=0')).toBe(false);
    expect(asks('*/*')).toBe(false);
    expect(asks('application/json')).toBe(false);
  });
});
