/**
 * edinplace.ts — `edinplace [-x CODE] [-f FILE] [--skipfrom] [COMMAND [ARG…]]`
 * (docs/man/edinplace.1.md): filter a file through a command, in place.
 *
 *   main(argv, io) -> the command's exit status (128 + N when killed by signal N); CODE (-x,
 *     --error; default 1) when edinplace itself fails: bad usage, a stdin that is not a file it
 *     may write, a command that cannot be run, an I/O error
 *
 *   COMMAND runs with the file's contents on its stdin; when it exits 0 its output replaces the
 *   contents (same file, same inode: written from offset 0, then truncated); otherwise the file is
 *   left unchanged. The file is FILE (-f), or standard input, which must be a regular file:
 *   written through /proc/self/fd/0 reopened for writing (so a stdin opened read-only works too,
 *   given write permission on the file — avenger.local hands the message file to its user), and
 *   rewound to offset 0 before edinplace exits (Mail Avenger's rule: the next command of a local
 *   script reads the filtered message from its start).
 *   Without COMMAND: stdin is only rewound (-f is then an error).
 *   --skipfrom: a first line starting with "From " (an mbox envelope line) is neither given to
 *   the command nor changed; without COMMAND stdin is left at the start of the second line.
 */
import { spawn } from 'node:child_process';
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { readDescriptor, regularFileDescriptor, rewindDescriptor } from './tool-input.js';
import { writeOut, type ToolIo, shellStatus } from './tool-io.js';

export const EDINPLACE_USAGE = `usage: edinplace [-x CODE] [-f FILE] [--skipfrom] [COMMAND [ARG...]]
  Run COMMAND on the contents of FILE (default: standard input, a file open for reading and
  writing) and, if it exits 0, replace the contents with its output; then rewind standard input.
  Without COMMAND, only rewind standard input.
  -f FILE, --file=FILE    edit FILE instead of standard input
  -x CODE, --error=CODE   exit status for edinplace's own failures (default 1)
  --skipfrom              leave a first "From " line out of the command's input, and in place
Exit: the command's status; CODE when edinplace fails.`;

interface Options {
  code: number;
  file: string | null;
  skipFrom: boolean;
  command: string[];
}

type Parsed = { help: true } | Options | { error: string; code: number };

function parseArgv(argv: readonly string[]): Parsed {
  const o: Options = { code: 1, file: null, skipFrom: false, command: [] };
  let i = 0;
  const value = (a: string, long: string): string | undefined =>
    a.startsWith(`${long}=`) ? a.slice(long.length + 1) : argv[++i];
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (a === '-h' || a === '--help') return { help: true };
    if (a === '-x' || a === '--error' || a.startsWith('--error=')) {
      const v = value(a, '--error');
      if (v === undefined || !/^\d{1,3}$/.test(v) || Number(v) < 1 || Number(v) > 255)
        return { error: `${a}: CODE must be 1-255`, code: o.code };
      o.code = Number(v);
    } else if (a === '-f' || a === '--file' || a.startsWith('--file=')) {
      const v = value(a, '--file');
      if (v === undefined || v === '') return { error: `${a} needs a FILE`, code: o.code };
      o.file = v;
    } else if (a === '--skipfrom') o.skipFrom = true;
    else if (a.startsWith('-') && a.length > 1) return { error: `unknown option ${a}`, code: o.code };
    else break;
  }
  o.command = argv.slice(i);
  if (o.command[0] === '') return { error: 'empty COMMAND', code: o.code };
  if (o.command.length === 0 && o.file !== null)
    return { error: 'without COMMAND there is nothing to do to FILE', code: o.code };
  return o;
}

/** End of the first line when it is an envelope "From " line, else 0. */
function envelopeEnd(content: Buffer): number {
  if (content.toString('latin1', 0, 5) !== 'From ') return 0;
  const eol = content.indexOf(0x0a);
  return eol < 0 ? content.length : eol + 1;
}

type Filtered = { status: number; output: Buffer } | { spawnError: Error };

function filter(argv: string[], input: Buffer, io: ToolIo): Promise<Filtered> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: io.env as NodeJS.ProcessEnv,
    });
    const out: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stdin!.on('error', () => {}); // a command that stops reading early (EPIPE) is its own business
    child.stdin!.end(input);
    child.on('error', (err) => resolve({ spawnError: err }));
    child.on('close', (code, signal) =>
      resolve({
        status: shellStatus(code, signal),
        output: Buffer.concat(out),
      }),
    );
  });
}

function writeAt(fd: number, parts: readonly Buffer[]): number {
  let at = 0;
  for (const part of parts)
    for (let done = 0; done < part.length; ) {
      const n = writeSync(fd, part, done, part.length - done, at);
      done += n;
      at += n;
    }
  return at;
}

export async function main(argv: string[], io: ToolIo): Promise<number> {
  const o = parseArgv(argv);
  if ('help' in o) {
    await writeOut(io.stdout, EDINPLACE_USAGE + '\n');
    return 0;
  }
  const fail = async (why: string, code: number): Promise<number> => {
    await writeOut(io.stderr, `edinplace: ${why}\n`);
    return code;
  };
  if ('error' in o) return fail(`${o.error}\n${EDINPLACE_USAGE}`, o.code);
  const stdin = o.file === null ? regularFileDescriptor(io) : null;
  if (o.file === null && stdin === null)
    return fail('standard input is not a file (a pipe cannot be edited in place or rewound)', o.code);
  if (o.command.length === 0) {
    try {
      await rewindDescriptor(stdin!, o.skipFrom ? envelopeEnd(readDescriptor(stdin!, 0)) : 0);
      return 0;
    } catch (err) {
      return fail((err as Error).message, o.code);
    }
  }
  let fd: number;
  try {
    fd = openSync(o.file ?? `/proc/self/fd/${stdin}`, 'r+');
  } catch (err) {
    return fail(`cannot open ${o.file ?? 'standard input'} for writing: ${(err as Error).message}`, o.code);
  }
  try {
    const content = readDescriptor(fd, 0);
    const head = o.skipFrom ? envelopeEnd(content) : 0;
    const r = await filter(o.command, content.subarray(head), io);
    if ('spawnError' in r) return fail(`${o.command[0]}: ${r.spawnError.message}`, o.code);
    if (r.status === 0) ftruncateSync(fd, writeAt(fd, [content.subarray(0, head), r.output]));
    if (stdin !== null) await rewindDescriptor(stdin, 0);
    return r.status;
  } catch (err) {
    return fail((err as Error).message, o.code);
  } finally {
    closeSync(fd);
  }
}
