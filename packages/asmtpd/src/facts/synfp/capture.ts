/**
 * capture.ts — capture the TCP SYNs sent to our ports (spec asmtpd.md §4 CLIENT_SYNFP; §2 --synfp;
 * docs/facts.md "SYN fingerprint"). Needs CAP_NET_RAW.
 *
 *   startSynCapture({ports, interfaces?, addresses?, onSyn, onExit?}) -> Promise<SynCapture>
 *     resolves once the kernel filters are in place (every SYN after that is seen); rejects with a
 *     CaptureError ('permission' without CAP_NET_RAW, 'interface', 'helper') when it cannot start
 *   SynCapture.close()        stops capturing (idempotent)
 *   CAPTURE_HELPER_PATH       libexec/syn-capture.pl
 *
 * How: the helper (perl, libexec/syn-capture.pl) opens AF_PACKET sockets for IPv4 and IPv6 with a
 * classic BPF filter, so the kernel passes on only incoming TCP SYNs (SYN without ACK) to `ports`,
 * with their whole IP header, and prints each as hex; this module parses them (syn-packet.ts).
 * Not a raw TCP socket (the raw-socket module): that gets every TCP segment the host receives
 * (bulk traffic overflows its queue and SYNs are lost) and, for IPv6, neither the hop limit nor the
 * destination address — the fingerprint needs the former, --synfp's IP filter the latter.
 *
 * addresses filters on the destination address (IPv4-mapped IPv6 addresses compare as IPv4);
 * interfaces limits the capture to those devices (the helper binds a socket to each).
 * The helper runs with an empty environment and dies with its stdin (our end of the pipe).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseSynPacket, type SynInfo } from './syn-packet.js';

export const CAPTURE_HELPER_PATH: string = fileURLToPath(new URL('../../../libexec/syn-capture.pl', import.meta.url));
const PERL_PATH = '/usr/bin:/bin';
const START_TIMEOUT_MS = 10_000;

export type CaptureErrorCode = 'permission' | 'interface' | 'helper';

export class CaptureError extends Error {
  constructor(
    readonly code: CaptureErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'CaptureError';
  }
}

export interface CaptureOptions {
  /** destination ports (1-65535, at most 64) */
  ports: readonly number[];
  /** capture only on these interfaces; empty or absent: every interface */
  interfaces?: readonly string[];
  /** keep only SYNs to these destination addresses; empty or absent: any */
  addresses?: readonly string[];
  onSyn(syn: SynInfo): void;
  /** the capture ended by itself after it started (the helper died): never called after close() */
  onExit?(reason: string): void;
}

export interface SynCapture {
  close(): void;
  readonly pid: number;
}

/** Text form of an address for comparisons: IPv6 as RFC 5952 (lower case, longest zero run
 *  compressed, no zone), IPv4-mapped IPv6 as IPv4; anything else unchanged. */
export function normalizeIp(ip: string): string {
  if (!ip.includes(':')) return ip;
  const bare = ip.replace(/%.*$/, ''); // a zone (fe80::1%eth0): the packet has none
  let text: string;
  try {
    text = new URL(`http://[${bare}]/`).hostname.slice(1, -1);
  } catch {
    return bare.toLowerCase();
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(text);
  if (!mapped) return text;
  const hi = parseInt(mapped[1]!, 16),
    lo = parseInt(mapped[2]!, 16);
  return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
}

export function startSynCapture(o: CaptureOptions): Promise<SynCapture> {
  const ports = [...new Set(o.ports)];
  if (ports.length === 0 || ports.length > 64 || ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) {
    return Promise.reject(new CaptureError('helper', `bad port list ${ports.join(',')}`));
  }
  const wanted = o.addresses && o.addresses.length > 0 ? new Set(o.addresses.map(normalizeIp)) : null;
  let child: ChildProcess;
  try {
    child = spawn('perl', [CAPTURE_HELPER_PATH, ports.join(','), ...(o.interfaces ?? [])], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { PATH: PERL_PATH },
    });
  } catch (err) {
    return Promise.reject(new CaptureError('helper', `cannot start the capture helper: ${(err as Error).message}`));
  }
  let closed = false;
  let ready = false;
  let fatal: string | null = null;
  let stderr = '';
  child.stdin?.on('error', () => undefined);
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    if (stderr.length < 2000) stderr += d;
  });

  const capture: SynCapture = {
    pid: child.pid ?? -1,
    close() {
      if (closed) return;
      closed = true;
      child.stdin?.end();
      // it exits on its stdin's end; make sure
      setTimeout(() => child.kill('SIGKILL'), 1000).unref();
    },
  };

  return new Promise<SynCapture>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new CaptureError('helper', 'the capture helper did not start in time'));
    }, START_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      if (!ready) reject(new CaptureError('helper', `cannot start the capture helper (perl): ${err.message}`));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const reason = fatal ?? (stderr.trim() || `capture helper exited (${signal ?? `code ${code}`})`);
      if (!ready) reject(errorFor(reason));
      else if (!closed) {
        closed = true;
        o.onExit?.(reason);
      }
    });
    let partial = '';
    child.stdout?.setEncoding('latin1');
    child.stdout?.on('data', (chunk: string) => {
      partial += chunk;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        if (line.startsWith('P ')) {
          if (closed) continue;
          const syn = parseSynPacket(Buffer.from(line.slice(2), 'hex'));
          if (syn && ports.includes(syn.dstPort) && (!wanted || wanted.has(normalizeIp(syn.dstIp)))) o.onSyn(syn);
        } else if (line === 'ready') {
          ready = true;
          clearTimeout(timer);
          resolve(capture);
        } else if (line.startsWith('E ')) {
          fatal = line.slice(2);
        }
      }
      // a line is at most ~520 bytes: anything longer is not the helper talking
      if (partial.length > 4096) partial = '';
    });
  });
}

function errorFor(reason: string): CaptureError {
  if (/not permitted|permission denied/i.test(reason)) {
    return new CaptureError('permission', `capturing SYNs needs CAP_NET_RAW (${reason})`);
  }
  if (/interface/.test(reason)) return new CaptureError('interface', reason);
  return new CaptureError('helper', reason);
}
