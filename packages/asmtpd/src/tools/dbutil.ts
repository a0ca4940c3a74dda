/**
 * dbutil.ts — the `dbutil` utility (docs/man/dbutil.1.md; spec avenger.md §5): Mail Avenger's
 * expiring key-value store for scripts, on an SQLite file (store/kv-db.ts).
 *
 *   main(argv, io) -> exit code
 *     -q [-t] [--expire=WHEN] DB KEY   print the value (with -t: its expiry, epoch seconds, empty
 *                                      when none); --expire sets a new expiry. 0 found, 1 absent
 *                                      or expired
 *     -u [-n] [--expire=WHEN] DB KEY [VALUE]   set (VALUE default ""); without --expire the record
 *                                      never expires; -n: only if absent (else exit 1, unchanged)
 *     --add=N [--expire=WHEN] DB KEY   asmtpd's addition: add the integer N to the value (absent: 0)
 *                                      in one transaction, print the result; without --expire the
 *                                      record keeps its expiry
 *     -x DB KEY                        delete; 0 deleted, 1 absent
 *     -d DB                            print every live record: `KEY VALUE` or `KEY VALUE (EXPIRY)`
 *     -t [WHEN]                        print the epoch seconds of now, or of WHEN (when.ts)
 *   Errors (usage, an unreadable or foreign file, a non-integer value for --add): a line on
 *   stderr and exit 2.
 *
 * Keys and values are single lines (a CR or LF is refused: the dump is one record a line), at most
 * MAX_KEY_BYTES and MAX_VALUE_BYTES.
 */
import { KvDbError, openKvDb, type KvDb, type KvRecord } from '../store/kv-db.js';
import { parseCommandLine } from './argv.js';
import { writeOut, type ToolIo } from './tool-io.js';
import { parseWhen } from './when.js';

export const MAX_KEY_BYTES = 16 * 1024;
export const MAX_VALUE_BYTES = 64 * 1024;

export const DBUTIL_USAGE = `usage: dbutil -q [-t] [--expire=WHEN] DB KEY     print KEY's value (-t: its expiry)
       dbutil -u [-n] [--expire=WHEN] DB KEY [VALUE]   set KEY (-n: only if absent)
       dbutil --add=N [--expire=WHEN] DB KEY     add N to KEY's number, print the sum
       dbutil -x DB KEY                          delete KEY
       dbutil -d DB                              print every record: KEY VALUE [(EXPIRY)]
       dbutil -t [WHEN]                          print the epoch seconds of now or of WHEN
  WHEN: a date (2026-01-31, 2026-01-31T12:00:00Z) or an interval from now: +1d, -2h, 36d, +1h30m
  (s m h d w M y); digits alone are epoch seconds.
Exit: 0 done or found, 1 absent (or present, with -u -n), 2 error.`;

