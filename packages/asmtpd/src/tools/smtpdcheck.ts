/**
 * smtpdcheck.ts — the `smtpdcheck [--stop HOST] [--timeout S] [-v] [PRIO:]SERVER…` utility
 * (docs/man/smtpdcheck.1.md): on a secondary MX, does a better-priority server answer SMTP?
 *
 *   main(argv, io)                            the command
 *   runSmtpdcheck(argv, io, lookup?)          the same with the name lookup given (tests)
 *   parseServer(text) -> Server | error       `[PRIO:]HOST[:PORT]`, HOST a name, an IPv4 address or [IPv6]
 *   greets(address, port, timeoutMs) -> true | reason   one connection: is the first reply line 220?
 *
 * Servers are those `dns -t MX` prints (`10:mx1.example.org`); when every one has a priority they
 * are taken best first (a stable sort), otherwise in the order given. With --stop, the list ends
 * before the first server that is that host (by name, or by an address of it), and servers of
 * that server's priority are left out too (they are as good as we are). Each remaining server is
 * tried in turn, each of its addresses: a TCP connection whose first reply line starts with 220
 * (RFC 5321 §4.2) means the server takes mail — its name is printed and the exit status is 1.
 * None does: 0. A refused or silent connection, a 4xx/5xx greeting, or a name without addresses
 * counts as not answering. Each server has --timeout seconds (default 10; 0: none) for its lookup,
 * its connections and the greeting.
 * Names: inside an rcpt script (ASMTPD_DNS set) with the daemon's DNS settings, as the `dns`
 * helper; otherwise with the system's resolver (getaddrinfo: /etc/hosts, then DNS).
 * Exit 2: bad usage, or --stop names a host that cannot be resolved.
 * A plain node:net exchange: reading one greeting line is the whole protocol here (nodemailer is
 * a sending client: it would need a whole transaction to say what this greeting already says).
 */
import { promises as dnsPromises } from 'node:dns';
import { isIP, isIPv4, connect } from 'node:net';
import { writeOut, type ToolIo } from './tool-io.js';

export const SMTPDCHECK_USAGE = `usage: smtpdcheck [--stop HOST] [--timeout SECONDS] [-v] [PRIO:]SERVER[:PORT]...
  Exit 1 and print the server's name if one of the SERVERs (better than HOST) answers SMTP with
  a 220 greeting; exit 0 if none does. SERVERs as \`dns -t MX\` prints them (10:mx1.example.org).
  --stop HOST      stop before the server that is HOST (a name or an IP address: usually "$MY_IP"),
                   and ignore the servers of its priority
  --timeout S      seconds for each server: lookup, connection and greeting (default 10; 0: no limit)
  -v               say on stderr why each server does not count
Exit: 1 a server answered, 0 none did, 2 error.`;

const DEFAULT_TIMEOUT_S = 10;
const SMTP_PORT = 25;
const MAX_GREETING_LINE = 512;

export interface Server {
  text: string;
  /** the text without its priority: what is printed */
  name: string;
  prio: number | null;
  host: string;
  port: number;
}

/** addresses of a name (none: an empty list); throws on a lookup that failed */
export type Lookup = (name: string) => Promise<string[]>;

export function parseServer(text: string): Server | { error: string } {
  const bad = (why: string) => ({ error: `bad server ${JSON.stringify(text)}: ${why}` });
  if (/[\s\x00-\x1f\x7f]/.test(text) || text.length > 300) return bad('blank or control character, or too long');
  const p = isIP(text) === 6 ? null : /^(\d{1,5}):(.+)$/.exec(text);
  const prio = p ? Number(p[1]) : null;
  const rest = p ? p[2]! : text;
  let host = rest,
    port = SMTP_PORT;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest);
  if (v6) {
    if (!isIP(v6[1]!) || isIPv4(v6[1]!)) return bad('expected an IPv6 address between [ and ]');
    host = v6[1]!;
    if (v6[2] !== undefined) port = Number(v6[2]);
  } else if (isIP(rest) === 6) {
    host = rest;
  } else {
    const hp = /^([^:]+):(\d+)$/.exec(rest);
    if (hp) [host, port] = [hp[1]!, Number(hp[2])];
    if (host.includes(':')) return bad('expected [PRIO:]HOST[:PORT]');
    if (!isIP(host) && !/^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9])?\.?$/.test(host)) return bad('not a host name');
  }
  if (port < 1 || port > 65535) return bad('port out of range');
  return { text, name: rest, prio, host: host.toLowerCase().replace(/\.$/, ''), port };
}

