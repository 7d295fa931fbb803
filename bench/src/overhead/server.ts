import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { execute, parse, validate, type DocumentNode, type GraphQLSchema } from 'graphql';
import { overheadSchema, overheadSubgraphNames, type OverheadSubgraph } from './subgraphs.js';

/**
 * The gateway-overhead workload's servers, in a process of their own (never a gateway's):
 * - `subgraphs`: the four fixture subgraphs on the ports of OVERHEAD_PORTS (`name:port,...`), each
 *   call answered after OVERHEAD_DELAY_MS (the public benchmarks' fixed subgraph delay); `/metrics`
 *   counts calls as our subgraphs do (graphql_requests_total), for the report's calls per response.
 * - `ceiling`: a plain HTTP server on CEILING_PORT answering every POST with CEILING_BODY_FILE's bytes,
 *   the response a gateway gives to the workload's query: what Node's HTTP alone costs.
 */

const readBody = (request: IncomingMessage) =>
  new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });

const send = (response: ServerResponse, status: number, body: string | Buffer, type = 'application/json') => {
  response.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  response.end(body);
};

function serveSubgraph(schema: GraphQLSchema, port: number, delayMs: number) {
  // Parsed and validated once per query text: the fixture spends its time answering, not parsing.
  const documents = new Map<string, DocumentNode | string>();
  const documentOf = (query: string) => {
    let document = documents.get(query);
    if (document === undefined) {
      const parsed = parse(query);
      const errors = validate(schema, parsed);
      document = errors.length ? JSON.stringify({ errors }) : parsed;
      if (documents.size < 1_000) documents.set(query, document);
    }
    return document;
  };
  let requests = 0;
  const server = createServer((request, response) => {
    if (request.method === 'GET' && request.url === '/metrics') {
      return send(response, 200, `graphql_requests_total ${requests}\n`, 'text/plain');
    }
    if (request.method === 'GET' && request.url === '/readyz') return send(response, 200, '{"ready":true}');
    if (request.method !== 'POST') return send(response, 404, '{}');
    requests++;
    void readBody(request).then((text) => {
      setTimeout(async () => {
        try {
          const { query, variables, operationName } = JSON.parse(text) as {
            query: string;
            variables?: Record<string, unknown>;
            operationName?: string;
          };
          const document = documentOf(query);
          if (typeof document === 'string') return send(response, 400, document);
          // @apollo/subgraph's _entities answers with promises even for synchronous references.
          const result = await execute({ schema, document, variableValues: variables, operationName });
          send(response, 200, JSON.stringify(result));
        } catch (error) {
          send(response, 400, JSON.stringify({ errors: [{ message: String(error) }] }));
        }
      }, delayMs);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(port, '127.0.0.1');
}

const mode = process.argv[2];
if (mode === 'subgraphs') {
  const delayMs = Number(process.env.OVERHEAD_DELAY_MS ?? 4);
  const ports = new Map(
    (process.env.OVERHEAD_PORTS ?? '').split(',').map((pair) => pair.split(':') as [OverheadSubgraph, string]),
  );
  for (const name of overheadSubgraphNames) {
    const port = Number(ports.get(name));
    if (!port) throw new Error(`OVERHEAD_PORTS names no port for ${name}`);
    serveSubgraph(overheadSchema(name), port, delayMs);
  }
  console.log(`overhead subgraphs listening (${delayMs} ms per call)`);
} else if (mode === 'ceiling') {
  const body = readFileSync(process.env.CEILING_BODY_FILE!);
  const server = createServer((request, response) => {
    // The request is read whole, as a gateway must, then answered with the same bytes every time.
    request.resume();
    request.on('end', () => send(response, 200, body));
  });
  server.keepAliveTimeout = 60_000;
  server.listen(Number(process.env.CEILING_PORT), '127.0.0.1');
  console.log('ceiling listening');
} else {
  throw new Error(`usage: server.ts subgraphs|ceiling (got ${mode})`);
}
