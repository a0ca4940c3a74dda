/**
 * synfp.ts — `asmtpd --synfp [-f FILE] [PORT [IP [IFACE…]]]` (spec asmtpd.md §2): capture the TCP
 * SYNs to PORT (default 25) as the daemon does (facts/synfp/capture.ts) and print, for each, what a
 * session would get: the source, CLIENT_SYNFP, the OS guess from SynFPDB (the configuration's files, else
 * the shipped pf.os.modern and pf.os) and the distance in hops. Runs until SIGINT/SIGTERM. Needs CAP_NET_RAW.
 *
 *   runSynfp(cmd, config, out, err, deps?) -> exit code
 *   formatSynLine(syn, fact) -> the output line
 *
 * Output (stdout), one line per SYN, stable:
 *   SOURCE FINGERPRINT OS distance N
 *   SOURCE       ADDRESS:PORT, IPv6 as [ADDRESS]:PORT
 *   FINGERPRINT  CLIENT_SYNFP (window:ttl:df:size:options); no spaces
 *   OS           CLIENT_SYNOS (may contain spaces), `unknown` when SynFPDB has no match
 *   N            CLIENT_NETHOPS as the SYN gives it: the matched line's distance, else the
 *                distance from the nearest usual initial TTL (32, 64, 128, 255)
 * so a reader splits off the first two fields and the last two; the rest is the OS.
 * e.g. `192.0.2.7:51234 64240:56:1:60:M1460,S,T,N,W7 Linux 2.6 (generic) distance 8`
 * Status messages go to stderr. IP keeps SYNs to that destination address only (`any` or `*`: all);
 * IFACE… captures only on those interfaces (AF_PACKET sockets bound to each).
 * Exit: 0 stopped by a signal; 1 the capture failed or ended; 2 bad usage, no CAP_NET_RAW.
 */
import type { Config } from '../config/types.js';
import type { SynFact } from '../facts/client-facts.js';
import { CAP_NET_RAW, hasCapability } from '../facts/netfacts/capability.js';
import { synFact, synFpDbFiles } from '../facts/netfacts/client.js';
import { CaptureError, startSynCapture, type CaptureOptions, type SynCapture } from '../facts/synfp/capture.js';
import { concatPfos, readPfosFile, type PfosDb } from '../facts/synfp/pfos.js';
import type { SynInfo } from '../facts/synfp/syn-packet.js';

interface Writable {
  write(s: string): unknown;
}

export interface SynfpCommand {
  port: number;
  ip: string | null;
  interfaces: string[];
}

export interface SynfpDeps {
  netRaw?: boolean;
  capture?: (o: CaptureOptions) => Promise<SynCapture>;
  /** resolves when the run should stop (default: SIGINT or SIGTERM) */
  stop?: Promise<unknown>;
}

export function formatSynLine(syn: Pick<SynInfo, 'family' | 'srcIp' | 'srcPort'>, fact: SynFact): string {
  const source = syn.family === 6 ? `[${syn.srcIp}]:${syn.srcPort}` : `${syn.srcIp}:${syn.srcPort}`;
  return `${source} ${fact.fp} ${fact.os ?? 'unknown'} distance ${fact.hops}`;
}

function loadDb(config: Config, err: Writable): PfosDb | null {
  const dbs: PfosDb[] = [];
  for (const file of synFpDbFiles(config)) {
    try {
      dbs.push(readPfosFile(file));
    } catch (e) {
      err.write(`asmtpd: cannot read SynFPDB ${file}: ${(e as Error).message}; no OS guesses from it\n`);
    }
  }
  if (dbs.length === 0) return null;
  const db = concatPfos(dbs);
  for (const e of db.errors.slice(0, 10)) err.write(`asmtpd: ${e.file}:${e.line}: ${e.message} (line ignored)\n`);
  if (db.errors.length > 10) err.write(`asmtpd: SynFPDB: ${db.errors.length - 10} more bad lines ignored\n`);
  return db;
}

function signalled(): Promise<string> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

export async function runSynfp(
  cmd: SynfpCommand,
  config: Config,
  out: Writable,
  err: Writable,
  deps: SynfpDeps = {},
): Promise<number> {
  if (!(deps.netRaw ?? hasCapability(CAP_NET_RAW))) {
    err.write('asmtpd: --synfp needs CAP_NET_RAW to capture packets: run it as root\n');
    return 2;
  }
  const stop = deps.stop ?? signalled();
  const db = loadDb(config, err);
  let ended: (reason: string) => void = () => undefined;
  const endedByItself = new Promise<string>((resolve) => {
    ended = resolve;
  });
  let capture: SynCapture;
  try {
    capture = await (deps.capture ?? startSynCapture)({
      ports: [cmd.port],
      ...(cmd.ip !== null ? { addresses: [cmd.ip] } : {}),
      ...(cmd.interfaces.length > 0 ? { interfaces: cmd.interfaces } : {}),
      onSyn: (syn) => out.write(formatSynLine(syn, synFact(syn, db)) + '\n'),
      onExit: (reason) => ended(reason),
    });
  } catch (e) {
    err.write(`asmtpd: --synfp: ${(e as Error).message}\n`);
    return e instanceof CaptureError && e.code !== 'helper' ? 2 : 1;
  }
  const where = `${cmd.ip ?? 'any address'}, ${cmd.interfaces.length > 0 ? `interfaces ${cmd.interfaces.join(' ')}` : 'every interface'}`;
  err.write(`asmtpd: capturing TCP SYNs to port ${cmd.port} (${where}); SIGINT (Ctrl-C) stops\n`);
  const result = await Promise.race([stop.then(() => null), endedByItself]);
  capture.close();
  if (result !== null) {
    err.write(`asmtpd: --synfp: the capture ended: ${result}\n`);
    return 1;
  }
  return 0;
}
