/**
 * `asmtpd --check [-f FILE]`: print every problem as FILE:LINE: message; exit 0 only if clean.
 * Besides asmtpd.conf itself, the data files it names are parsed as the daemon would: a line of
 * the DomainFile, AliasFile or SPFHostsFile that the daemon would skip is an error here.
 * With Sendmail, a line before the summary says what runs for each message:
 * `Sendmail runs: /usr/sbin/sendmail -oi -f SENDER -- RECIPIENT...` (the program found, the argv).
 */
import { existsSync } from 'node:fs';
import { checkConfig, checkConfigText } from '../config/check.js';
import { describeSendmailCommand } from '../config/sendmail-command.js';
import { EMBEDDED_LABEL, embeddedConfigText } from '../config/embedded.js';
import { formatIssue, type ConfigIssue } from '../config/issues.js';
import { loadAliasFile } from '../recipients/aliases.js';
import { loadDomainFile } from '../recipients/domains.js';
import { parseSpfHosts } from '../facts/spf-hosts.js';
import { readFileSync } from 'node:fs';

/**
 * Without -f and without the default file the daemon runs on its embedded default: that is what
 * is checked then (exit 0 when it is fine), as the daemon would load it.
 */
export function runCheck(file: string, out: NodeJS.WritableStream, fileGiven = true): number {
  const report =
    !fileGiven && !existsSync(file) ? checkConfigText(embeddedConfigText(), EMBEDDED_LABEL) : checkConfig(file);
  const dataIssues: ConfigIssue[] = [];
  if (report.result.kind === 'ok') {
    const { domainFile, aliasFile, spfHostsFile } = report.result.config;
    if (domainFile) dataIssues.push(...loadDomainFile(domainFile).issues);
    if (aliasFile) dataIssues.push(...loadAliasFile(aliasFile).issues);
    if (spfHostsFile) dataIssues.push(...parseSpfHosts(readFileSync(spfHostsFile, 'utf8'), spfHostsFile).issues);
  }
  // when clean, checkConfig's last line is the "FILE: OK (N directives)" summary: not if a data file is bad
  const lines = report.ok && dataIssues.length > 0 ? report.lines.slice(0, -1) : report.lines;
  const sendmail = report.result.kind === 'ok' ? report.result.config.sendmail : null;
  if (sendmail && report.ok && dataIssues.length === 0)
    lines.splice(-1, 0, `Sendmail runs: ${describeSendmailCommand(sendmail)}`);
  for (const line of [...lines, ...dataIssues.map(formatIssue)]) out.write(line + '\n');
  return report.ok && dataIssues.length === 0 ? 0 : 2;
}
