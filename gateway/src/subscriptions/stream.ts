import type { ExecutionResult, FieldNode, FormattedExecutionResult, SelectionSetNode } from 'graphql';
import { ErrorCode, type DomainEvent, type Logger } from '@food/platform';
import { GraphQLError } from '../graphql-js.js';
import type { GatewayContext } from '../context.js';
import type { Condition, LiveField } from './declarations.js';
import { subscriptionError, SubscriptionErrorCode } from './errors.js';
import type { EntityRepresentation, PreparedSubscription, Resolution } from './executor.js';
import type { EventHub, EventIndex } from './hub.js';

/** Resolves the prepared subscription for one entity, as whoever the caller of it decided. */
export type EntityResolver = (entity: EntityRepresentation) => Promise<Resolution>;

/** How long a resolution that fails for an upstream reason is retried before the stream gives up. */
export interface RetryPolicy {
  /** First delay; doubles each try, up to `maxDelayMs`. */
  initialDelayMs: number;
  maxDelayMs: number;
  /** After this long without success, the stream ends with a retryable error. */
  giveUpAfterMs: number;
}
export const defaultRetryPolicy: RetryPolicy = { initialDelayMs: 100, maxDelayMs: 2_000, giveUpAfterMs: 20_000 };

/** One resolved change, shared by every subscriber of a topic. */
export interface Delivery {
  value: ExecutionResult;
  /** The entity's key, as a string, and its version after the change (when the declaration has one). */
  entityKey: string;
  version: number | undefined;
  /** The result meets the declaration's `until`. */
  final: boolean;
}

/** Codes a subgraph fetch fails with when the subgraph is unreachable or slow: worth retrying. */
const UPSTREAM_CODES: ReadonlySet<unknown> = new Set([ErrorCode.UPSTREAM_UNAVAILABLE, ErrorCode.UPSTREAM_TIMEOUT]);

/** Ends a subscription with an error that a client should answer by subscribing again (after a pause). */
export class RetryableEnd extends Error {
  override name = 'RetryableEnd';
}

/** Resolves `entity`, retrying with backoff while the answer fails for an upstream reason. */
export async function resolveWithRetry(
  resolve: EntityResolver,
  entity: EntityRepresentation,
  policy: RetryPolicy,
  stopped: () => boolean,
  /** Made only when there is something to log (a child logger per subscriber would cost memory). */
  log: () => Logger,
): Promise<Resolution | undefined> {
  const started = Date.now();
  let delay = policy.initialDelayMs;
  for (let attempt = 1; ; attempt++) {
    // A thrown error is not an upstream one (fetch failures come back as coded errors): it ends the stream.
    const resolution = await resolve(entity);
    if (!resolution.result.errors?.some((error) => UPSTREAM_CODES.has(error.extensions?.code))) return resolution;
    const failure = resolution.result.errors;
    if (stopped()) return undefined;
    if (Date.now() - started + delay > policy.giveUpAfterMs) {
      log().warn({ err: failure, attempt }, 'a subscription result did not resolve in time; ending it for a retry');
      throw new RetryableEnd('the data of this subscription is unavailable right now; subscribe again');
    }
    log().debug({ attempt, delayMs: delay }, 'a subscription result failed upstream; retrying');
    await new Promise((wake) => setTimeout(wake, delay));
    if (stopped()) return undefined;
    delay = Math.min(delay * 2, policy.maxDelayMs);
  }
}

/** Whether an event's data meets one of the declaration's conditions (none: every event does). */
export function matchesWhere(live: LiveField, data: Record<string, unknown>, args: Record<string, unknown>): boolean {
  return live.where.length === 0 || live.where.some((condition) => meets(condition, data, args));
}

function meets(condition: Condition, data: Record<string, unknown>, args: Record<string, unknown>): boolean {
  for (const [field, operand] of condition) {
    const expected = 'literal' in operand ? operand.literal : args[operand.argument];
    // An argument left out (or null) does not narrow the events.
    if (expected === undefined || expected === null) continue;
    const actual = data[field];
    const candidates = Array.isArray(expected) ? expected : [expected];
    if (!candidates.some((candidate) => same(candidate, actual))) return false;
  }
  return true;
}

