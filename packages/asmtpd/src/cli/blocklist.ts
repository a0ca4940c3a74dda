/**
 * blocklist.ts — `asmtpd --blocklist list | add IP[/N] [TIME] | del IP[/N] | export FORMAT | stats [IP]`
 * (issue 19; seeds.md §B): the blocks of dictionary-attack blocking in the state database
 * (DBDir/state.sqlite), read and changed as its owner (the daemon's DaemonUser; verify.ts).
 *
 *   runBlocklist(config, args, out) -> exit code (0 done, 1 the database failed or a del found
 *                                      nothing, 2 bad arguments)
 *   exportBlocks(blocks, format) -> text     rbldnsd (ip4set data), rbldnsd6 (ip6trie data),
 *                                            postfix (hash access map), nft (a table for nft -f),
 *                                            iptables (ipset restore)
 *
 * add and del change the blocks table; its trigger bumps the blocks generation, which the running
 * daemon compares every second and then re-reads its in-memory set: no restart, no signal.
 * An add lasts TIME (default BlockTime); a del forgets the network's offences too.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/types.js';
import { parseDurationMs } from '../config/values.js';
import { blockNetOf, parseBlockNet } from '../net/blocking.js';
import { openStateDb, type BlockRow, type StateDb } from '../store/state-db.js';
import { becomeOwnerOf } from './verify.js';

export const EXPORT_FORMATS = ['rbldnsd', 'rbldnsd6', 'postfix', 'nft', 'iptables'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

const REASON_TEXT = 'blocked by asmtpd: too many unknown recipients';

export async function runBlocklist(
  config: Config,
  args: readonly string[],
  out: NodeJS.WritableStream,
): Promise<number> {
  const say = (line: string): void => void out.write(line + '\n');
  const err = (line: string): number => {
    process.stderr.write(`asmtpd --blocklist: ${line}\n`);
    return 2;
  };
  const [action, ...rest] = args;
  const path = join(config.dbDir, 'state.sqlite');
  const now = Date.now();
  const withDb = (write: boolean, f: (db: StateDb) => number): number => {
    if (!existsSync(path)) {
      if (!write) return 0;
      if (process.getuid?.() === 0) {
        process.stderr.write(
          `asmtpd --blocklist: ${path} does not exist yet: start the daemon once (it creates it as DaemonUser)\n`,
        );
        return 1;
      }
    }
    try {
      if (existsSync(path)) becomeOwnerOf(path);
      const db = openStateDb(path);
      try {
        return f(db);
      } finally {
        db.close();
      }
    } catch (e) {
      process.stderr.write(`asmtpd --blocklist: ${(e as Error).message}\n`);
      return 1;
    }
  };
  switch (action) {
    case 'list':
      if (rest.length) return err('list takes no argument');
      return withDb(false, (db) => {
        for (const b of db.blocks.live(now)) say(describe(b, now));
        return 0;
      });
    case 'add': {
      const net = rest[0] === undefined ? null : parseBlockNet(rest[0]);
      if (!net || rest.length > 2) return err('add needs IP[/N] [TIME]');
      const time = rest[1] === undefined ? null : parseDurationMs(rest[1], { minMs: 1000 });
      if (time?.kind === 'error') return err(`TIME: ${time.message}`);
      const durationMs = time?.kind === 'ok' ? time.value : config.blockTimeMs;
      return withDb(true, (db) => {
        const prev = db.blocks.get(net.net);
        const row = {
          net: net.net,
          until: now + durationMs,
          offences: (prev?.offences ?? 0) + 1,
          since: now,
          reason: 'admin',
        };
        db.blocks.put(row);
        say(`added ${describe(row, now)}`);
        return 0;
      });
    }
    case 'del': {
      const net = rest[0] === undefined ? null : parseBlockNet(rest[0]);
      if (!net || rest.length !== 1) return err('del needs IP[/N]');
      return withDb(true, (db) => {
        // a bare address also names the BlockNetmask network it was counted in
        const keys = [net.net];
        if (!rest[0]!.includes('/')) keys.push(blockNetOf(rest[0]!, config.blockNetmask) ?? net.net);
        const gone = [...new Set(keys)].filter((k) => db.blocks.delete(k));
        if (!gone.length) {
          say(`not blocked: ${rest[0]}`);
          return 1;
        }
        for (const k of gone) say(`deleted ${k}`);
        return 0;
      });
    }
    case 'export': {
      const format = rest[0] as ExportFormat;
      if (rest.length !== 1 || !EXPORT_FORMATS.includes(format))
        return err(`export needs one FORMAT: ${EXPORT_FORMATS.join(', ')}`);
      return withDb(false, (db) => {
        out.write(exportBlocks(db.blocks.live(now), format));
        return 0;
      });
    }
    case 'stats':
      if (rest.length > 1) return err('stats takes at most one IP');
      return withDb(false, (db) => {
        const rows = rest[0] ? [db.clientStats.get(rest[0])].filter((r) => r !== undefined) : db.clientStats.all();
        for (const r of rows)
          say(
            `${r.ip} connections ${r.connections} blocked ${r.blocked} unknown-rcpts ${r.unknownRcpts} messages ${r.messages} first ${new Date(r.firstSeen).toISOString()} last ${new Date(r.lastSeen).toISOString()}`,
          );
        if (rest[0] && rows.length === 0) say(`${rest[0]}: not seen`);
        return 0;
      });
    default:
      return err('expected list, add IP [TIME], del IP, export FORMAT or stats [IP]');
  }
}

function describe(b: BlockRow, now: number): string {
  const left = Math.max(0, Math.round((b.until - now) / 1000));
  return `${b.net} until ${new Date(b.until).toISOString()} (${left} s) offences ${b.offences} reason ${b.reason}`;
}

const isV6 = (b: BlockRow): boolean => b.net.includes(':');

export function exportBlocks(blocks: readonly BlockRow[], format: ExportFormat): string {
  const v4 = blocks.filter((b) => !isV6(b)).map((b) => b.net);
  const v6 = blocks.filter(isV6).map((b) => b.net);
  const header = `# asmtpd blocklist, ${blocks.length} blocks, ${new Date().toISOString()}\n`;
  switch (format) {
    case 'rbldnsd':
      // ip4set data: the default A and TXT for every entry, then one network per line
      return header + `:127.0.0.2:${REASON_TEXT}\n` + v4.map((n) => `${n.replace(/\/32$/, '')}\n`).join('');
    case 'rbldnsd6':
      return header + `:127.0.0.2:${REASON_TEXT}\n` + v6.map((n) => `${n}\n`).join('');
    case 'postfix':
      return (
        header +
        [...v4.flatMap(postfixKeys4), ...v6.map(postfixKey6)].map((k) => `${k} REJECT ${REASON_TEXT}\n`).join('')
      );
    case 'nft': {
      const set = (name: string, type: string, nets: string[]): string =>
        `  set ${name} {\n    type ${type}\n    flags interval\n${nets.length ? `    elements = { ${nets.join(', ')} }\n` : ''}  }\n`;
      return header + `table inet asmtpd {\n${set('blocked4', 'ipv4_addr', v4)}${set('blocked6', 'ipv6_addr', v6)}}\n`;
    }
    case 'iptables':
      return (
        header +
        'create asmtpd-blocked4 hash:net family inet -exist\nflush asmtpd-blocked4\n' +
        v4.map((n) => `add asmtpd-blocked4 ${n}\n`).join('') +
        'create asmtpd-blocked6 hash:net family inet6 -exist\nflush asmtpd-blocked6\n' +
        v6.map((n) => `add asmtpd-blocked6 ${n}\n`).join('')
      );
  }
}

/** Postfix hash access keys match an address or its leading octets: a network becomes the keys that cover it. */
function postfixKeys4(net: string): string[] {
  const [addr, p] = net.split('/') as [string, string];
  const prefix = Number(p);
  const octets = addr.split('.').map(Number);
  const whole = Math.floor(prefix / 8);
  if (prefix === 32) return [addr];
  if (prefix % 8 === 0) return [octets.slice(0, whole).join('.')];
  // e.g. a /20: the sixteen /24 keys inside it
  const span = 2 ** (8 - (prefix % 8));
  return Array.from({ length: span }, (_, i) => [...octets.slice(0, whole), octets[whole]! + i].join('.'));
}

function postfixKey6(net: string): string {
  // a /128 is the address; a shorter prefix on a 16-bit boundary is its leading groups (Postfix's IPv6 partial keys)
  const [addr, p] = net.split('/') as [string, string];
  if (p === '128') return addr;
  const groups = Math.ceil(Number(p) / 16);
  const [head = '', tail] = addr.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const full = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return full
    .slice(0, groups)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':');
}
