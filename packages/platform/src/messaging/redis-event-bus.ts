import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Cluster, type Redis } from 'ioredis';
import type { Logger } from '../logger.js';
import {
  connectRedis,
  hashTag,
  type RedisConnection,
  type RedisConnectionOptions,
  type RedisTarget,
} from '../redis.js';
import { describeRawEvent, InvalidEventError, parseEvent, type DomainEvent, type EventStream } from './events.js';
import { delay, interruptiblePause } from './pause.js';
import { messagingMetrics } from './telemetry.js';
import {
  UnconfirmedPublishError,
  type EventBus,
  type EventHandler,
  type EventSubscription,
  type StreamEvent,
  type TailOptions,
} from './types.js';

export interface RedisEventBusOptions {
  redis: RedisTarget;
  logger: Logger;
  /** Prefix of every key and connection name, so deployments (or test runs) can share one Redis. Default `food:`. */
  keyPrefix?: string;
  /** Approximate cap on a stream's length (XADD MAXLEN ~). Default 100 000. */
  maxLength?: number;
  /** How long one blocking read waits before the loop looks around (claims, stop). Default 1 000 ms. */
  blockMs?: number;
  /** How long an entry must sit unacknowledged before another member takes it over. Default 30 000 ms. */
  claimIdleMs?: number;
  /** First pause before a failed handler is retried; doubles per attempt, capped at 5 s. Default 100 ms. */
  retryBackoffMs?: number;
  /** Entries fetched per read. Default 10. */
  readCount?: number;
  /**
   * Partitions per stream (REDIS_STREAM_PARTITIONS), each its own key and hash slot. Every process
   * sharing the streams must use the same count. Default 8.
   */
  partitions?: number;
  /**
   * Replicas that must have each published entry (WAIT) before `publish` resolves; fewer within
   * `publishConfirmTimeoutMs` reject it with an UnconfirmedPublishError. Default 0 (no WAIT).
   */
  publishReplicas?: number;
  /** How long a publish waits for its replicas. Default 1 000 ms. */
  publishConfirmTimeoutMs?: number;
}

export interface ConsumeOptions {
  /** Deliveries before an entry goes to the dead-letter stream. Default 10. */
  maxAttempts?: number;
  /** Overrides the bus's `claimIdleMs` for this group member. */
  claimIdleMs?: number;
}

/** An entry that was given up on: what it was, which group gave up, and why. */
export interface DeadLetter {
  stream: EventStream;
  /** The partition whose dead-letter stream holds it. */
  partition: number;
  group: string;
  /** The entry's id in its stream. */
  entryId: string;
  /** The event's id and type when the entry could be read that far. */
  eventId: string | null;
  eventType: string | null;
  attempts: number;
  error: string;
  /** The entry as published (the event's JSON), for inspection or a manual replay. */
  raw: string;
}

type StreamEntry = [id: string, fields: string[] | null];
type PendingInfo = [id: string, consumer: string, idleMs: number, deliveries: number];

const DEFAULT_PREFIX = 'food:';
export const DEFAULT_STREAM_PARTITIONS = 8;
const MAX_RETRY_PAUSE_MS = 5_000;
/** How long a publish whose slot moved (or whose master is away) keeps looking for its master: a failover takes seconds. */
const REROUTE_FOR_MS = 10_000;
const REROUTE_DELAY_MS = 200;
/** How long a master's count of connected replicas is trusted before it is asked again. */
const REPLICA_COUNT_TTL_MS = 1_000;
/** How long close() waits for a running handler before it cuts the connection anyway. */
const CLOSE_GRACE_MS = 10_000;

