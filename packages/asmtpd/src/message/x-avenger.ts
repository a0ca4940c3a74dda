/**
 * x-avenger.ts — the X-Avenger: header (spec asmtpd.md §5), folded at 78 columns.
 * Tokens appear in the spec's order and only when known; values never contain `;` or CR/LF.
 * After client-dns, ours: `dynamic` when the client's name looks dynamic (CLIENT_DYNAMIC, issue 19).
 * After them, ours: `rcpt-verify=` the RCPT_VERIFY values of the relay-domain recipients (issue
 * 18), each distinct value once — never the addresses: one header goes to every recipient, and
 * naming them would disclose Bcc recipients.
 */
import { foldHeader, headerSafe } from './fold.js';

/** The tokens of spec §5 in their order; later issues fill more of them. */
export interface XAvengerFacts {
  version: string;
  receiver: string;
  clientIp: string;
  clientPort: number;
  clientDns?: string;
  /** CLIENT_DYNAMIC: the bare token `dynamic` after client-dns */
  dynamic?: boolean;
  bounceRes?: string;
  synFp?: string;
  synOs?: string;
  /** after STARTTLS: VERSION:CIPHER */
  tls?: string;
  pipelining?: string;
  post?: boolean;
  hops?: number;
  path?: string[];
  spf?: string;
  rbl?: string[];
  /** the RCPT_VERIFY of the message's relay-domain recipients, each distinct value once, in order */
  rcptVerify?: string[];
}

export function xAvengerHeader(f: XAvengerFacts): string {
  const items: string[] = [
    `version=${headerSafe(f.version)}`,
    `receiver=${headerSafe(f.receiver)}`,
    `client-ip=${headerSafe(f.clientIp)}`,
    `client-port=${f.clientPort}`,
  ];
  if (f.clientDns) items.push(`client-dns=${headerSafe(f.clientDns)}`);
  if (f.dynamic) items.push('dynamic');
  if (f.bounceRes) items.push(`bounce-res=${headerSafe(f.bounceRes)}`);
  if (f.synFp) items.push(`syn-fp=${headerSafe(f.synFp)}`);
  if (f.synOs) items.push(`syn-os=${headerSafe(f.synOs)}`);
  if (f.tls) items.push(`tls=${headerSafe(f.tls)}`);
  if (f.pipelining) items.push(`pipelining=${headerSafe(f.pipelining)}`);
  if (f.post) items.push('post');
  if (f.hops !== undefined) items.push(`hops=${f.hops}`);
  if (f.path && f.path.length) items.push(`path=${f.path.map((p) => headerSafe(p)).join(' ')}`);
  if (f.spf) items.push(`spf=${headerSafe(f.spf)}`);
  if (f.rbl && f.rbl.length) items.push(`rbl=${f.rbl.map((z) => headerSafe(z)).join(' ')}`);
  if (f.rcptVerify && f.rcptVerify.length)
    items.push(`rcpt-verify=${f.rcptVerify.map((v) => headerSafe(v)).join(' ')}`);
  return foldHeader('X-Avenger', items);
}
