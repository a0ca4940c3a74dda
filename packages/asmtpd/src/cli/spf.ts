/**
 * `asmtpd --spf [-f FILE]` — the SPF workbench (spec asmtpd.md §2): checks what the daemon would
 * check, with its resolver (DNSResolver, DNSServer, DNSProtocol, DNSTimeout), SPFLocal,
 * SPFHostsFile and Hostname as the receiver.
 *
 * Input, one check a line (blank lines and lines starting with # are skipped):
 *   IP SENDER [HELO]                     the MAIL FROM check the daemon makes
 *   IP SENDER HELO -- MECHANISMS…        the mechanisms evaluated as the sender's record, as the
 *                                        `spf` script helper does (no SPFLocal, no SPFHostsFile)
 *   SENDER `<>` is the null sender (postmaster@HELO is checked); `<addr>` is taken as addr.
 * Output, one block a line, in input order, each followed by an empty line:
 *   input: IP SENDER [HELO] [-- MECHANISMS…]     (the words read, single-spaced)
 *   result: WORD                                 none neutral pass fail softfail temperror permerror
 *   explanation: TEXT                            empty unless fail
 *   mechanism: TERM                              the deciding term, `default`, ` (SPFLocal)` added
 *                                                when it came from SPFLocal; absent when none
 *   problem: TEXT                                why none/permerror/temperror; absent when none
 *   Received-SPF: …                              the field the daemon would add, unfolded
 * A line that cannot be read gives `input: …` and `error: MESSAGE`, and the next line is read.
 * Exit 0 at the end of the input (2 for a broken configuration, in main.ts).
 */
import { createInterface } from 'node:readline';
import { isIP } from 'node:net';
import {
  checkMailFrom,
  evaluatePolicy,
  isSpfRecord,
  parseRecord,
  receivedSpf,
  type CheckOptions,
  type SpfResult,
} from '@asmtpd/spf';
import type { Config } from '../config/types.js';
import { formatIssue } from '../config/issues.js';
import { createDnsResolver } from '../dns/resolver.js';
import { loadSpfHosts } from '../facts/spf-hosts.js';
import { dnsOptionsOf } from '../daemon/script-helper-env.js';

export interface SpfQuery {
  ip: string;
  /** '' = null sender */
  sender: string;
  helo: string;
  /** the `-- MECHANISMS…` form */
  policy: string | null;
}

const FORMS = 'expected IP SENDER [HELO] or IP SENDER HELO -- MECHANISMS...';

/** One input line (already trimmed, not blank) → a query or an error message. */
export function parseSpfLine(words: readonly string[]): SpfQuery | { error: string } {
  const dash = words.indexOf('--');
  const head = dash < 0 ? words : words.slice(0, dash);
  const policyWords = dash < 0 ? null : words.slice(dash + 1);
  if (head.length < 2 || head.length > 3) return { error: FORMS };
  if (policyWords !== null && (head.length !== 3 || policyWords.length === 0)) return { error: FORMS };
  const [ip = '', senderWord = '', helo = ''] = head;
  if (isIP(ip) === 0) return { error: `${JSON.stringify(ip)} is not an IP address` };
  const sender = senderWord === '<>' ? '' : senderWord.replace(/^<(.*)>$/, '$1');
  let policy: string | null = null;
  if (policyWords !== null) {
    policy = policyWords.join(' ');
    try {
      parseRecord(isSpfRecord(policy) ? policy : `v=spf1 ${policy}`);
    } catch (err) {
      return { error: `invalid mechanisms: ${(err as Error).message}` };
    }
  }
  return { ip, sender, helo, policy };
}

function oneLine(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]/g, ' ');
}

export function formatSpfResult(r: SpfResult, q: SpfQuery, receiver: string): string {
  const lines = [`result: ${r.result}`, `explanation: ${oneLine(r.explanation ?? '')}`.trimEnd()];
  if (r.mechanism !== undefined) lines.push(`mechanism: ${r.mechanism}${r.local === true ? ' (SPFLocal)' : ''}`);
  if (r.problem !== undefined) lines.push(`problem: ${oneLine(r.problem)}`);
  lines.push(oneLine(receivedSpf(r, { ip: q.ip, envelopeFrom: q.sender, helo: q.helo, receiver })));
  return lines.join('\n') + '\n';
}

export async function runSpf(
  config: Config,
  input: NodeJS.ReadableStream,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  const resolver = createDnsResolver(dnsOptionsOf(config));
  const options: CheckOptions = { resolver, receiver: config.hostname };
  if (config.spfLocal !== null) options.local = config.spfLocal;
  if (config.spfHostsFile !== null) {
    options.hostsRecord = loadSpfHosts(config.spfHostsFile, {
      onIssues: (issues) => issues.forEach((i) => err.write(`asmtpd: ${formatIssue(i)}\n`)),
    });
  }
  for await (const raw of createInterface({ input, crlfDelay: Infinity })) {
    const words = raw
      .trim()
      .split(/\s+/)
      .filter((w) => w !== '');
    if (words.length === 0 || words[0]!.startsWith('#')) continue;
    out.write(`input: ${oneLine(words.join(' '))}\n`);
    const q = parseSpfLine(words);
    if ('error' in q) {
      out.write(`error: ${q.error}\n\n`);
      continue;
    }
    const r =
      q.policy === null
        ? await checkMailFrom(q.ip, q.sender, q.helo, options)
        : await evaluatePolicy(q.policy, {
            resolver,
            receiver: config.hostname,
            ip: q.ip,
            sender: q.sender,
            helo: q.helo,
          });
    out.write(formatSpfResult(r, q, config.hostname) + '\n');
  }
  return 0;
}