/**
/**
 * Events over Redis Streams (ioredis), on one node or a Redis Cluster, with the same keys and code.
 *
 * - Partitions: each stream is `partitions` Redis streams, `<prefix>events:{<stream>:<partition>}`,
 *   an event going to the partition of its aggregate id (a stable hash). Each partition is its own
 *   hash slot, so on a cluster the streams spread over the masters, and an aggregate's events stay in
 *   one partition, in order.
 * - `publish` is XADD with approximate MAXLEN trimming. It fails fast while Redis is away (the outbox
 *   relay then retries its rows) rather than queueing in memory. With `publishReplicas` > 0 the XADD
 *   is followed by WAIT on the same connection to the master of the partition's slot (one pipeline,
 *   sent again for up to 10 s while a failover moves the slot), and an entry fewer replicas confirmed
 *   rejects with an UnconfirmedPublishError: it may be in the stream, or lost by a failover.
 * - `consume` is one member of a consumer group, with one reading loop per partition, each on its own
 *   connection (XREADGROUP cannot take keys of several slots, and a blocking read holds its
 *   connection): XREADGROUP BLOCK, entries handled in partition order, XACK on success. Handlers run
 *   one at a time per subscription, as they did before partitions. A handler that throws is retried
 *   in place after a backoff (each retry counted in Redis with XCLAIM, so a later owner sees the real
 *   count); the entries behind it in its partition wait, so one member never reorders an aggregate's
 *   events. An entry delivered `maxAttempts` times, or one that is not a valid event, is copied to its
 *   partition's `:dead` stream (same slot: the copy and the XACK are one transaction) with the error,
 *   logged at error level and acknowledged. Entries a dead member left pending are taken over with
 *   XAUTOCLAIM once idle for `claimIdleMs`; a live member keeps the idle time of the entries it holds
 *   (the one being handled and the rest of its batch) fresh, so a slow handler is not mistaken for a
 *   dead member, and a closing member hands its unfinished entries back at once. After a reconnect a
 *   partition's loop first re-reads its own pending entries (a reply lost in the outage leaves them
 *   there). Order holds per member; when entries change hands (a takeover), an aggregate's events can
 *   be handled by two members, so handlers check versions/idempotency as they must anyway.
 * - `tail` reads (XREAD BLOCK) every partition from its newest entry at the time it was called,
 *   keeping a cursor per partition, so a reconnect resumes where it left off. Order holds per partition
 *   (so per aggregate), not across partitions.
 * - `close` stops every loop, waits for a running handler (bounded), and disconnects every connection.
 *
 * Connections per process: one publisher, plus `partitions` per `consume` and per `tail` (on a
 * cluster each talks to the master of its partition only; the publisher to every master).
 *
 * Trimming is approximate and does not know about groups: a group lagging by more than `maxLength`
 * entries of a partition loses the oldest (logged when a pending entry turns out to be gone). Redis
 * needs AOF persistence for a restart to lose nothing, and replicas (`publishReplicas`) for a
 * failover to lose nothing the relay marked published.
 */
export class RedisEventBus implements EventBus {
  readonly partitions: number;
  private readonly publisher: RedisConnection;
  private readonly subscriptions = new Set<EventSubscription>();
  private readonly prefix: string;
  private readonly blockMs: number;
  private readonly maxLength: number;
  private readonly readCount: number;
  private readonly retryBackoffMs: number;
  private readonly claimIdleMs: number;
  private readonly publishReplicas: number;
  private readonly publishConfirmTimeoutMs: number;
  private readonly logger: Logger;
  /** Hash slots of the keys published to (cluster only). */
  private readonly slots = new Map<string, number>();
  /** Connected replicas per master (`host:port`), as it last said, and when. */
  private readonly replicaCounts = new Map<string, { count: number; at: number }>();
  /** Masters currently short of `publishReplicas` replicas (warned once per such spell). */
  private readonly shortMasters = new Set<string>();
  private closed = false;

  constructor(private readonly options: RedisEventBusOptions) {
    this.prefix = options.keyPrefix ?? DEFAULT_PREFIX;
    this.blockMs = options.blockMs ?? 1_000;
    this.maxLength = options.maxLength ?? 100_000;
    this.readCount = options.readCount ?? 10;
    this.retryBackoffMs = options.retryBackoffMs ?? 100;
    this.claimIdleMs = options.claimIdleMs ?? 30_000;
    this.partitions = options.partitions ?? DEFAULT_STREAM_PARTITIONS;
    this.publishReplicas = options.publishReplicas ?? 0;
    this.publishConfirmTimeoutMs = options.publishConfirmTimeoutMs ?? 1_000;
    if (!Number.isInteger(this.partitions) || this.partitions < 1) {
      throw new Error(`partitions must be a positive integer, not ${this.partitions}`);
    }
    this.logger = options.logger;
    // Publishing must fail fast while Redis is away (the relay retries the rows later), not queue up;
    // its time limit leaves room for the WAIT after an XADD.
    this.publisher = this.connect('publisher', {
      maxRetriesPerRequest: 1,
      commandTimeout: this.publishConfirmTimeoutMs + 5_000,
    });
  }

  /** The Redis key of one partition of a stream, e.g. `food:events:{orders:0}` (the braces: its hash slot). */
  partitionKey(stream: EventStream, partition: number): string {
    return `${this.prefix}events:${hashTag(`${stream}:${partition}`)}`;
  }