const same = (a: unknown, b: unknown) => a === b || (a !== null && b !== null && String(a) === String(b));

/** Where the hub can narrow a topic's events by a data field's value, from the field's arguments. */
export function indexOf(live: LiveField, args: Record<string, unknown>): EventIndex | undefined {
  if (live.where.length !== 1) return undefined;
  for (const [field, operand] of live.where[0]!) {
    if (!('argument' in operand)) continue;
    const value = args[operand.argument];
    if (value === undefined || value === null) continue;
    return { field, values: (Array.isArray(value) ? value : [value]).map(String) };
  }
  return undefined;
}

/**
 * The entities a subscription is about from its arguments alone (the declaration ties each key field
 * to an event field that `where` equates with an argument): their current state is sent first.
 * Empty for a feed, which has no current state.
 */
export function entitiesFromArguments(live: LiveField, args: Record<string, unknown>): EntityRepresentation[] {
  if (live.where.length !== 1) return [];
  const condition = live.where[0]!;
  const values = new Map<string, unknown[]>();
  for (const [keyField, dataField] of live.key) {
    const operand = condition.get(dataField);
    const value = operand && 'argument' in operand ? args[operand.argument] : undefined;
    if (value === undefined || value === null) return [];
    values.set(keyField, Array.isArray(value) ? value : [value]);
  }
  const [only, ...others] = [...values];
  if (only && others.length === 0) {
    const [keyField, list] = only;
    return list.map((value) => ({ __typename: live.entityType, [keyField]: value }));
  }
  if ([...values.values()].some((list) => list.length !== 1)) return [];
  return [{ __typename: live.entityType, ...Object.fromEntries([...values].map(([k, [v]]) => [k, v])) }];
}

/** The entity an event is about, from the declaration's `entity` mapping. */
export function entityOf(live: LiveField, data: Record<string, unknown>): EntityRepresentation {
  const entity: EntityRepresentation = { __typename: live.entityType };
  for (const [keyField, dataField] of live.key) entity[keyField] = data[dataField];
  return entity;
}

export const entityKeyOf = (entity: EntityRepresentation) => JSON.stringify(entity);

/** The entity's fields as of the event (the declaration's `fields`). */
function projectionOf(live: LiveField, data: Record<string, unknown>): Map<string, unknown> {
  return new Map([...live.fields].map(([field, dataField]) => [field, data[dataField]]));
}

/**
 * The client's result of a resolution: with an event, its `fields` replace the resolved ones wherever
 * the client selected them, so each change shows itself rather than a later state.
 */
export function deliveryOf(
  prepared: PreparedSubscription,
  resolution: Resolution,
  entity: EntityRepresentation,
  projection?: ReadonlyMap<string, unknown>,
): Delivery {
  const hidden = { ...resolution.hidden };
  let result: FormattedExecutionResult = resolution.result;
  if (projection && resolution.result.data) {
    const object = { ...(resolution.result.data[prepared.responseKey] as Record<string, unknown>) };
    for (const [field, value] of projection) {
      if (field in hidden) hidden[field] = value;
      for (const { key, selection } of prepared.projected.get(field) ?? []) {
        if (key in object) object[key] = selection ? shaped(value, selection, object[key]) : value;
      }
    }
    result = { ...resolution.result, data: { [prepared.responseKey]: object } };
  }
  const { version, until } = prepared.live;
  const final =
    until !== undefined && [...until].every(([field, values]) => values.some((value) => same(value, hidden[field])));
  return {
    value: toExecutionResult(result),
    entityKey: entityKeyOf(entity),
    version: version === undefined ? undefined : numberOrUndefined(hidden[version]),
    final,
  };
}

/**
 * An event's object value in the shape the client selected: its response keys and its fields only.
 * What the event does not carry (`__typename`, a field it has no value for) stays as resolved.
 */
