import { describe, expect, it } from 'vitest';
import { mediaRangesOf } from './http-streams.js';
import { MultipartFraming, multipartSubscriptions } from './multipart.js';

/** The bytes of Apollo's multipart subscription protocol; Apollo Client reads them in e2e. */

describe('multipart HTTP framing', () => {
  const framing = new MultipartFraming(5_000);

  it('writes the boundary at once, then one JSON part per result, each closed by the boundary', () => {
    expect(framing.headers['content-type']).toBe('multipart/mixed;boundary="graphql";subscriptionSpec="1.0"');
    const body =
      framing.opening + framing.next({ data: { a: 1 } }) + framing.next({ data: { a: 2 } }) + framing.completed;
    // The same bytes as Apollo Router's (apollo-router/src/protocols/multipart.rs).
    expect(body).toBe(
      '\r\n--graphql\r\ncontent-type: application/json\r\n\r\n{"payload":{"data":{"a":1}}}\r\n--graphql' +
        '\r\ncontent-type: application/json\r\n\r\n{"payload":{"data":{"a":2}}}\r\n--graphql' +
        '--\r\n',
    );
  });

  it('sends `{}` as a heartbeat part', () => {
    expect(framing.heartbeat).toBe('\r\ncontent-type: application/json\r\n\r\n{}\r\n--graphql');
  });

  it('ends with an error as a part with a null payload, then the final boundary; a retry the same way', () => {
    const error = {
      message: 'the gateway is shutting down; subscribe again',
      extensions: { code: 'SUBSCRIPTIONS_UNAVAILABLE', retryable: true },
    };
    const expected =
      '\r\ncontent-type: application/json\r\n\r\n' +
      '{"payload":null,"errors":[{"message":"the gateway is shutting down; subscribe again",' +
      '"extensions":{"code":"SUBSCRIPTIONS_UNAVAILABLE","retryable":true}}]}\r\n--graphql--\r\n';
    expect(framing.failed([error])).toBe(expected);
    expect(framing.retry(error)).toBe(expected);
  });

  it('is asked for with subscriptionSpec 1.0, quoted (Apollo docs) or not (Apollo Client 4)', () => {
    const protocol = multipartSubscriptions();
    const asks = (accept: string) => mediaRangesOf(accept).some((range) => protocol.accepts(range));
    expect(asks('multipart/mixed;subscriptionSpec="1.0", application/json')).toBe(true);
    expect(
      asks(
        'multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/graphql-response+json,application/json;q=0.9',
      ),
    ).toBe(true);
    // @defer's multipart, another version, or none: not a subscription stream.
    expect(asks('multipart/mixed;deferSpec=20220824, application/json')).toBe(false);
    expect(asks('multipart/mixed;subscriptionSpec=2.0')).toBe(false);
    expect(asks('multipart/mixed')).toBe(false);
    expect(asks('multipart/mixed;subscriptionSpec=1.0;q=0')).toBe(false);
  });
});