  /** The key of a partition's dead-letter stream, e.g. `food:events:{orders:0}:dead` (same slot). */
  deadLetterKey(stream: EventStream, partition: number): string {
    return `${this.partitionKey(stream, partition)}:dead`;
  }

  /** The partition an aggregate's events go to: the same in every process (first 32 bits of its SHA-256). */
  partitionOf(aggregateId: string): number {
    return createHash('sha256').update(aggregateId).digest().readUInt32BE(0) % this.partitions;
  }

  async publish(stream: EventStream, event: DomainEvent): Promise<void> {
    const [outcome] = await this.publishAll([{ stream, event }]);
    if (outcome) throw outcome;
  }

  /**
   * One pipeline per master: its XADDs in the order given, then (with `publishReplicas`) one WAIT
   * for all of them. Every entry is in its stream as soon as its XADD runs, so a batch's later events
   * no longer wait for the earlier ones' replica round trips (one WAIT each, before), nor each for a
   * round trip of its own. A pipeline that fails on a cluster (a slot moved) is sent again to where
   * the slots are now, for up to 10 s, as a whole: an aggregate's entries stay in order.
   */
  async publishAll(events: readonly StreamEvent[]): Promise<(Error | undefined)[]> {
    this.assertOpen();
    const entries = events.map(({ stream, event }) => ({
      stream,
      key: this.partitionKey(stream, this.partitionOf(event.aggregateId)),
      payload: JSON.stringify(event),
    }));
    const outcomes: (Error | undefined)[] = entries.map(() => undefined);
    const trim = ['MAXLEN', '~', String(this.maxLength)] as const;
    const deadline = Date.now() + REROUTE_FOR_MS;
    const send = async (batch: number[]): Promise<void> => {
      // By the master that serves each key now (on one node: all on the publisher).
      const byMaster = new Map<Redis, number[]>();
      const failures: Error[] = [];
      for (const i of batch) {
        const node = await this.masterOf(entries[i]!.key).catch((error: unknown) => {
          failures.push(error instanceof Error ? error : new Error(String(error)));
          return undefined;
        });
        if (!node) continue;
        const group = byMaster.get(node);
        if (group) group.push(i);
        else byMaster.set(node, [i]);
      }
      if (failures.length > 0) {
        // No master known for some key: the whole batch waits for the slot map.
        return this.reroute(batch, failures[0]!, send, deadline, outcomes);
      }
      await Promise.all(
        [...byMaster].map(async ([node, group]) => {
          let results: [Error | null, unknown][] | null;
          let wanted = this.publishReplicas;
          try {
            if (wanted > 0) wanted = await this.replicasToWaitFor(node);
            const pipeline = node.pipeline();
            for (const i of group) pipeline.xadd(entries[i]!.key, ...trim, '*', 'event', entries[i]!.payload);
            // WAIT counts the replicas that have this connection's writes: it follows them on the same
            // socket. (Through the Cluster object a keyless WAIT may go elsewhere, and a redirected XADD
            // is not retried.)
            if (wanted > 0) pipeline.wait(wanted, this.publishConfirmTimeoutMs);
            results = await pipeline.exec();
          } catch (error) {
            results = [[error instanceof Error ? error : new Error(String(error)), null]];
          }
          const failed =
            results?.find(([error]) => error)?.[0] ??
            (results ? undefined : new Error('the publish pipeline was discarded'));
          if (failed) return this.reroute(group, failed, send, deadline, outcomes);
          const confirmed = wanted > 0 ? Number(results!.at(-1)![1]) : 0;
          if (confirmed < wanted) {
            for (const i of group)
              outcomes[i] = new UnconfirmedPublishError(entries[i]!.stream, entries[i]!.key, confirmed, wanted);
          }
        }),
      );
    };
    await send(entries.map((_, i) => i));
    return outcomes;
  }

  /** A failed pipeline: on a cluster, learn where the slots are and send it again (until `deadline`); else its error. */
  private async reroute(
    batch: number[],
    error: Error,
    send: (batch: number[]) => Promise<void>,
    deadline: number,
    outcomes: (Error | undefined)[],
  ): Promise<void> {
    if (this.publisher instanceof Cluster && Date.now() < deadline) {
      // The slot moved (a failover, a resharding) or its master is unreachable.
      this.publisher.refreshSlotsCache();
      await delay(REROUTE_DELAY_MS);
      return send(batch);
    }
    for (const i of batch) outcomes[i] = error;
  }

