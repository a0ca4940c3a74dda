/**
 * process.ts — the network facts process: `node dist/facts/netfacts/process.js --ports=25[,587…] [--capture]`.
 *
 * Started by the daemon (client.ts) while it is still root, before it gives up root; the only part
 * of asmtpd that keeps CAP_NET_RAW once the daemon runs. It does two things, and nothing else:
 *   - captures the TCP SYNs to the daemon's ports (facts/synfp/capture.ts: a perl helper with AF_PACKET
 *     sockets and a kernel filter) and sends each one, parsed, to the daemon;
 *   - traces routes on request (NetPath: facts/netpath/trace.ts, results cached per /24 and /48 by
 *     facts/netpath/route-cache.ts for ROUTE_CACHE_TTL_MS).
 * It speaks JSON lines on stdin/stdout (protocol.ts); diagnostics go to stderr. The end of stdin
 * (the daemon stopped or died) ends it.
 *
 * SECURITY
 *   As root, the daemon starts it as NetFactsUser (its own account, not root) holding CAP_NET_RAW
 *   as an ambient capability and nothing else, with no_new_privs (client.ts): route probes open
 *   raw ICMP sockets per trace, long after start, so the capability must stay. It listens on
 *   nothing, reads no file (but /proc/self/status and, in the helper, /sys/class/net), runs no
 *   program but the capture helper, parses packets only as fixed binary headers (syn-packet.ts),
 *   checks every request from the daemon (validateRequest), and traces at most MAX_TRACES routes
 *   at once (more are answered with an error at once). It starts with an environment of PATH
 *   only, umask 077, in /; SIGUSR1 is neutralised first.
 */
import '@asmtpd/avenger-runner/no-inspector';
import '@asmtpd/avenger-runner/capability-guard';
import { readLines } from '@asmtpd/avenger-runner';
import { CAP_NET_RAW, hasCapability } from './capability.js';
import {
  MAX_LINE_BYTES,
  NETFACTS_PROTOCOL_VERSION,
  validateRequest,
  type CaptureState,
  type ProcessMessage,
  type Request,
} from './protocol.js';
import { startSynCapture, type SynCapture } from '../synfp/capture.js';
import { traceRoute } from '../netpath/trace.js';
import { createRouteCache } from '../netpath/route-cache.js';
import { limitTraces } from './trace-limit.js';
import type { RouteFact } from '../client-facts.js';

/** how long a traced route serves the clients of its /24 (/48) */
export const ROUTE_CACHE_TTL_MS = 10 * 60_000;
/** route traces in flight at once (each holds a raw socket and up to NetPathMaxHops probes) */
export const MAX_TRACES = 16;

function log(message: string): void {
  process.stderr.write(`netfacts[${process.pid}]: ${message}\n`);
}

function send(message: ProcessMessage): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function parseArgs(argv: readonly string[]): { ports: number[]; capture: boolean } {
  let ports: number[] = [];
  let capture = false;
  for (const a of argv) {
    const p = /^--ports=(\d{1,5}(?:,\d{1,5})*)$/.exec(a)?.[1];
    if (p !== undefined) ports = p.split(',').map(Number);
    else if (a === '--capture') capture = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (ports.length === 0 || ports.some((n) => n < 1 || n > 65535)) throw new Error('--ports=PORT[,PORT…] is required');
  return { ports, capture };
}

async function main(): Promise<void> {
  let args: { ports: number[]; capture: boolean };
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    log((err as Error).message);
    process.exit(2);
  }
  process.umask(0o077);
  process.chdir('/');
  process.stdout.on('error', () => {
    /* the daemon is gone: stdin's end follows */
  });

  let capture: SynCapture | null = null;
  let state: CaptureState = 'off';
  // capture requests are handled one at a time, in order
  let captureQueue: Promise<void> = Promise.resolve();
  const setCapture = (on: boolean): Promise<void> => {
    captureQueue = captureQueue.then(async () => {
      if (!on) {
        capture?.close();
        capture = null;
        state = 'off';
        return;
      }
      if (capture) return;
      try {
        capture = await startSynCapture({
          ports: args.ports,
          onSyn: (syn) => send({ kind: 'syn', syn }),
          onExit: (reason) => {
            capture = null;
            state = `capture ended: ${reason}`;
            log(state);
            send({ kind: 'capture', capture: state });
          },
        });
        state = 'on';
      } catch (err) {
        state = (err as Error).message;
        log(`cannot capture SYNs: ${state}`);
      }
    });
    return captureQueue;
  };

  const caches = new Map<string, (ip: string) => Promise<RouteFact>>();
  const boundedTrace = limitTraces((ip, maxHops, timeoutMs) => traceRoute(ip, { maxHops, timeoutMs }), MAX_TRACES);
  const route = (r: Extract<Request, { op: 'route' }>): Promise<RouteFact> => {
    const key = `${r.maxHops}/${r.timeoutMs}`;
    let cached = caches.get(key);
    if (!cached) {
      cached = createRouteCache((ip) => boundedTrace(ip, r.maxHops, r.timeoutMs), ROUTE_CACHE_TTL_MS);
      caches.set(key, cached);
    }
    return cached(r.ip);
  };

  const handleLine = (line: string): void => {
    if (line.trim() === '') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      send({ kind: 'result', id: null, error: 'bad request: not JSON' });
      return;
    }
    const checked = validateRequest(parsed);
    if (!checked.ok) {
      send({ kind: 'result', id: checked.id, error: checked.reason });
      return;
    }
    const req = checked.request;
    if (req.op === 'capture') {
      void setCapture(req.on).then(() => send({ kind: 'capture', capture: state }));
      return;
    }
    route(req).then(
      (fact) => send({ kind: 'result', id: req.id, route: fact }),
      (err: unknown) => send({ kind: 'result', id: req.id, error: err instanceof Error ? err.message : String(err) }),
    );
  };

  if (args.capture) await setCapture(true);
  readLines(
    process.stdin,
    {
      onLine: handleLine,
      onFatal(err) {
        log(`fatal: ${err.message}`);
        process.exit(1);
      },
      onEnd() {
        capture?.close();
        process.exit(0);
      },
    },
    MAX_LINE_BYTES,
  );
  send({
    kind: 'ready',
    version: NETFACTS_PROTOCOL_VERSION,
    pid: process.pid,
    uid: process.getuid?.() ?? -1,
    netRaw: hasCapability(CAP_NET_RAW),
    capture: state,
  });
}

void main();