/** One connection: true when the first reply line is a 220 greeting, else why not. */
export function greets(address: string, port: number, timeoutMs: number | null): Promise<true | string> {
  return new Promise((resolve) => {
    let line = '';
    let done = false;
    const socket = connect({ host: address, port });
    const finish = (r: true | string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (r === true) {
        socket.write('QUIT\r\n');
        socket.destroySoon(); // no need to wait for the 221
      } else socket.destroy();
      resolve(r);
    };
    const timer = timeoutMs === null ? undefined : setTimeout(() => finish('timed out'), Math.max(timeoutMs, 1));
    socket.on('error', (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
    socket.on('end', () => finish('closed before a greeting'));
    socket.on('data', (chunk: Buffer) => {
      line += chunk.toString('latin1');
      const nl = line.indexOf('\n');
      if (nl < 0 && line.length <= MAX_GREETING_LINE) return;
      const first = (nl < 0 ? line : line.slice(0, nl)).replace(/\r$/, '');
      if (/^220([ -]|$)/.test(first)) finish(true);
      else finish(`greeting ${JSON.stringify(first.slice(0, 80))}`);
    });
  });
}

const systemLookup: Lookup = async (name) => {
  try {
    return (await dnsPromises.lookup(name, { all: true, verbatim: true })).map((a) => a.address);
  } catch (err) {
    if (['ENOTFOUND', 'ENODATA'].includes((err as NodeJS.ErrnoException).code ?? '')) return [];
    throw err;
  }
};

/** The daemon's resolver settings (ASMTPD_DNS), as the `dns` helper uses them: A, then AAAA. */
async function daemonLookup(asmtpdDns: string): Promise<Lookup> {
  const { parseHelperDns } = await import('../daemon/script-helper-env.js');
  const { createDnsResolver, isTemporaryDnsError } = await import('../dns/resolver.js');
  const d = parseHelperDns(asmtpdDns);
  const resolver = createDnsResolver({
    kind: d.kind,
    servers: d.servers,
    protocol: d.protocol,
    timeoutMs: d.timeoutMs,
  });
  const each = async (q: Promise<string[]>): Promise<string[]> => {
    try {
      return await q;
    } catch (err) {
      if (isTemporaryDnsError(err)) throw err;
      return [];
    }
  };
  return async (name) => [...(await each(resolver.resolve4(name))), ...(await each(resolver.resolve6(name)))];
}

function withTimeout<T>(p: Promise<T>, ms: number | null): Promise<T> {
  if (ms === null) return p;
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('lookup timed out')), Math.max(ms, 1));
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

class Usage extends Error {}

interface Args {
  stop: string | null;
  timeoutMs: number | null;
  verbose: boolean;
  servers: Server[];
}

function parseArgs(argv: readonly string[]): Args | 'help' {
  const a: Args = { stop: null, timeoutMs: DEFAULT_TIMEOUT_S * 1000, verbose: false, servers: [] };
  let options = true;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const m = options ? /^(--stop|--timeout)(?:=(.*))?$/s.exec(arg) : null;
    if (m) {
      const v = m[2] ?? argv[++i];
      if (v === undefined) throw new Usage(`${m[1]} needs a value`);
      if (m[1] === '--stop') {
        const host = v.toLowerCase().replace(/\.$/, '');
        if (host === '' || 'error' in parseServer(host)) throw new Usage(`bad --stop ${JSON.stringify(v)}`);
        a.stop = host;
      } else {
        if (!/^\d{1,6}(\.\d{1,3})?$/.test(v)) throw new Usage(`bad --timeout ${JSON.stringify(v)}: seconds`);
        a.timeoutMs = Number(v) === 0 ? null : Math.round(Number(v) * 1000);
      }
    } else if (options && (arg === '-h' || arg === '--help')) return 'help';
    else if (options && (arg === '-v' || arg === '--verbose')) a.verbose = true;
    else if (options && arg === '--') options = false;
    else if (options && arg.startsWith('-')) throw new Usage(`unknown option ${JSON.stringify(arg)}`);
    else {
      const s = parseServer(arg);
      if ('error' in s) throw new Usage(s.error);
      a.servers.push(s);
    }
  }
  if (a.servers.length === 0) throw new Usage('no SERVER given');
  if (a.servers.every((s) => s.prio !== null)) a.servers.sort((x, y) => x.prio! - y.prio!);
  return a;
}

