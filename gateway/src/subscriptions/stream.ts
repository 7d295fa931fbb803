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
  /** The stream logs through a child of it with `logBindings`, made only when it has something to log. */
  logger: Logger;
  logBindings?: Record<string, unknown>;
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
 * removing the listener even while a result is being resolved or the stream waits for changes. And
 * an idle stream keeps no suspended function: the worker runs only while there are changes to
 * resolve, and starts again with the next one (thousands of idle subscribers each keep little).
 */
export class OrderSubscriptionStream implements AsyncIterableIterator<ExecutionResult> {
  private readonly outputs: Output[] = [];
  private reader:
    { resolve: (result: IteratorResult<ExecutionResult>) => void; reject: (error: unknown) => void } | undefined;
  private readonly events: OrderStatusChanged[] = [];
  /** The snapshot is delivered (orderStatusChanged) or not needed: changes may be resolved. */
  private ready = false;
  /** The worker is resolving changes. */
  private working = false;
  /** orderStatusChanged: the last version delivered of the order. */
  private lastVersion: number | undefined;
  /** orderUpdates: the last version delivered, per order (made with the first change). */
  private delivered: Map<string, number> | undefined;
  private unlisten: (() => void) | undefined;
  /** No more work: the subscriber left, or the stream finished. */
  private stopped = false;
  private ended = false;

  constructor(private readonly options: OrderStreamOptions) {
    void this.start();
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

  /** Listens, then (orderStatusChanged) delivers the current state; changes meanwhile wait in `events`. */
  private async start(): Promise<void> {
    const { plan, hub, resolve } = this.options;
    try {
      try {
        const onChange = (event: OrderStatusChanged) => this.enqueue(event);
        const unlisten = plan.orderId ? await hub.listen(plan.orderId, onChange) : await hub.listenAll(onChange);
        this.unlisten = unlisten;
        // Also when the subscriber left while the listener was being added.
        if (this.stopped) return unlisten();
      } catch (error) {
        this.log().error({ err: error }, 'could not listen to order events');
        throw subscriptionError(SubscriptionErrorCode.UPSTREAM_UNAVAILABLE, 'order updates are unavailable right now');
      }
      if (plan.orderId) {
        const snapshot = await resolve(plan.orderId);
        if (this.stopped) return;
        if (snapshot.status === null || snapshot.version === null) throw refusal(snapshot, plan.orderId);
        this.lastVersion = snapshot.version;
        this.push({ kind: 'next', value: toExecutionResult(snapshot.result) });
        if (finalStatuses.has(snapshot.status)) return this.finish();
      }
      this.ready = true;
    } catch (error) {
      return this.fail(error);
    }
    if (this.events.length > 0) await this.work();
  }

  /** Resolves and delivers the waiting changes, one after the other, then returns until the next one. */
  private async work(): Promise<void> {
    const { plan, resolve } = this.options;
    this.working = true;
    try {
      for (;;) {
        if (this.stopped) return;
        const event = this.events.shift();
        if (!event) return;
        const { orderId, to, version, final } = event.data;
        if (!this.isNew(orderId, version)) continue;
        const shaped = await resolve(orderId, { status: to, version });
        if (this.stopped) return;
        this.push({ kind: 'next', value: toExecutionResult(shaped.result) });
        if (final && plan.orderId) return this.finish();
      }
    } catch (error) {
      this.fail(error);
    } finally {
      this.working = false;
    }
  }

  /** Whether `version` is above the last one delivered for the order; if so, it is the last one now. */
  private isNew(orderId: string, version: number): boolean {
    if (this.options.plan.orderId) {
      if (this.lastVersion !== undefined && version <= this.lastVersion) return false;
      this.lastVersion = version;
      return true;
    }
    const delivered = (this.delivered ??= new Map());
    const last = delivered.get(orderId);
    if (last !== undefined && version <= last) return false;
    delivered.delete(orderId);
    delivered.set(orderId, version);
    if (delivered.size > FEED_MEMORY) delivered.delete(delivered.keys().next().value!);
    return true;
  }

  private enqueue(event: OrderStatusChanged) {
    if (this.stopped) return;
    if (this.events.length >= (this.options.maxPendingEvents ?? 1_000)) {
      this.log().warn({ pending: this.events.length }, 'a subscriber fell behind; ending its subscription');
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
    if (this.ready && !this.working) void this.work();
  }

  /** The order reached a final status: the last result is out, the stream completes. */
  private finish() {
    this.push({ kind: 'done' });
    this.stop();
  }

  private fail(error: unknown) {
    if (this.stopped) return;
    if (error instanceof GraphQLError) {
      this.push({ kind: 'error', error });
    } else {
      this.log().error({ err: error }, 'a subscription failed');
      this.push({
        kind: 'error',
        error: subscriptionError(SubscriptionErrorCode.INTERNAL_SERVER_ERROR, 'Internal server error'),
      });
    }
    this.stop();
  }

  private log(): Logger {
    const { logger, logBindings } = this.options;
    return logBindings ? logger.child(logBindings) : logger;
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
