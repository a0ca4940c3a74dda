/**
 * embedded.ts — the configuration used when there is no configuration file at all (a first run):
 * loopback only, an unprivileged port, and accepted mail kept in the hold-queue Maildir, so that
 * nothing is ever exposed or lost before the administrator has written /etc/avenger/asmtpd.conf.
 * It has no DNS line: DNS facts use the machine's resolver (/etc/resolv.conf), the default of a
 * configuration file too (DNSResolver system), never a public DoH service nobody chose.
 * As root the accounts are the defaults (asmtpd, avenger, asmtpd-net: created when missing, see
 * daemon/service-accounts.ts) — never a shared account such as nobody — and EtcDir is the usual
 * /etc/avenger (root's), not a directory inside DBDir (the SMTP process's). Not root: everything
 * lives in ~/.asmtpd and runs as the invoking user.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

export const EMBEDDED_LABEL = '(embedded default)';

export function embeddedConfigText(): string {
  const root = process.getuid?.() === 0;
  const dbDir = root ? '/var/spool/avenger' : join(homedir(), '.asmtpd');
  return [
    'SMTPPort 2525',
    'BindAddr 127.0.0.1',
    `DBDir "${dbDir}"`,
    ...(root ? [] : [`EtcDir "${dbDir}/etc"`]),
    '',
  ].join('\n');
}
