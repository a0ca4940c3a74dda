/*
 * cli.ts — spf-check, the command-line checker (packages/spf/bin/spf-check).
 *
 * Usage: spf-check [--dns-server IP:PORT] [--dns-protocol http|https] [--timeout MS]
 *                  [--receiver NAME] [--local MECHANISMS] [--default-explanation TEXT]
 *                  [--concurrency N] [IP SENDER [HELO]]
 *   With IP and SENDER: prints three lines — the result word, the explanation (empty unless
 *   fail), and the Received-SPF field. An empty SENDER (or <>) checks postmaster@HELO.
 *   Without them: reads lines IP<TAB>SENDER<TAB>HELO from stdin (SENDER "<>" = empty; sender
 *   and HELO may contain spaces) and prints one line per input, in input order:
 *   RESULT<TAB>EXPLANATION. Up to --concurrency checks (default 32) run at once.
 * DNS: a tangerine (DNS over HTTPS) resolver; --dns-server points it at one server (may be
 *   given more than once), --dns-protocol picks http or https (default https), --timeout is
 *   the per-query timeout in ms (default 5000; one try). Without --dns-server tangerine's
 *   default servers are used.
 * Exit: 0 after printing results, 2 on bad usage, 1 on a runtime failure.
 * Security: reads stdin and arguments only as data; sends only the DNS queries of the checks.
 */
import { createInterface } from 'node:readline';
import * as tangerineModule from 'tangerine';
import { checkMailFrom, type CheckOptions, type SpfResult } from './check-host.js';
import { receivedSpf } from './received-spf.js';
import type { SpfResolver } from './resolver.js';
import { createDohRequest } from './doh-request.js';

interface CliOptions {
  servers: string[];
  protocol: 'http' | 'https';
  timeoutMs: number;
  receiver?: string;
  local?: string;
  defaultExplanation?: string;
  concurrency: number;
  positional: string[];
}

const USAGE =
  'usage: spf-check [--dns-server IP:PORT] [--dns-protocol http|https] [--timeout MS] [--receiver NAME]\n' +
  '                 [--local MECHANISMS] [--default-explanation TEXT] [--concurrency N] [IP SENDER [HELO]]\n';

class UsageError extends Error {}

export function parseArgs(argv: readonly string[]): CliOptions {
  const o: CliOptions = { servers: [], protocol: 'https', timeoutMs: 5000, concurrency: 32, positional: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const flag = eq > 0 ? a.slice(0, eq) : a;
    const takeValue = (): string => {
      if (eq > 0) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--dns-server':
        o.servers.push(takeValue());
        break;
      case '--dns-protocol': {
        const v = takeValue();
        if (v !== 'http' && v !== 'https') throw new UsageError('--dns-protocol is http or https');
        o.protocol = v;
        break;
      }
      case '--timeout': {
        const v = Number(takeValue());
        if (!Number.isInteger(v) || v <= 0) throw new UsageError('--timeout takes a positive number of ms');
        o.timeoutMs = v;
        break;
      }
      case '--concurrency': {
        const v = Number(takeValue());
        if (!Number.isInteger(v) || v <= 0) throw new UsageError('--concurrency takes a positive integer');
        o.concurrency = v;
        break;
      }
      case '--receiver':
        o.receiver = takeValue();
        break;
      case '--local':
        o.local = takeValue();
        break;
      case '--default-explanation':
        o.defaultExplanation = takeValue();
        break;
      case '-h':
      case '--help':
        throw new UsageError('');
      case '--':
        o.positional.push(...argv.slice(i + 1));
        i = argv.length;
        break;
      default:
        if (a.startsWith('--')) throw new UsageError(`unknown option ${a}`);
        o.positional.push(a);
    }
  }
  if (o.positional.length === 1 || o.positional.length > 3)
    throw new UsageError('give IP and SENDER (and HELO), or nothing to read stdin');
  return o;
}

