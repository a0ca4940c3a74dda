/**
 * synos.ts — the `synos [--db FILE]… [--mtu N] [-v] FINGERPRINT` utility (spec avenger.md §5):
 * print the OS guess for a CLIENT_SYNFP string from pf.os-format databases (src/facts/synfp/pfos.ts):
 * by default the shipped pf.os.modern then pf.os, as the daemon's CLIENT_SYNOS; `--db` (repeatable)
 * names others instead, matched as one file made of theirs in the order given.
 *
 *   runSynos(argv, out, err) -> exit code   0 matched, 1 no match (prints `unknown`), 2 bad usage,
 *     a malformed fingerprint or an unreadable database
 *   SYNOS_USAGE
 *
 * Output: one line, describeMatch() (the pf.os description, ` (generic)` for `@` lines).
 * With -v, two more lines: `distance: N` (or `distance: unknown` for `*` lines) and
 * `signature: FILE:LINE: TEXT`. Bad database lines are reported on stderr as `FILE:LINE: message`
 * and skipped.
 */
import { parseFingerprint } from '../facts/synfp/fingerprint.js';
import {
  DEFAULT_SYNFP_DBS,
  DEFAULT_MTU,
  describeMatch,
  matchFingerprint,
  readPfosFiles,
  type PfosDb,
} from '../facts/synfp/pfos.js';

export const SYNOS_USAGE = `usage: synos [--db FILE]... [--mtu N] [-v] FINGERPRINT
  Guess the operating system from a SYN fingerprint in CLIENT_SYNFP form,
  window:ttl:df:size:options (e.g. 65535:64:1:60:M1460,N,W0,N,N,T).
  --db FILE  fingerprint database in pf.os format; repeat for several, matched as one file
             made of theirs in that order (default: ${DEFAULT_SYNFP_DBS.join(' then ')})
  --mtu N    MTU also tried for windows that are multiples of the MSS or MTU (default ${DEFAULT_MTU}; 0: MSS only)
  -v         also print the distance in hops and the matching database line
Exit: 0 matched, 1 unknown, 2 bad usage.`;

interface Writable {
  write(s: string): unknown;
}

type Parsed =
  | { help: true }
  | { dbs: readonly string[]; mtu: number; verbose: boolean; fingerprint: string }
  | { error: string };

function parseArgv(argv: readonly string[]): Parsed {
  const dbs: string[] = [];
  let mtu = DEFAULT_MTU,
    verbose = false;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      rest.push(...argv.slice(i + 1));
      break;
    }
    if (a === '-h' || a === '--help') return { help: true };
    if (a === '-v' || a === '--verbose') {
      verbose = true;
      continue;
    }
    const m = /^--(db|mtu)(?:=(.*))?$/.exec(a);
    if (m) {
      const value = m[2] ?? argv[++i];
      if (value === undefined) return { error: `--${m[1]} needs a value` };
      if (m[1] === 'db') dbs.push(value);
      else if (/^\d{1,5}$/.test(value) && Number(value) <= 65535) mtu = Number(value);
      else return { error: `bad --mtu "${value}"` };
      continue;
    }
    if (a.startsWith('-') && a.length > 1) return { error: `unknown option ${a}` };
    rest.push(a);
  }
  if (rest.length !== 1) return { error: rest.length === 0 ? 'missing FINGERPRINT' : 'too many arguments' };
  return { dbs: dbs.length > 0 ? dbs : DEFAULT_SYNFP_DBS, mtu, verbose, fingerprint: rest[0]! };
}

export function runSynos(argv: readonly string[], out: Writable, err: Writable): number {
  const args = parseArgv(argv);
  if ('help' in args) {
    out.write(SYNOS_USAGE + '\n');
    return 0;
  }
  if ('error' in args) {
    err.write(`synos: ${args.error}\n${SYNOS_USAGE}\n`);
    return 2;
  }
  const fp = parseFingerprint(args.fingerprint);
  if (fp === null) {
    err.write(`synos: not a SYN fingerprint (window:ttl:df:size:options): ${args.fingerprint}\n`);
    return 2;
  }
  let db: PfosDb;
  try {
    db = readPfosFiles(args.dbs);
  } catch (e) {
    err.write(`synos: ${e instanceof Error ? e.message : String(e)}\n`);
    return 2;
  }
  for (const e of db.errors) err.write(`${e.file}:${e.line}: ${e.message}\n`);
  const match = matchFingerprint(db, fp, { mtu: args.mtu });
  out.write(describeMatch(match) + '\n');
  if (match && args.verbose) {
    out.write(`distance: ${match.distance ?? 'unknown'}\n`);
    out.write(`signature: ${match.signature.file}:${match.signature.line}: ${match.signature.text}\n`);
  }
  return match ? 0 : 1;
}
