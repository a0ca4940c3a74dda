/**
 * system-backend.ts — node's c-ares Resolver as the system resolver's backend, holding DNSTimeout.
 *
 *   systemBackend({servers, timeoutMs}, makeResolver?) -> LookupBackend
 *
 * c-ares (1.34 in Node 20) times each query by the answer times it has seen from the server, at
 * least ~1 s: after many fast answers (a local unbound) an answer that takes 1.5 s is a timeout at
 * 1 s, whatever `timeout` said; and it waits ~5 s at most for any one answer. Node 20 can set
 * neither bound. So a timeout that comes before DNSTimeout is asked again on a fresh channel (no
 * history: it waits what is left, up to ~5 s), until DNSTimeout (~50 µs to make one; its socket
 * closes with its last query). An answer slower than ~5 s is caught only if the server has it by
 * the resend, as a recursive resolver does. The common case — an answer, or a timeout at
 * DNSTimeout — costs nothing more.
 */
import { promises as dnsPromises } from 'node:dns';
import type { LookupBackend } from './negative-cache.js';

type Method = 'resolveTxt' | 'resolveMx' | 'resolve4' | 'resolve6' | 'resolvePtr';
type Channel = Pick<dnsPromises.Resolver, Method>;

/** Below this much time left a second try is not worth a query. */
const MIN_RETRY_MS = 100;

export interface SystemBackendOptions {
  /** "addr" or "[addr]:port" strings; none: /etc/resolv.conf's */
  servers: readonly string[];
  timeoutMs: number;
}

export function systemBackend(
  o: SystemBackendOptions,
  makeChannel: (timeoutMs: number) => Channel = (timeoutMs) => {
    const r = new dnsPromises.Resolver({ timeout: timeoutMs, tries: 1 });
    if (o.servers.length > 0) r.setServers([...o.servers]);
    return r;
  },
): LookupBackend {
  const main = makeChannel(o.timeoutMs);
  const ask = async <T>(method: Method, name: string): Promise<T> => {
    const started = performance.now();
    let channel = main;
    for (;;) {
      try {
        return (await channel[method](name)) as T;
      } catch (err) {
        const left = Math.floor(o.timeoutMs - (performance.now() - started));
        if ((err as { code?: unknown }).code !== 'ETIMEOUT' || left < MIN_RETRY_MS) throw err;
        channel = makeChannel(left);
      }
    }
  };
  return {
    resolveTxt: (name) => ask('resolveTxt', name),
    resolveMx: (name) => ask('resolveMx', name),
    resolve4: (name) => ask('resolve4', name),
    resolve6: (name) => ask('resolve6', name),
    resolvePtr: (name) => ask('resolvePtr', name),
  };
}