  /**
   * How many replicas a write on `node` must reach: `publishReplicas`, or as many as the master has
   * connected when it has fewer. A master left without its replica (it took over from a dead master
   * and none has joined it yet) has no one a failover could promote, so no write of it can be lost to
   * one; waiting for a replica it does not have would hold every event of its partitions back until
   * one joins. Such a spell is logged once, as it is a master whose own crash would now lose what its
   * AOF has not got.
   */
  private async replicasToWaitFor(node: Redis): Promise<number> {
    const address = `${node.options.host}:${node.options.port}`;
    let known = this.replicaCounts.get(address);
    if (!known || Date.now() - known.at > REPLICA_COUNT_TTL_MS) {
      const info = await node.info('replication');
      known = { count: Number(/connected_slaves:(\d+)/.exec(info)?.[1] ?? 0), at: Date.now() };
      this.replicaCounts.set(address, known);
    }
    if (known.count >= this.publishReplicas) {
      if (this.shortMasters.delete(address))
        this.logger.info({ master: address }, 'Redis master has its replicas again');
      return this.publishReplicas;
    }
    if (!this.shortMasters.has(address)) {
      this.shortMasters.add(address);
      this.logger.warn(
        { master: address, replicas: known.count, wanted: this.publishReplicas },
        'Redis master has fewer replicas than REDIS_PUBLISH_REPLICAS: its events are confirmed by those it has',
      );
    }
    return known.count;
  }

  /** The connection to the node serving `key` now: the node itself, or on a cluster the master of its slot. */
  private async masterOf(key: string): Promise<Redis> {
    const publisher = this.publisher;
    if (!(publisher instanceof Cluster)) return publisher;
    let slot = this.slots.get(key);
    if (slot === undefined) {
      // Any node answers (and the call waits for the cluster to be ready); asked once per key.
      slot = Number(await publisher.call('CLUSTER', 'KEYSLOT', key));
      this.slots.set(key, slot);
    }
    const master = publisher.slots[slot]?.[0];
    const node = publisher
      .nodes('master')
      .find((candidate) => `${candidate.options.host}:${candidate.options.port}` === master);
    if (!node) throw new Error(`${key}: no known master serves slot ${slot}`);
    return node;
  }

  /** The newest dead letters of a stream (all partitions and groups), newest first. */
  async deadLetters(stream: EventStream, count = 100): Promise<DeadLetter[]> {
    const perPartition = await Promise.all(
      this.partitionNumbers().map(async (partition) => {
        const key = this.deadLetterKey(stream, partition);
        const entries = (await this.publisher.xrevrange(key, '+', '-', 'COUNT', count)) as [string, string[]][];
        return entries.map(([id, fields]) => ({ id, letter: deadLetterOf(stream, partition, fields) }));
      }),
    );
    // Entry ids start with their master's clock: close enough to merge the partitions newest first.
    return perPartition
      .flat()
      .sort((a, b) => compareEntryIds(b.id, a.id))
      .slice(0, count)
      .map(({ letter }) => letter);
  }