function shaped(value: unknown, selection: SelectionSetNode, resolved: unknown): unknown {
  if (Array.isArray(value)) return value.map((item, i) => shaped(item, selection, (resolved as unknown[])?.[i]));
  if (value === null || typeof value !== 'object') return value;
  const source = value as Record<string, unknown>;
  const before = (resolved ?? {}) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const field of selection.selections as FieldNode[]) {
    const key = field.alias?.value ?? field.name.value;
    if (!(field.name.value in source)) out[key] = before[key] ?? null;
    else {
      const inner = source[field.name.value];
      out[key] = field.selectionSet ? shaped(inner, field.selectionSet, before[key]) : inner;
    }
  }
  return out;
}

const numberOrUndefined = (value: unknown) => (typeof value === 'number' ? value : undefined);

/**
 * The error that ends a subscription whose entity did not resolve: the subgraph's own, or NOT_FOUND
 * when it answered null (federation's answer for an entity that is absent or not the caller's to see).
 */
export function refusalOf(resolution: Resolution, entity: EntityRepresentation): GraphQLError {
  const first = resolution.result.errors?.[0];
  if (first) return new GraphQLError(first.message, { extensions: first.extensions });
  const { __typename, ...key } = entity;
  return subscriptionError(
    SubscriptionErrorCode.NOT_FOUND,
    `${__typename} ${Object.values(key).join(', ')} was not found`,
  );
}

/** What every topic of an engine shares (one object, not closures per topic: thousands are idle). */
export interface TopicHost {
  hub: EventHub;
  retry: RetryPolicy;
  logger: Logger;
  /** Resolves the prepared subscription for one entity, with the client's variables, as `context`. */
  resolve(
    prepared: PreparedSubscription,
    entity: EntityRepresentation,
    variables: Record<string, unknown>,
    context: GatewayContext,
  ): Promise<Resolution>;
  /**
   * `resolve()`'s answer, shared with every caller that asks under the same `key` while it is in
   * flight: topics that differ only in what their events are filtered by resolve an event once, and
   * their subscribers hear of it in the same turn of the event loop.
   */
  shared(key: string, resolve: () => Promise<Resolution>): Promise<Resolution>;
  /** The topic's last subscriber has left, or it failed. */
  closed(topic: LiveTopic): void;
}

/** A `TopicHost.shared`: one resolution per key while it is in flight. */
export function sharedWhileInFlight(): TopicHost['shared'] {
  const inflight = new Map<string, Promise<Resolution>>();
  return (key, resolve) => {
    let resolution = inflight.get(key);
    if (!resolution) {
      resolution = resolve().finally(() => inflight.delete(key));
      inflight.set(key, resolution);
    }
    return resolution;
  };
}

/** How many entities' last versions a topic remembers, to drop repeated or stale changes. */
const VERSION_MEMORY = 10_000;

/**
 * The subscribers of one operation, with the same variables and audience: each event is resolved once
 * for all of them, in the order the events came, and the one result goes to every subscriber.
 */
export class LiveTopic {
  /**
   * Its one subscriber, or its subscribers once there are several: most topics (a customer's own
   * order) have one, and thousands of idle ones each keep no more than they need.
   */
  private subscribers: LiveSubscription | Set<LiveSubscription> | undefined;
  private events: DomainEvent[] | undefined;
  private working = false;
  private closed = false;
  private unlisten: (() => void) | undefined;
  private listening: Promise<void> | undefined;
  /** The last version seen by entity, made with the first versioned event. */
  private versions: Map<string, number> | undefined;

  constructor(
    private readonly host: TopicHost,
    readonly prepared: PreparedSubscription,
    /** The field's coerced arguments. */
    private readonly args: Record<string, unknown>,
    private readonly variables: Record<string, unknown>,
    /** Who resolves its events: the caller, a caller of the role, or anonymous (the audience's). */
    private readonly context: GatewayContext,
    /** Its key among its engine's topics. */
    readonly key: string,
    /** Topics with the same one get the same result for an event: the operation, the selection's variables, the audience. */
    private readonly resolutionKey: string = key,
  ) {}

