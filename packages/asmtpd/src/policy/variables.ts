/**
 * variables.ts — THE table from facts to script environment variables (avenger.md §2).
 *
 *   SCRIPT_VARIABLES: {name, doc, value(ctx)}[]   one row per variable users see, verbatim names
 *   scriptEnvironment(ctx) -> Record<string,string>   only the variables whose value is known
 *
 * Later facts (reverse DNS, SPF, DNSBL, SYN fingerprint…) add rows here and fields to EnvContext;
 * docs/avenger.md lists the same names (a docs-sync test keeps them equal).
 * Values are data: they are passed to the runner as environment entries, never as shell text.
 * PATH is not here: the runner fixes it (SAFE_PATH).
 */
import type { Session } from '../smtp/session.js';
import { splitAddress } from '../recipients/address.js';

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
  session: Session;
  sender: string;
  rcpt: EnvRecipient;
  avengerUser: string;
  mailError: string | null;
  tmpDir: string;
}

interface VariableRow {
  name: string;
  doc: string;
  value(ctx: EnvContext): string | null | undefined;
}

export const SCRIPT_VARIABLES: readonly VariableRow[] = [
  { name: 'CLIENT_IP', doc: 'IP address of the SMTP client', value: (c) => c.session.client.ip },
  { name: 'CLIENT_PORT', doc: 'TCP port of the SMTP client', value: (c) => String(c.session.client.port) },
  { name: 'MY_IP', doc: 'our address the client connected to', value: (c) => c.session.local.ip },
  { name: 'MY_PORT', doc: 'our port the client connected to', value: (c) => String(c.session.local.port) },
  { name: 'CLIENT_HELO', doc: 'argument of HELO/EHLO', value: (c) => c.session.helo },
  { name: 'SENDER', doc: 'envelope sender as given in MAIL FROM (empty for <>)', value: (c) => c.sender },
  { name: 'SENDER_LOCAL', doc: 'local part of SENDER', value: (c) => splitAddress(c.sender).local },
  { name: 'SENDER_HOST', doc: 'domain of SENDER (lower case)', value: (c) => splitAddress(c.sender).domain },
  { name: 'RECIPIENT', doc: 'recipient address as given in RCPT TO', value: (c) => c.rcpt.address },
  { name: 'RECIPIENT_LOCAL', doc: 'local part of RECIPIENT', value: (c) => splitAddress(c.rcpt.address).local },
  { name: 'RECIPIENT_HOST', doc: 'domain of RECIPIENT (lower case)', value: (c) => splitAddress(c.rcpt.address).domain },
  { name: 'EXTENSION', doc: 'address extension after the Separator (unset when none)', value: (c) => c.rcpt.extension },
  { name: 'DEFAULT', doc: 'the part of EXTENSION a rcpt+…default file stands for', value: (c) => c.rcpt.default },
  { name: 'MAIL_ERROR', doc: 'the reply asmtpd would give by itself (system default), unset when none', value: (c) => c.mailError },
  { name: 'USER', doc: 'the account the script runs for', value: (c) => c.rcpt.user },
  { name: 'HOME', doc: "that account's home directory (the script's working directory)", value: (c) => c.rcpt.home },
  { name: 'TMPDIR', doc: 'a directory for temporary files', value: (c) => c.tmpDir },
  { name: 'AVENGER_USER', doc: 'the AvengerUser account (for redirect to shared policy)', value: (c) => c.avengerUser },
];

export function scriptEnvironment(ctx: EnvContext): Record<string, string> {
  const env: Record<string, string> = {};
  for (const row of SCRIPT_VARIABLES) {
    const v = row.value(ctx);
    if (v !== null && v !== undefined) env[row.name] = v;
  }
  return env;
}
