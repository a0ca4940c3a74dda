/**
 * Helpers for the client-facts e2e tests (test/e2e/facts-*.test.ts): a script that records its
 * whole environment, one SMTP dialogue with timings, and the fact variables of an environment.
 *
 *   ENV_SCRIPT                       body of ~/.avenger/rcpt+default: `env -0` to $HOME/env.$EXTENSION, accept
 *   readEnv(home, tag) -> {VAR: value}   what the script for RCPT user+TAG saw (NUL-separated, exact)
 *   factVars(env) -> only the fact variables that are set (CLIENT_NAME … MAIL_ERROR)
 *   dialogue(port, {local?, helo?, from, to}) -> {banner, mail, rcpt, ms: {banner, mail, rcpt}, at: {banner, mail, rcpt}}
 *     connects from `local` (any 127.0.0.x: the client address the daemon sees), times each reply
 *     from the moment the command was sent (the banner: from the connect); `at`: Date.now() when
 *     each reply arrived (to order it against other events: a DNS answer sent, a log line's ts)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SmtpClient } from './smtp-client.js';

export const ENV_SCRIPT = 'env -0 > "$HOME/env.$EXTENSION"; accept';

export const FACT_VARIABLES = [
  'CLIENT_NAME',
  'CLIENT_PTR',
  'CLIENT_DNSFAIL',
  'CLIENT_PTR_INVALID',
  'SPF',
  'SPF_HELO',
  'SPF_EXPLANATION',
  'RBL_SCORE',
  'RBL_LISTED',
  'RBL_REASON',
  'SENDER_BOUNCERES',
  'MAIL_ERROR',
] as const;

export function readEnv(home: string, tag: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of readFileSync(join(home, `env.${tag}`), 'utf8').split('\0')) {
    if (entry === '') continue;
    const eq = entry.indexOf('=');
    env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/** The fact variables that are set, so deepEqual against an object also proves the others unset. */
export function factVars(env: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of FACT_VARIABLES) if (k in env) out[k] = env[k]!;
  return out;
}

export interface Dialogue {
  banner: string;
  mail: string;
  rcpt: string;
  ms: { banner: number; mail: number; rcpt: number };
  at: { banner: number; mail: number; rcpt: number };
}

export async function dialogue(
  port: number,
  o: { local?: string; helo?: string; from: string; to: string },
): Promise<Dialogue> {
  const t0 = Date.now();
  const c = await SmtpClient.connect(port, '127.0.0.1', o.local);
  try {
    const banner = (await c.greeting()).last;
    const bannerAt = Date.now();
    const tBanner = bannerAt - t0;
    await c.cmd(`EHLO ${o.helo ?? 'client.example'}`);
    let t = Date.now();
    const mail = (await c.cmd(`MAIL FROM:<${o.from}>`)).last;
    const mailAt = Date.now();
    const tMail = mailAt - t;
    t = Date.now();
    const rcpt = (await c.cmd(`RCPT TO:<${o.to}>`)).last;
    const rcptAt = Date.now();
    const tRcpt = rcptAt - t;
    await c.cmd('QUIT').catch(() => undefined);
    return {
      banner,
      mail,
      rcpt,
      ms: { banner: tBanner, mail: tMail, rcpt: tRcpt },
      at: { banner: bannerAt, mail: mailAt, rcpt: rcptAt },
    };
  } finally {
    c.close();
  }
}
