/**
 * Value parsers for asmtpd.conf: one word (or, for commands, the words) of a directive →
 * a typed value, or an error message saying what was expected.
 *
 * Public: Parsed<T>; parseBoolean, parseDurationMs, parseSizeBytes, parseInteger, parsePort,
 * parseChoice, parseDomainName, parseAbsolutePath, parseRelayTarget,
 * parseSeparator, parseAccountName; SEPARATOR_CHARACTERS;
 * formatDuration, formatSize; VALUE_FORMS (the value forms as documented in
 * docs/configuration.md). IP addresses and networks are in ip.ts.
 *
 * Parsers are pure: they never touch the file system (the loader checks that named files
 * exist). Error messages complete the sentence `Directive: bad value "x": …`.
 */
import { isIP } from 'node:net';
import { posix } from 'node:path';
import type { BackendHost, DovecotAuthTarget, HoldDomain, RelayDomainRoute, RelayTarget } from './types.js';

export type Parsed<T> =
  | { kind: 'ok'; value: T; /** accepted, but worth telling the admin */ warning?: string }
  | { kind: 'error'; message: string };

const ok = <T>(value: T): Parsed<T> => ({ kind: 'ok', value });
const fail = <T>(message: string): Parsed<T> => ({ kind: 'error', message });

/** The value forms, as the docs explain them (keys are what directive rows name). */
export const VALUE_FORMS = {
  boolean: 'yes/no, on/off, true/false or 1/0, in any case',
  duration: 'a number of seconds, or a number with a suffix s, m, h or d (`30s`, `5m`, `1.5h`, `2d`); any case',
  size: 'a number of bytes, or a number with a suffix k, M or G (1024-based, any case): `512k`, `50M`',
  integer: 'a whole number, within the range the directive states',
  port: 'a TCP port, 1 to 65535',
  address: 'an IPv4 or IPv6 address (`192.0.2.25`, `2001:db8::25`)',
  network:
    'an IPv4 or IPv6 network `address/prefix` (`10.0.0.0/8`, `2001:db8::/32`); a bare address is a /32 or /128; host bits are masked off (with a warning)',
  domain: 'a domain name; case and a trailing dot do not matter',
  path: 'an absolute path',
  socket: '`unix:/path` (a unix socket) or `inet:host:port` (TCP; an IPv6 address in brackets)',
  target:
    '`host[:port]` or `[ipv6]:port` (SMTP, port 25 if omitted), `lmtp:host[:port]` (LMTP over TCP, port 24 if omitted), or `unix:/path` (LMTP over a unix socket)',
  command:
    'a command line, split into words like the rest of the file (quotes, backslashes); the first word is the program: an absolute path, or a name looked up in /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  choice: 'one of the words listed, in any case',
  character: 'a single character, one of those listed',
  listen: 'an IP address and a port: `127.0.0.1:9725`, `[::1]:9725`',
  server: 'an IP address with an optional port: `192.0.2.53`, `127.0.0.1:5353`, `[2001:db8::53]:853`',
  number: 'a number, fractions allowed (`0.5`), within the range the directive states',
  mechanisms: 'SPF mechanisms as in a record, e.g. `ip4:192.0.2.0/24 include:_spf.example.net` (no redirect= or exp=)',
  dnsbl:
    '`zone [score [reason]]`: a DNSBL zone, its score (default 1) and, as the rest of the line, a reason used when the zone publishes no TXT record',
  backends:
    '`DOMAIN HOST[:PORT][,FALLBACK[:PORT]…]`: a domain and its SMTP backends, port 25 when omitted, an IPv6 address in brackets (`[2001:db8::25]:25`); the first is asked, the next ones only while it is down',
  backoff: 'two durations: the first retry interval and the longest (`5m 4h`); the interval doubles after each attempt',
  holddomain:
    '`DOMAIN USER [HOST[:PORT]]`: a domain, one AUTH user who may take its mail (ATRN), and optionally its site (SMTP, port 25 when omitted); several lines for one domain add users (a site given on more than one line must be the same)',
  threshold: 'a count and a duration (`10 10m`), or `off`',
  netmasks: 'an IPv4 prefix length (8-32) and, optionally, an IPv6 one (32-128): `32 64`, `24`',
  account:
    'a user name as in passwd(5): letters, digits, `_`, `.` and `-`, not starting with a digit, `.` or `-`; at most 32 characters; any case (looked up lower-cased)',
} as const;

export type ValueForm = keyof typeof VALUE_FORMS;

const BOOLEAN_WORDS: Record<string, boolean> = {
  yes: true,
  on: true,
  true: true,
  '1': true,
  no: false,
  off: false,
  false: false,
  '0': false,
};

