/**
 * verify.ts — `asmtpd --verify ADDRESS`: what the daemon would answer for a relay-domain recipient
 * (RelayDomain or Mailertable; seeds.md §A), as far as its backend goes.
 *
 *   runVerify(config, address, out) -> exit code
 *
 * The remembered answer first: the state database (DBDir/state.sqlite) is read as its owner —
 * started as root, the process becomes the database's owner (the daemon's DaemonUser) before it
 * opens it, so that no file of the database is ever created or owned by root. A live entry is
 * printed with its expiry and the backend is not asked. Otherwise the backends are asked as the
 * daemon asks them (relay/backend-verify.ts: EHLO, MAIL FROM:<>, RCPT TO; the fallbacks while one
 * is down), each one tried is printed, and the answer. The answer is not stored: a diagnostic
 * never changes what the daemon answers (its next RCPT asks for itself).
 * Exit: 0 valid (or cached valid), 3 invalid (or cached invalid), 1 no backend could be asked or a
 * 4xx, 2 the address is in no relay domain.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/types.js';
import { createRelayDomainTable, hasRelayDomains } from '../recipients/relay-domains.js';
import { splitAddress } from '../recipients/address.js';
import { backendName, createBackendVerifier } from '../relay/backend-verify.js';
import { openStateDb } from '../store/state-db.js';
import type { CachedVerification } from '../store/state-db.js';

export const VERIFY_EXIT = { valid: 0, invalid: 3, unverified: 1, notRelayDomain: 2 } as const;

export async function runVerify(config: Config, address: string, out: NodeJS.WritableStream): Promise<number> {
  const say = (line: string): void => void out.write(line + '\n');
  const { domain } = splitAddress(address);
  const route = hasRelayDomains(config)
    ? createRelayDomainTable(config.relayDomains, {
        subdomains: config.rcptVerifySubdomains,
        mailertable: config.mailertable,
        onIssues: (issues) => issues.forEach((i) => say(`warning: ${i.file}:${i.line}: ${i.message}`)),
      }).lookup(domain)
    : null;
  say(`address: ${address}`);
  if (!route) {
    say(`route: ${domain} is not a relay domain (no RelayDomain or Mailertable line): not verified`);
    return VERIFY_EXIT.notRelayDomain;
  }
  say(`route: relay domain ${route.domain}, backends ${route.backends.map(backendName).join(', ')}`);
  const cache = readCache(join(config.dbDir, 'state.sqlite'), address.toLowerCase());
  if (cache.kind === 'hit') {
    const e = cache.entry;
    const left = Math.max(0, Math.round((e.expires - Date.now()) / 1000));
    say(`cache: ${e.valid ? 'valid' : 'invalid'}, expires ${new Date(e.expires).toISOString()} (in ${left} s)`);
    say(`answer: ${e.valid ? 'valid' : e.reply}`);
    say(`RCPT_VERIFY: ${e.valid ? 'cached-valid' : 'cached-invalid'}`);
    return e.valid ? VERIFY_EXIT.valid : VERIFY_EXIT.invalid;
  }
  say(`cache: ${cache.why}`);
  const verifier = createBackendVerifier({
    clientName: config.hostname,
    timeoutMs: config.rcptVerifyTimeoutMs,
    backoffMs: 0,
    maxConnections: 1,
  });
  try {
    const a = await verifier.ask(route.backends, address);
    if (a.kind === 'unreachable') {
      for (const t of a.tried) say(`asked: ${t.backend}: ${t.reason}`);
      say('answer: no backend could be asked');
      say(
        config.rcptVerifyTempfail
          ? 'RCPT_VERIFY: tempfail (RcptVerifyTempfail yes: 451 4.4.1 to the client)'
          : 'RCPT_VERIFY: unverified (RcptVerifyTempfail no: accepted unverified)',
      );
      return VERIFY_EXIT.unverified;
    }
    say(`asked: ${a.backend}`);
    say(`answer: ${a.kind} (${a.line.split(/\r?\n/).join(' / ')})`);
    say(`RCPT_VERIFY: ${a.kind}${a.kind === 'deferred' ? ' (passed on, never cached)' : ''}`);
    return a.kind === 'valid' ? VERIFY_EXIT.valid : a.kind === 'invalid' ? VERIFY_EXIT.invalid : VERIFY_EXIT.unverified;
  } finally {
    await verifier.close();
  }
}

type CacheRead = { kind: 'hit'; entry: CachedVerification } | { kind: 'miss'; why: string };

function readCache(path: string, key: string): CacheRead {
  if (!existsSync(path)) return { kind: 'miss', why: `none (${path} does not exist yet)` };
  try {
    becomeOwnerOf(path);
    const db = openStateDb(path);
    try {
      const entry = db.rcptVerifyCache.get(key, Date.now());
      return entry ? { kind: 'hit', entry } : { kind: 'miss', why: 'not cached (or expired)' };
    } finally {
      db.close();
    }
  } catch (err) {
    return { kind: 'miss', why: `cannot read ${path}: ${(err as Error).message}` };
  }
}

/** as root: the database's owner, for good (its -wal and -shm files must stay the daemon's) */
export function becomeOwnerOf(path: string): void {
  if (process.getuid?.() !== 0) return;
  const st = statSync(path);
  if (st.uid === 0) return;
  process.setgroups!([st.gid]);
  process.setgid!(st.gid);
  process.setuid!(st.uid);
}
