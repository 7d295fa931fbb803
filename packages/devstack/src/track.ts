/**
 * Follows orders live from a terminal, as an app would: a graphql-ws client on the gateway.
 *
 *   TOKEN=<jwt> pnpm track <orderId>     one order (its customer, or staff): current status, then each change
 *   TOKEN=<jwt> pnpm track --kitchen     every order's changes (staff)
 *
 * Prints one JSON line per message; exits 0 when the order reaches a final state, 1 on an error.
 * GATEWAY_URL defaults to http://127.0.0.1:4000/graphql.
 */
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const ORDER = `subscription Track($id: ID!) {
  orderStatusChanged(orderId: $id) { id status version customer { name } items { quantity meal { name } } payment { status } }
}`;
const KITCHEN = `subscription Kitchen { orderUpdates { id status version customer { name } } }`;

const [target] = process.argv.slice(2);
const token = process.env.TOKEN;
if (!target || !token) {
  process.stderr.write('usage: TOKEN=<jwt> pnpm track <orderId> | --kitchen\n');
  process.exit(2);
}
const url = (process.env.GATEWAY_URL ?? 'http://127.0.0.1:4000/graphql').replace(/^http/, 'ws');
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { authorization: `Bearer ${token}` },
  // Survive a gateway restart: resubscribing sends the current status first, so nothing is missed.
  retryAttempts: 30,
  shouldRetry: () => true,
});
const exit = async (code: number) => {
  await client.dispose();
  process.exit(code);
};
const request = target === '--kitchen' ? { query: KITCHEN } : { query: ORDER, variables: { id: target } };
process.stderr.write(
  `following ${target === '--kitchen' ? 'every order' : `order ${target}`} on ${url} (Ctrl-C stops)\n`,
);
client.subscribe(request, {
  next: (message) => process.stdout.write(`${JSON.stringify(message)}\n`),
  error: (error) => {
    process.stderr.write(`${JSON.stringify(error instanceof Error ? error.message : error)}\n`);
    void exit(1);
  },
  complete: () => {
    process.stderr.write('the order reached a final state\n');
    void exit(0);
  },
});
process.once('SIGINT', () => void exit(0));
