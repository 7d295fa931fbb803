import { streamOf, type DomainEvent, type EventBus, type EventSubscription, type Logger } from '@food/platform';

export type EventListener = (event: DomainEvent) => void;

/** Which events of a type a listener wants: those whose data `field` is one of `values` (else all). */
export interface EventIndex {
  field: string;
  values: readonly string[];
}

export interface EventHubCounts {
  /** Listeners of events whose data matches an index value, over all types and values. */
  indexedListeners: number;
  /** Listeners of every event of a type. */
  typeListeners: number;
  /** Streams being tailed (or starting). */
  tails: number;
}

/** One listener, or several: most values (an order's id) have one. */
type Listeners = EventListener | Set<EventListener>;

interface OfType {
  /** data field -> value -> listeners. */
  byValue: Map<string, Map<string, Listeners>>;
  all: Set<EventListener>;
}

const added = (listeners: Listeners | undefined, listener: EventListener): Listeners =>
  listeners === undefined
    ? listener
    : typeof listeners === 'function'
      ? new Set([listeners, listener])
      : listeners.add(listener);

/** What is left once `listener` is removed; undefined when nothing is. */
function removed(listeners: Listeners | undefined, listener: EventListener): Listeners | undefined {
  if (listeners === undefined || listeners === listener) return undefined;
  if (typeof listeners === 'function') return listeners;
  listeners.delete(listener);
  return listeners.size === 0 ? undefined : listeners;
}

const sizeOf = (listeners: Listeners) => (typeof listeners === 'function' ? 1 : listeners.size);

/**
 * The gateway process's one reader of each event stream a subscription follows, and the registry of
 * who wants which events. A stream's tail starts with its first listener and runs until `close`: one
 * tail per stream and process, whatever the number of subscribers. Listeners are indexed by event
 * type and, where the declaration allows, by a data field's value, so an event reaches only the
 * subscribers it can match.
 */
export class EventHub {
  private readonly types = new Map<string, OfType>();
  private readonly tailing = new Map<string, Promise<EventSubscription>>();
  private closed = false;
  /** How many tails were started (a failed start is retried by the next listener). */
  tailsStarted = 0;

  constructor(
    private readonly bus: EventBus,
    private readonly logger: Logger,
  ) {}

  /**
   * Calls `listener` with each event of `type` (and `index`) published from now on. Resolves once the
   * tail is running, so a state read after it misses nothing; the returned function removes it.
   */
  async listen(type: string, index: EventIndex | undefined, listener: EventListener): Promise<() => void> {
    const ofType = this.types.get(type) ?? { byValue: new Map(), all: new Set() };
    this.types.set(type, ofType);
    const values = index ? [...new Set(index.values)] : [];
    if (index) {
      const byValue = ofType.byValue.get(index.field) ?? new Map<string, Listeners>();
      ofType.byValue.set(index.field, byValue);
      for (const value of values) byValue.set(value, added(byValue.get(value), listener));
    } else ofType.all.add(listener);
    let gone = false;
    const remove = () => {
      if (gone) return;
      gone = true;
      if (index) {
        const byValue = ofType.byValue.get(index.field);
        for (const value of values) {
          const left = removed(byValue?.get(value), listener);
          if (left) byValue!.set(value, left);
          else byValue?.delete(value);
        }
        if (byValue?.size === 0) ofType.byValue.delete(index.field);
      } else ofType.all.delete(listener);
      if (ofType.all.size === 0 && ofType.byValue.size === 0 && this.types.get(type) === ofType)
        this.types.delete(type);
    };
    try {
      if (this.closed) throw new Error('the event hub is closed');
      await this.tail(streamOf(type as DomainEvent['type']));
      return remove;
    } catch (error) {
      remove();
      throw error;
    }
  }

  counts(): EventHubCounts {
    let indexedListeners = 0;
    let typeListeners = 0;
    for (const ofType of this.types.values()) {
      typeListeners += ofType.all.size;
      for (const byValue of ofType.byValue.values())
        for (const listeners of byValue.values()) indexedListeners += sizeOf(listeners);
    }
    return { indexedListeners, typeListeners, tails: this.tailing.size };
  }

  /** Drops every listener and stops the tails. The bus itself belongs to the caller and stays open. */
  async close(): Promise<void> {
    this.closed = true;
    this.types.clear();
    const tails = [...this.tailing.values()];
    this.tailing.clear();
    await Promise.all(
      tails.map(async (tail) => {
        try {
          await (await tail).close();
        } catch (error) {
          this.logger.warn({ err: error }, 'could not close an event tail');
        }
      }),
    );
  }

  private tail(stream: string): Promise<EventSubscription> {
    let tailing = this.tailing.get(stream);
    if (!tailing) {
      this.tailsStarted++;
      tailing = this.bus.tail(stream as Parameters<EventBus['tail']>[0], (event) => this.dispatch(event));
      this.tailing.set(stream, tailing);
      const started = tailing;
      started.catch((error: unknown) => {
        // The next listener tries again.
        if (this.tailing.get(stream) === started) this.tailing.delete(stream);
        this.logger.error({ err: error, stream }, 'could not tail an event stream');
      });
    }
    return tailing;
  }

  private dispatch(event: DomainEvent): void {
    const ofType = this.closed ? undefined : this.types.get(event.type);
    if (!ofType) return;
    const listeners = new Set(ofType.all);
    const data = event.data as Record<string, unknown>;
    for (const [field, byValue] of ofType.byValue) {
      const value = data[field];
      if (value === undefined || value === null) continue;
      const matched = byValue.get(String(value));
      if (typeof matched === 'function') listeners.add(matched);
      else if (matched) for (const listener of matched) listeners.add(listener);
    }
    for (const listener of listeners) {
      try {
        listener(event);
      } catch (error) {
        this.logger.error({ err: error, eventId: event.id }, 'an event listener failed');
      }
    }
  }
}
