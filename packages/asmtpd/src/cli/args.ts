/**
 * args.ts — the command line (spec asmtpd.md §2): which mode, which config file, which flags.
 * Pure: argv in, a CliCommand or a usage error out.
 */
import { isIP } from 'node:net';
import { DEFAULT_CONFIG_FILE } from '../config/source.js';

export { DEFAULT_CONFIG_FILE };

export type CliCommand =
  | { mode: 'daemon'; file: string; fileGiven: boolean; foreground: boolean; verbose: boolean; detached: boolean }
  | { mode: 'check'; file: string; fileGiven: boolean }
  | { mode: 'avenge'; file: string; fileGiven: boolean; recipient: string; sender: string; ip: string }
  | { mode: 'verify'; file: string; fileGiven: boolean; address: string }
  | { mode: 'blocklist'; file: string; fileGiven: boolean; args: string[] }
  | { mode: 'spf'; file: string; fileGiven: boolean }
  | { mode: 'rbl'; file: string; fileGiven: boolean }
  | { mode: 'netpath'; ip: string; maxHops: number }
  | { mode: 'synfp'; file: string; fileGiven: boolean; port: number; ip: string | null; interfaces: string[] }
  | { mode: 'install-etc'; dir: string }
  | { mode: 'queue'; file: string; fileGiven: boolean; domain: string | null; json: boolean; delete: string | null }
  | { mode: 'hold' | 'release'; file: string; fileGiven: boolean; id: string }
  | {
      mode: 'flush';
      file: string;
      fileGiven: boolean;
      domain: string | null;
      to: { host: string; port: number } | null;
    }
  | { mode: 'help' }
  | { mode: 'version' };

export const USAGE = `usage:
  asmtpd [-d] [--verbose] [-f FILE]   run the daemon (-d: stay in the foreground, log to stderr)
  asmtpd --check [-f FILE]            validate the configuration; prints FILE:LINE: message
  asmtpd --avenge [-f FILE] RECIPIENT [SENDER [IP]]
                                      dry run of the RCPT-time policy (runs the scripts, sends no mail)
  asmtpd --verify [-f FILE] ADDRESS   a relay-domain recipient: its cached answer with the expiry, or
                                      asks the backend (MAIL FROM:<>, RCPT TO) and prints its answer;
                                      exit 0 valid, 3 invalid, 1 could not be asked, 2 not a relay domain
  asmtpd --blocklist [-f FILE] list | add IP[/N] [TIME] | del IP[/N] | export FORMAT | stats [IP]
                                      the blocks of dictionary-attack blocking (BlockUnknownRcpts);
                                      add/del reach the running daemon within a second; FORMAT:
                                      rbldnsd, rbldnsd6, postfix, nft, iptables; stats: per client
  asmtpd --spf [-f FILE]              SPF workbench: reads lines IP SENDER [HELO] (or
                                      IP SENDER HELO -- MECHANISMS...) from stdin, prints result,
                                      explanation and Received-SPF with the configured resolver
  asmtpd --rbl [-f FILE]              reads IP addresses from stdin, prints the RBL listings,
                                      their scores and reasons, the total and the verdict
  asmtpd --netpath IP [HOPS]          trace the route to IP (HOPS 1-64, default 30): prints the hop
                                      count and the routers seen (CLIENT_NETHOPS, CLIENT_NETPATH);
                                      needs CAP_NET_RAW
  asmtpd --synfp [-f FILE] [PORT [IP [IFACE...]]]
                                      print one line per TCP SYN to PORT (default 25; IP: to that
                                      address only, "any" for all; IFACE: on those interfaces):
                                      SOURCE CLIENT_SYNFP OS distance N; needs CAP_NET_RAW
  asmtpd --install-etc DIR            install the stock EtcDir scripts (unknown, relay, default) into
                                      DIR (created if needed), mode 0755, owned by root; an existing
                                      file is never overwritten (it is named as kept)
  asmtpd --queue [-f FILE] [DOMAIN] [--json]
                                      the hold queue: id, state, age, sender, recipients, size,
                                      attempts, next retry, last error (DOMAIN: messages with a
                                      recipient there); --queue --delete ID removes a message
  asmtpd --hold ID | --release ID     keep a queued message from being tried | queue a held message,
                                      or a failed one (its failed recipients only), again now
  asmtpd --flush [-f FILE] [DOMAIN] [--to HOST:PORT]
                                      deliver held mail now (DOMAIN: its recipients only) to its
                                      route (RelayHost, RelayDomain, HoldDomain site or MX) or HOST
  asmtpd --version | --help
Default FILE: ${DEFAULT_CONFIG_FILE}. Without it (and without -f), asmtpd runs on its embedded
default: 127.0.0.1:2525, accepted mail kept in the hold-queue Maildir.`;

