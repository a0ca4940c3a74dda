/**
 * tool-input.ts — a utility's standard input as a message: read whole, from the start when it is
 * a file (Mail Avenger's tools rewind a seekable stdin: several `deliver` calls in one script
 * each get the whole message).
 *
 *   stdinDescriptor(io) -> number | null   the descriptor behind io.stdin (process.stdin on a file
 *       or terminal has one; a pipe, or a test's stream, does not)
 *   regularFileDescriptor(io) -> number | null   the same, when it is a regular file
 *   readInput(io, {rewind}) -> Buffer   a regular file: from offset 0 with pread (the shared
 *       offset is left where it was) when rewind, else from the current offset with read(2);
 *       anything else: the stream to its end
 *   rewindDescriptor(fd, offset = 0)   lseek(2) of a descriptor (Node has none: perl-base's
 *       sysseek on the inherited descriptor, whose offset the open file description shares)
 */
import { spawn } from 'node:child_process';
import { fstatSync, readSync } from 'node:fs';
import type { ToolIo } from './tool-io.js';

export const PERL_PATH = '/usr/bin/perl';

export function stdinDescriptor(io: ToolIo): number | null {
  const fd = (io.stdin as { fd?: unknown }).fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : null;
}

export function regularFileDescriptor(io: ToolIo): number | null {
  const fd = stdinDescriptor(io);
  if (fd === null) return null;
  try {
    return fstatSync(fd).isFile() ? fd : null;
  } catch {
    return null;
  }
}

/** All of a descriptor from `position` (null: its current offset, which then moves). */
export function readDescriptor(fd: number, position: number | null): Buffer {
  const chunks: Buffer[] = [];
  let at = position;
  for (;;) {
    const buf = Buffer.allocUnsafe(1 << 20);
    const n = readSync(fd, buf, 0, buf.length, at);
    if (n === 0) break;
    chunks.push(buf.subarray(0, n));
    if (at !== null) at += n;
  }
  return Buffer.concat(chunks);
}

async function readStream(io: ToolIo): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of io.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks);
}

export async function readInput(io: ToolIo, o: { rewind: boolean }): Promise<Buffer> {
  const fd = regularFileDescriptor(io);
  if (fd === null) return readStream(io);
  return readDescriptor(fd, o.rewind ? 0 : null);
}

export function rewindDescriptor(fd: number, offset = 0): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(PERL_PATH, ['-e', 'sysseek(STDIN, $ARGV[0], 0) or die "$!\\n"', String(offset)], {
      stdio: [fd, 'ignore', 'pipe'],
      env: {},
    });
    let said = '';
    child.stderr?.on('data', (b: Buffer) => (said += b.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`cannot rewind standard input: ${said.trim() || `exit ${code}`}`)),
    );
  });
}