export function parseBoolean(text: string): Parsed<boolean> {
  const value = BOOLEAN_WORDS[text.toLowerCase()];
  return value === undefined ? fail('expected yes or no (also on/off, true/false, 1/0)') : ok(value);
}

const DURATION_UNIT_MS: Record<string, number> = { '': 1000, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Seconds, or a number with s/m/h/d, → milliseconds (rounded), within [minMs, maxMs]. */
export function parseDurationMs(text: string, range: { minMs?: number; maxMs?: number } = {}): Parsed<number> {
  const m = /^(\d+(?:\.\d+)?)([smhd]?)$/i.exec(text);
  if (m === null) return fail('expected a duration: seconds, or a number with s, m, h or d (e.g. 30s, 5m)');
  const ms = Math.round(Number(m[1]) * (DURATION_UNIT_MS[(m[2] ?? '').toLowerCase()] ?? 1000));
  const { minMs = 0, maxMs = 365 * 86_400_000 } = range;
  if (!Number.isSafeInteger(ms) || ms < minMs || ms > maxMs) {
    return fail(`must be between ${formatDuration(minMs)} and ${formatDuration(maxMs)}`);
  }
  return ok(ms);
}

const SIZE_UNIT_BYTES: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** Bytes, or a number with k/M/G (1024-based), → bytes (rounded down), within [minBytes, maxBytes]. */
export function parseSizeBytes(text: string, range: { minBytes?: number; maxBytes?: number } = {}): Parsed<number> {
  const m = /^(\d+(?:\.\d+)?)([kmg]?)$/i.exec(text);
  if (m === null) return fail('expected a size: bytes, or a number with k, M or G (e.g. 50M)');
  const bytes = Math.floor(Number(m[1]) * (SIZE_UNIT_BYTES[(m[2] ?? '').toLowerCase()] ?? 1));
  const { minBytes = 0, maxBytes = 1024 ** 4 } = range;
  if (!Number.isSafeInteger(bytes) || bytes < minBytes || bytes > maxBytes) {
    return fail(`must be between ${formatSize(minBytes)} and ${formatSize(maxBytes)}`);
  }
  return ok(bytes);
}

/** A whole number within [min, max]. */
export function parseInteger(text: string, range: { min: number; max: number }): Parsed<number> {
  if (!/^-?\d+$/.test(text)) return fail(`expected a whole number from ${range.min} to ${range.max}`);
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < range.min || n > range.max) {
    return fail(`must be from ${range.min} to ${range.max}`);
  }
  return ok(n);
}

export function parsePort(text: string): Parsed<number> {
  const n = parseInteger(text, { min: 1, max: 65535 });
  return n.kind === 'ok' ? n : fail('expected a port number from 1 to 65535');
}

