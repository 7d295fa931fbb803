import type { ExecutionResult, FormattedExecutionResult } from 'graphql';
import { GraphQLError } from '../graphql-js.js';
import type { Logger } from '@food/platform';
import { subscriptionError, SubscriptionErrorCode } from './errors.js';
import type { OrderEventHub, OrderStatusChanged } from './hub.js';
import { finalStatuses, type ShapedResult, type SubscriptionPlan } from './operation.js';

/**
 * Resolves the plan's query for one order, as the subscriber (through the gateway's query plan);
 * with a change, the change's status and version replace the resolved ones.
 */
export type OrderResolver = (orderId: string, change?: { status: string; version: number }) => Promise<ShapedResult>;

export interface OrderStreamOptions {
  plan: SubscriptionPlan;
  hub: OrderEventHub;
  resolve: OrderResolver;
  logger: Logger;
  /** Changes waiting to be resolved before the subscriber is considered too slow. Default 1000. */
  maxPendingEvents?: number;
  /** Called once, when the stream has ended for whatever reason (for counting). */
  onEnd?: () => void;
}

type Output = { kind: 'next'; value: ExecutionResult } | { kind: 'error'; error: GraphQLError } | { kind: 'done' };

/** How many orders' last versions the feed remembers, to drop repeated or stale changes. */
const FEED_MEMORY = 10_000;

/**
 * One subscriber's results, as the async iterator graphql-ws consumes. A single worker handles the
 * subscriber's changes one after the other, so results go out in the order the changes came, each
 * with its own status and version, however long resolving takes.
 *
 * `orderStatusChanged`: listen first (nothing is missed), then resolve the current state and deliver
 * it, then each change whose version is above the last one delivered (a change the snapshot already
 * shows, a repeat or a stale one is dropped); end after a final status. `orderUpdates`: every change
 * of any order (repeats per order dropped), never ending by itself.
 *
 * Not an async generator on purpose: `return()` (unsubscribe, socket closed) takes effect at once,
 * removing the listener even while a result is being resolved or the stream waits for changes.
 */
export class OrderSubscriptionStream implements AsyncIterableIterator<ExecutionResult> {
  private readonly outputs: Output[] = [];
  private reader:
    { resolve: (result: IteratorResult<ExecutionResult>) => void; reject: (error: unknown) => void } | undefined;
  private readonly events: OrderStatusChanged[] = [];
  private wake: (() => void) | undefined;
  /** Last version delivered, per order. */
  private readonly delivered = new Map<string, number>();
  private unlisten: (() => void) | undefined;
  /** No more work: the subscriber left, or the worker finished. */
  private stopped = false;
  private ended = false;

