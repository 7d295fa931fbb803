import { ApolloServer } from '@apollo/server';
import { afterEach, describe, expect, it } from 'vitest';
import { serveGraphQL, type RunningHttpService } from './http.js';
import { createLogger } from './logger.js';
import { REQUEST_ID_HEADER } from './telemetry/request-telemetry.js';

/**
 * The HTTP shell's `preempt`: what it answers has what every answer has (request id, CORS), and what
 * it does not answer reaches Apollo Server exactly as without it, bodies that do not parse included.
 */

const running: RunningHttpService[] = [];
afterEach(async () => {
  for (const service of running.splice(0)) await service.close();
});

async function serve(preempt?: Parameters<typeof serveGraphQL>[0]['preempt']) {
  const service = await serveGraphQL({
    name: 'test',
    logger: createLogger('test', 'silent'),
    port: 0,
    cors: { origin: 'https://app.example', exposedHeaders: ['RateLimit-Limit'] },
    production: true,
    createServer: (plugins) =>
      new ApolloServer({
        typeDefs: 'type Query { hello(name: String): String }',
        resolvers: { Query: { hello: (_: unknown, { name }: { name?: string }) => `hello ${name ?? 'you'}` } },
        plugins,
      }),
    context: async () => ({}),
    preempt,
  });
  running.push(service);
  return service;
}

const post = (url: string, body: string, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

describe('preempt', () => {
  it('answers what it takes, with the request id and CORS headers, and hands on the rest with its body', async () => {
    const seen: unknown[] = [];
    const { url } = await serve(async (req, res) => {
      seen.push(req.body);
      if (req.body.operationName !== 'Cached') return false;
      res.setHeader('content-type', 'application/json; charset=utf-8');
      res.end('{"data":{"hello":"from the cache"}}\n');
      return true;
    });
    const cached = await post(url, JSON.stringify({ query: 'query Cached { hello }', operationName: 'Cached' }), {
      origin: 'https://app.example',
      [REQUEST_ID_HEADER]: 'req-1',
    });
    expect(await cached.json()).toEqual({ data: { hello: 'from the cache' } });
    expect(cached.headers.get(REQUEST_ID_HEADER)).toBe('req-1');
    expect(cached.headers.get('access-control-allow-origin')).toBe('https://app.example');

    const executed = await post(
      url,
      JSON.stringify({ query: 'query ($n: String) { hello(name: $n) }', variables: { n: 'ada' } }),
      {
        origin: 'https://app.example',
      },
    );
    expect(await executed.json()).toEqual({ data: { hello: 'hello ada' } });
    expect(executed.headers.get(REQUEST_ID_HEADER)).toEqual(expect.any(String));
    expect(executed.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(seen).toHaveLength(2);
  });

  it('leaves bodies it cannot read alone: the answers are what they are without it', async () => {
    const without = await serve();
    const withPreempt = await serve(async () => false);
    const cases: [string, Record<string, string>][] = [
      ['{"query": ', {}],
      ['"just a string"', {}],
      ['[{"query":"{ hello }"}]', {}],
      ['{"query":"{ hello }"}', { 'content-type': 'text/plain' }],
      ['{"query":"{ hello }"}', { 'content-type': 'application/json; charset=latin1' }],
    ];
    for (const [body, headers] of cases) {
      const [a, b] = await Promise.all([post(without.url, body, headers), post(withPreempt.url, body, headers)]);
      expect(b.status, body).toBe(a.status);
      expect(b.headers.get('content-type'), body).toBe(a.headers.get('content-type'));
      // Express's error pages differ only in the stack trace development mode prints after the
      // error's name (production prints the status alone).
      const [textA, textB] = [await a.text(), await b.text()];
      const errorName = (text: string) => text.split('<br>')[0]!.split(':')[0];
      if (a.headers.get('content-type')?.includes('json')) expect(textB, body).toBe(textA);
      else expect(errorName(textB), body).toBe(errorName(textA));
    }
  });
});
