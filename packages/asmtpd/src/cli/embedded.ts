/**
 * embedded.ts — the configuration used when there is no configuration file at all (a first run):
 * loopback only, an unprivileged port, and accepted mail kept in the hold-queue Maildir, so that
 * nothing is ever exposed or lost before the administrator has written /etc/avenger/asmtpd.conf.
 * DNS facts use the machine's resolver (/etc/resolv.conf), not tangerine's public DoH servers.
 */
import { homedir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export const EMBEDDED_LABEL = '(embedded default)';

export function embeddedConfigText(): string {
  const dbDir = process.getuid?.() === 0 ? '/var/spool/avenger' : join(homedir(), '.asmtpd');
  // as root, the SMTP process becomes AvengerUser; on a machine without an `avenger` account yet,
  // a first run uses `nobody` (the log shows which)
  const hasAvenger = spawnSync('getent', ['passwd', 'avenger']).status === 0;
  return [
    ...(hasAvenger ? [] : ['AvengerUser nobody']),
    'SMTPPort 2525',
    'BindAddr 127.0.0.1',
    `DBDir "${dbDir}"`,
    `EtcDir "${dbDir}/etc"`,
    // the machine's own resolver: a first run sends no lookups to a DoH service nobody chose
    'DNSResolver system',
    '',
  ].join('\n');
}
