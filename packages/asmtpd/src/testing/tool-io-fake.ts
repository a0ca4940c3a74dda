/**
 * tool-io-fake.ts — a ToolIo for unit tests of the utilities (tools/*.test.ts): stdin from a
 * Buffer (or a given stream, e.g. a file's ReadStream, which has a descriptor), stdout and stderr
 * collected.
 *
 *   fakeIo({stdin?, env?}) -> {io, stdout(): Buffer, stderr(): string}
 */
import { PassThrough, Readable } from 'node:stream';
import type { ToolIo } from '../tools/tool-io.js';

export function fakeIo(o: { stdin?: Buffer | string | Readable; env?: Record<string, string | undefined> } = {}): {
  io: ToolIo;
  stdout(): Buffer;
  stderr(): string;
} {
  const stdin =
    o.stdin instanceof Readable ? o.stdin : Readable.from(o.stdin === undefined ? [] : [Buffer.from(o.stdin)]);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stdout.on('data', (b: Buffer) => out.push(b));
  stderr.on('data', (b: Buffer) => err.push(b));
  return {
    io: { stdin, stdout, stderr, env: o.env ?? {} },
    stdout: () => Buffer.concat(out),
    stderr: () => Buffer.concat(err).toString(),
  };
}
