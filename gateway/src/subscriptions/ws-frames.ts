import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';

/**
 * The parts of one text message, in order: text (a subscription's own prefix, kept as a string: at
 * thousands of idle subscriptions a Buffer each costs more) or bytes (a result encoded once for all).
 */
export type MessageParts = readonly (string | Buffer)[];

/** ws's own fields this module writes through: the TCP socket, and the extensions the handshake agreed on. */
interface WsInternals {
  _socket?: Socket;
  extensions?: string;
}

/**
 * Writes server-to-client text messages to WebSockets as whole frames, one write per socket per turn of
 * the event loop. A change that reaches thousands of subscribers at once was most of a gateway's work
 * through `ws.send`: per message a string-to-Buffer copy, a header, a cork, two writes and a callback.
 * Here the messages a socket gets in one turn (one per subscription on it, say) go out as one buffer
 * in one write, framed here (RFC 6455: FIN, text, unmasked from a server).
 *
 * Ordering: messages sent to the socket any other way (graphql-ws's own `complete`, `error`, `pong`;
 * a close) must come after what was queued before them, so callers `flush` the socket first.
 * Frames are written only to an open socket; a socket that is closing drops what waits for it.
 */
export class TextFrameWriter {
  private pending = new Map<WebSocket, MessageParts[]>();
  private scheduled = false;

  /** Queues one text message for `socket`; it goes out at the end of this turn of the event loop. */
  queue(socket: WebSocket, parts: MessageParts): void {
    const waiting = this.pending.get(socket);
    if (waiting) waiting.push(parts);
    else this.pending.set(socket, [parts]);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flushAll());
    }
  }

  /** Writes what waits for `socket` now (before anything else is sent on it). */
  flush(socket: WebSocket): void {
    const waiting = this.pending.get(socket);
    if (!waiting) return;
    this.pending.delete(socket);
    write(socket, waiting);
  }

  /** Writes everything that waits, for every socket. */
  flushAll(): void {
    this.scheduled = false;
    const pending = this.pending;
    if (pending.size === 0) return;
    this.pending = new Map();
    for (const [socket, messages] of pending) write(socket, messages);
  }
}

function write(socket: WebSocket, messages: MessageParts[]): void {
  if (socket.readyState !== socket.OPEN) return;
  const { _socket: tcp, extensions } = socket as unknown as WsInternals;
  // A negotiated extension (permessage-deflate) changes the frames: then ws frames them itself.
  if (!tcp || extensions) {
    for (const parts of messages) {
      const message = Buffer.allocUnsafe(partsLength(parts));
      writeParts(parts, message, 0);
      socket.send(message, { binary: false });
    }
    return;
  }
  tcp.write(framed(messages));
}

/** The messages as consecutive text frames, in one buffer. */
export function framed(messages: readonly MessageParts[]): Buffer {
  let size = 0;
  for (const parts of messages) {
    const length = partsLength(parts);
    size += headerLength(length) + length;
  }
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const parts of messages) {
    const length = partsLength(parts);
    out[at++] = 0x81; // FIN, text
    if (length < 126) {
      out[at++] = length;
    } else if (length < 65_536) {
      out[at++] = 126;
      out.writeUInt16BE(length, at);
      at += 2;
    } else {
      out[at++] = 127;
      out.writeBigUInt64BE(BigInt(length), at);
      at += 8;
    }
    at = writeParts(parts, out, at);
  }
  return out;
}

/** Writes the parts into `out` from `at`; returns where they end. */
function writeParts(parts: MessageParts, out: Buffer, at: number): number {
  for (const part of parts) at += typeof part === 'string' ? out.write(part, at) : part.copy(out, at);
  return at;
}

function partsLength(parts: MessageParts): number {
  let length = 0;
  for (const part of parts) length += typeof part === 'string' ? Buffer.byteLength(part) : part.length;
  return length;
}

const headerLength = (length: number) => (length < 126 ? 2 : length < 65_536 ? 4 : 10);
