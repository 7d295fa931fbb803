import { vi, expect } from 'vitest';
import { createClient, type Client, type ClientOptions } from 'graphql-ws';
import WebSocket from 'ws';

/** What the end-to-end tests subscribe with: an order's tracking, and the kitchen's feed. */
export const TRACK = `subscription Track($id: ID!) {
  orderStatusChanged(orderId: $id) {
    id status version customer { name } items { quantity meal { name } } payment { status }
  }
}`;
export const FEED = `subscription Feed { orderUpdates { id status version } }`;

export const webSocketUrl = (httpUrl: string) => httpUrl.replace(/^http/, 'ws');

/** A graphql-ws client as a browser app would hold one, authenticated with the user's JWT. */
export function wsClient(httpUrl: string, token: string, options: Partial<ClientOptions> = {}): Client {
  return createClient({
    url: webSocketUrl(httpUrl),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: 0,
    ...options,
  });
}

/** What `record` needs of a client: graphql-ws's and graphql-sse's both subscribe this way. */
export interface SubscribingClient {
  subscribe(
    request: { query: string; variables: Record<string, unknown> },
    sink: { next(value: any): void; error(error: unknown): void; complete(): void },
  ): () => void;
}

/** Everything one subscription receives, with a way to wait for it. */
export function record(client: SubscribingClient, query: string, variables: Record<string, unknown> = {}) {
  const results: any[] = [];
  const state: { error?: unknown; completed: boolean } = { completed: false };
  let settle!: () => void;
  const ended = new Promise<void>((resolve) => (settle = resolve));
  const unsubscribe = client.subscribe(
    { query, variables },
    {
      next: (value) => void results.push(value),
      error: (error) => {
        state.error = error;
        settle();
      },
      complete: () => {
        state.completed = true;
        settle();
      },
    },
  );
  return {
    results,
    state,
    unsubscribe,
    /** Resolves when the subscription completes or errors; fails after `ms`. */
    async ended(ms = 20_000) {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          ended,
          new Promise<never>(
            (_, reject) =>
              (timer = setTimeout(
                () => reject(new Error(`the subscription never ended; got ${JSON.stringify(results)}`)),
                ms,
              )),
          ),
        ]);
      } finally {
        clearTimeout(timer);
      }
    },
    async received(count: number, ms = 20_000) {
      await vi.waitFor(() => expect(results.length).toBeGreaterThanOrEqual(count), { timeout: ms, interval: 20 });
      return results;
    },
  };
}

/** `STATUS/version` of each tracking message, the shape the assertions compare. */
export const statusesOf = (results: any[], field = 'orderStatusChanged'): string[] =>
  results.map((result) => `${result.data[field].status}/${result.data[field].version}`);

/** The happy path of a paid order, from the kitchen's side. */
export const KITCHEN_FLOW = ['ACCEPTED', 'PREPARING', 'READY', 'OUT_FOR_DELIVERY', 'DELIVERED'] as const;

/** What a tracker of a delivered order sees: every status, with its version, in order. */
export const WHOLE_JOURNEY = [
  'PENDING_PAYMENT/1',
  'PAID/2',
  'ACCEPTED/3',
  'PREPARING/4',
  'READY/5',
  'OUT_FOR_DELIVERY/6',
  'DELIVERED/7',
];