export async function runSmtpdcheck(argv: string[], io: ToolIo, lookupOverride?: Lookup): Promise<number> {
  let a: Args | 'help';
  try {
    a = parseArgs(argv);
  } catch (err) {
    io.stderr.write(`smtpdcheck: ${(err as Error).message}\n${SMTPDCHECK_USAGE}\n`);
    return 2;
  }
  if (a === 'help') {
    await writeOut(io.stdout, SMTPDCHECK_USAGE + '\n');
    return 0;
  }
  const verbose = a.verbose;
  const say = (text: string): void => {
    if (verbose) io.stderr.write(`smtpdcheck: ${text}\n`);
  };
  try {
    const asmtpdDns = io.env.ASMTPD_DNS;
    const lookup = lookupOverride ?? (asmtpdDns ? await daemonLookup(asmtpdDns) : systemLookup);
    const addressesOf = async (host: string, ms: number | null): Promise<string[]> =>
      isIP(host) ? [host] : withTimeout(lookup(host), ms);

    let stopAddresses: string[] = [];
    if (a.stop !== null) {
      try {
        stopAddresses = await addressesOf(a.stop, a.timeoutMs);
      } catch (err) {
        throw new Error(`cannot look up --stop ${a.stop}: ${(err as Error).message}`);
      }
      if (stopAddresses.length === 0) throw new Error(`--stop ${a.stop} has no address`);
    }
    // the servers before the stop host, with their addresses and the time left for each
    const before: { server: Server; addresses: string[]; leftMs: number | null; why: string | null }[] = [];
    let stopPrio: number | null = null;
    for (const server of a.servers) {
      const started = Date.now();
      let addresses: string[] = [];
      let why: string | null = null;
      try {
        addresses = await addressesOf(server.host, a.timeoutMs);
        if (addresses.length === 0) why = 'no address';
      } catch (err) {
        why = `lookup failed: ${(err as Error).message}`;
      }
      if (a.stop !== null && (server.host === a.stop || addresses.some((x) => stopAddresses.includes(x)))) {
        stopPrio = server.prio;
        say(`${server.text}: is ${a.stop}: stop`);
        break;
      }
      before.push({
        server,
        addresses,
        leftMs: a.timeoutMs === null ? null : a.timeoutMs - (Date.now() - started),
        why,
      });
    }
    for (const { server, addresses, leftMs, why } of before) {
      if (stopPrio !== null && server.prio === stopPrio) {
        say(`${server.text}: same priority as ${a.stop}: not checked`);
        continue;
      }
      if (why !== null) {
        say(`${server.text}: ${why}`);
        continue;
      }
      const deadline = leftMs === null ? null : Date.now() + leftMs;
      for (const address of addresses) {
        const left = deadline === null ? null : deadline - Date.now();
        const r = left !== null && left <= 0 ? 'timed out' : await greets(address, server.port, left);
        if (r === true) {
          await writeOut(io.stdout, `${server.name}\n`);
          return 1;
        }
        say(`${server.text}: ${address} port ${server.port}: ${r}`);
      }
    }
    return 0;
  } catch (err) {
    io.stderr.write(`smtpdcheck: ${(err as Error).message}\n`);
    return 2;
  }
}

export function main(argv: string[], io: ToolIo): Promise<number> {
  return runSmtpdcheck(argv, io);
}
