/**
 * The hold queue's command line and files, for the e2e tests of issue 20 and its follow-ups
 * (test/e2e/hold-flush.test.ts, hold-mx.test.ts, hold-crash.test.ts).
 *
 *   asmtpdCli(daemon, args, env?) -> { code, stdout, stderr }   bin/asmtpd ARGS -f the daemon's config
 *   queueJson(daemon, domain?) -> Listed[]                       `asmtpd --queue [DOMAIN] --json`
 *   sendOne(port, from, to, body) -> the reply to the final dot
 *   heldBodies(daemon) -> Map<queue id, message bytes>           every file in new/, without its
 *                                                                X-Asmtpd-* envelope: what a downstream must get
 *   queueIdOf(data)                                              the queue id in a delivered message's Received field
 *   until(what, f, timeoutMs?)                                   await a condition (polls every 50 ms)
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readHeld } from 'asmtpd/dist/relay/hold-queue.js';
import { ASMTPD_BIN, type Daemon } from './daemon.js';
import { SmtpClient } from './smtp-client.js';

const run = promisify(execFile);

export async function asmtpdCli(
  d: Daemon,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [ASMTPD_BIN, ...args, '-f', d.confPath], {
      env: { ...process.env, ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

export interface Listed {
  id: string;
  state: string;
  from: string;
  to: string[];
  done: string[];
  failed: { to: string; reply: string }[];
  attempts: number;
  lastError: string | null;
  nextRetry: string | null;
  requeued: { at: string; attempts: number; failed: { to: string; reply: string }[] }[];
}

export async function queueJson(d: Daemon, domain?: string): Promise<Listed[]> {
  const r = await asmtpdCli(d, ['--queue', ...(domain ? [domain] : []), '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Listed[];
}

export async function sendOne(port: number, from: string, to: string[], body: string): Promise<string> {
  const c = await SmtpClient.connect(port);
  try {
    await c.greeting();
    const r = await c.send(from, to, body);
    return r.last;
  } finally {
    c.close();
  }
}

export async function heldBodies(d: Daemon): Promise<Map<string, Buffer>> {
  const dir = join(d.dbDir, 'queue', 'new');
  const out = new Map<string, Buffer>();
  if (!existsSync(dir)) return out; // nothing held yet
  for (const f of readdirSync(dir)) {
    const env = await readHeld(join(dir, f));
    out.set(env.queueId, readFileSync(join(dir, f)).subarray(env.headerOffset));
  }
  return out;
}

export const queueIdOf = (data: Buffer): string => /\bid ([A-Z0-9]+)/.exec(data.toString('latin1'))?.[1] ?? '';

export async function until<T>(what: string, f: () => T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
