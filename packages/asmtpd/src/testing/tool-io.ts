/**
 * testing/tool-io — a ToolIo for the utilities' unit tests: stdin from a string, stdout and stderr
 * collected, an environment of the test's choosing.
 *
 *   runTool(main, argv, {stdin?, env?}) -> {code, stdout, stderr}
 */
import { PassThrough, Readable } from 'node:stream';
import type { ToolIo, ToolMain } from '../tools/tool-io.js';

export interface ToolRun {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runTool(
  main: ToolMain,
  argv: string[],
  o: { stdin?: string; env?: Record<string, string> } = {},
): Promise<ToolRun> {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: [] as Buffer[], err: [] as Buffer[] };
  out.on('data', (b: Buffer) => chunks.out.push(b));
  err.on('data', (b: Buffer) => chunks.err.push(b));
  const io: ToolIo = { stdin: Readable.from([o.stdin ?? '']), stdout: out, stderr: err, env: o.env ?? {} };
  const code = await main(argv, io);
  return { code, stdout: Buffer.concat(chunks.out).toString(), stderr: Buffer.concat(chunks.err).toString() };
}