export function parseArgs(argv: readonly string[]): CliCommand | { mode: 'usage-error'; message: string } {
  let file: string | null = null;
  let mode:
    | 'daemon'
    | 'check'
    | 'avenge'
    | 'verify'
    | 'blocklist'
    | 'spf'
    | 'rbl'
    | 'netpath'
    | 'synfp'
    | 'install-etc'
    | 'queue'
    | 'hold'
    | 'release'
    | 'flush'
    | 'help'
    | 'version' = 'daemon';
  const positional: string[] = [];
  let foreground = false;
  let verbose = false;
  let detached = false;
  let json = false;
  let deleteId: string | null = null;
  let to: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    switch (a) {
      case '-f':
      case '--config': {
        const v = argv[++i];
        if (!v) return { mode: 'usage-error', message: `${a} needs a file name` };
        file = v;
        break;
      }
      case '-d':
      case '--foreground':
        foreground = true;
        break;
      case '--verbose':
        verbose = true;
        break;
      case '--detached':
        // internal: the background daemon a detaching `asmtpd` starts (writes and removes the pid file)
        detached = true;
        break;
      case '--check':
      case '--avenge':
      case '--verify':
      case '--blocklist':
      case '--spf':
      case '--rbl':
        if (mode !== 'daemon') return { mode: 'usage-error', message: `${a} cannot be combined with --${mode}` };
        mode = a.slice(2) as 'check' | 'avenge' | 'verify' | 'blocklist' | 'spf' | 'rbl';
        break;
      case '--queue':
      case '--hold':
      case '--release':
      case '--flush':
        if (mode !== 'daemon') return { mode: 'usage-error', message: `${a} cannot be combined with --${mode}` };
        mode = a.slice(2) as 'queue' | 'hold' | 'release' | 'flush';
        break;
      case '--json':
        json = true;
        break;
      case '--delete':
      case '--to': {
        const v = argv[++i];
        if (!v || v.startsWith('-')) return { mode: 'usage-error', message: `${a} needs a value` };
        if (a === '--delete') deleteId = v;
        else to = v;
        break;
      }
      case '--netpath':
        if (mode !== 'daemon') return { mode: 'usage-error', message: `${a} cannot be combined with --${mode}` };
        mode = 'netpath';
        break;
      case '--synfp':
        if (mode !== 'daemon') return { mode: 'usage-error', message: `${a} cannot be combined with --${mode}` };
        mode = 'synfp';
        break;
      case '--install-etc':
        if (mode !== 'daemon') return { mode: 'usage-error', message: `${a} cannot be combined with --${mode}` };
        mode = 'install-etc';
        break;
      case '-h':
      case '--help':
        return { mode: 'help' };
      case '--version':
        return { mode: 'version' };
      default:
        if (a.startsWith('-f') && a.length > 2) {
          file = a.slice(2);
          break;
        }
        if (
          (mode === 'avenge' ||
            mode === 'verify' ||
            mode === 'queue' ||
            mode === 'hold' ||
            mode === 'release' ||
            mode === 'flush' ||
            mode === 'blocklist' ||
            mode === 'netpath' ||
            mode === 'synfp' ||
            mode === 'install-etc') &&
          !a.startsWith('-')
        ) {
          positional.push(a);
          break;
        }
        return { mode: 'usage-error', message: `unknown argument ${JSON.stringify(a)}` };
    }
  }
  if (detached && (mode !== 'daemon' || !foreground))
    return { mode: 'usage-error', message: '--detached is internal (asmtpd without -d uses it)' };
  const fileGiven = file !== null;
  const f = file ?? DEFAULT_CONFIG_FILE;
  if (mode === 'check' || mode === 'spf' || mode === 'rbl') return { mode, file: f, fileGiven };
  if (mode === 'blocklist') {
    if (positional.length < 1)
      return { mode: 'usage-error', message: '--blocklist needs list, add, del, export or stats' };
    return { mode, file: f, fileGiven, args: positional };
  }
  if ((json || deleteId !== null) && mode !== 'queue')
    return { mode: 'usage-error', message: '--json and --delete go with --queue' };
  if (to !== null && mode !== 'flush') return { mode: 'usage-error', message: '--to goes with --flush' };
  if (mode === 'queue' || mode === 'hold' || mode === 'release' || mode === 'flush')
    return queueCommand(mode, positional, f, fileGiven, { json, deleteId, to, otherFlags: foreground || verbose });
  if (mode === 'verify') {
    if (positional.length !== 1 || !positional[0]!.includes('@'))
      return { mode: 'usage-error', message: '--verify needs one ADDRESS (local@domain)' };
    return { mode, file: f, fileGiven, address: positional[0]! };
  }
  if (mode === 'avenge') {
    if (positional.length < 1 || positional.length > 3)
      return { mode: 'usage-error', message: '--avenge needs RECIPIENT [SENDER [IP]]' };
    const sender = positional[1] ?? '';
    return {
      mode,
      file: f,
      fileGiven,
      recipient: positional[0]!,
      sender: sender === '<>' ? '' : sender,
      ip: positional[2] ?? '127.0.0.1',
    };
  }
  if (mode === 'netpath') return netpathCommand(positional, fileGiven || foreground || verbose);
  if (mode === 'synfp') return synfpCommand(positional, f, fileGiven, foreground || verbose);
  if (mode === 'install-etc') {
    if (fileGiven || foreground || verbose)
      return { mode: 'usage-error', message: '--install-etc takes only DIR (it reads no configuration)' };
    if (positional.length !== 1) return { mode: 'usage-error', message: '--install-etc needs DIR (e.g. /etc/avenger)' };
    return { mode: 'install-etc', dir: positional[0]! };
  }
  if (mode === 'daemon') return { mode, file: f, fileGiven, foreground, verbose, detached };
  return { mode };
}