// tangerine is CommonJS (module.exports = class); its typings declare a default export
type ResolverClass = new (options: Record<string, unknown>, request?: unknown) => SpfResolver;
const Tangerine = ((tangerineModule as unknown as { default?: unknown }).default ?? tangerineModule) as ResolverClass;

export function makeResolver(o: Pick<CliOptions, 'servers' | 'protocol' | 'timeoutMs'>): SpfResolver {
  return new Tangerine(
    {
      ...(o.servers.length > 0 ? { servers: o.servers } : {}),
      protocol: o.protocol,
      timeout: o.timeoutMs,
      tries: 1,
      cache: false,
    },
    createDohRequest(),
  );
}

function checkOptions(o: CliOptions, resolver: SpfResolver): CheckOptions {
  return {
    resolver,
    ...(o.receiver !== undefined ? { receiver: o.receiver } : {}),
    ...(o.local !== undefined ? { local: o.local } : {}),
    ...(o.defaultExplanation !== undefined ? { defaultExplanation: o.defaultExplanation } : {}),
  };
}

function oneLine(s: string): string {
  return s.replace(/[\t\r\n]/g, ' ');
}

async function single(o: CliOptions, resolver: SpfResolver, out: NodeJS.WritableStream): Promise<void> {
  const [ip, senderArg, helo = ''] = o.positional as [string, string, string?];
  const sender = senderArg === '<>' ? '' : senderArg;
  const r = await checkMailFrom(ip, sender, helo, checkOptions(o, resolver));
  out.write(`${r.result}\n${oneLine(r.explanation ?? '')}\n`);
  out.write(
    `${receivedSpf(r, { ip, envelopeFrom: sender, helo, ...(o.receiver !== undefined ? { receiver: o.receiver } : {}) })}\n`,
  );
}

async function batch(
  o: CliOptions,
  resolver: SpfResolver,
  input: NodeJS.ReadableStream,
  out: NodeJS.WritableStream,
): Promise<void> {
  const opts = checkOptions(o, resolver);
  const done = new Map<number, string>();
  let next = 0; // index of the next line to print
  let count = 0;
  let running = 0;
  let wake: (() => void) | null = null;
  const settle = (idx: number, text: string): void => {
    done.set(idx, text);
    for (let t = done.get(next); t !== undefined; t = done.get(next)) {
      out.write(t);
      done.delete(next++);
    }
    running--;
    const w = wake;
    wake = null;
    w?.();
  };
  const rl = createInterface({ input, crlfDelay: Infinity });
  for await (const raw of rl) {
    const line = raw.replace(/\r$/, '');
    if (line === '') continue;
    const [ip = '', senderRaw = '', helo = ''] = line.split('\t');
    const sender = senderRaw === '<>' ? '' : senderRaw;
    const idx = count++;
    running++;
    checkMailFrom(ip, sender, helo, opts).then(
      (r: SpfResult) => settle(idx, `${r.result}\t${oneLine(r.explanation ?? '')}\n`),
      (err: unknown) => settle(idx, `permerror\t${oneLine(err instanceof Error ? err.message : String(err))}\n`),
    );
    while (running >= o.concurrency)
      await new Promise<void>((res) => {
        wake = res;
      });
  }
  while (running > 0)
    await new Promise<void>((res) => {
      wake = res;
    });
}

/** Entry point; returns the exit code. */
export async function main(
  argv: readonly string[],
  io = {
    stdin: process.stdin as NodeJS.ReadableStream,
    stdout: process.stdout as NodeJS.WritableStream,
    stderr: process.stderr as NodeJS.WritableStream,
  },
): Promise<number> {
  let o: CliOptions;
  try {
    o = parseArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`${err.message ? `spf-check: ${err.message}\n` : ''}${USAGE}`);
      return 2;
    }
    throw err;
  }
  try {
    const resolver = makeResolver(o);
    if (o.positional.length >= 2) await single(o, resolver, io.stdout);
    else await batch(o, resolver, io.stdin, io.stdout);
    return 0;
  } catch (err) {
    io.stderr.write(`spf-check: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
