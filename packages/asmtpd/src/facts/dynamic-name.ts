/**
 * dynamic-name.ts — does a client's confirmed host name look like a generic per-address name of
 * an access network (CLIENT_DYNAMIC; issue 19, seeds.md §B; the rule in docs/facts.md)?
 *
 *   isDynamicName(name, ip) -> boolean   pure; name lower or upper case, no trailing dot
 *
 * Dynamic when either holds:
 *   A. the address is written in the name (IPv4 only):
 *      - three or more consecutive octets, in address order or reversed, as decimal groups (zero
 *        padding to three digits allowed) each separated by one `.`, `-` or `_`
 *        (dsl-81-2-3-4, 4-3-2-81.dyn, bzq-218-1-51 for 51.1.218.x, ip68-5-3-2, 010-020-030-040);
 *      - or all four octets as one run: eight hex digits (c0a80001, also reversed), twelve
 *        zero-padded decimal digits (192168000001), or the address as one 32-bit decimal number;
 *   B. a keyword is a word of the host part and the host part holds two or more digit runs
 *      (51-1.cable…, pool-2-3…). The host part is the name without its last two labels (the
 *      domain; a name of two labels or fewer: its first label); a word is a maximal run of
 *      letters (mailhost1 has the word `mailhost`, not `host`); a digit run a maximal run of digits.
 *
 * Not dynamic: two octets alone (a8-12.smtp-out.amazonses.com is 54.240.8.12), numbers without a
 * keyword (mx01, smtp-out-3, outbound-10), a keyword with one number (mail-ip6, host10) or only in
 * the domain (mx1.dyn.com).
 */
import { isIPv4 } from 'node:net';

export const DYNAMIC_KEYWORDS: ReadonlySet<string> = new Set([
  'adsl',
  'bb',
  'broadband',
  'cable',
  'catv',
  'client',
  'clients',
  'cpe',
  'cust',
  'customer',
  'dhcp',
  'dial',
  'dialin',
  'dialup',
  'dip',
  'dsl',
  'dyn',
  'dynamic',
  'dynip',
  'fios',
  'ftth',
  'host',
  'ip',
  'modem',
  'pool',
  'ppp',
  'pppoe',
  'sdsl',
  'user',
  'vdsl',
  'wireless',
  'xdsl',
]);

/** Decimal groups of at most three digits and their separators, one label run at a time. */
function octetRuns(name: string): number[][] {
  const runs: number[][] = [];
  let current: number[] = [];
  // a group is a maximal digit run; consecutive groups are separated by exactly one of . - _
  const re = /\d+/g;
  let lastEnd = -1;
  for (let m = re.exec(name); m !== null; m = re.exec(name)) {
    const digits = m[0];
    const adjacent = lastEnd >= 0 && m.index === lastEnd + 1 && /[.\-_]/.test(name[lastEnd] ?? '');
    if (!adjacent && current.length) {
      runs.push(current);
      current = [];
    }
    lastEnd = m.index + digits.length;
    if (digits.length > 3 || Number(digits) > 255) {
      if (current.length) runs.push(current);
      current = [];
      continue;
    }
    current.push(Number(digits));
  }
  if (current.length) runs.push(current);
  return runs;
}

/** Does `seq` contain `n` or more consecutive entries of `octets` in order? */
function consecutive(seq: readonly number[], octets: readonly number[], n: number): boolean {
  for (let i = 0; i + n <= seq.length; i++)
    for (let j = 0; j + n <= octets.length; j++) {
      let k = 0;
      while (k < n && seq[i + k] === octets[j + k]) k++;
      if (k === n) return true;
    }
  return false;
}

function addressWritten(name: string, ip: string): boolean {
  const octets = ip.split('.').map(Number);
  const reversed = [...octets].reverse();
  for (const run of octetRuns(name)) if (consecutive(run, octets, 3) || consecutive(run, reversed, 3)) return true;
  const hex = (o: number[]): string => o.map((x) => x.toString(16).padStart(2, '0')).join('');
  if (name.includes(hex(octets)) || name.includes(hex(reversed))) return true;
  const padded = octets.map((x) => String(x).padStart(3, '0')).join('');
  const whole = String(octets.reduce((n, x) => n * 256 + x, 0));
  return (name.match(/\d+/g) ?? []).some((d) => d === padded || d === whole);
}

function hostPart(labels: readonly string[]): readonly string[] {
  return labels.length > 2 ? labels.slice(0, -2) : labels.slice(0, 1);
}

function keywordWithNumbers(labels: readonly string[]): boolean {
  const host = hostPart(labels).join('.');
  const words = host.match(/[a-z]+/g) ?? [];
  if (!words.some((w) => DYNAMIC_KEYWORDS.has(w))) return false;
  return (host.match(/\d+/g) ?? []).length >= 2;
}

export function isDynamicName(name: string, ip: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, '');
  const plain = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1] ?? ip;
  if (isIPv4(plain) && addressWritten(n, plain)) return true;
  return keywordWithNumbers(n.split('.'));
}