/** `--queue [DOMAIN] [--json]`, `--queue --delete ID`, `--hold ID`, `--release ID`, `--flush [DOMAIN] [--to HOST:PORT]`. */
function queueCommand(
  mode: 'queue' | 'hold' | 'release' | 'flush',
  positional: readonly string[],
  file: string,
  fileGiven: boolean,
  o: { json: boolean; deleteId: string | null; to: string | null; otherFlags: boolean },
): CliCommand | { mode: 'usage-error'; message: string } {
  if (o.otherFlags) return { mode: 'usage-error', message: `--${mode} takes no -d or --verbose` };
  const domain = positional[0]?.toLowerCase().replace(/\.$/, '') ?? null;
  if (domain !== null && !/^[a-z0-9._-]+$/.test(domain))
    return { mode: 'usage-error', message: `--${mode}: not a domain: ${JSON.stringify(positional[0])}` };
  const id = positional[0] ?? '';
  const validId = /^[A-Za-z0-9._,=\\-]+$/.test(id) && !id.startsWith('.');
  switch (mode) {
    case 'queue':
      if (o.deleteId !== null) {
        if (positional.length > 0 || o.json) return { mode: 'usage-error', message: '--queue --delete takes only ID' };
        if (!/^[A-Za-z0-9._,=\\-]+$/.test(o.deleteId) || o.deleteId.startsWith('.'))
          return { mode: 'usage-error', message: `--delete: not a queue id: ${JSON.stringify(o.deleteId)}` };
      } else if (positional.length > 1) return { mode: 'usage-error', message: '--queue takes at most one DOMAIN' };
      return { mode, file, fileGiven, domain: o.deleteId === null ? domain : null, json: o.json, delete: o.deleteId };
    case 'hold':
    case 'release':
      if (positional.length !== 1 || !validId) return { mode: 'usage-error', message: `--${mode} needs one queue ID` };
      return { mode, file, fileGiven, id };
    case 'flush': {
      if (positional.length > 1) return { mode: 'usage-error', message: '--flush takes at most one DOMAIN' };
      let target: { host: string; port: number } | null = null;
      if (o.to !== null) {
        const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(o.to);
        const port = Number(m?.[3]);
        if (!m || port < 1 || port > 65535)
          return {
            mode: 'usage-error',
            message: `--to: expected HOST:PORT or [IPv6]:PORT, not ${JSON.stringify(o.to)}`,
          };
        target = { host: (m[1] ?? m[2])!, port };
      }
      return { mode, file, fileGiven, domain, to: target };
    }
  }
}