  constructor(private readonly options: OrderStreamOptions) {
    void this.run();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<ExecutionResult>> {
    const output = this.outputs.shift();
    if (output) return this.settle(output);
    if (this.ended) return Promise.resolve({ done: true, value: undefined });
    if (this.reader) return Promise.reject(new Error('one reader at a time'));
    return new Promise((resolve, reject) => {
      this.reader = { resolve, reject };
    });
  }

  /** The subscriber left: stop at once, drop what was not delivered, remove the listener. */
  async return(): Promise<IteratorResult<ExecutionResult>> {
    this.stop();
    this.outputs.length = 0;
    const reader = this.reader;
    this.reader = undefined;
    this.end();
    reader?.resolve({ done: true, value: undefined });
    return { done: true, value: undefined };
  }

  private async run(): Promise<void> {
    const { plan, hub, resolve, logger } = this.options;
    try {
      try {
        const onChange = (event: OrderStatusChanged) => this.enqueue(event);
        this.unlisten = plan.orderId ? await hub.listen(plan.orderId, onChange) : await hub.listenAll(onChange);
      } catch (error) {
        logger.error({ err: error }, 'could not listen to order events');
        throw subscriptionError(SubscriptionErrorCode.UPSTREAM_UNAVAILABLE, 'order updates are unavailable right now');
      }
      if (this.stopped) return;

      if (plan.orderId) {
        // The current state first. Changes that arrive meanwhile wait in `events`.
        const snapshot = await resolve(plan.orderId);
        if (this.stopped) return;
        if (snapshot.status === null || snapshot.version === null) throw refusal(snapshot, plan.orderId);
        this.delivered.set(plan.orderId, snapshot.version);
        this.push({ kind: 'next', value: toExecutionResult(snapshot.result) });
        if (finalStatuses.has(snapshot.status)) return this.push({ kind: 'done' });
      }

      for (;;) {
        const event = await this.nextEvent();
        if (!event) return;
        const { orderId, to, version, final } = event.data;
        const last = this.delivered.get(orderId);
        if (last !== undefined && version <= last) continue;
        this.remember(orderId, version);
        const shaped = await resolve(orderId, { status: to, version });
        if (this.stopped) return;
        this.push({ kind: 'next', value: toExecutionResult(shaped.result) });
        if (final && plan.orderId) return this.push({ kind: 'done' });
      }
    } catch (error) {
      if (this.stopped) return;
      if (error instanceof GraphQLError) {
        this.push({ kind: 'error', error });
      } else {
        logger.error({ err: error }, 'a subscription failed');
        this.push({
          kind: 'error',
          error: subscriptionError(SubscriptionErrorCode.INTERNAL_SERVER_ERROR, 'Internal server error'),
        });
      }
    } finally {
      this.stop();
      // Also when the subscriber left while the listener was being added.
      this.unlisten?.();
    }
  }

  private enqueue(event: OrderStatusChanged) {
    if (this.stopped) return;
    if (this.events.length >= (this.options.maxPendingEvents ?? 1_000)) {
      this.options.logger.warn({ pending: this.events.length }, 'a subscriber fell behind; ending its subscription');
      this.push({
        kind: 'error',
        error: subscriptionError(
          SubscriptionErrorCode.SUBSCRIPTION_OVERFLOW,
          'too many changes waiting for this subscription; subscribe again',
        ),
      });
      this.stop();
      return;
    }
    this.events.push(event);
    this.wake?.();
  }

  private async nextEvent(): Promise<OrderStatusChanged | undefined> {
    for (;;) {
      if (this.stopped) return undefined;
      const event = this.events.shift();
      if (event) return event;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
  }

  private remember(orderId: string, version: number) {
    this.delivered.delete(orderId);
    this.delivered.set(orderId, version);
    if (this.delivered.size > FEED_MEMORY) this.delivered.delete(this.delivered.keys().next().value!);
  }

  private push(output: Output) {
    if (this.ended) return;
    const reader = this.reader;
    if (!reader) {
      this.outputs.push(output);
      return;
    }
    this.reader = undefined;
    this.settle(output).then(reader.resolve, reader.reject);
  }

  private settle(output: Output): Promise<IteratorResult<ExecutionResult>> {
    if (output.kind === 'next') return Promise.resolve({ done: false, value: output.value });
    this.end();
    if (output.kind === 'error') return Promise.reject(output.error);
    return Promise.resolve({ done: true, value: undefined });
  }

  private stop() {
    if (this.stopped) return;
    this.stopped = true;
    this.events.length = 0;
    this.unlisten?.();
    this.wake?.();
  }

  private end() {
    if (this.ended) return;
    this.ended = true;
    this.options.onEnd?.();
  }
}

/** The error that ends a subscription whose order did not resolve (not found, not the caller's, ...). */
function refusal(snapshot: ShapedResult, orderId: string): GraphQLError {
  const first = snapshot.result.errors?.[0];
  if (!first) return subscriptionError(SubscriptionErrorCode.NOT_FOUND, `Order ${orderId} was not found`);
  return new GraphQLError(first.message, { extensions: first.extensions });
}

/**
 * graphql-ws sends `GraphQLError`s. Errors from the query keep their message, path and extensions;
 * their locations point into the gateway's rewritten query, so they are left out.
 */
function toExecutionResult(result: FormattedExecutionResult): ExecutionResult {
  return {
    data: result.data ?? null,
    ...(result.errors?.length
      ? {
          errors: result.errors.map(
            (error) => new GraphQLError(error.message, { path: error.path, extensions: error.extensions }),
          ),
        }
      : {}),
  };
}
