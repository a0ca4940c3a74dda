/**
 * embedded.ts — the configuration used when there is no configuration file at all (a first run):
 * loopback only, an unprivileged port, and accepted mail kept in the hold-queue Maildir, so that
 * nothing is ever exposed or lost before the administrator has written /etc/avenger/asmtpd.conf.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

export const EMBEDDED_LABEL = '(embedded default)';

export function embeddedConfigText(): string {
  const dbDir = process.getuid?.() === 0 ? '/var/spool/avenger' : join(homedir(), '.asmtpd');
  return [
    'SMTPPort 2525',
    'BindAddr 127.0.0.1',
    `DBDir "${dbDir}"`,
    `EtcDir "${dbDir}/etc"`,
    '',
  ].join('\n');
}