/** `--netpath IP [HOPS]`: reads no configuration, so -f, -d and --verbose are refused. */
function netpathCommand(
  positional: readonly string[],
  otherFlags: boolean,
): CliCommand | { mode: 'usage-error'; message: string } {
  if (otherFlags) return { mode: 'usage-error', message: '--netpath takes only IP [HOPS] (it reads no configuration)' };
  if (positional.length < 1 || positional.length > 2)
    return { mode: 'usage-error', message: '--netpath needs IP [HOPS]' };
  const ip = positional[0]!;
  if (isIP(ip) === 0) return { mode: 'usage-error', message: `--netpath: not an IP address: ${JSON.stringify(ip)}` };
  const hopsText = positional[1] ?? '30';
  if (!/^\d{1,2}$/.test(hopsText) || Number(hopsText) < 1 || Number(hopsText) > 64) {
    return { mode: 'usage-error', message: `--netpath: HOPS must be 1 to 64, not ${JSON.stringify(hopsText)}` };
  }
  return { mode: 'netpath', ip, maxHops: Number(hopsText) };
}

/**
 * `--synfp [-f FILE] [PORT [IP [IFACE…]]]`: the configuration only gives SynFPDB. IP `any` (or `*`)
 * keeps every destination address, so that interfaces can follow without one.
 */
function synfpCommand(
  positional: readonly string[],
  file: string,
  fileGiven: boolean,
  otherFlags: boolean,
): CliCommand | { mode: 'usage-error'; message: string } {
  if (otherFlags) return { mode: 'usage-error', message: '--synfp takes only [-f FILE] [PORT [IP [IFACE...]]]' };
  const portText = positional[0] ?? '25';
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    return { mode: 'usage-error', message: `--synfp: PORT must be 1 to 65535, not ${JSON.stringify(portText)}` };
  }
  const ipText = positional[1];
  const ip = ipText === undefined || ipText === 'any' || ipText === '*' ? null : ipText;
  if (ip !== null && isIP(ip) === 0)
    return {
      mode: 'usage-error',
      message: `--synfp: not an IP address: ${JSON.stringify(ip)} (any for every address)`,
    };
  const interfaces = positional.slice(2);
  const bad = interfaces.find((i) => !/^[A-Za-z0-9_.:@-]{1,15}$/.test(i));
  if (bad !== undefined)
    return { mode: 'usage-error', message: `--synfp: not an interface name: ${JSON.stringify(bad)}` };
  return { mode: 'synfp', file, fileGiven, port: Number(portText), ip, interfaces };
}