const OPTIONS = {
  query: { type: 'boolean', short: 'q' },
  update: { type: 'boolean', short: 'u' },
  delete: { type: 'boolean', short: 'x' },
  dump: { type: 'boolean', short: 'd' },
  time: { type: 'boolean', short: 't' },
  noclobber: { type: 'boolean', short: 'n' },
  expire: { type: 'string' },
  add: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Mode = 'query' | 'update' | 'delete' | 'dump' | 'add';

const fail = async (io: ToolIo, message: string): Promise<number> => {
  await writeOut(io.stderr, `dbutil: ${message}\n`);
  return 2;
};

const seconds = (ms: number): number => Math.ceil(ms / 1000);

export async function main(argv: string[], io: ToolIo, now: () => number = Date.now): Promise<number> {
  // `-t [WHEN]` alone: WHEN may start with "-" (-2h), so it is taken as it is
  if (
    (argv[0] === '-t' || argv[0] === '--time') &&
    !argv.slice(1).some((a) => /^(-[quxd]|--(query|update|delete|dump|add))/.test(a))
  )
    return printTime(argv.slice(argv[1] === '--' ? 2 : 1), io, now());
  const parsed = parseCommandLine(argv, OPTIONS);
  if ('error' in parsed) return fail(io, `${parsed.error}\n${DBUTIL_USAGE}`);
  const { values: v, operands } = parsed;
  if (v.help) {
    await writeOut(io.stdout, `${DBUTIL_USAGE}\n`);
    return 0;
  }
  const modes = (['query', 'update', 'delete', 'dump', 'add'] as const).filter((m) => v[m] !== undefined);
  if (modes.length === 0 && v.time) return printTime(operands, io, now());
  if (modes.length !== 1) return fail(io, `give one of -q, -u, -x, -d, --add\n${DBUTIL_USAGE}`);
  const mode: Mode = modes[0]!;
  const wanted: Record<Mode, [number, number]> = {
    query: [2, 2],
    update: [2, 3],
    delete: [2, 2],
    dump: [1, 1],
    add: [2, 2],
  };
  const [min, max] = wanted[mode];
  if (operands.length < min || operands.length > max) return fail(io, `wrong number of arguments\n${DBUTIL_USAGE}`);
  if (v.time && mode !== 'query') return fail(io, '-t goes with -q (or alone)');
  if (v.noclobber && mode !== 'update') return fail(io, '-n goes with -u');
  if (v.expire !== undefined && (mode === 'delete' || mode === 'dump'))
    return fail(io, `--expire does not go with -${mode === 'delete' ? 'x' : 'd'}`);
  const t = now();
  let expires: number | null | undefined;
  if (typeof v.expire === 'string') {
    const w = parseWhen(v.expire, t);
    if ('error' in w) return fail(io, w.error);
    expires = w.ms;
  }
  let delta = 0;
  if (mode === 'add') {
    const a = String(v.add);
    if (!/^[+-]?\d{1,15}$/.test(a)) return fail(io, `--add wants an integer, not "${a.slice(0, 32)}"`);
    delta = Number(a);
  }
  const [path, key, value = ''] = operands as [string, string?, string?];
  if (key !== undefined) {
    const problem = badText('key', key, MAX_KEY_BYTES) ?? badText('value', value, MAX_VALUE_BYTES);
    if (problem) return fail(io, problem);
    if (key === '') return fail(io, 'the key is empty');
  }
  let db: KvDb;
  try {
    db = openKvDb(path);
  } catch (err) {
    return fail(io, (err as Error).message);
  }
  try {
    switch (mode) {
      case 'query': {
        const r = expires === undefined ? db.get(key!, t) : db.touch(key!, expires, t);
        if (!r) return 1;
        await writeOut(io.stdout, `${v.time ? (r.expires === null ? '' : seconds(r.expires)) : r.value}\n`);
        return 0;
      }
      case 'update':
        return db.put(key!, value, expires ?? null, t, { ifAbsent: v.noclobber === true }) ? 0 : 1;
      case 'add':
        await writeOut(io.stdout, `${db.add(key!, delta, expires === undefined ? 'keep' : expires, t)}\n`);
        return 0;
      case 'delete':
        return db.remove(key!, t) ? 0 : 1;
      case 'dump':
        for (const r of db.live(t)) await writeOut(io.stdout, dumpLine(r));
        return 0;
    }
  } catch (err) {
    if (err instanceof KvDbError) return fail(io, err.message);
    return fail(io, `${path}: ${(err as Error).message}`);
  } finally {
    db.close();
  }
}

function dumpLine(r: KvRecord): string {
  return `${r.key} ${r.value}${r.expires === null ? '' : ` (${seconds(r.expires)})`}\n`;
}

function badText(what: string, s: string, maxBytes: number): string | null {
  if (/[\r\n]/.test(s)) return `the ${what} contains a line break`;
  if (Buffer.byteLength(s) > maxBytes) return `the ${what} is longer than ${maxBytes} bytes`;
  return null;
}

async function printTime(args: string[], io: ToolIo, t: number): Promise<number> {
  if (args.length > 1) return fail(io, `-t takes at most one WHEN\n${DBUTIL_USAGE}`);
  const w = args[0] === undefined ? { ms: t } : parseWhen(args[0], t);
  if ('error' in w) return fail(io, w.error);
  await writeOut(io.stdout, `${Math.floor(w.ms / 1000)}\n`);
  return 0;
}