  get size(): number {
    const subscribers = this.subscribers;
    return subscribers === undefined ? 0 : subscribers instanceof Set ? subscribers.size : 1;
  }

  /** Adds a subscriber; resolves once the topic hears every event published from now on. */
  async join(subscriber: LiveSubscription): Promise<void> {
    if (this.closed) throw new Error('the topic is closed');
    const subscribers = this.subscribers;
    if (subscribers === undefined) this.subscribers = subscriber;
    else if (subscribers instanceof Set) subscribers.add(subscriber);
    else if (subscribers !== subscriber) this.subscribers = new Set([subscribers, subscriber]);
    this.listening ??= this.listen();
    await this.listening;
  }

  leave(subscriber: LiveSubscription): void {
    const subscribers = this.subscribers;
    if (subscribers === subscriber) this.subscribers = undefined;
    else if (subscribers instanceof Set) subscribers.delete(subscriber);
    if (this.size === 0) this.close();
  }

  private each(deliver: (subscriber: LiveSubscription) => void): void {
    const subscribers = this.subscribers;
    // A Set's iteration survives deletions (a subscriber that completes leaves during it).
    if (subscribers instanceof Set) for (const subscriber of subscribers) deliver(subscriber);
    else if (subscribers) deliver(subscribers);
  }

  private async listen(): Promise<void> {
    const { prepared, args } = this;
    const { hub } = this.host;
    try {
      const unlisten = await hub.listen(prepared.live.event, indexOf(prepared.live, args), (event) =>
        this.onEvent(event),
      );
      if (this.closed) return unlisten();
      this.unlisten = unlisten;
    } catch (error) {
      this.log().error({ err: error }, 'could not listen to events');
      this.close();
      throw new RetryableEnd('live updates are unavailable right now; subscribe again');
    }
  }

  private onEvent(event: DomainEvent) {
    if (this.closed) return;
    if (!matchesWhere(this.prepared.live, event.data as Record<string, unknown>, this.args)) return;
    (this.events ??= []).push(event);
    if (!this.working) void this.work();
  }

  /** Resolves and hands out the waiting events, one after the other. */
  private async work(): Promise<void> {
    const { prepared } = this;
    const live = prepared.live;
    this.working = true;
    try {
      for (let event = this.events?.shift(); event && !this.closed; event = this.events?.shift()) {
        const { id } = event;
        const resolve: EntityResolver = (entity) =>
          this.host.shared(`${this.resolutionKey}\u0000${id}\u0000${entityKeyOf(entity)}`, () =>
            this.host.resolve(prepared, entity, this.variables, this.context),
          );
        const data = event.data as Record<string, unknown>;
        const entity = entityOf(live, data);
        const projection = projectionOf(live, data);
        if (!this.isNew(entityKeyOf(entity), live.version ? projection.get(live.version) : undefined)) continue;
        const resolution = await resolveWithRetry(
          resolve,
          entity,
          this.host.retry,
          () => this.closed,
          () => this.log(),
        );
        if (!resolution || this.closed) return;
        if (resolution.hidden === null) return this.fail(refusalOf(resolution, entity));
        const delivery = deliveryOf(prepared, resolution, entity, projection);
        this.each((subscriber) => subscriber.offer(delivery));
      }
    } catch (error) {
      this.fail(error);
    } finally {
      this.working = false;
    }
  }

  /** Whether `version` is above the last one seen for the entity; if so, it is the last one now. */
  private isNew(entityKey: string, version: unknown): boolean {
    if (typeof version !== 'number') return true;
    const versions = (this.versions ??= new Map());
    const last = versions.get(entityKey);
    if (last !== undefined && version <= last) return false;
    versions.delete(entityKey);
    versions.set(entityKey, version);
    if (versions.size > VERSION_MEMORY) versions.delete(versions.keys().next().value!);
    return true;
  }

  private log(): Logger {
    return this.host.logger.child({ field: this.prepared.live.field });
  }

  private fail(error: unknown) {
    this.each((subscriber) => subscriber.fail(error));
    this.close();
  }

