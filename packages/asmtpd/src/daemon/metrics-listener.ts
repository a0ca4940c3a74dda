/**
 * metrics-listener.ts — MetricsListen: the Prometheus endpoint, a plain HTTP server.
 *
 *   startMetricsListener(where, metrics) -> Promise<MetricsListener { address, close() }>
 *
 * GET (or HEAD) /metrics answers the text exposition of `metrics` (metrics/metrics.ts); any
 * other path is 404, any other method 405. No authentication and no TLS, like most exporters:
 * bind it to loopback or firewall it (docs/metrics.md). The daemon binds it as root, with the
 * SMTP ports, and serves it as DaemonUser. It starts the process figures (CPU, memory, event
 * loop) of `metrics`: a daemon without MetricsListen does not collect them.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from '../metrics/metrics.js';

export interface MetricsListener {
  /** where it listens (the port when MetricsListen named 0) */
  address: { host: string; port: number };
  close(): Promise<void>;
}

export async function startMetricsListener(
  where: { host: string; port: number },
  metrics: Pick<Metrics, 'startProcessMetrics' | 'render' | 'contentType'>,
): Promise<MetricsListener> {
  metrics.startProcessMetrics();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') return answer(res, 404, 'not found: the metrics are at /metrics\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return answer(res, 405, 'method not allowed\n');
    }
    metrics.render().then(
      (text) => {
        res.writeHead(200, { 'Content-Type': metrics.contentType, 'Cache-Control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: Error) => answer(res, 500, `cannot collect the metrics: ${err.message}\n`),
    );
  });
  // a scraper keeps its connection open between scrapes; a slow client is not ours to wait for
  server.requestTimeout = 10_000;
  server.headersTimeout = 10_000;
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(where.port, where.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  return {
    address: { host: bound.address, port: bound.port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function answer(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(text);
}
