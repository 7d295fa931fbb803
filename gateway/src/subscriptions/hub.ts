import {
  EventStreams,
  type DomainEvent,
  type EventBus,
  type EventOf,
  type EventSubscription,
  type Logger,
} from '@food/platform';

export type OrderStatusChanged = EventOf<'order.status_changed'>;
export type OrderChangeListener = (event: OrderStatusChanged) => void;

export interface OrderEventHubCounts {
  /** Orders with at least one listener. */
  orders: number;
  /** Listeners of one order (orderStatusChanged subscribers), over all orders. */
  orderListeners: number;
  /** Listeners of every order (orderUpdates subscribers). */
  feedListeners: number;
  /** Whether the tail of the orders stream is running (or starting). */
  tailing: boolean;
}

/**
 * The gateway process's one reader of the `orders` stream, and the registry of who wants which
 * order's changes. The tail starts with the first listener and runs until `close`, whatever the
 * number of subscribers: one tail per process, not one per subscriber.
 */
export class OrderEventHub {
  /** One order's listener, or its listeners when there are several (most orders have one subscriber). */
  private readonly byOrder = new Map<string, OrderChangeListener | Set<OrderChangeListener>>();
  private readonly feed = new Set<OrderChangeListener>();
  private tailing: Promise<EventSubscription> | undefined;
  private closed = false;
  /** How many times a tail was started (a failed start is retried by the next listener). */
  tailsStarted = 0;

  constructor(
    private readonly bus: EventBus,
    private readonly logger: Logger,
  ) {}

  /**
   * Calls `listener` with each change of `orderId` published from now on. Resolves once the tail is
   * running, so a snapshot read after it misses nothing; the returned function removes the listener.
   */
  listen(orderId: string, listener: OrderChangeListener): Promise<() => void> {
    const listeners = this.byOrder.get(orderId);
    if (!listeners) this.byOrder.set(orderId, listener);
    else if (typeof listeners === 'function') this.byOrder.set(orderId, new Set([listeners, listener]));
    else listeners.add(listener);
    return this.started(() => {
      const current = this.byOrder.get(orderId);
      if (current === listener) this.byOrder.delete(orderId);
      else if (typeof current === 'object' && current.delete(listener) && current.size === 0)
        this.byOrder.delete(orderId);
    });
  }

  /** Calls `listener` with every order's changes published from now on (the kitchen's feed). */
  listenAll(listener: OrderChangeListener): Promise<() => void> {
    this.feed.add(listener);
    return this.started(() => {
      this.feed.delete(listener);
    });
  }

  counts(): OrderEventHubCounts {
    let orderListeners = 0;
    for (const listeners of this.byOrder.values())
      orderListeners += typeof listeners === 'function' ? 1 : listeners.size;
    return {
      orders: this.byOrder.size,
      orderListeners,
      feedListeners: this.feed.size,
      tailing: this.tailing !== undefined,
    };
  }

  /** Drops every listener and stops the tail. The bus itself belongs to the caller and stays open. */
  async close(): Promise<void> {
    this.closed = true;
    this.byOrder.clear();
    this.feed.clear();
    const tailing = this.tailing;
    this.tailing = undefined;
    if (!tailing) return;
    try {
      await (await tailing).close();
    } catch (error) {
      this.logger.warn({ err: error }, 'could not close the orders event tail');
    }
  }

  private async started(remove: () => void): Promise<() => void> {
    let removed = false;
    const removeOnce = () => {
      if (removed) return;
      removed = true;
      remove();
    };
    try {
      if (this.closed) throw new Error('the order event hub is closed');
      await this.tail();
      return removeOnce;
    } catch (error) {
      removeOnce();
      throw error;
    }
  }

  private tail(): Promise<EventSubscription> {
    if (!this.tailing) {
      this.tailsStarted++;
      const tailing = this.bus.tail(EventStreams.orders, (event) => this.dispatch(event));
      this.tailing = tailing;
      tailing.catch((error: unknown) => {
        // The next listener tries again.
        if (this.tailing === tailing) this.tailing = undefined;
        this.logger.error({ err: error }, 'could not tail the orders stream');
      });
    }
    return this.tailing;
  }

  private dispatch(event: DomainEvent): void {
    if (this.closed || event.type !== 'order.status_changed') return;
    const ofOrder = this.byOrder.get(event.data.orderId);
    const listeners = [...(typeof ofOrder === 'function' ? [ofOrder] : (ofOrder ?? [])), ...this.feed];
    for (const listener of listeners) {
      try {
        listener(event);
      } catch (error) {
        this.logger.error({ err: error, eventId: event.id }, 'an order event listener failed');
      }
    }
  }
}
