import { streamOf, type DomainEvent } from './events.js';

/**
 * The transactional outbox. A service that emits events has, in its own database, the tables below
 * (declared in its Prisma schema as `OutboxEvent` and `ProcessedEvent`, identical in every service):
 *
 *   outbox_events(sequence bigserial primary key, id uuid unique, stream text, type text,
 *                 aggregate_id uuid, payload jsonb, created_at timestamptz(3), published_at timestamptz(3) null)
 *   processed_events(consumer text, event_id uuid, processed_at timestamptz(3), primary key (consumer, event_id))
 *
 * A change and its event are written in one transaction (`outboxRecord` gives the row), so either both
 * exist or neither. The relay (outbox-relay.ts) publishes unpublished rows in `sequence` order and
 * marks them published. A consumer inserts (consumer, event id) into processed_events in the same
 * transaction as its effect, so a redelivered event finds its row and has no second effect.
 */
export const OUTBOX_TABLE = 'outbox_events';
export const PROCESSED_EVENTS_TABLE = 'processed_events';
/**
 * The channel the relay listens on. A writer runs OUTBOX_NOTIFY_SQL in the transaction that inserts
 * outbox rows (NOTIFY is delivered on commit), so the relay publishes at once instead of at its next
 * poll. (A trigger would do it too, but Prisma's offline migration runner splits scripts on every `;`,
 * which breaks a plpgsql body.)
 */
export const OUTBOX_NOTIFY_CHANNEL = 'outbox_events';
export const OUTBOX_NOTIFY_SQL = `SELECT pg_notify('${OUTBOX_NOTIFY_CHANNEL}', '')`;

export interface OutboxRecord {
  id: string;
  stream: string;
  type: string;
  aggregateId: string;
  payload: DomainEvent;
}

/** The outbox row for an event, for the service's `tx.outboxEvent.create({ data })`. */
export function outboxRecord(event: DomainEvent): OutboxRecord {
  return {
    id: event.id,
    stream: streamOf(event.type),
    type: event.type,
    aggregateId: event.aggregateId,
    payload: event,
  };
}

/**
 * The part of a service's Prisma transaction client the outbox needs (structural, so this package
 * does not depend on any one generated client).
 */
export interface OutboxTransaction {
  outboxEvent: { createMany(args: { data: OutboxRecord[] }): PromiseLike<unknown> };
  processedEvent: {
    createMany(args: { data: { consumer: string; eventId: string }[]; skipDuplicates: boolean }): PromiseLike<{
      count: number;
    }>;
  };
  $executeRawUnsafe(query: string): PromiseLike<unknown>;
}

/** Writes events to the outbox inside the caller's transaction, and wakes the relay on commit. */
export async function writeOutbox(tx: OutboxTransaction, events: readonly DomainEvent[]): Promise<void> {
  if (events.length === 0) return;
  await tx.outboxEvent.createMany({ data: events.map(outboxRecord) });
  await tx.$executeRawUnsafe(OUTBOX_NOTIFY_SQL);
}

/**
 * Remembers, inside the caller's transaction, that `consumer` handled `eventId`. False when it had
 * already: the caller must then write nothing (roll back), which makes redelivery harmless.
 */
export async function markEventHandled(tx: OutboxTransaction, consumer: string, eventId: string): Promise<boolean> {
  const { count } = await tx.processedEvent.createMany({ data: [{ consumer, eventId }], skipDuplicates: true });
  return count === 1;
}
