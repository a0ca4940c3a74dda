/**
 * mailertable.ts — the Mailertable file: sendmail's mailertable(5) lines naming the backend of a
 * relay domain, read as RelayDomain lines are (recipients/relay-domains.ts; seeds.md §A).
 *
 *   parseMailertable(text, file) -> { entries, issues }        (pure)
 *   parseMailerValue(text) -> Parsed<BackendHost[]>            one `mailer:hosts` value
 *
 * Format, one domain a line (`#` starts a comment; blank lines are skipped):
 *     example.com        smtp:[192.0.2.25]                 # the backend of example.com
 *     example.net        esmtp:[mx1.example.net]:[192.0.2.26]   # a fallback after a colon
 *     example.org        smtp:[IPv6:2001:db8::25]          # an IPv6 literal, as sendmail writes it
 *     .example.com       smtp:[192.0.2.25]:2525            # every subdomain of example.com; port 2525
 * - The key is a domain (that domain) or `.domain` (its subdomains, at any depth: sendmail's
 *   convention); compared in lower case without a trailing dot. A domain given twice keeps its
 *   first line.
 * - The mailer is one of sendmail's SMTP mailers: smtp, esmtp, smtp8, dsmtp, relay. Others
 *   (local, error, uucp, procmail…) do not name an SMTP backend: the line is reported and skipped.
 * - The hosts are a colon-separated list, the first asked, the next ones while it is down (the
 *   fallbacks of RelayDomain). A host is `[name-or-IPv4]`, `[IPv6:address]` (also `[address]`), or a
 *   bare name. asmtpd never looks up MX records for a backend: a bare name is connected to by its
 *   address, as if it were in brackets. A number after a host is its port (Postfix transport(5)
 *   style, `smtp:[host]:2525`), 25 by default — sendmail itself has no port there and no host
 *   name is all digits, so the two readings never clash.
 * A bad line is reported as `FILE:LINE: message` and skipped; the others still apply.
 */
import { isIP } from 'node:net';
import type { ConfigIssue } from '../config/issues.js';
import type { BackendHost } from '../config/types.js';
import { parseDomainName, parsePort, type Parsed } from '../config/values.js';

export const SMTP_MAILERS = ['smtp', 'esmtp', 'smtp8', 'dsmtp', 'relay'] as const;

export interface MailertableEntry {
  /** lower case, no trailing dot, without the leading dot of a subdomain key */
  domain: string;
  /** `.domain`: the subdomains of domain, not domain itself */
  subdomainsOnly: boolean;
  backends: BackendHost[];
  line: number;
}

const fail = (message: string): Parsed<never> => ({ kind: 'error', message });

/** `smtp:[h1]:[h2]:2525` → the backends in order. */
export function parseMailerValue(text: string): Parsed<BackendHost[]> {
  const colon = text.indexOf(':');
  if (colon < 0) return fail(`expected mailer:host, got ${JSON.stringify(text)}`);
  const mailer = text.slice(0, colon).toLowerCase();
  if (!(SMTP_MAILERS as readonly string[]).includes(mailer))
    return fail(`mailer ${JSON.stringify(mailer)} names no SMTP backend (expected one of ${SMTP_MAILERS.join(', ')})`);
  const items: { text: string; bracketed: boolean }[] = [];
  let rest = text.slice(colon + 1);
  for (;;) {
    if (rest.startsWith('[')) {
      const close = rest.indexOf(']');
      if (close < 0) return fail(`unclosed [ in ${JSON.stringify(text)}`);
      items.push({ text: rest.slice(1, close), bracketed: true });
      rest = rest.slice(close + 1);
      if (rest !== '' && !rest.startsWith(':')) return fail(`expected : after ] in ${JSON.stringify(text)}`);
    } else {
      const next = rest.indexOf(':');
      items.push({ text: next < 0 ? rest : rest.slice(0, next), bracketed: false });
      rest = next < 0 ? '' : rest.slice(next);
    }
    if (rest === '') break;
    rest = rest.slice(1); // the ':' between two hosts
  }
  const backends: { host: string; port: number; portGiven: boolean }[] = [];
  for (const item of items) {
    if (!item.bracketed && /^\d+$/.test(item.text)) {
      const last = backends.at(-1);
      if (!last || last.portGiven) return fail(`port ${item.text} follows no host`);
      const port = parsePort(item.text);
      if (port.kind === 'error') return fail(`port ${item.text}: ${port.message}`);
      last.port = port.value;
      last.portGiven = true;
      continue;
    }
    const host = parseBackendHost(item.text, item.bracketed);
    if (host.kind === 'error') return host;
    backends.push({ host: host.value, port: 25, portGiven: false });
  }
  if (backends.length === 0) return fail('no host after the mailer');
  return { kind: 'ok', value: backends.map((b) => ({ host: b.host, port: b.port })) };
}

function parseBackendHost(item: string, bracketed: boolean): Parsed<string> {
  if (item === '') return fail('an empty host');
  const v6 = /^ipv6:/i.test(item) ? item.slice(5) : null;
  if (v6 !== null) return isIP(v6) === 6 ? { kind: 'ok', value: v6 } : fail(`bad IPv6 address ${JSON.stringify(v6)}`);
  if (isIP(item) === 4 || (bracketed && isIP(item) === 6)) return { kind: 'ok', value: item };
  const name = parseDomainName(item);
  return name.kind === 'ok' ? name : fail(`bad host ${JSON.stringify(item)}: ${name.message}`);
}

/** The Mailertable's text → its entries and the bad lines. */
export function parseMailertable(text: string, file: string): { entries: MailertableEntry[]; issues: ConfigIssue[] } {
  const entries: MailertableEntry[] = [];
  const firstLine = new Map<string, number>();
  const issues: ConfigIssue[] = [];
  text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .forEach((raw, index) => {
      const line = index + 1;
      const hash = raw.indexOf('#');
      const words = (hash < 0 ? raw : raw.slice(0, hash)).split(/[ \t]+/).filter((w) => w !== '');
      if (words.length === 0) return;
      const issue = (message: string): void => void issues.push({ file, line, message });
      const [keyText = '', value, ...extra] = words;
      if (value === undefined) return issue(`${keyText}: missing mailer:host (expected: domain mailer:[host]…)`);
      if (extra.length > 0) return issue('too many words (expected: domain mailer:[host]…); a comment starts with #');
      const subdomainsOnly = keyText.startsWith('.');
      const domain = parseDomainName(subdomainsOnly ? keyText.slice(1) : keyText);
      if (domain.kind === 'error') return issue(`bad domain ${JSON.stringify(keyText)}: ${domain.message}`);
      const key = (subdomainsOnly ? '.' : '') + domain.value;
      const backends = parseMailerValue(value);
      if (backends.kind === 'error') return issue(`${key}: ${backends.message}`);
      const earlier = firstLine.get(key);
      if (earlier !== undefined) return issue(`${key}: given twice (first at line ${earlier}); this line is ignored`);
      firstLine.set(key, line);
      entries.push({ domain: domain.value, subdomainsOnly, backends: backends.value, line });
    });
  return { entries, issues };
}
