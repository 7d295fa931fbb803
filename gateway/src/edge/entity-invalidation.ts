import {
  changedEntitiesOf,
  eventDefinitions,
  eventTypes,
  streamOf,
  type DomainEvent,
  type EventBus,
  type EventStream,
  type EventSubscription,
  type Logger,
} from '@food/platform';
import type { EntityCache } from './entity-cache.js';

/** The streams that carry at least one event type declared to change entities. */
export const streamsWithChanges = (): EventStream[] => [
  ...new Set(eventTypes.filter((type) => eventDefinitions[type].changes.length > 0).map(streamOf)),
];

/**
 * Keeps the entity cache true to changes that never pass through the gateway (a background job's
 * own writes): every gateway process tails each stream whose events declare
 * changed entities, and drops those entities in the Redis every replica reads. A change made through
 * the gateway is dropped earlier, before its mutation is answered (`changedEntities`); this covers
 * the rest, within the time an event takes to arrive. While no gateway is tailing (all stopped),
 * the TTL bounds what can be missed.
 */
export async function invalidateOnEvents(
  bus: EventBus,
  cache: EntityCache,
  logger: Logger,
): Promise<EventSubscription> {
  const onEvent = (event: DomainEvent) => {
    for (const { entities } of changedEntitiesOf(event)) void cache.invalidate(entities);
  };
  const streams = streamsWithChanges();
  const tails = await Promise.all(streams.map((stream) => bus.tail(stream, onEvent)));
  logger.info({ streams }, 'entity cache: dropping the entities events name as changed');
  return { close: async () => void (await Promise.all(tails.map((tail) => tail.close()))) };
}
