/**
 * Postfix's real sendmail(1), run by an unprivileged account, into a private instance
 * (test/support/postfix.ts).
 *
 *   postfixSendmailUnavailable() -> reason | null
 *   useSubmitConfig(pf) -> release()     SUBMIT_CONFIG_DIR now names pf's configuration
 *
 * sendmail hands the message to the set-gid postdrop, which accepts another configuration
 * (`sendmail -C DIR`) from a caller other than root only if the default main.cf lists DIR in
 * alternate_config_directories. .ci/run lists one fixed name, SUBMIT_CONFIG_DIR; a test makes it
 * a symbolic link to its private instance's etc/ (created exclusively: a second user waits until
 * the first releases it; a link left by a dead process, pointing nowhere, is replaced).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { PostfixInstance } from './postfix.js';

export const SUBMIT_CONFIG_DIR = '/etc/postfix-asmtpd-test';
export const POSTFIX_SENDMAIL = '/usr/sbin/sendmail';

export function postfixSendmailUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (a private Postfix, and the link in /etc)';
  if (!existsSync(POSTFIX_SENDMAIL)) return `${POSTFIX_SENDMAIL} is not installed`;
  let dirs = '';
  try {
    dirs = execFileSync('postconf', ['-h', 'alternate_config_directories'], { encoding: 'utf8' });
  } catch {
    return 'postconf failed (is Postfix installed?)';
  }
  if (!dirs.split(/[\s,]+/).includes(SUBMIT_CONFIG_DIR))
    return `/etc/postfix/main.cf does not list ${SUBMIT_CONFIG_DIR} in alternate_config_directories (.ci/run adds it)`;
  return null;
}

export async function useSubmitConfig(pf: PostfixInstance, waitMs = 120_000): Promise<() => void> {
  const target = join(pf.dir, 'etc');
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      symlinkSync(target, SUBMIT_CONFIG_DIR);
      return () => {
        if (readlinkSync(SUBMIT_CONFIG_DIR) === target) rmSync(SUBMIT_CONFIG_DIR, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (!existsSync(SUBMIT_CONFIG_DIR)) {
      rmSync(SUBMIT_CONFIG_DIR, { force: true }); // a link to a private instance that is gone
      continue;
    }
    if (Date.now() > deadline) throw new Error(`${SUBMIT_CONFIG_DIR} stays in use by another test`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