  async consume(
    stream: EventStream,
    group: string,
    handler: EventHandler,
    options: ConsumeOptions = {},
  ): Promise<EventSubscription> {
    this.assertOpen();
    const maxAttempts = options.maxAttempts ?? 10;
    const claimIdleMs = options.claimIdleMs ?? this.claimIdleMs;
    const consumer = `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
    const connections = this.partitionNumbers().map((partition) =>
      this.connect(`consumer:${stream}:${group}:${partition}`),
    );
    try {
      await Promise.all(
        connections.map((connection, partition) =>
          createGroup(connection, this.partitionKey(stream, partition), group),
        ),
      );
    } catch (error) {
      for (const connection of connections) connection.disconnect();
      throw error;
    }
    // Handlers run one at a time per subscription, whichever partition their entry came from.
    let handlerTurn: Promise<unknown> = Promise.resolve();
    const oneAtATime = <T>(run: () => Promise<T>): Promise<T> => {
      const turn = handlerTurn.then(run);
      handlerTurn = turn.catch(() => undefined);
      return turn;
    };
    const readers = connections.map((connection, partition) =>
      this.readPartition({
        stream,
        partition,
        group,
        consumer,
        connection,
        maxAttempts,
        claimIdleMs,
        run: (event, stopped) =>
          oneAtATime(async () => {
            if (stopped()) return 'stopped';
            try {
              await handler(event);
              return 'ok';
            } catch (error) {
              return { failure: error ?? new Error('handler threw a nullish value') };
            }
          }),
      }),
    );

    const subscription: EventSubscription = {
      close: async () => {
        if (!this.subscriptions.delete(subscription)) return;
        for (const reader of readers) reader.stop();
        const running = Promise.all(readers.map((reader) => reader.running));
        // Blocking reads are cut at once; a running handler may finish and acknowledge (bounded wait).
        for (const reader of readers) if (!reader.busy()) reader.connection.disconnect();
        if (readers.some((reader) => reader.busy())) await Promise.race([running, delay(CLOSE_GRACE_MS)]);
        for (const reader of readers) reader.connection.disconnect();
        await this.stopped(running, `consumer of ${stream} (${group})`);
        await Promise.all(
          readers.map(async (reader) => {
            await this.handBack(reader.key, group, consumer, [...reader.held], claimIdleMs);
            await this.forgetConsumer(reader.key, group, consumer);
          }),
        );
      },
    };
    this.subscriptions.add(subscription);
    return subscription;
  }

  /** One partition's reading loop of a group member (see the class comment); `run` calls the handler. */
  private readPartition(member: {
    stream: EventStream;
    partition: number;
    group: string;
    consumer: string;
    connection: RedisConnection;
    maxAttempts: number;
    claimIdleMs: number;
    run: (event: DomainEvent, stopped: () => boolean) => Promise<'ok' | 'stopped' | { failure: unknown }>;
  }): PartitionReader {
    const { stream, partition, group, consumer, connection, maxAttempts, claimIdleMs } = member;
    const key = this.partitionKey(stream, partition);
    const deadKey = this.deadLetterKey(stream, partition);
    const log = this.logger.child({ stream, partition, group, consumer });
    const call = async <T>(...args: (string | number)[]): Promise<T> =>
      (await connection.call(args[0] as string, ...args.slice(1))) as T;

    const state = { stopped: false, busy: false };
    const pause = interruptiblePause();
    /**
     * Entries delivered to this member and not finished yet (the one being handled and the rest of its
     * batch). Their idle time is kept fresh, so other members do not take a live member's entries for a
     * dead one's; and a closing member hands them back at once, in order.
     */
    const held = new Set<string>();
    const refreshHeld = async () => {
      if (held.size > 0) await call('XCLAIM', key, group, consumer, 0, ...held, 'JUSTID');
    };
    const keeper = setInterval(
      () => {
        if (state.stopped || held.size === 0) return;
        refreshHeld().catch((error: unknown) =>
          log.warn({ err: error }, 'could not refresh the entries being handled'),
        );
      },
      Math.max(10, Math.floor(claimIdleMs / 3)),
    );
    keeper.unref();
    // At start and after every reconnect: our own pending entries first (a lost reply leaves them there).
    let readOwnPending = true;
    connection.on('ready', () => (readOwnPending = true));

    const deadLetter = async (
      id: string,
      fields: string[] | null,
      attempts: number,
      error: unknown,
      why: string,
    ): Promise<void> => {
      const raw = fields ? (fieldValue(fields, 'event') ?? JSON.stringify(fields)) : '';
      const { eventId, eventType } = describeRawEvent(raw);
      const message = error instanceof Error ? error.message : String(error);
      // One transaction (the dead-letter stream shares the partition's slot): the copy and the
      // acknowledgement happen together or not at all.
      const results = await connection
        .multi()
        .xadd(
          deadKey,
          'MAXLEN',
          '~',
          String(this.maxLength),
          '*',
          'entry',
          id,
          'group',
          group,
          'eventId',
          eventId ?? '',
          'eventType',
          eventType ?? '',
          'attempts',
          String(attempts),
          'error',
          message,
          'event',
          raw,
        )
        .xack(key, group, id)
        .exec();
      const failed = results?.find(([commandError]) => commandError)?.[0];
      if (!results || failed) throw failed ?? new Error('dead-letter transaction was discarded');
      messagingMetrics.eventsConsumed.inc({ stream, group, outcome: 'dead_letter' });
      log.error(
        { err: error, entryId: id, eventId, eventType, attempts, deadLetterStream: deadKey },
        `event moved to the dead-letter stream: ${why}`,
      );
    };

    /** Where an entry stands in the group: its owner and how many times it has been delivered. */
    const pendingInfo = async (firstId: string, lastId: string, count: number): Promise<Map<string, PendingInfo>> => {
      const rows = await call<PendingInfo[]>('XPENDING', key, group, firstId, lastId, count);
      return new Map(rows.map((row) => [row[0], row]));
    };

    /** Handles one entry, `deliveries` being the delivery it is on (1 for a fresh one). */
    const handle = async (id: string, fields: string[] | null, deliveries: number): Promise<void> => {
      state.busy = true;
      try {
        await handleEntry(id, fields, deliveries);
        held.delete(id);
      } finally {
        state.busy = false;
      }
    };

    /** Resolves once the entry is acknowledged, dead-lettered or someone else's; throws on a Redis failure. */
    const handleEntry = async (id: string, fields: string[] | null, deliveries: number): Promise<void> => {
      if (!fields) {
        // Pending, but trimmed away from the stream (the group lagged more than maxLength behind).
        await deadLetter(id, null, deliveries, new Error('the entry was trimmed from the stream'), 'lost to trimming');
        return;
      }
      let event: DomainEvent;
      try {
        const raw = fieldValue(fields, 'event');
        if (raw === undefined) throw new InvalidEventError('stream entry has no "event" field');
        event = parseEvent(JSON.parse(raw));
      } catch (error) {
        await deadLetter(id, fields, deliveries, error, 'not a valid event');
        return;
      }
      let attempt = deliveries;
      if (attempt > maxAttempts) {
        // Delivered that often without an acknowledgement: members died on it (or it crashes them).
        const error = new Error(`delivered ${attempt} times without being acknowledged`);
        await deadLetter(id, fields, attempt, error, `more than ${maxAttempts} deliveries`);
        return;
      }
      for (;;) {
        const outcome = await member.run(event, () => state.stopped);
        // Stopping: leave it pending (close hands it back); another member takes it over.
        if (outcome === 'stopped') throw new Stopping();
        if (outcome === 'ok') {
          await connection.xack(key, group, id);
          messagingMetrics.eventsConsumed.inc({ stream, group, outcome: 'ok' });
          return;
        }
        if (attempt >= maxAttempts) {
          await deadLetter(id, fields, attempt, outcome.failure, `failed ${attempt} times`);
          return;
        }
        log.warn(
          { err: outcome.failure, entryId: id, eventId: event.id, eventType: event.type, attempt },
          'event handler failed; will retry',
        );
        messagingMetrics.eventsConsumed.inc({ stream, group, outcome: 'retry' });
        await pause.wait(Math.min(this.retryBackoffMs * 2 ** (attempt - 1), MAX_RETRY_PAUSE_MS));
        if (state.stopped) throw new Stopping();
        const info = (await pendingInfo(id, id, 1)).get(id);
        // Acknowledged or taken over by another member meanwhile: it is theirs now.
        if (!info || info[1] !== consumer) return;
        // A retry is a delivery: count it in Redis, so whoever owns it next knows.
        await call('XCLAIM', key, group, consumer, 0, id, 'RETRYCOUNT', info[3] + 1, 'JUSTID');
        await refreshHeld();
        attempt = info[3] + 1;
      }
    };

    /** Handles entries that were delivered before (ours after a reconnect, or claimed from a dead member). */
    const handleRedelivered = async (entries: StreamEntry[]): Promise<void> => {
      if (entries.length === 0) return;
      for (const [id] of entries) held.add(id);
      const info = await pendingInfo(entries[0]![0], entries[entries.length - 1]![0], entries.length * 2 + 10);
      for (const [id, fields] of entries) {
        if (state.stopped) return;
        const row = info.get(id);
        // Not pending any more (acknowledged meanwhile) or now another member's: not ours to handle.
        if (!row || row[1] !== consumer) {
          held.delete(id);
          continue;
        }
        await handle(id, fields, row[3]);
      }
    };

    const claimEveryMs = Math.max(50, Math.min(claimIdleMs, 5_000));
    const loop = async () => {
      let claimCursor = '0-0';
      let nextClaimAt = 0;
      let failing = false;
      while (!state.stopped) {
        try {
          if (readOwnPending) {
            const reply = await call<[string, StreamEntry[]][] | null>(
              'XREADGROUP',
              'GROUP',
              group,
              consumer,
              'COUNT',
              this.readCount,
              'STREAMS',
              key,
              '0',
            );
            const entries = reply?.[0]?.[1] ?? [];
            if (entries.length === 0) readOwnPending = false;
            await handleRedelivered(entries);
          } else if (Date.now() >= nextClaimAt) {
            // Take over what a dead member left pending for longer than claimIdleMs.
            const [next, claimed, deleted] = await call<[string, (StreamEntry | null)[], string[]?]>(
              'XAUTOCLAIM',
              key,
              group,
              consumer,
              claimIdleMs,
              claimCursor,
              'COUNT',
              this.readCount,
            );
            claimCursor = next;
            // More to scan: come back at once; a full pass done: wait a while.
            nextClaimAt = next === '0-0' ? Date.now() + claimEveryMs : 0;
            for (const id of deleted ?? []) {
              log.error({ entryId: id }, 'a pending event was trimmed from the stream before it was handled: lost');
            }
            if (claimed.length > 0) log.warn({ count: claimed.length }, 'took over events a group member left pending');
            await handleRedelivered(claimed.filter((entry): entry is StreamEntry => entry !== null));
          } else {
            const reply = await call<[string, StreamEntry[]][] | null>(
              'XREADGROUP',
              'GROUP',
              group,
              consumer,
              'COUNT',
              this.readCount,
              'BLOCK',
              this.blockMs,
              'STREAMS',
              key,
              '>',
            );
            const entries = reply?.[0]?.[1] ?? [];
            for (const [id] of entries) held.add(id);
            for (const [id, fields] of entries) {
              if (state.stopped) break;
              await handle(id, fields, 1);
            }
          }
          if (failing) log.info('event consumer reading again');
          failing = false;
        } catch (error) {
          if (state.stopped) break;
          // What we held stays pending: re-read from our own pending entries once Redis answers.
          held.clear();
          if (String(error).includes('NOGROUP')) {
            // The stream or group is gone (a Redis without persistence restarted, or a manual delete).
            log.warn('consumer group missing: creating it again');
            await createGroup(connection, key, group).catch(() => undefined);
          } else if (!failing) {
            log.warn({ err: error }, 'event consumer failed to talk to Redis; retrying');
          }
          failing = true;
          readOwnPending = true;
          await pause.wait(500);
        }
      }
    };

    return {
      key,
      connection,
      held,
      running: loop(),
      busy: () => state.busy,
      stop: () => {
        state.stopped = true;
        clearInterval(keeper);
        pause.interrupt();
      },
    };
  }

  async tail(
    stream: EventStream,
    handler: (event: DomainEvent) => void,
    options: TailOptions = {},
  ): Promise<EventSubscription> {
    this.assertOpen();
    const log = this.logger.child({ stream });
    const connections = this.partitionNumbers().map((partition) => this.connect(`tail:${stream}:${partition}`));
    let cursors: string[];
    try {
      // From each partition's newest entry now; our own cursors then, so a reconnect misses nothing and repeats nothing.
      // Entry ids start with their time in ms: `<since>-0` reads from that instant on.
      const since = options.sinceMs === undefined ? undefined : `${Math.max(0, Math.floor(options.sinceMs))}-0`;
      cursors = await Promise.all(
        connections.map(async (connection, partition) => {
          if (since) return since;
          const key = this.partitionKey(stream, partition);
          const newest = (await connection.xrevrange(key, '+', '-', 'COUNT', 1)) as [string, string[]][];
          return newest[0]?.[0] ?? '0-0';
        }),
      );
    } catch (error) {
      for (const connection of connections) connection.disconnect();
      throw error;
    }
    let stopped = false;
    const pause = interruptiblePause();
    const loop = async (connection: RedisConnection, partition: number) => {
      const key = this.partitionKey(stream, partition);
      let cursor = cursors[partition]!;
      let failing = false;
      while (!stopped) {
        try {
          const reply = (await connection.call(
            'XREAD',
            'COUNT',
            100,
            'BLOCK',
            this.blockMs,
            'STREAMS',
            key,
            cursor,
          )) as [string, [string, string[]][]][] | null;
          failing = false;
          for (const [id, fields] of reply?.[0]?.[1] ?? []) {
            if (stopped) break;
            cursor = id;
            try {
              handler(parseEvent(JSON.parse(fieldValue(fields, 'event') ?? '')));
            } catch (error) {
              log.error({ err: error, partition, entryId: id }, 'could not deliver a tailed event');
            }
          }
        } catch (error) {
          if (stopped) break;
          if (!failing) log.warn({ err: error, partition }, 'event tail failed to read; retrying');
          failing = true;
          await pause.wait(500);
        }
      }
    };
    const running = Promise.all(connections.map(loop));
    const subscription: EventSubscription = {
      close: async () => {
        if (!this.subscriptions.delete(subscription)) return;
        stopped = true;
        pause.interrupt();
        for (const connection of connections) connection.disconnect();
        await this.stopped(running, `tail of ${stream}`);
      },
    };
    this.subscriptions.add(subscription);
    return subscription;
  }

  /** Closes every subscription and the publishing connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.subscriptions].map((subscription) => subscription.close()));
    this.publisher.disconnect();
  }

  /**
   * Makes a closing member's unfinished entries claimable at once (their idle time set past the claim
   * threshold, all alike), so another member takes them over now, and in order.
   */
  private async handBack(key: string, group: string, consumer: string, ids: string[], claimIdleMs: number) {
    if (ids.length === 0 || this.publisher.status !== 'ready') return;
    try {
      await this.publisher.call('XCLAIM', key, group, consumer, 0, ...ids, 'IDLE', claimIdleMs, 'JUSTID');
    } catch {
      // They are taken over anyway once idle for claimIdleMs.
    }
  }

  /** Removes a closed member from its group when it left nothing pending (members do not pile up). */
  private async forgetConsumer(key: string, group: string, consumer: string): Promise<void> {
    if (this.publisher.status !== 'ready') return;
    try {
      const pending = (await this.publisher.call('XPENDING', key, group, '-', '+', 1, consumer)) as unknown[];
      if (pending.length === 0) await this.publisher.call('XGROUP', 'DELCONSUMER', key, group, consumer);
    } catch {
      // Only housekeeping: a leftover member with nothing pending is harmless.
    }
  }

  /**
   * Waits for a subscription's reading loops once their connections are cut, but not forever: a loop
   * stuck on a command its disconnected cluster client never settles (seen once in CI, right after a
   * failover) must not hold up shutdown. Left behind, it is logged; it reads nothing more.
   */
  private async stopped(running: Promise<unknown>, what: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([
      running.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), CLOSE_GRACE_MS))),
    ]).finally(() => clearTimeout(timer));
    if (!ended) this.logger.warn({ subscription: what }, 'a reading loop did not stop after its connections closed');
  }

  private partitionNumbers(): number[] {
    return Array.from({ length: this.partitions }, (_, partition) => partition);
  }

  private assertOpen() {
    if (this.closed) throw new Error('the event bus is closed');
  }

  private connect(role: string, overrides: Partial<RedisConnectionOptions> = {}): RedisConnection {
    // Blocking reads wait as long as they need; a restarted Redis is reconnected to, with capped backoff.
    return connectRedis(this.options.redis, { name: `${this.prefix}${role}`, logger: this.logger, ...overrides });
  }
}

/** One partition's loop of a consumer, as its subscription drives and closes it. */
interface PartitionReader {
  key: string;
  connection: RedisConnection;
  /** Entries delivered to it and not finished (handed back on close). */
  held: Set<string>;
  running: Promise<void>;
  /** Whether a handler is running (or waiting its turn) for one of its entries. */
  busy(): boolean;
  stop(): void;
}

async function createGroup(connection: RedisConnection, key: string, group: string): Promise<void> {
  try {
    // From the stream's start: a group created after events were published still gets them.
    await connection.xgroup('CREATE', key, group, '0', 'MKSTREAM');
  } catch (error) {
    if (!String(error).includes('BUSYGROUP')) throw error;
  }
}

function deadLetterOf(stream: EventStream, partition: number, fields: string[]): DeadLetter {
  const value = (name: string) => fieldValue(fields, name);
  return {
    stream,
    partition,
    group: value('group') ?? '',
    entryId: value('entry') ?? '',
    eventId: value('eventId') || null,
    eventType: value('eventType') || null,
    attempts: Number(value('attempts') ?? 0),
    error: value('error') ?? '',
    raw: value('event') ?? '',
  };
}

/** Orders stream entry ids (`<ms>-<seq>`) by time, then sequence. */
function compareEntryIds(a: string, b: string): number {
  const [aMs, aSeq] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bMs, bSeq] = b.split('-').map(BigInt) as [bigint, bigint];
  if (aMs !== bMs) return aMs < bMs ? -1 : 1;
  return aSeq === bSeq ? 0 : aSeq < bSeq ? -1 : 1;
}

/** Thrown inside a consumer to unwind when it is closed mid-retry. */
class Stopping extends Error {}

function fieldValue(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}
