import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createDohRequest } from './doh-request.js';

/** An HTTP server that answers the first request of each connection and resets on the second. */
async function resettingServer(): Promise<{ port: number; connections: () => number; close(): Promise<void> }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    connections++;
    sockets.add(sock);
    let requests = 0;
    sock.on('data', (d) => {
      if (!d.includes('\r\n\r\n')) return;
      requests++;
      if (requests === 1) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok');
      else sock.resetAndDestroy();
    });
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    connections: () => connections,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

test('a request that fails on a reused keep-alive connection is sent again on a new one', async () => {
  const srv = await resettingServer();
  try {
    const request = createDohRequest();
    const url = `http://127.0.0.1:${srv.port}/dns-query?dns=AAAB`;
    const first = await request(url, {});
    assert.equal(first.body.toString(), 'ok');
    const second = await request(url, {});
    assert.equal(second.body.toString(), 'ok', 'answered on a second connection');
    assert.equal(srv.connections(), 2);
  } finally {
    await srv.close();
  }
});
