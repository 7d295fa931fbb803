import WebSocket from 'ws';
import { changeKey, type ReceiptKind } from './live-operations.js';

/**
 * Subscribers, in their own process (never the gateway's): one WebSocket connection each, speaking
 * graphql-ws's protocol (graphql-transport-ws) as its browser client would, with the subscriber's
 * JWT (or none: anonymous) in `connection_init`. Driven over IPC by subscriptions.ts: `connect`, then
 * `count` and `report` (each result's receipt time), then `close`.
 *
 * Not graphql-ws's `createClient`: one of those per socket took 1.5x the CPU per message and 7 KiB
 * more memory per connection (10,000 of them, on the bench machine), and this process shares the
 * cores with the gateway it measures; its time per message is inside every latency. The protocol is
 * small: init, ack, subscribe, next/error/complete, ping/pong.
 */

export interface Subscriber {
  /** A JWT for `connection_init`'s `authorization`; none: anonymous. */
  token?: string;
  variables: Record<string, unknown>;
  /**
   * The subscription starts with a current state (the first result means "subscribed"). Without one
   * (a feed), the connection's ack and the subscribe sent stand for it; the bench then waits until the
   * gateway counts the subscription.
   */
  firstResult: boolean;
}

export type ClientCommand =
  | {
      type: 'connect';
      url: string;
      query: string;
      receipt: ReceiptKind;
      subscribers: Subscriber[];
      /** Index of this process's first subscriber among all of the scenario's (receipts use it). */
      offset: number;
      concurrency: number;
      /**
       * Subscribers per connection: consecutive ones share a socket (and its token), each its own
       * subscription on it, as an app screen with several live lists would. Default 1.
       */
      perConnection?: number;
    }
  /** Receipts at or after `since` (epoch ms): how many, or all of them. */
  | { type: 'count'; since: number }
  | { type: 'report'; since: number }
  | { type: 'close' };

/** [subscriber index, epoch ms of arrival, the change it shows (changeKey)]. */
export type Receipt = [subscriber: number, at: number, key: string];

export interface ConnectReport {
  type: 'connected';
  ok: number;
  failed: number;
  errors: string[];
  ms: number;
}

export interface CountReport {
  type: 'count';
  receipts: number;
  /** Connections the gateway closed, or that failed, after they had subscribed. */
  dropped: number;
}

export interface ReceiptReport {
  type: 'report';
  receipts: Receipt[];
  errors: string[];
  dropped: number;
}

/** Epoch ms (performance.timeOrigin + now: comparable across processes on one machine). */
const now = () => performance.timeOrigin + performance.now();
const sockets: WebSocket[] = [];
const receipts: Receipt[] = [];
const errors: string[] = [];
const note = (error: string) => {
  if (errors.length < 10) errors.push(error.slice(0, 300));
};
let failed = 0;
let dropped = 0;
let closing = false;

/** Connects one socket for the subscribers from `first` (perConnection of them) and subscribes each. */
function subscribe(command: Extract<ClientCommand, { type: 'connect' }>, first: number): Promise<void> {
  const group = command.subscribers.slice(first, first + (command.perConnection ?? 1));
  // Uncompressed, as between a browser and this gateway (its server does not enable permessage-deflate).
  // Text frames are not checked for UTF-8 here (a browser does): each is parsed as JSON and matched
  // to its change below, which a broken frame fails, and the check's time would count in every latency.
  const socket = new WebSocket(command.url, 'graphql-transport-ws', {
    perMessageDeflate: false,
    skipUTF8Validation: true,
  });
  sockets.push(socket);
  return new Promise<void>((resolve) => {
    let settled = false;
    /** Subscriptions still waiting for their first result (those that start with one). */
    let waiting = group.filter((subscriber) => subscriber.firstResult).length;
    const settle = (error?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) {
        failed += group.length;
        note(error);
      }
      resolve();
    };
    const timer = setTimeout(() => settle('not subscribed within 60 s'), 60_000);
    socket.on('open', () => {
      // The group shares the first subscriber's token (a scenario groups callers of one kind).
      const token = group[0]!.token;
      socket.send(
        JSON.stringify({ type: 'connection_init', payload: token ? { authorization: `Bearer ${token}` } : {} }),
      );
    });
    const firstSeen = new Set<number>();
    socket.on('message', (data: Buffer) => {
      const at = now();
      let message: { type?: string; id?: string; payload?: unknown };
      try {
        message = JSON.parse(String(data)) as typeof message;
      } catch {
        return note(`not JSON: ${String(data)}`);
      }
      switch (message.type) {
        case 'next': {
          const j = Number(message.id);
          const result = message.payload as { data?: Record<string, unknown> | null; errors?: unknown[] };
          const entity = result.data ? Object.values(result.data)[0] : undefined;
          const key = result.errors?.length ? undefined : changeKey(command.receipt, entity);
          if (key === undefined) note(`unexpected result: ${JSON.stringify(result)}`);
          else receipts.push([command.offset + first + j, at, key]);
          if (group[j]?.firstResult && !firstSeen.has(j)) {
            firstSeen.add(j);
            if (--waiting === 0) settle();
          }
          return;
        }
        case 'connection_ack':
          group.forEach((subscriber, j) =>
            socket.send(
              JSON.stringify({
                id: String(j),
                type: 'subscribe',
                payload: { query: command.query, variables: subscriber.variables },
              }),
            ),
          );
          if (waiting === 0) settle();
          return;
        case 'error':
          return settle(`subscribe refused: ${JSON.stringify(message.payload)}`);
        case 'complete':
          return note('the gateway completed a subscription');
        case 'ping':
          return socket.send(JSON.stringify({ type: 'pong' }));
        default:
          return;
      }
    });
    socket.on('error', (error) => {
      if (!settled) settle(`socket error: ${error.message}`);
    });
    socket.on('close', (code, reason) => {
      if (closing) return;
      if (!settled) return settle(`closed before it subscribed: ${code} ${String(reason)}`);
      dropped++;
      note(`closed by the gateway: ${code} ${String(reason)}`);
    });
  });
}

async function closeAll(): Promise<void> {
  closing = true;
  const open = sockets.filter((socket) => socket.readyState !== WebSocket.CLOSED);
  const closed = Promise.all(
    open.map((socket) => new Promise((resolve) => (socket.once('close', resolve), socket.close(1000)))),
  );
  // The gateway answers each close; those it has not answered within 10 s are cut off.
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, 10_000)))]);
  clearTimeout(timer);
  for (const socket of open) if (socket.readyState !== WebSocket.CLOSED) socket.terminate();
}

process.on('message', (command: ClientCommand) => {
  void (async () => {
    if (command.type === 'connect') {
      const started = now();
      let next = 0;
      // A bounded number of subscribes in flight: each one makes the gateway resolve a current state.
      const step = command.perConnection ?? 1;
      const worker = async () => {
        while (next < command.subscribers.length) {
          const first = next;
          next += step;
          await subscribe(command, first);
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
    } else if (command.type === 'count') {
      let count = 0;
      for (const receipt of receipts) if (receipt[1] >= command.since) count++;
      process.send!({ type: 'count', receipts: count, dropped } satisfies CountReport);
    } else if (command.type === 'report') {
      const report: ReceiptReport = {
        type: 'report',
        receipts: receipts.filter((receipt) => receipt[1] >= command.since),
        errors,
        dropped,
      };
      process.send!(report);
    } else {
      await closeAll();
      process.send!({ type: 'closed' }, () => process.exit(0));
    }
  })();
});