  private close() {
    if (this.closed) return;
    this.closed = true;
    this.events = undefined;
    this.unlisten?.();
    this.host.closed(this);
  }
}

type Output = { kind: 'next'; value: ExecutionResult } | { kind: 'error'; error: unknown } | { kind: 'done' };

export interface LiveSubscriptionOptions {
  topic: LiveTopic;
  prepared: PreparedSubscription;
  /** The entities whose current state goes first (none for a feed). */
  current: readonly EntityRepresentation[];
  /** Resolves the current state, as the subscriber (or anonymously, for public data). */
  resolveCurrent: EntityResolver;
  retry: RetryPolicy;
  /** The subscription logs through a child of it with its request id and field, made only to log. */
  logger: Logger;
  requestId?: string;
  /** Results waiting for the client before it is considered too slow. Default 1000. */
  maxPending?: number;
  /** Called once, when the subscription has ended for whatever reason. */
  onEnd?: () => void;
  /**
   * How the transport tells its client to subscribe again later (graphql-ws: close the socket with
   * 1013, which its clients retry): the subscription then completes. Without it, it ends with an error.
   */
  onRetryableEnd?: () => void;
  /**
   * Where each result goes, at once, when the transport writes them itself (graphql-ws: straight to
   * the socket); the iterator then carries only the end. Without it, results wait for `next()`.
   */
  sendNext?: (value: ExecutionResult) => void;
}

/**
 * One subscriber's results, as the async iterator a transport consumes: the current state of its
 * entities first, then each change its topic resolves, once and in order (a change the current state
 * already shows is dropped), until a result meets the declaration's `until`.
 *
 * Not an async generator on purpose: `return()` (unsubscribe, socket closed) takes effect at once.
 * And an idle subscription keeps little: no suspended function, no buffers until something arrives,
 * and of its options only what it still needs once it has started (thousands wait on one topic).
 */
export class LiveSubscription implements AsyncIterableIterator<ExecutionResult> {
  private outputs: Output[] | undefined;
  private reader:
    { resolve: (result: IteratorResult<ExecutionResult>) => void; reject: (error: unknown) => void } | undefined;
  /** The current state is out (or there is none): changes go straight to the client. */
  private ready = false;
  /** Changes that arrived while the current state was being resolved. */
  private early: Delivery[] | undefined;
  /**
   * The last version delivered, for subscriptions with a current state: of its one entity, or by
   * entity when the arguments name several.
   */
  private delivered: number | Map<string, number> | undefined;
  /** Entities followed from the arguments that have not reached their end yet. */
  private remaining: number;
  private stopped = false;
  private ended = false;
  private readonly topic: LiveTopic;
  private readonly maxPending: number;
  private readonly logger: Logger;
  private readonly requestId: string | undefined;
  private readonly field: string;
  private readonly onEnd: (() => void) | undefined;
  private readonly onRetryableEnd: (() => void) | undefined;
  private readonly sendNext: ((value: ExecutionResult) => void) | undefined;

