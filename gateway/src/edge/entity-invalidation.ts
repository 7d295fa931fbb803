import {
  changedEntitiesOf,
  eventDefinitions,
  eventTypes,
  streamOf,
  type DomainEvent,
  type EventBus,
  type EventStream,
  type EntityReference,
  type EventSubscription,
  type Logger,
} from '@food/platform';

/** The streams that carry at least one event type declared to change entities. */
export const streamsWithChanges = (): EventStream[] => [
  ...new Set(eventTypes.filter((type) => eventDefinitions[type].changes.length > 0).map(streamOf)),
];

/**
 * Keeps the caches true to changes that never pass through the gateway (a background job's own
 * writes): every gateway process tails each stream whose events declare changed entities, and drops
 * those entities (from the entity cache in the Redis every replica reads, and from this process's
 * response cache). A change made through the gateway is dropped earlier, before its mutation is
 * answered (`changedEntities`); this covers the rest, and the other replicas' response caches,
 * within the time an event takes to arrive. While no gateway is tailing (all stopped), the TTL
 * bounds what can be missed.
 */
export async function invalidateOnEvents(
  bus: EventBus,
  drop: (entities: EntityReference[]) => Promise<void>,
  logger: Logger,
): Promise<EventSubscription> {
  const onEvent = (event: DomainEvent) => {
    for (const { entities } of changedEntitiesOf(event)) void drop(entities);
  };
  const streams = streamsWithChanges();
  const tails = await Promise.all(streams.map((stream) => bus.tail(stream, onEvent)));
  logger.info({ streams }, 'caches: dropping the entities events name as changed');
  return { close: async () => void (await Promise.all(tails.map((tail) => tail.close()))) };
}