/** One of a fixed set of words, case-insensitive; `aliases` map other spellings to a choice. */
export function parseChoice<T extends string>(
  text: string,
  choices: readonly T[],
  aliases: Readonly<Record<string, T>> = {},
): Parsed<T> {
  const lower = text.toLowerCase();
  const found = choices.find((c) => c === lower) ?? aliases[lower];
  return found === undefined ? fail(`expected one of: ${choices.join(', ')}`) : ok(found);
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** A domain name: lower-cased, one trailing dot dropped, LDH labels of 1–63, at most 253 octets. */
export function parseDomainName(text: string): Parsed<string> {
  const name = text.toLowerCase().replace(/\.$/, '');
  if (isIP(name) !== 0) return fail('expected a domain name, not an IP address');
  if (name === '' || name.length > 253) return fail('expected a domain name (at most 253 characters)');
  const labels = name.split('.');
  if (!labels.every((l) => LABEL.test(l))) {
    return fail(
      'expected a domain name: labels of letters, digits and inner hyphens, 1 to 63 characters, separated by dots',
    );
  }
  if (/^\d+$/.test(labels[labels.length - 1] ?? ''))
    return fail('expected a domain name (the last label is all digits)');
  return ok(name);
}

/** An absolute path, normalised (no `..`, `//` or trailing slash). */
export function parseAbsolutePath(text: string): Parsed<string> {
  if (!text.startsWith('/')) return fail('expected an absolute path (starting with /)');
  const normal = posix.normalize(text);
  return ok(normal.length > 1 ? normal.replace(/\/$/, '') : normal);
}

const SMTP_PORT = 25;
const LMTP_PORT = 24;

/** RelayHost: host[:port] | [ipv6][:port] (SMTP) | lmtp:host[:port] | unix:/path (LMTP). */
export function parseRelayTarget(text: string): Parsed<RelayTarget> {
  const lower = text.toLowerCase();
  if (lower.startsWith('unix:')) {
    const path = parseAbsolutePath(text.slice('unix:'.length));
    if (path.kind === 'error') return fail('expected unix:/absolute/path/of/the/lmtp/socket');
    return ok({ kind: 'lmtp-unix', path: path.value });
  }
  const isLmtp = lower.startsWith('lmtp:');
  const hostPort = parseHostPort(isLmtp ? text.slice('lmtp:'.length) : text, isLmtp ? LMTP_PORT : SMTP_PORT);
  if (hostPort.kind === 'error') return hostPort;
  return ok({ kind: isLmtp ? 'lmtp' : 'smtp', ...hostPort.value });
}

/** DovecotAuth: `unix:/path` or `inet:host:port` (Dovecot's auth-client listener). */
export function parseDovecotAuthTarget(text: string): Parsed<DovecotAuthTarget> {
  const lower = text.toLowerCase();
  if (lower.startsWith('unix:')) {
    const path = parseAbsolutePath(text.slice('unix:'.length));
    if (path.kind === 'error') return fail('expected unix:/absolute/path/of/the/auth-client/socket');
    return ok({ kind: 'unix', path: path.value });
  }
  if (!lower.startsWith('inet:')) return fail('expected unix:/path or inet:host:port');
  const rest = text.slice('inet:'.length);
  if (!/:\d+$/.test(rest)) return fail('expected inet:host:port (the port of the auth inet_listener)');
  const hostPort = parseHostPort(rest, 0);
  if (hostPort.kind === 'error') return hostPort;
  return ok({ kind: 'inet', ...hostPort.value });
}

function parseHostPort(text: string, defaultPort: number): Parsed<{ host: string; port: number }> {
  let hostText: string;
  let portText: string | null = null;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return fail('expected [ipv6-address]:port');
    hostText = text.slice(1, close);
    const after = text.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) return fail('expected [ipv6-address]:port');
      portText = after.slice(1);
    }
    if (isIP(hostText) === 0) return fail('expected an IP address between [ and ]');
  } else {
    const colons = text.split(':').length - 1;
    if (colons > 1) return fail('an IPv6 address must be written in brackets, e.g. [::1]:25');
    [hostText = '', portText = null] = colons === 1 ? text.split(':') : [text];
    if (isIP(hostText) === 0) {
      const domain = parseDomainName(hostText);
      if (domain.kind === 'error') return fail(`expected host:port with a host name or IP address (${domain.message})`);
      hostText = domain.value;
    }
  }
  if (portText === null) return ok({ host: hostText, port: defaultPort });
  const port = parsePort(portText);
  return port.kind === 'ok' ? ok({ host: hostText, port: port.value }) : port;
}

/** RelayDomain: `DOMAIN HOST[:PORT][,FALLBACK…]` (SMTP backends, port 25 by default). */
export function parseRelayDomain(words: readonly string[]): Parsed<RelayDomainRoute> {
  if (words.length !== 2) return fail('expected DOMAIN HOST[:PORT][,FALLBACK…]');
  const domain = parseDomainName(words[0]!);
  if (domain.kind === 'error') return domain;
  const backends = parseBackendList(words[1]!.split(','));
  return backends.kind === 'ok' ? ok({ domain: domain.value, backends: backends.value }) : backends;
}

/** HoldDomain: `DOMAIN USER [HOST[:PORT]]` (one user per line; lines are merged by mergeHoldDomain). */
export function parseHoldDomain(words: readonly string[]): Parsed<HoldDomain> {
  if (words.length < 2 || words.length > 3) return fail('expected DOMAIN USER [HOST[:PORT]]');
  const domain = parseDomainName(words[0]!);
  if (domain.kind === 'error') return domain;
  const user = words[1]!;
  if (!/^[\x21-\x7e]{1,255}$/.test(user)) return fail('USER: printable ASCII without spaces, 1-255 characters');
  if (words[2] === undefined) return ok({ domain: domain.value, users: [user] });
  const site = parseHostPort(words[2], SMTP_PORT);
  if (site.kind === 'error') return fail(`${words[2]}: ${site.message}`);
  return ok({ domain: domain.value, users: [user], site: site.value });
}

/** Add one HoldDomain line to the list: a known domain gets the user (and the site); null or why not. */
export function mergeHoldDomain(list: HoldDomain[], line: HoldDomain): string | null {
  const known = list.find((d) => d.domain === line.domain);
  if (!known) {
    list.push({ ...line, users: [...line.users] });
    return null;
  }
  if (line.site && known.site && (line.site.host !== known.site.host || line.site.port !== known.site.port))
    return `${line.domain} already has the site ${known.site.host}:${known.site.port}`;
  if (line.site) known.site = line.site;
  for (const u of line.users) if (!known.users.includes(u)) known.users.push(u);
  return null;
}

