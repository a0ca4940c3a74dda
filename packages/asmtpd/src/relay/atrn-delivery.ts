/**
 * relay/atrn-delivery — ATRN (RFC 2645) for several domains in one reversed session:
 *
 *   deliverHeldDomainsOver(socket, { dir, domains, hostname, config, log? }) -> FlushReport
 *
 * `ATRN a.example,b.example` reverses the connection once, so every domain's held mail goes over
 * the one SMTP session on `socket` (the customer greets, we EHLO): one flushHeld pass per domain
 * (hold-flush.ts: claims, records, DSNs as for any flush) over one relay built on the socket,
 * then QUIT (the relay's close). deliverHeldOver of hold-flush.ts is the one-domain form.
 */
import type { Socket } from 'node:net';
import type { Config } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { flushHeld, type FlushReport } from './hold-flush.js';
import type { HoldRoutes } from './hold-routes.js';
import { createSmtpRelay } from './smtp-relay.js';

export async function deliverHeldDomainsOver(
  socket: Socket,
  opts: { dir: string; domains: readonly string[]; hostname: string; config: Config; log?: Logger },
): Promise<FlushReport> {
  const relay = createSmtpRelay({
    target: { kind: 'smtp', host: socket.remoteAddress ?? 'atrn-peer', port: socket.remotePort ?? 0 },
    clientName: opts.hostname,
    timeoutMs: opts.config.relayTimeoutMs,
    pool: { maxConnections: 1 },
    socket,
  });
  const routes: HoldRoutes = {
    routeOf: () => ({ key: 'atrn', relay, holdDomain: true }),
    close: () => relay.close(),
  };
  const total: FlushReport = { delivered: 0, deferred: 0, failed: 0, busy: 0 };
  try {
    for (const domain of opts.domains) {
      const r = await flushHeld({
        dir: opts.dir,
        config: { ...opts.config, hostname: opts.hostname },
        domain: domain.toLowerCase(),
        routes,
        concurrency: 1,
        by: 'atrn',
        ...(opts.log ? { log: opts.log } : {}),
      });
      total.delivered += r.delivered;
      total.deferred += r.deferred;
      total.failed += r.failed;
      total.busy += r.busy;
    }
  } finally {
    await relay.close();
  }
  return total;
}
