/**
 * variables.ts — THE table from facts to script environment variables (avenger.md §2).
 *
 *   SCRIPT_VARIABLES: {name, doc, value(ctx)}[]   one row per variable users see, verbatim names
 *   scriptEnvironment(ctx) -> Record<string,string>   only the variables whose value is known
 *
 * Later facts (reverse DNS, SPF, DNSBL, SYN fingerprint…) add rows here and fields to EnvContext;
 * docs/avenger.md lists the same names (a docs-sync test keeps them equal).
 * Values are data: they are passed to the runner as environment entries, never as shell text.
 * PATH is not here: the runner fixes it (the utilities' directory, toolsDir, then SAFE_PATH).
 */
import type { ConnectionView } from './connection-view.js';
import { splitAddress } from '../recipients/address.js';
import type { FactValues } from '../facts/client-facts.js';
import { routersOf } from '../facts/route-fact.js';

export interface EnvRecipient {
  /** the address as the client wrote it */
  address: string;
  /** the local account the policy runs for */
  user: string;
  home: string;
  extension: string | null;
  /** the part of the extension a `default` file stands for */
  default: string | null;
}

export interface EnvContext {
  connection: ConnectionView;
  sender: string;
  rcpt: EnvRecipient;
  avengerUser: string;
  mailError: string | null;
  tmpDir: string;
  /** the client facts (facts/client-facts.ts); null in contexts that have none */
  facts: FactValues | null;
  /** RCPT_VERIFY (a RelayDomain recipient); null or absent otherwise */
  rcptVerify?: string | null;
}

function hopsOf(c: EnvContext): string | null {
  const route = c.facts?.route;
  const hops = route ? routersOf(route, c.connection.client.ip).length : c.facts?.syn?.hops;
  return hops === undefined ? null : String(hops);
}

/** A score as scripts see it: at most three decimals, no float noise. */
export function formatScore(score: number): string {
  return String(Math.round(score * 1000) / 1000);
}

interface VariableRow {
  name: string;
  doc: string;
  value(ctx: EnvContext): string | null | undefined;
}

