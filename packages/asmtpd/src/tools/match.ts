/**
 * match.ts — the `match` utility (docs/man/match.1.md; spec avenger.md §5): Mail Avenger's
 * shell-glob matching of strings against patterns (glob.ts).
 *
 *   main(argv, io) -> exit code
 *     match [-iqs] [-n N] [-x CODE] {[-p] PATTERN | -f FILE} STRING...
 *   Prints each STRING that matches (with -n N: the text the Nth `*` of the pattern matched), one a
 *   line; -q prints nothing. Exit 0 when one or more matched, else 67 (or CODE of -x); a FILE that
 *   does not exist matches nothing; 2 on bad usage or an unreadable FILE.
 *   -f FILE: one pattern a line; for each STRING the first matching line counts. Blank lines and
 *   lines starting with `#` are skipped, and blanks around a pattern are not part of it.
 *   Options end at the first operand: a STRING may start with `-`.
 *   Mail Avenger's -g (parenthesised groups), -l, -r and -c are not provided (exit 2, saying so).
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { parseCommandLine } from './argv.js';
import { compileGlob, type CompiledGlob } from './glob.js';
import { writeOut, type ToolIo } from './tool-io.js';

export const NO_MATCH = 67;
/** A pattern file larger than this is a mistake (or an attack on the script's memory). */
export const MAX_PATTERN_FILE_BYTES = 4 * 1024 * 1024;

export const MATCH_USAGE = `usage: match [-iqs] [-n N] [-x CODE] {[-p] PATTERN | -f FILE} STRING...
  Print each STRING that matches the shell glob PATTERN (* ? [...] \\c).
  -i       ignore case            -q  print nothing, only the exit status
  -s       let * ? [...] match /  -n N  print what the Nth * matched
  -x CODE  exit CODE (not 67) when nothing matches
  -p PATTERN  the pattern (when it starts with -)
  -f FILE  patterns from FILE, one a line (# comments); a missing FILE matches nothing
Exit: 0 a STRING matched, 67 (or CODE) none did, 2 bad usage or unreadable FILE.`;

const OPTIONS = {
  i: { type: 'boolean', short: 'i' },
  q: { type: 'boolean', short: 'q' },
  s: { type: 'boolean', short: 's' },
  n: { type: 'string', short: 'n' },
  x: { type: 'string', short: 'x' },
  p: { type: 'string', short: 'p' },
  f: { type: 'string', short: 'f' },
  help: { type: 'boolean', short: 'h' },
  // Mail Avenger's, not provided: recognised to say so
  g: { type: 'boolean', short: 'g' },
  l: { type: 'boolean', short: 'l' },
  r: { type: 'boolean', short: 'r' },
  c: { type: 'string', short: 'c' },
} as const;

const fail = async (io: ToolIo, message: string): Promise<number> => {
  await writeOut(io.stderr, `match: ${message}\n`);
  return 2;
};

export async function main(argv: string[], io: ToolIo): Promise<number> {
  const parsed = parseCommandLine(argv, OPTIONS);
  if ('error' in parsed) return fail(io, `${parsed.error}\n${MATCH_USAGE}`);
  const { values: v, operands } = parsed;
  if (v.help) {
    await writeOut(io.stdout, `${MATCH_USAGE}\n`);
    return 0;
  }
  const missing = (['g', 'l', 'r', 'c'] as const).find((k) => v[k] !== undefined);
  if (missing) return fail(io, `-${missing} (of Mail Avenger's match) is not provided by asmtpd's`);
  let noMatch = NO_MATCH;
  if (v.x !== undefined) {
    if (!/^\d{1,3}$/.test(String(v.x)) || Number(v.x) > 255) return fail(io, `-x wants an exit code 0-255`);
    noMatch = Number(v.x);
  }
  let nth = 0;
  if (v.n !== undefined) {
    if (!/^[1-9]\d{0,3}$/.test(String(v.n))) return fail(io, `-n wants a number from 1`);
    nth = Number(v.n);
  }
  if (v.p !== undefined && v.f !== undefined) return fail(io, '-p and -f do not go together');
  let sources: string[];
  let strings: string[];
  if (v.f !== undefined) {
    const lines = await patternFile(String(v.f));
    if (lines === 'absent') return noMatch;
    if ('error' in lines) return fail(io, lines.error);
    sources = lines.patterns;
    strings = operands;
  } else if (v.p !== undefined) {
    sources = [String(v.p)];
    strings = operands;
  } else {
    if (operands.length === 0) return fail(io, `no PATTERN\n${MATCH_USAGE}`);
    sources = [operands[0]!];
    strings = operands.slice(1);
  }
  const options = { nocase: v.i === true, slash: v.s === true };
  const patterns: CompiledGlob[] = sources.map((p) => compileGlob(p, options));
  let matched = false;
  for (const s of strings) {
    for (const p of patterns) {
      const m = p.regexp.exec(s);
      if (!m) continue;
      matched = true;
      if (!v.q) await writeOut(io.stdout, `${nth === 0 ? s : (m[nth] ?? '')}\n`);
      break;
    }
  }
  return matched ? 0 : noMatch;
}

async function patternFile(path: string): Promise<{ patterns: string[] } | { error: string } | 'absent'> {
  let text: Buffer;
  try {
    // O_NONBLOCK: opening a FIFO would wait for a writer
    const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      // a device or a FIFO could be endless
      const st = await fh.stat();
      if (!st.isFile()) return { error: `${path}: not a regular file` };
      if (st.size > MAX_PATTERN_FILE_BYTES) return { error: `${path}: larger than ${MAX_PATTERN_FILE_BYTES} bytes` };
      text = await fh.readFile();
    } finally {
      await fh.close();
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') return 'absent';
    return { error: `${path}: ${e.message}` };
  }
  const patterns = text
    .toString('utf8')
    .split('\n')
    .map((l) => l.replace(/^[ \t]+|[ \t\r]+$/g, ''))
    .filter((l) => l !== '' && !l.startsWith('#'));
  return { patterns };
}