/** HoldRetry: `FIRST MAX` durations (FIRST ≤ MAX). */
export function parseBackoff(
  words: readonly string[],
  range: { minMs: number; maxMs: number },
): Parsed<{ minMs: number; maxMs: number }> {
  if (words.length !== 2) return fail('expected two durations: the first interval and the longest (e.g. 5m 4h)');
  const min = parseDurationMs(words[0]!, range);
  if (min.kind === 'error') return min;
  const max = parseDurationMs(words[1]!, range);
  if (max.kind === 'error') return max;
  if (max.value < min.value) return fail('the longest interval is shorter than the first');
  return ok({ minMs: min.value, maxMs: max.value });
}

/** SMTP backends `host[:port]` / `[ipv6][:port]` (port 25 by default), at least one. */
export function parseBackendList(items: readonly string[]): Parsed<BackendHost[]> {
  const backends: BackendHost[] = [];
  for (const item of items) {
    if (item === '') return fail('an empty backend between commas');
    const hp = parseHostPort(item, SMTP_PORT);
    if (hp.kind === 'error') return fail(`${item}: ${hp.message}`);
    backends.push(hp.value);
  }
  return backends.length > 0 ? ok(backends) : fail('expected at least one backend');
}

/**
 * Characters allowed as Separator: those of RFC 5322 atext that are neither routing characters
 * (`%`, `!`: refused in local parts), nor `/` (the extension names a file in ~/.avenger), nor shell
 * or glob metacharacters (`# $ & ' * ? \` { | }`, awkward in script file names). `.` is not atext
 * (it structures dot-atoms) and a leading `.` would hide a script file.
 */
export const SEPARATOR_CHARACTERS = ['+', '-', '=', '_', '^', '~'] as const;

/** Separator: exactly one of SEPARATOR_CHARACTERS. */
export function parseSeparator(text: string): Parsed<string> {
  if ((SEPARATOR_CHARACTERS as readonly string[]).includes(text)) return ok(text);
  return fail(`expected one character, one of ${SEPARATOR_CHARACTERS.join(' ')}`);
}

const ACCOUNT_NAME = /^[a-z_][a-z0-9_.-]*$/;
const ACCOUNT_NAME_MAX = 32;

/** A local account name (AvengerUser), lower-cased as account lookups are. */
export function parseAccountName(text: string): Parsed<string> {
  const name = text.toLowerCase();
  if (name.length === 0 || name.length > ACCOUNT_NAME_MAX || !ACCOUNT_NAME.test(name)) {
    return fail(
      `expected a user name: letters, digits, _ . -, not starting with a digit, . or -, at most ${ACCOUNT_NAME_MAX} characters`,
    );
  }
  return ok(name);
}

/** "500ms", "45s", "5m", "1.5h"… the shortest exact form. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return ms === 0 ? '0' : `${ms / 1000}s`;
}

/** "50M", "512k", "1000" (bytes): the shortest exact form. */
export function formatSize(bytes: number): string {
  for (const [unit, size] of [
    ['G', 1024 ** 3],
    ['M', 1024 ** 2],
    ['k', 1024],
  ] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return String(bytes);
}

/** BlockUnknownRcpts: `N DURATION` or `off`. */
export function parseThreshold(
  words: readonly string[],
  range: { maxCount: number; minMs: number; maxMs: number },
): Parsed<{ count: number; windowMs: number } | null> {
  if (words.length === 1 && /^(off|no|0)$/i.test(words[0]!)) return ok(null);
  if (words.length !== 2) return fail('expected a count and a duration (e.g. 10 10m), or off');
  const count = parseInteger(words[0]!, { min: 1, max: range.maxCount });
  if (count.kind !== 'ok') return fail(count.message);
  const windowMs = parseDurationMs(words[1]!, { minMs: range.minMs, maxMs: range.maxMs });
  if (windowMs.kind !== 'ok') return fail(windowMs.message);
  return ok({ count: count.value, windowMs: windowMs.value });
}

/** BlockNetmask: the IPv4 prefix length and, optionally, the IPv6 one (default 64). */
export function parseNetmasks(words: readonly string[]): Parsed<{ v4: number; v6: number }> {
  if (words.length < 1 || words.length > 2) return fail('expected an IPv4 prefix length and optionally an IPv6 one');
  const v4 = parseInteger(words[0]!.replace(/^\//, ''), { min: 8, max: 32 });
  if (v4.kind !== 'ok') return fail(v4.message);
  const v6 = words[1] === undefined ? ok(64) : parseInteger(words[1].replace(/^\//, ''), { min: 32, max: 128 });
  if (v6.kind !== 'ok') return fail(v6.message);
  return ok({ v4: v4.value, v6: v6.value });
}
