import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

/**
 * Subscribers, in their own process (never the gateway's): one graphql-ws connection each, authenticated
 * with the subscriber's JWT as an app would. Driven over IPC by subscriptions.ts: `connect`, then
 * `report` (every message's receipt time), then `close`.
 */

export interface Subscriber {
  token: string;
  /** orderStatusChanged(orderId:) in order mode; the STAFF feed (orderUpdates) without. */
  orderId?: string;
}

export type ClientCommand =
  | { type: 'connect'; url: string; query: string; subscribers: Subscriber[]; concurrency: number }
  | { type: 'report' }
  | { type: 'close' };

export interface Receipt {
  /** Epoch ms (performance.timeOrigin + now: comparable across processes on one machine). */
  at: number;
  orderId: string;
  status: string;
  version: number;
}

export interface ConnectReport {
  type: 'connected';
  ok: number;
  failed: number;
  errors: string[];
  ms: number;
}

const now = () => performance.timeOrigin + performance.now();
const clients: Client[] = [];
const receipts: Receipt[][] = [];
const errors: string[] = [];
let failed = 0;

function subscribe(url: string, query: string, subscriber: Subscriber, index: number): Promise<void> {
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${subscriber.token}` },
    retryAttempts: 0,
    lazy: false,
  });
  clients.push(client);
  receipts[index] = [];
  return new Promise<void>((resolve) => {
    let settled = false;
    const settle = (error?: string) => {
      if (settled) return;
      settled = true;
      if (error) {
        failed++;
        if (errors.length < 5) errors.push(error);
      }
      resolve();
    };
    const timer = setTimeout(() => settle('no first result within 60 s'), 60_000);
    // The feed sends nothing until a change: the connection's ack stands for "subscribed".
    if (!subscriber.orderId) client.on('connected', () => setTimeout(() => settle(), 0));
    client.subscribe(
      { query, variables: subscriber.orderId ? { id: subscriber.orderId } : {} },
      {
        next: (value) => {
          const at = now();
          const data = value.data as Record<string, { id: string; status: string; version: number }> | undefined;
          const order = data ? Object.values(data)[0] : undefined;
          if (value.errors?.length || !order) {
            if (errors.length < 5) errors.push(JSON.stringify(value).slice(0, 300));
          } else {
            receipts[index]!.push({ at, orderId: order.id, status: order.status, version: order.version });
          }
          clearTimeout(timer);
          settle();
        },
        error: (error) => {
          clearTimeout(timer);
          settle(JSON.stringify(error instanceof Error ? error.message : error).slice(0, 300));
        },
        complete: () => undefined,
      },
    );
  });
}

process.on('message', (command: ClientCommand) => {
  void (async () => {
    if (command.type === 'connect') {
      const started = now();
      let next = 0;
      // A bounded number of subscribes in flight: each one makes the gateway resolve a snapshot.
      const worker = async () => {
        while (next < command.subscribers.length) {
          const index = next++;
          await subscribe(command.url, command.query, command.subscribers[index]!, index);
        }
      };
      await Promise.all(Array.from({ length: command.concurrency }, worker));
      const report: ConnectReport = {
        type: 'connected',
        ok: command.subscribers.length - failed,
        failed,
        errors,
        ms: now() - started,
      };
      process.send!(report);
    } else if (command.type === 'report') {
      process.send!({ type: 'report', receipts, errors });
    } else {
      await Promise.all(clients.map((client) => client.dispose()));
      process.send!({ type: 'closed' }, () => process.exit(0));
    }
  })();
});
