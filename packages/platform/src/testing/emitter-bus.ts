import { EventEmitter } from 'node:events';
import type { DomainEvent, EventStream } from '../messaging/events.js';
import { publishInTurn } from '../messaging/in-process.js';
import type { EventBus, StreamEvent } from '../messaging/types.js';

/**
 * An event bus a test drives by hand, for the side that only tails (the gateway): `publish` emits at
 * once to every tail of the stream; `consume` is not served. `tails` counts the tails started, and
 * `failTail` makes the next ones fail, as an unreachable Redis would.
 */
export class EmitterBus implements EventBus {
  readonly emitter = new EventEmitter();
  tails = 0;
  failTail = false;

  async publish(stream: EventStream, event: DomainEvent): Promise<void> {
    this.emitter.emit(stream, event);
  }

  publishAll(events: readonly StreamEvent[]) {
    return publishInTurn(this, events);
  }

  async consume(): Promise<never> {
    throw new Error('EmitterBus serves tails only');
  }

  async tail(stream: EventStream, handler: (event: DomainEvent) => void) {
    this.tails++;
    if (this.failTail) throw new Error('redis is down');
    this.emitter.on(stream, handler);
    return { close: async () => void this.emitter.off(stream, handler) };
  }

  async close(): Promise<void> {}
}
