import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { TextFrameWriter } from './ws-frames.js';

const servers: WebSocketServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    for (const client of server.clients) client.terminate();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** A ws server and one real ws client connected to it; the client's messages as they arrive. */
async function connected(serverOptions: ConstructorParameters<typeof WebSocketServer>[0] = {}) {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1', ...serverOptions });
  servers.push(server);
  await new Promise((resolve) => server.once('listening', resolve));
  const accepted = new Promise<WebSocket>((resolve) => server.once('connection', resolve));
  const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`, {
    perMessageDeflate: Boolean(serverOptions.perMessageDeflate),
  });
  const received: { text: string; binary: boolean }[] = [];
  client.on('message', (data: Buffer, binary: boolean) => received.push({ text: data.toString('utf8'), binary }));
  await new Promise((resolve) => client.once('open', resolve));
  return { socket: await accepted, client, received };
}

const parts = (text: string) => [Buffer.from(text)];
const until = async (check: () => boolean) => {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
};

describe('TextFrameWriter', () => {
  it('delivers text messages of every frame-length class intact and in order', async () => {
    const { socket, received } = await connected();
    const writer = new TextFrameWriter();
    // 7-bit, 16-bit and 64-bit payload lengths (RFC 6455 5.2), and multi-byte UTF-8.
    const texts = ['{}', 'x'.repeat(125), 'y'.repeat(126), `"${'é'.repeat(40_000)}"`, 'z'.repeat(70_000), 'ünïcode ✓'];
    // Text parts and byte parts, as the server mixes them (a subscription's prefix, a shared result).
    for (const text of texts) writer.queue(socket, [text.slice(0, 3), Buffer.from(text.slice(3))]);
    await until(() => received.length === texts.length);
    expect(received.map((message) => message.text)).toEqual(texts);
    expect(received.every((message) => !message.binary)).toBe(true);
  });

  it("writes a socket's messages of one turn in one write", async () => {
    const { socket, received } = await connected();
    const tcp = (socket as unknown as { _socket: { write: (...args: unknown[]) => boolean } })._socket;
    const writes: unknown[] = [];
    const write = tcp.write.bind(tcp);
    tcp.write = (...args: unknown[]) => (writes.push(args[0]), write(...args));
    const writer = new TextFrameWriter();
    writer.queue(socket, parts('one'));
    writer.queue(socket, parts('two'));
    writer.queue(socket, parts('three'));
    expect(writes).toHaveLength(0);
    await until(() => received.length === 3);
    expect(received.map((message) => message.text)).toEqual(['one', 'two', 'three']);
    expect(writes).toHaveLength(1);
  });

  it('keeps queued messages ahead of one sent directly after a flush', async () => {
    const { socket, received } = await connected();
    const writer = new TextFrameWriter();
    writer.queue(socket, parts('next'));
    writer.flush(socket);
    socket.send('complete');
    await until(() => received.length === 2);
    expect(received.map((message) => message.text)).toEqual(['next', 'complete']);
  });

  it('lets ws frame the messages when the connection negotiated permessage-deflate', async () => {
    const { socket, received } = await connected({ perMessageDeflate: { threshold: 0 } });
    expect(socket.extensions).toContain('permessage-deflate');
    const writer = new TextFrameWriter();
    writer.queue(socket, ['a'.repeat(500), Buffer.from('a'.repeat(500))]);
    writer.queue(socket, parts('b'));
    await until(() => received.length === 2);
    expect(received.map((message) => message.text)).toEqual(['a'.repeat(1_000), 'b']);
  });

  it('drops what waits for a socket that is closing, and writes nothing after its close frame', async () => {
    const { socket, client, received } = await connected();
    const writer = new TextFrameWriter();
    writer.queue(socket, parts('late'));
    socket.close(1000, 'bye');
    const closed = await new Promise<number>((resolve) => client.once('close', resolve));
    expect(closed).toBe(1000);
    expect(received).toEqual([]);
  });
});
