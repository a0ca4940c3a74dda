/**
 * spf-hosts.ts — SPFHostsFile (spec asmtpd.md §3): SPF records for domains that publish none.
 *
 *   parseSpfHosts(text, file) -> {value: Map<domain, record>, issues}
 *   loadSpfHosts(path, options?) -> (domain) => record | undefined   (CheckOptions.hostsRecord)
 *
 * File format: one `domain spf-record…` a line (`v=spf1` may be left out), blank lines and lines
 * starting with `#` ignored. Domains are case-insensitive, a trailing dot is ignored. A line whose
 * record does not parse, a line without a record and a repeated domain (the first one counts) are
 * reported as issues and skipped. The file is re-read when it changes (reloading-file.ts: mtime,
 * size or inode, checked at most once a second); a file that cannot be read keeps the last good
 * contents.
 */
import { isSpfRecord, parseRecord } from '@asmtpd/spf';
import type { ConfigIssue } from '../config/issues.js';
import { createReloadingFile, type FileParse, type ReloadOptions } from '../config/reloading-file.js';

const DOMAIN = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/** The key a domain is stored under: lower case, no trailing dot. */
export function spfHostsKey(domain: string): string {
  return domain.toLowerCase().replace(/\.$/, '');
}

export function parseSpfHosts(text: string, file: string): FileParse<Map<string, string>> {
  const value = new Map<string, string>();
  const issues: ConfigIssue[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const issue = (message: string): void => {
      issues.push({ file, line: i + 1, message });
    };
    const [domainWord = '', ...rest] = line.split(/\s+/);
    const domain = spfHostsKey(domainWord);
    if (!DOMAIN.test(domain)) return issue(`expected a domain name, not ${JSON.stringify(domainWord)}`);
    const record = rest.join(' ');
    if (record === '') return issue(`${domain}: expected an SPF record after the domain`);
    try {
      parseRecord(isSpfRecord(record) ? record : `v=spf1 ${record}`);
    } catch (err) {
      return issue(`${domain}: not a valid SPF record: ${(err as Error).message}`);
    }
    if (value.has(domain)) return issue(`${domain} is listed again (the first line counts)`);
    value.set(domain, record);
  });
  return { value, issues };
}

/** The SPFHostsFile lookup, re-reading the file when it changes. */
export function loadSpfHosts(path: string, options: ReloadOptions = {}): (domain: string) => string | undefined {
  const file = createReloadingFile(path, parseSpfHosts, new Map<string, string>(), options);
  return (domain) => file.current().get(spfHostsKey(domain));
}
