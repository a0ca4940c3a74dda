import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { createMetrics } from '../metrics/metrics.js';
import { startMetricsListener } from './metrics-listener.js';

function get(
  port: number,
  path: string,
  method = 'GET',
): Promise<{ status: number; type: string | undefined; body: string; allow: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          type: res.headers['content-type'],
          body,
          allow: res.headers.allow,
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

test('GET /metrics serves the exposition; other paths 404, other methods 405', async () => {
  const m = createMetrics();
  m.connectionAccepted();
  const l = await startMetricsListener({ host: '127.0.0.1', port: 0 }, m);
  try {
    assert.equal(l.address.host, '127.0.0.1');
    const r = await get(l.address.port, '/metrics');
    assert.equal(r.status, 200);
    assert.match(r.type ?? '', /^text\/plain; version=0\.0\.4/);
    assert.match(r.body, /^asmtpd_connections_total 1$/m);
    // the listener turns the process figures on
    assert.match(r.body, /^process_cpu_user_seconds_total /m);
    assert.equal((await get(l.address.port, '/metrics?x=1')).status, 200);
    assert.equal((await get(l.address.port, '/')).status, 404);
    assert.equal((await get(l.address.port, '/metrics/x')).status, 404);
    const post = await get(l.address.port, '/metrics', 'POST');
    assert.equal(post.status, 405);
    assert.equal(post.allow, 'GET, HEAD');
    const head = await get(l.address.port, '/metrics', 'HEAD');
    assert.deepEqual([head.status, head.body], [200, '']);
  } finally {
    await l.close();
  }
});

test('an address already in use is an error (the daemon does not start)', async () => {
  const m = createMetrics();
  const first = await startMetricsListener({ host: '127.0.0.1', port: 0 }, m);
  try {
    await assert.rejects(startMetricsListener({ host: '127.0.0.1', port: first.address.port }, m), /EADDRINUSE/);
  } finally {
    await first.close();
  }
});
