/**
 * `asmtpd --rbl [-f FILE]` — what the configured DNSBLs (RBL, RBLThreshold) say about addresses,
 * asked through the daemon's resolver, as the daemon asks at connect (facts/dnsbl.ts).
 *
 * Input: one IP address a line (blank lines and lines starting with # skipped).
 * Output, per address, in input order (zones in configuration order):
 *   IP: ZONE score N (127.0.0.2[ 127.0.0.4…]) "REASON"      each list that lists IP
 *   IP: ZONE lookup failed: CODE                             (ETIMEOUT, ESERVFAIL…)
 *   IP: ZONE refused the query: 127.255.255.N (REASON; HINT)   never a listing (facts/dnsbl.ts refusalOf)
 *   IP: ZONE answer ignored (outside 127.0.0.0/8): A.B.C.D
 *   IP: total N >= threshold T: reject 550 5.7.1 listed by ZONE[, ZONE…]: REASON[; REASON…]
 *   IP: total N < threshold T: accept                        (also when nothing lists IP)
 *   IP: total 0, not listed: accept                          (RBLThreshold 0, nothing lists IP)
 *   WORD: error: not an IP address
 * REASON is a JSON string (DNS data; quotes and backslashes escaped). Exit 0 at the end of the
 * input, 2 when no RBL is configured (or the configuration is broken, in main.ts).
 */
import { createInterface } from 'node:readline';
import { isIP } from 'node:net';
import type { Config } from '../config/types.js';
import { createDnsResolver } from '../dns/resolver.js';
import { queryRbls, type RblProblem, type RblResult } from '../facts/dnsbl.js';
import { rblMailError, roundScore } from '../facts/rbl-verdict.js';
import { dnsOptionsOf } from '../daemon/script-helper-env.js';

function problemText(p: RblProblem): string {
  switch (p.kind) {
    case 'lookup':
      return `${p.zone} lookup failed: ${p.detail}`;
    case 'refused':
      return `${p.zone} refused the query: ${p.detail} (${p.reason}; ${p.hint})`;
    case 'ignored':
      return `${p.zone} answer ignored (outside 127.0.0.0/8): ${p.detail}`;
  }
}

/** The lines printed for one address. */
export function formatRblResult(ip: string, r: RblResult, threshold: number): string[] {
  const lines = r.listed.map((l) => `${l.zone} score ${l.score} (${l.codes.join(' ')}) ${JSON.stringify(l.reason)}`);
  lines.push(...r.problems.map(problemText));
  const total = roundScore(r.score);
  const error = rblMailError(r, threshold);
  if (error !== null) lines.push(`total ${total} >= threshold ${threshold}: reject ${error}`);
  else if (total < threshold) lines.push(`total ${total} < threshold ${threshold}: accept`);
  else lines.push(`total ${total}, not listed: accept`);
  return lines.map((l) => `${ip}: ${l}`);
}

export async function runRbl(
  config: Config,
  input: NodeJS.ReadableStream,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  if (config.rbls.length === 0) {
    err.write(`asmtpd: --rbl: no RBL is configured in ${config.file}\n`);
    return 2;
  }
  const resolver = createDnsResolver(dnsOptionsOf(config));
  for await (const raw of createInterface({ input, crlfDelay: Infinity })) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (isIP(line) === 0) {
      out.write(`${line.replace(/[\x00-\x1f\x7f]/g, ' ')}: error: not an IP address\n`);
      continue;
    }
    const r = await queryRbls(line, config.rbls, resolver);
    out.write(formatRblResult(line, r, config.rblThreshold).join('\n') + '\n');
  }
  return 0;
}
