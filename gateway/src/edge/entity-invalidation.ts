import {
  EventStreams,
  type DomainEvent,
  type EntityReference,
  type EventBus,
  type EventSubscription,
  type Logger,
} from '@food/platform';
import type { EntityCache } from './entity-cache.js';

/** The entities an event says changed, by the subgraph whose fields they are. */
export function entitiesChangedBy(event: DomainEvent): { subgraph: string; entities: EntityReference[] }[] {
  const changed = (subgraph: string, ...entities: [typename: string, id: string][]) => [
    { subgraph, entities: entities.map(([__typename, id]) => ({ __typename, id })) },
  ];
  switch (event.type) {
    case 'order.placed':
    case 'order.status_changed':
      // The order itself, and its customer's `User.orders` list.
      return changed('orders', ['Order', event.data.orderId], ['User', event.data.customerId]);
    case 'payment.succeeded':
    case 'payment.failed':
    case 'payment.refunded':
      // `Order.payment` and `Order.payments`, and the payment itself.
      return changed('payments', ['Order', event.data.orderId], ['Payment', event.data.paymentId]);
    case 'order.refund_requested':
      // Asks for a refund; what changes is announced by the status change and the refund's own events.
      return [];
  }
}

/**
 * Keeps the entity cache true to changes that never pass through the gateway (a worker settling a
 * payment, an unpaid order timing out): every gateway process tails the orders and payments streams
 * and drops the entities each event names, in the Redis every replica reads. A change made through
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
    for (const { subgraph, entities } of entitiesChangedBy(event)) {
      void cache.invalidate(subgraph, entities);
    }
  };
  const tails = await Promise.all([bus.tail(EventStreams.orders, onEvent), bus.tail(EventStreams.payments, onEvent)]);
  logger.info('entity cache: dropping entities named by order and payment events');
  return { close: async () => void (await Promise.all(tails.map((tail) => tail.close()))) };
}
