/**
 * tool-io.ts — what every utility of docs/utilities.md shares: its streams, and how its process
 * runs it.
 *
 *   ToolMain = (argv, io) => Promise<exit code>   each tool's `main` (tools/NAME.ts)
 *   processIo() -> ToolIo                          this process's stdin, stdout, stderr, env
 *   shellStatus(code, signal) -> a child's exit status as a shell reports it (128 + N for signal N)
 *   runTool(name, main, {crashExit})               the entry of tools/NAME (the installed command):
 *       runs main with processIo(); an exception escaping it is said on stderr as "NAME: …" and
 *       exits crashExit (the tool's "error" code: 2 for most, 75 for a delivery agent)
 *
 * Tools take `io` rather than touching `process`, so unit tests call main directly; the e2e tests
 * run the installed command as a real user.
 */
import { constants as osConstants } from 'node:os';
import type { Readable, Writable } from 'node:stream';

export interface ToolIo {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  env: Readonly<Record<string, string | undefined>>;
}

export type ToolMain = (argv: string[], io: ToolIo) => Promise<number>;

export function processIo(): ToolIo {
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env };
}

/** Write all of text to a stream and wait until it is flushed (a tool's exit must not cut it). */
export function writeOut(stream: Writable, text: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => stream.write(text, (err) => (err ? reject(err) : resolve())));
}

/** A child's exit status as a shell reports it: its code, or 128 + N when signal N ended it. */
export function shellStatus(code: number | null, signal: NodeJS.Signals | null): number {
  return code ?? 128 + (signal === null ? 0 : (osConstants.signals[signal] ?? 0));
}

export async function runTool(name: string, main: ToolMain, o: { crashExit?: number } = {}): Promise<void> {
  try {
    process.exitCode = await main(process.argv.slice(2), processIo());
  } catch (err) {
    process.stderr.write(`${name}: ${(err as Error).message}\n`);
    process.exitCode = o.crashExit ?? 2;
  }
}
