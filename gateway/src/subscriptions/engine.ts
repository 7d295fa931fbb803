import { randomUUID } from 'node:crypto';
import type { ExecutionResult, GraphQLSchema } from 'graphql';
import type { GraphQLError } from '../graphql-js.js';
import { anonymous, callerKey, type Caller, type EventBus, type Logger } from '@food/platform';
import type { GatewayContext } from '../context.js';
import type { OperationGuard } from '../edge/index.js';
import type { LiveField } from './declarations.js';
import { subscriptionError, SubscriptionErrorCode } from './errors.js';
import type { LiveExecutor, PreparedSubscription } from './executor.js';
import { EventHub, type EventHubCounts } from './hub.js';
import { planSubscription, type SubscribeRequest, type SubscriptionPlan } from './operation.js';
import {
  defaultRetryPolicy,
  entitiesFromArguments,
  LiveSubscription,
  LiveTopic,
  sharedWhileInFlight,
  type EntityResolver,
  type RetryPolicy,
  type TopicHost,
} from './stream.js';

export interface SubscriptionEngineOptions {
  /** The API schema, once the gateway has loaded the supergraph. */
  schema: () => GraphQLSchema | undefined;
  /** The subscription fields the subgraphs declared (`@subscribe`), and what resolves their results. */
  live: { fields: ReadonlyMap<string, LiveField>; executor: LiveExecutor };
  /** Where events come from; without it every subscribe is refused (SUBSCRIPTIONS_UNAVAILABLE). */
  eventBus?: EventBus;
  /** Rate budgets, safelist and query bounds, checked at each subscribe as for HTTP operations. */
  guard?: OperationGuard;
  /** How long a result that fails upstream is retried. */
  retry?: RetryPolicy;
  /** Entities one subscription may follow by its arguments (each has its current state resolved first). */
  maxEntities?: number;
  logger: Logger;
}

/** Who subscribes, and over what. */
export interface Subscriber {
  caller: Caller;
  clientAddress: string;
  transport: GatewayContext['transport'];
}

/** A subscription that passed every check, ready to start. */
export interface CheckedSubscription {
  /** The API schema it was checked against. */
  readonly schema: GraphQLSchema;
  readonly plan: SubscriptionPlan;
  readonly context: GatewayContext;
}

export interface StartOptions {
  /**
   * How the transport tells its client to subscribe again after a pause (graphql-ws: close 1013;
   * SSE: end the stream, the browser reconnects): the subscription then completes. Without it, it
   * ends with a retryable UPSTREAM_UNAVAILABLE error.
   */
  onRetryableEnd?: () => void;
  /** Each result written by the transport itself, at once (see LiveSubscriptionOptions.sendNext). */
  sendNext?: (value: ExecutionResult) => void;
}

/**
 * The subscriptions themselves, whatever carries them (graphql-ws, SSE, multipart HTTP): the checks
 * a subscribe must pass, the topics subscribers share, and one reader per event stream. Transports
 * authenticate, frame and limit their connections; everything else is here, once.
 */
export class SubscriptionEngine {
  private readonly hub: EventHub | undefined;
  private readonly topics = new Map<string, LiveTopic>();
  private readonly preparedIds = new WeakMap<PreparedSubscription, number>();
  private nextPreparedId = 0;
  private readonly streams = new Set<LiveSubscription>();
  private readonly retry: RetryPolicy;
  private readonly logger: Logger;
  private readonly topicHost: TopicHost | undefined;
  private closing = false;

  constructor(private readonly options: SubscriptionEngineOptions) {
    this.logger = options.logger;
    this.hub = options.eventBus ? new EventHub(options.eventBus, this.logger) : undefined;
    this.retry = options.retry ?? defaultRetryPolicy;
    const { hub, topics } = this;
    this.topicHost = hub && {
      hub,
      retry: this.retry,
      logger: this.logger,
      resolve: (prepared, entity, variables, context) =>
        options.live.executor.resolve(prepared, entity, variables, context),
      shared: sharedWhileInFlight(),
      closed: (topic) => {
        if (topics.get(topic.key) === topic) topics.delete(topic.key);
      },
    };
  }

  /** Runs every check a subscribe must pass; returns what the client should get otherwise. */
  async check(request: SubscribeRequest, subscriber: Subscriber): Promise<CheckedSubscription | GraphQLError[]> {
    if (!this.hub || this.closing) {
      return [
        subscriptionError(
          SubscriptionErrorCode.SUBSCRIPTIONS_UNAVAILABLE,
          this.closing
            ? 'the gateway is shutting down'
            : 'subscriptions are not available: this gateway has no event bus',
        ),
      ];
    }
    const schema = this.options.schema();
    if (!schema) return [subscriptionError(SubscriptionErrorCode.SUBSCRIPTIONS_UNAVAILABLE, 'the gateway is starting')];
    const { guard } = this.options;
    if (guard) {
      const { refusal } = await guard.takeRateBudget('subscription', subscriber.caller, subscriber.clientAddress);
      if (refusal) return [refusal.error];
      const refused = typeof request.query === 'string' ? guard.checkSource(request.query) : undefined;
      if (refused) return [refused];
    }
    const plan = planSubscription(schema, this.options.live.fields, request);
    if (Array.isArray(plan)) return plan;
    const exceeded = guard?.checkOperation(schema, plan.document, plan.operation, request.variables ?? {});
    if (exceeded) return [exceeded];
    const refused = authorize(plan, subscriber.caller);
    if (refused) return [refused];
    const maxEntities = this.options.maxEntities ?? 100;
    const entities = entitiesFromArguments(plan.live, plan.args).length;
    if (entities > maxEntities) {
      return [
        subscriptionError(
          SubscriptionErrorCode.BAD_USER_INPUT,
          `${plan.live.field} may follow at most ${maxEntities} entities by its arguments, not ${entities}`,
          { max: maxEntities },
        ),
      ];
    }
    return { schema, plan, context: { ...subscriber, requestId: randomUUID() } };
  }