  constructor(options: LiveSubscriptionOptions) {
    this.topic = options.topic;
    this.remaining = options.current.length;
    this.maxPending = options.maxPending ?? 1_000;
    this.logger = options.logger;
    this.requestId = options.requestId;
    this.field = options.prepared.live.field;
    this.onEnd = options.onEnd;
    this.onRetryableEnd = options.onRetryableEnd;
    this.sendNext = options.sendNext;
    void this.start(options);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<ExecutionResult>> {
    const output = this.outputs?.shift();
    if (output) return this.settle(output);
    if (this.ended) return Promise.resolve({ done: true, value: undefined });
    if (this.reader) return Promise.reject(new Error('one reader at a time'));
    return new Promise((resolve, reject) => {
      this.reader = { resolve, reject };
    });
  }

  /** The subscriber left: stop at once, drop what was not delivered, leave the topic. */
  async return(): Promise<IteratorResult<ExecutionResult>> {
    this.stop();
    this.outputs = undefined;
    const reader = this.reader;
    this.reader = undefined;
    this.end();
    reader?.resolve({ done: true, value: undefined });
    return { done: true, value: undefined };
  }

  /** A change resolved by the topic. */
  offer(delivery: Delivery): void {
    if (this.stopped) return;
    if (this.ready) return this.deliver(delivery);
    const early = (this.early ??= []);
    if (early.length >= this.maxPending) return this.overflow();
    early.push(delivery);
  }

  /** The topic failed: end with its error. */
  fail(error: unknown): void {
    if (this.stopped) return;
    if (error instanceof RetryableEnd && this.onRetryableEnd) {
      this.onRetryableEnd();
      this.push({ kind: 'done' });
    } else if (error instanceof RetryableEnd) {
      this.push({
        kind: 'error',
        error: subscriptionError(SubscriptionErrorCode.UPSTREAM_UNAVAILABLE, error.message, { retryable: true }),
      });
    } else if (error instanceof GraphQLError) {
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

  private async start({ prepared, current, resolveCurrent, retry }: LiveSubscriptionOptions): Promise<void> {
    try {
      // Listen first, so nothing published while the current state is read is missed.
      await this.topic.join(this);
      for (const entity of current) {
        if (this.stopped) return;
        const resolution = await resolveWithRetry(
          resolveCurrent,
          entity,
          retry,
          () => this.stopped,
          () => this.log(),
        );
        if (!resolution || this.stopped) return;
        if (resolution.hidden === null) throw refusalOf(resolution, entity);
        const delivery = deliveryOf(prepared, resolution, entity);
        if (delivery.version !== undefined) this.remember(delivery.entityKey, delivery.version, current.length);
        this.deliver(delivery);
      }
      this.ready = true;
      const early = this.early ?? [];
      this.early = undefined;
      for (const delivery of early) this.deliver(delivery);
    } catch (error) {
      this.fail(error);
    }
  }

  private remember(key: string, version: number, entities: number) {
    // One entity: every change the topic hands over is of it, so its version alone is enough.
    if (entities === 1) this.delivered = version;
    else ((this.delivered ??= new Map()) as Map<string, number>).set(key, version);
  }

  private deliver(delivery: Delivery) {
    if (this.stopped) return;
    const delivered = this.delivered;
    if (delivered !== undefined && delivery.version !== undefined) {
      const last = delivered instanceof Map ? delivered.get(delivery.entityKey) : delivered;
      if (last !== undefined && delivery.version < last) return;
      if (last !== undefined && delivery.version === last && this.ready) return;
      if (delivered instanceof Map) delivered.set(delivery.entityKey, delivery.version);
      else this.delivered = delivery.version;
    }
    this.push({ kind: 'next', value: delivery.value });
    // Complete once every entity followed from the arguments has reached its end.
    if (delivery.final && this.remaining > 0 && --this.remaining === 0) {
      this.push({ kind: 'done' });
      this.stop();
    }
  }

  private overflow() {
    this.log().warn('a subscriber fell behind; ending its subscription');
    this.push({
      kind: 'error',
      error: subscriptionError(
        SubscriptionErrorCode.SUBSCRIPTION_OVERFLOW,
        'too many changes waiting for this subscription; subscribe again',
      ),
    });
    this.stop();
  }

  private log(): Logger {
    return this.logger.child({ requestId: this.requestId, field: this.field });
  }

  private push(output: Output) {
    if (this.ended) return;
    if (output.kind === 'next' && this.sendNext) return this.sendNext(output.value);
    const reader = this.reader;
    if (!reader) {
      const outputs = (this.outputs ??= []);
      if (output.kind === 'next' && outputs.length >= this.maxPending) return this.overflow();
      outputs.push(output);
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
    this.early = undefined;
    this.topic.leave(this);
  }

  private end() {
    if (this.ended) return;
    this.ended = true;
    this.onEnd?.();
  }
}

/**
 * graphql-ws sends `GraphQLError`s. Errors keep their message, path and extensions; their locations
 * point into the gateway's own fetches, so they are left out.
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