export const SCRIPT_VARIABLES: readonly VariableRow[] = [
  { name: 'CLIENT_IP', doc: 'IP address of the SMTP client', value: (c) => c.connection.client.ip },
  { name: 'CLIENT_PORT', doc: 'TCP port of the SMTP client', value: (c) => String(c.connection.client.port) },
  { name: 'MY_IP', doc: 'our address the client connected to', value: (c) => c.connection.local.ip },
  { name: 'MY_PORT', doc: 'our port the client connected to', value: (c) => String(c.connection.local.port) },
  {
    name: 'CLIENT_NAME',
    doc: "the client's host name when forward-confirmed (PTR, then A/AAAA back to CLIENT_IP); unset otherwise",
    value: (c) => c.facts?.reverse?.name,
  },
  {
    name: 'CLIENT_PTR',
    doc: 'the first PTR name of CLIENT_IP as received, confirmed or not; unset when none',
    value: (c) => c.facts?.reverse?.ptr,
  },
  {
    name: 'CLIENT_DNSFAIL',
    doc: '1 when the reverse lookup failed temporarily; unset otherwise',
    value: (c) => (c.facts?.reverse?.tempfail ? '1' : null),
  },
  {
    name: 'CLIENT_PTR_INVALID',
    doc: 'the PTR answer was not a host name (letters, digits, hyphens and dots) and was dropped: CLIENT_PTR and CLIENT_NAME come only from valid names; unset otherwise',
    value: (c) => (c.facts?.reverse?.invalid ? '1' : null),
  },
  {
    name: 'CLIENT_DYNAMIC',
    doc: "1 when CLIENT_NAME looks like an access network's generic name: three or more of CLIENT_IP's octets in it (dashed, dotted, underscored, forward or reversed, zero-padded), the address in hex or as one number, or a keyword (dsl, dyn, pool, ppp, cable, dhcp, client, host, ip…) with two numbers; unset otherwise (docs/facts.md)",
    value: (c) => (c.facts?.reverse?.dynamic ? '1' : null),
  },
  {
    name: 'CLIENT_SYNFP',
    doc: "the client's TCP SYN in pf.os form (window:ttl:df:size:options, e.g. 65535:64:1:60:M1460,N,W0,N,N,T); unset without SynFP",
    value: (c) => c.facts?.syn?.fp,
  },
  {
    name: 'CLIENT_SYNOS',
    doc: 'the operating system SynFPDB names for CLIENT_SYNFP (by default from the shipped pf.os.modern, then pf.os: `Linux 4.19+`, `Windows 10/11 (or Server 2016+)`, `macOS or iOS`, `FreeBSD 9-14`, …); unset when none matches',
    value: (c) => c.facts?.syn?.os,
  },
  {
    name: 'CLIENT_NETHOPS',
    doc: 'routers between us and the client: counted by the route trace with NetPath, else initial minus observed TTL of the SYN',
    value: (c) => hopsOf(c),
  },
  {
    name: 'CLIENT_NETPATH',
    doc: 'the routers to the client, space-separated, in order (* for a silent hop); NetPath only',
    value: (c) => (c.facts?.route ? routersOf(c.facts.route, c.connection.client.ip).join(' ') : null),
  },
  {
    name: 'CLIENT_PIPELINING',
    doc: 'pre-greeting (talked before the banner) or unadvertised (pipelined after HELO or before the EHLO reply); unset when well-behaved',
    value: (c) => c.connection.pipelining,
  },
  {
    name: 'CLIENT_POST',
    doc: '1 when the client sent an HTTP verb (POST, GET, CONNECT, HEAD) as a command',
    value: (c) => (c.connection.post ? '1' : null),
  },
  { name: 'CLIENT_HELO', doc: 'argument of HELO/EHLO', value: (c) => c.connection.helo },
  { name: 'SENDER', doc: 'envelope sender as given in MAIL FROM (empty for <>)', value: (c) => c.sender },
  { name: 'SENDER_LOCAL', doc: 'local part of SENDER', value: (c) => splitAddress(c.sender).local },
  { name: 'SENDER_HOST', doc: 'domain of SENDER (lower case)', value: (c) => splitAddress(c.sender).domain },
  {
    name: 'SENDER_BOUNCERES',
    doc: "bounce probe: empty when the sender's domain would accept a bounce, else its reply (550 5.1.1 …; 4xx when the probe could not finish); unset when no probe ran",
    value: (c) => c.facts?.bounce?.reply,
  },
  {
    name: 'SPF',
    doc: 'SPF result of MAIL FROM: none, neutral, pass, fail, softfail, temperror or permerror',
    value: (c) => c.facts?.spf?.result,
  },
  { name: 'SPF_HELO', doc: 'SPF result of the HELO name; unset before HELO', value: (c) => c.facts?.spfHelo?.result },
  {
    name: 'SPF_EXPLANATION',
    doc: 'the explanation of an SPF fail; unset otherwise',
    value: (c) => (c.facts?.spf?.result === 'fail' ? c.facts.spf.explanation : null),
  },
  {
    name: 'RBL_SCORE',
    doc: 'total score of the RBL zones that list CLIENT_IP (0 when none); unset without RBL',
    value: (c) => (c.facts?.rbl ? formatScore(c.facts.rbl.score) : null),
  },
  {
    name: 'RBL_LISTED',
    doc: 'the zones that list CLIENT_IP, space-separated; unset when none',
    value: (c) => (c.facts?.rbl?.listed.length ? c.facts.rbl.listed.map((l) => l.zone).join(' ') : null),
  },
  {
    name: 'RBL_REASON',
    doc: 'the listings\' reasons (TXT text, else the RBL line\'s reason), joined by "; "; unset when none',
    value: (c) => (c.facts?.rbl?.listed.length ? c.facts.rbl.listed.map((l) => l.reason).join('; ') : null),
  },
  {
    name: 'SSL_VERSION',
    doc: 'the TLS version after STARTTLS (TLSv1.2, TLSv1.3); unset in clear',
    value: (c) => c.connection.tls?.version,
  },
  {
    name: 'SSL_CIPHER',
    doc: 'the cipher suite after STARTTLS, as OpenSSL names it (TLS_AES_256_GCM_SHA384); unset in clear',
    value: (c) => c.connection.tls?.cipher,
  },
  {
    name: 'SSL_CIPHER_BITS',
    doc: "the cipher's secret-key bits in use (256, 128); unset in clear",
    value: (c) => (c.connection.tls ? String(c.connection.tls.cipherBits) : null),
  },
  {
    name: 'SSL_ALG_BITS',
    doc: "the bits of the cipher's algorithm (as SSL_CIPHER_BITS but for 3DES: 168); unset in clear",
    value: (c) => (c.connection.tls ? String(c.connection.tls.algBits) : null),
  },
  {
    name: 'AUTH_USER',
    doc: 'the name the client authenticated as with SMTP AUTH (as the AuthFile writes it); unset when it did not',
    value: (c) => c.connection.authUser,
  },
  { name: 'RECIPIENT', doc: 'recipient address as given in RCPT TO', value: (c) => c.rcpt.address },
  { name: 'RECIPIENT_LOCAL', doc: 'local part of RECIPIENT', value: (c) => splitAddress(c.rcpt.address).local },
  {
    name: 'RECIPIENT_HOST',
    doc: 'domain of RECIPIENT (lower case)',
    value: (c) => splitAddress(c.rcpt.address).domain,
  },
  {
    name: 'RCPT_VERIFY',
    doc: 'a RelayDomain recipient: what its backend said — valid or cached-valid (2xx now, or remembered), unverified (no backend could be asked, RcptVerifyTempfail no), skipped (RelayNet, authenticated or RcptVerifySkip client: not asked); unset for other recipients (a refused one never reaches a script)',
    value: (c) => c.rcptVerify,
  },
  { name: 'EXTENSION', doc: 'address extension after the Separator (unset when none)', value: (c) => c.rcpt.extension },
  { name: 'DEFAULT', doc: 'the part of EXTENSION a rcpt+…default file stands for', value: (c) => c.rcpt.default },
  {
    name: 'MAIL_ERROR',
    doc: 'the reply asmtpd would give by itself (system default), unset when none',
    value: (c) => c.mailError,
  },
  { name: 'USER', doc: 'the account the script runs for', value: (c) => c.rcpt.user },
  { name: 'HOME', doc: "that account's home directory (the script's working directory)", value: (c) => c.rcpt.home },
  { name: 'TMPDIR', doc: 'a directory for temporary files', value: (c) => c.tmpDir },
  { name: 'AVENGER_USER', doc: 'the AvengerUser account (for redirect to shared policy)', value: (c) => c.avengerUser },
];

/**
 * The variables whose value is known, added to a copy of `base` (the helpers' ASMTPD_* entries).
 * Built in one object: spreading two objects of this size costs V8 ~10× more (bench: 24 vs 2 µs).
 */
export function scriptEnvironment(
  ctx: EnvContext,
  base: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const env: Record<string, string> = Object.assign({}, base);
  for (const row of SCRIPT_VARIABLES) {
    const v = row.value(ctx);
    if (v !== null && v !== undefined) env[row.name] = v;
  }
  return env;
}