  /** Starts a checked subscription: its current state first, then its topic's changes. */
  start(checked: CheckedSubscription, startOptions: StartOptions = {}): AsyncIterableIterator<ExecutionResult> {
    const host = this.topicHost;
    if (!host) throw new Error('no event bus: check() refuses every subscription');
    const { plan, context } = checked;
    const { executor } = this.options.live;
    const prepared = executor.prepare(plan.document, plan.operation, plan.live);
    const audience = audienceOf(plan.live, context.caller);
    const stream: LiveSubscription = new LiveSubscription({
      topic: this.topicFor(checked, prepared, host),
      prepared,
      current: entitiesFromArguments(plan.live, plan.args),
      resolveCurrent: this.resolverAs(
        prepared,
        plan.variables,
        audience.anonymous ? { ...context, caller: anonymous } : context,
      ),
      retry: this.retry,
      logger: this.logger,
      requestId: context.requestId,
      onEnd: () => this.streams.delete(stream),
      onRetryableEnd: startOptions.onRetryableEnd,
      sendNext: startOptions.sendNext,
    });
    this.streams.add(stream);
    return stream;
  }

  /** Subscriptions running (streams not yet ended), over every transport. */
  activeSubscriptions(): number {
    return this.streams.size;
  }

  /** Groups of subscribers that share one resolution per event. */
  topicCount(): number {
    return this.topics.size;
  }

  listenerCounts(): EventHubCounts {
    return this.hub?.counts() ?? { indexedListeners: 0, typeListeners: 0, tails: 0 };
  }

  tailsStarted(): number {
    return this.hub?.tailsStarted ?? 0;
  }

  /** Refuses new subscriptions from now on. */
  beginClosing(): void {
    this.closing = true;
  }

  get isClosing(): boolean {
    return this.closing;
  }

  /** Ends every subscription and stops the tails. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.streams].map((stream) => stream.return()));
    await this.hub?.close();
  }

  private resolverAs(
    prepared: PreparedSubscription,
    variables: Record<string, unknown>,
    context: GatewayContext,
  ): EntityResolver {
    return (entity) => this.options.live.executor.resolve(prepared, entity, variables, context);
  }

  /** The topic of subscribers that share this one's resolutions: same operation, variables and audience. */
  private topicFor(checked: CheckedSubscription, prepared: PreparedSubscription, host: TopicHost): LiveTopic {
    const { plan, context } = checked;
    let id = this.preparedIds.get(prepared);
    if (id === undefined) this.preparedIds.set(prepared, (id = this.nextPreparedId++));
    const audience = audienceOf(plan.live, context.caller);
    const key = `${id}\u0000${JSON.stringify(plan.variables)}\u0000${audience.key}`;
    const existing = this.topics.get(key);
    if (existing) return existing;
    const resolveAs = audience.anonymous ? { ...context, caller: anonymous, requestId: randomUUID() } : context;
    const read = Object.fromEntries(prepared.resolutionVariables.map((name) => [name, plan.variables[name]]));
    const resolutionKey = `${id}\u0000${JSON.stringify(read)}\u0000${audience.key}`;
    const topic = new LiveTopic(host, prepared, plan.args, plan.variables, resolveAs, key, resolutionKey);
    this.topics.set(key, topic);
    return topic;
  }
}

/**
 * The declaration's `scopes`: a caller may subscribe when it holds every scope of one of the lists. A
 * user's scopes are its role; the subgraph that declared the field says which roles those are.
 */
function authorize(plan: SubscriptionPlan, caller: Caller): GraphQLError | undefined {
  const { scopes, field } = plan.live;
  if (!scopes) return undefined;
  const held = new Set<string>(caller.kind === 'user' ? [caller.role] : []);
  if (scopes.some((all) => all.every((scope) => held.has(scope)))) return undefined;
  return caller.kind === 'anonymous'
    ? subscriptionError(SubscriptionErrorCode.UNAUTHENTICATED, `You must be logged in to subscribe to ${field}`)
    : subscriptionError(SubscriptionErrorCode.FORBIDDEN, `You may not subscribe to ${field}`);
}

/** Who shares a resolution with this caller, by the declaration's `audience`; public data is resolved anonymously. */
function audienceOf(live: LiveField, caller: Caller): { key: string; anonymous: boolean } {
  if (live.audience === 'PUBLIC') return { key: 'public', anonymous: true };
  if (live.audience === 'ROLE' && caller.kind === 'user') return { key: `role:${caller.role}`, anonymous: false };
  return { key: callerKey(caller), anonymous: false };
}
