/**
 * A TCP client in userspace whose SYN is exactly the one a test asks for — another operating
 * system's published parameters — for the SYN fingerprint tests (test/e2e/synfp-modern.test.ts,
 * examples-windows-desktop.test.ts). It makes real SMTP sessions with the real daemon:
 *
 *   root namespace: the daemon ── its kernel ── TUN device ── this module (the "client host")
 *
 * A TUN device is an interface whose far end is a process: every IPv4 packet we write to it arrives
 * in the kernel as if a network card had received it (the daemon's capture sees the SYN as it sees
 * any other), and every packet the kernel routes to the device's subnet is read back by us. No
 * kernel TCP stack sits on the client side, so nothing answers the daemon's SYN-ACK with a reset and
 * no firewall rule is needed; the device is created by the bridge process (not persistent) and
 * disappears with it, so a crashed test leaves nothing behind.
 *
 *   tunUnavailable() -> null, or why a TUN device cannot be made (not root, no /dev/net/tun, no perl)
 *   openTun() -> Tun     a new device `astunN` with 198.18.x.1/24 (a free /24 of 198.18.0.0/15):
 *                        tun.local is our (the daemon's) address, tun.peer(n) the client address .n
 *   tun.connect({src, dst, dport, fingerprint}) -> UserTcp
 *       sends a SYN that is `fingerprint` (CLIENT_SYNFP form, concrete values: window, the TTL as it
 *       must arrive, DF, size, options in order) and completes the handshake; throws when the
 *       fingerprint cannot be a SYN (size not 40 + the options, padded to 4 bytes)
 *   conn.reply() -> {code, lines, last}; conn.cmd(line) -> reply; conn.send(text)
 *   conn.close()         our FIN after the server's (QUIT), or a reset when it does not come
 *                        (conn.ending says which)
 *   tun.close()          ends the bridge (the device goes with it)
 *   craftSyn(fp, addresses) -> Buffer     the IPv4 packet alone
 *
 * The TCP is the least a short dialogue needs, done right: in-order data is acknowledged, anything
 * else gets a duplicate ACK; our segments are retransmitted every second until acknowledged (a TUN
 * device loses nothing, so this never happens unless the machine stalls); the timestamp option is
 * sent on every segment when both SYNs carried it (RFC 7323); our window is scaled as our SYN said.
 * Every wait is bounded (10 s by default) and fails with what was received.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { parseFingerprint, type Fingerprint } from 'asmtpd/dist/facts/synfp/fingerprint.js';
import { freeSubnet } from './netns.js';

/** The bridge: creates the TUN device (TUNSETIFF, IFF_TUN | IFF_NO_PI), then copies packets both ways as hex lines. */
const BRIDGE = String.raw`
use strict; use warnings; use IO::Select; use Fcntl;
my ($name) = @ARGV;
$| = 1;
$SIG{PIPE} = sub { exit 0 };
sysopen(my $tun, '/dev/net/tun', O_RDWR) or do { print "E open /dev/net/tun: $!\n"; exit 1 };
ioctl($tun, 0x400454ca, pack('Z16 s x22', $name, 0x0001 | 0x1000)) or do { print "E TUNSETIFF: $!\n"; exit 1 };
print "ready\n";
my $sel = IO::Select->new($tun, \*STDIN);
my $in = '';
for (;;) {
  for my $fh ($sel->can_read) {
    if ($fh == $tun) {
      my $n = sysread($tun, my $buf, 65536);
      exit 1 unless $n;
      print 'P ', unpack('H*', $buf), "\n";
    } else {
      my $n = sysread(STDIN, my $buf, 65536);
      exit 0 unless $n;
      $in .= $buf;
      while ($in =~ s/^([0-9a-f]*)\n//) { syswrite($tun, pack('H*', $1)) }
    }
  }
}
`;

const WAIT_MS = 10_000;
const RETRANSMIT_MS = 1_000;

export function tunUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'a TUN device needs root';
  if (!existsSync('/dev/net/tun')) return 'no /dev/net/tun';
  const perl = spawnSync('perl', ['-e', '1']);
  if (perl.error || perl.status !== 0) return 'perl is not installed';
  return null;
}

function checksum(...parts: Buffer[]): number {
  let sum = 0;
  for (const b of parts) {
    for (let i = 0; i < b.length; i += 2) sum += (b[i]! << 8) + (b[i + 1] ?? 0);
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

const ipBytes = (ip: string): Buffer => Buffer.from(ip.split('.').map(Number));

export interface Addresses {
  src: string;
  dst: string;
  sport: number;
  dport: number;
}

interface Segment {
  seq: number;
  ack: number;
  flags: number;
  window: number;
  options: Buffer;
  data: Buffer;
}

const FIN = 0x01,
  SYN = 0x02,
  RST = 0x04,
  PSH = 0x08,
  ACK = 0x10;

/** One IPv4 packet carrying a TCP segment (DF set, checksums computed). */
function ipv4Packet(a: Addresses, seg: Segment, ttl: number, df: boolean): Buffer {
  if (seg.options.length % 4 !== 0) throw new Error('TCP options must fill whole 32-bit words');
  const tcp = Buffer.alloc(20 + seg.options.length + seg.data.length);
  tcp.writeUInt16BE(a.sport, 0);
  tcp.writeUInt16BE(a.dport, 2);
  tcp.writeUInt32BE(seg.seq >>> 0, 4);
  tcp.writeUInt32BE(seg.ack >>> 0, 8);
  tcp[12] = ((20 + seg.options.length) / 4) << 4;
  tcp[13] = seg.flags;
  tcp.writeUInt16BE(seg.window, 14);
  seg.options.copy(tcp, 20);
  seg.data.copy(tcp, 20 + seg.options.length);
  const pseudo = Buffer.alloc(12);
  ipBytes(a.src).copy(pseudo, 0);
  ipBytes(a.dst).copy(pseudo, 4);
  pseudo[9] = 6;
  pseudo.writeUInt16BE(tcp.length, 10);
  tcp.writeUInt16BE(checksum(pseudo, tcp), 16);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + tcp.length, 2);
  ip.writeUInt16BE(randomInt(1, 0x10000), 4);
  ip.writeUInt16BE(df ? 0x4000 : 0, 6);
  ip[8] = ttl;
  ip[9] = 6;
  ipBytes(a.src).copy(ip, 12);
  ipBytes(a.dst).copy(ip, 16);
  ip.writeUInt16BE(checksum(ip), 10);
  return Buffer.concat([ip, tcp]);
}

/** The TCP options of a fingerprint, in its order, padded after an end of list to whole words. */
function synOptions(fp: Fingerprint, tsval: number): Buffer {
  const bytes: number[] = [];
  for (const o of fp.options) {
    switch (o.kind) {
      case 'M':
        bytes.push(2, 4, o.value >> 8, o.value & 0xff);
        break;
      case 'W':
        bytes.push(3, 3, o.value);
        break;
      case 'S':
        bytes.push(4, 2);
        break;
      case 'T': {
        const v = o.zero ? 0 : tsval;
        bytes.push(8, 10, v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff, 0, 0, 0, 0);
        break;
      }
      case 'N':
        bytes.push(1);
        break;
      case 'E':
        bytes.push(0);
        break;
      default:
        throw new Error(`cannot send option ?${o.code}`);
    }
  }
  const ended = fp.options.at(-1)?.kind === 'E';
  while (ended && bytes.length % 4 !== 0) bytes.push(0);
  return Buffer.from(bytes);
}

/** The SYN that CLIENT_SYNFP will show as `fingerprint` (IPv4). */
export function craftSyn(fingerprint: string, a: Addresses, seq = randomInt(0, 2 ** 32), tsval = 1): Buffer {
  const fp = parseFingerprint(fingerprint);
  if (fp === null) throw new Error(`not a fingerprint: ${fingerprint}`);
  const options = synOptions(fp, tsval);
  if (40 + options.length !== fp.totalLength)
    throw new Error(`${fingerprint}: its options make a ${40 + options.length}-byte IPv4 SYN, not ${fp.totalLength}`);
  return ipv4Packet(
    a,
    { seq, ack: 0, flags: SYN, window: fp.window, options, data: Buffer.alloc(0) },
    fp.ttl,
    fp.df === 1,
  );
}

interface Parsed {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seg: Segment;
}

function parseIpv4Tcp(p: Buffer): Parsed | null {
  if (p.length < 40 || p[0]! >> 4 !== 4 || p[9] !== 6) return null;
  const ihl = (p[0]! & 0x0f) * 4;
  const total = Math.min(p.readUInt16BE(2), p.length);
  const t = p.subarray(ihl, total);
  if (t.length < 20) return null;
  const off = (t[12]! >> 4) * 4;
  return {
    src: [...p.subarray(12, 16)].join('.'),
    dst: [...p.subarray(16, 20)].join('.'),
    sport: t.readUInt16BE(0),
    dport: t.readUInt16BE(2),
    seg: {
      seq: t.readUInt32BE(4),
      ack: t.readUInt32BE(8),
      flags: t[13]!,
      window: t.readUInt16BE(14),
      options: t.subarray(20, off),
      data: t.subarray(off),
    },
  };
}

/** The option of this kind in a segment's options (its bytes after kind and length), or null. */
function optionOf(options: Buffer, want: number): Buffer | null {
  for (let i = 0; i < options.length; ) {
    const kind = options[i]!;
    if (kind === 0) break;
    if (kind === 1) {
      i++;
      continue;
    }
    const len = options[i + 1] ?? 0;
    if (len < 2 || i + len > options.length) break;
    if (kind === want) return options.subarray(i + 2, i + len);
    i += len;
  }
  return null;
}

/** The timestamp option's TSval, or null. */
function tsvalOf(options: Buffer): number | null {
  const ts = optionOf(options, 8);
  return ts?.length === 8 ? ts.readUInt32BE(0) : null;
}

/** seq a is after b (modulo 2^32) */
const after = (a: number, b: number): boolean => ((a - b) | 0) > 0;

export interface Reply {
  code: number;
  lines: string[];
  last: string;
}

export class UserTcp {
  /** every segment the server sent us, in order (for a failure message) */
  readonly received: Segment[] = [];
  /** how close() ended the connection: FINs both ways, or a reset of ours */
  ending: 'fin' | 'reset' | null = null;
  private sndNxt = 0;
  private sndUna = 0;
  private rcvNxt = 0;
  private tsRecent = 0;
  private timestamps = false;
  private readonly tsBase = randomInt(1, 2 ** 31);
  private readonly t0 = Date.now();
  private scale = 0;
  private established = false;
  private inbox = '';
  private peerFin = false;
  private reset = false;
  private waiters: Array<() => void> = [];

  constructor(
    private readonly tun: Tun,
    readonly addresses: Addresses,
    private readonly fp: Fingerprint,
    private readonly fingerprint: string,
  ) {}

  get localPort(): number {
    return this.addresses.sport;
  }

  private tsval(): number {
    return (this.tsBase + (Date.now() - this.t0)) >>> 0;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolve when cond() holds; fail after ms with what was received. */
  private async until(cond: () => boolean, what: string, ms = WAIT_MS, tick?: () => void): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (this.reset) throw new Error(`${what}: the server reset the connection`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `${what}: nothing within ${ms} ms (${this.received.length} segments, data ${JSON.stringify(this.inbox)})`,
        );
      // woken by a segment, or by the retransmission timer (then `tick` resends)
      const timedOut = await new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(true), Math.min(left, RETRANSMIT_MS));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve(false);
        });
      });
      if (timedOut && !cond()) tick?.();
    }
  }

  private write(flags: number, seq: number, data: Buffer = Buffer.alloc(0)): void {
    const options = this.timestamps ? Buffer.alloc(12) : Buffer.alloc(0);
    if (this.timestamps) {
      options[0] = 1;
      options[1] = 1;
      options[2] = 8;
      options[3] = 10;
      options.writeUInt32BE(this.tsval(), 4);
      options.writeUInt32BE(this.tsRecent >>> 0, 8);
    }
    const window = Math.min(0xffff, Math.max(1, 0x40000 >> this.scale));
    this.tun.write(
      ipv4Packet(
        this.addresses,
        { seq, ack: this.rcvNxt, flags, window, options, data },
        this.fp.ttl,
        this.fp.df === 1,
      ),
    );
  }

  /** A segment of this connection from the server. */
  onSegment(seg: Segment): void {
    this.received.push(seg);
    if (seg.flags & RST) {
      this.reset = true;
      this.wake();
      return;
    }
    if (seg.flags & SYN) {
      // the SYN-ACK (again, if our ACK was lost): take its sequence number and options
      if (!(seg.flags & ACK) || seg.ack !== this.sndNxt) return;
      this.rcvNxt = (seg.seq + 1) >>> 0;
      this.sndUna = seg.ack;
      const ts = tsvalOf(seg.options);
      this.timestamps = ts !== null && this.fp.options.some((o) => o.kind === 'T');
      if (ts !== null) this.tsRecent = ts;
      // our window is scaled only when both SYNs carried the option (RFC 7323 §2.2)
      if (optionOf(seg.options, 3) === null) this.scale = 0;
      this.established = true;
      this.write(ACK, this.sndNxt);
      this.wake();
      return;
    }
    if (!this.established) return;
    if (seg.flags & ACK && after(seg.ack, this.sndUna) && !after(seg.ack, this.sndNxt)) this.sndUna = seg.ack;
    const inOrder = seg.seq === this.rcvNxt;
    if (inOrder) {
      const ts = tsvalOf(seg.options);
      if (ts !== null) this.tsRecent = ts;
      if (seg.data.length > 0) {
        this.inbox += seg.data.toString('latin1');
        this.rcvNxt = (this.rcvNxt + seg.data.length) >>> 0;
      }
      if (seg.flags & FIN) {
        this.rcvNxt = (this.rcvNxt + 1) >>> 0;
        this.peerFin = true;
      }
    }
    // acknowledge data and FINs; anything out of order gets a duplicate ACK
    if (seg.data.length > 0 || seg.flags & FIN || !inOrder) this.write(ACK, this.sndNxt);
    this.wake();
  }

  /** Send the SYN and complete the handshake. */
  async open(): Promise<void> {
    const iss = randomInt(0, 2 ** 32);
    const scale = this.fp.options.find((o) => o.kind === 'W');
    this.scale = scale?.kind === 'W' ? scale.value : 0;
    const syn = craftSyn(this.fingerprint, this.addresses, iss, this.tsBase);
    this.sndNxt = this.sndUna = (iss + 1) >>> 0;
    this.tun.write(syn);
    await this.until(
      () => this.established,
      `SYN-ACK from ${this.addresses.dst}:${this.addresses.dport}`,
      WAIT_MS,
      () => this.tun.write(syn),
    );
  }

  /** Send data and wait until it is acknowledged. */
  async send(text: string): Promise<void> {
    const data = Buffer.from(text, 'latin1');
    const seq = this.sndNxt;
    this.sndNxt = (this.sndNxt + data.length) >>> 0;
    this.write(PSH | ACK, seq, data);
    await this.until(
      () => !after(this.sndNxt, this.sndUna),
      `ACK of ${JSON.stringify(text.trim())}`,
      WAIT_MS,
      () => this.write(PSH | ACK, seq, data),
    );
  }

  /** Read one complete (possibly multi-line) SMTP reply. */
  async reply(): Promise<Reply> {
    let found: Reply | null = null;
    const take = (): boolean => {
      const lines: string[] = [];
      let pos = 0;
      for (;;) {
        const nl = this.inbox.indexOf('\r\n', pos);
        if (nl < 0) return false;
        const line = this.inbox.slice(pos, nl);
        lines.push(line);
        pos = nl + 2;
        if (!/^\d{3}-/.test(line)) {
          this.inbox = this.inbox.slice(pos);
          found = { code: Number(line.slice(0, 3)), lines, last: line };
          return true;
        }
      }
    };
    await this.until(() => take() || this.peerFin, 'an SMTP reply');
    if (found === null) throw new Error(`connection closed; data ${JSON.stringify(this.inbox)}`);
    return found;
  }

  async cmd(line: string): Promise<Reply> {
    await this.send(`${line}\r\n`);
    return this.reply();
  }

  /** After QUIT: wait for the server's FIN, send ours and wait for its ACK; a reset when it does not come. */
  async close(): Promise<void> {
    try {
      await this.until(() => this.peerFin, 'the server closing', 5_000);
      const seq = this.sndNxt;
      this.sndNxt = (this.sndNxt + 1) >>> 0;
      this.write(FIN | ACK, seq);
      await this.until(
        () => !after(this.sndNxt, this.sndUna),
        'ACK of our FIN',
        5_000,
        () => this.write(FIN | ACK, seq),
      );
      this.ending = 'fin';
    } catch {
      if (!this.reset) this.write(RST | ACK, this.sndNxt);
      this.ending = 'reset';
    }
    this.tun.forget(this);
  }
}

export interface Tun {
  readonly name: string;
  /** our address on the device: the daemon listens here */
  readonly local: string;
  /** a client address behind the device: 198.18.x.n (2-254) */
  peer(n: number): string;
  connect(o: { src: string; dst: string; dport: number; fingerprint: string; sport?: number }): Promise<UserTcp>;
  write(packet: Buffer): void;
  forget(conn: UserTcp): void;
  close(): Promise<void>;
}

let tunCounter = 0;

export async function openTun(): Promise<Tun> {
  const name = `astun${process.pid.toString(36)}${(tunCounter++).toString(36)}`.slice(0, 15);
  const subnet = freeSubnet();
  const prefix = `198.${18 + (subnet >> 8)}.${subnet & 0xff}`;
  const bridge: ChildProcess = spawn('perl', ['-e', BRIDGE, name], { stdio: ['pipe', 'pipe', 'inherit'] });
  const conns = new Map<string, UserTcp>();
  let exited = false;
  const gone = new Promise<void>((resolve) => bridge.on('exit', () => ((exited = true), resolve())));
  let partial = '';
  let onReady: (err?: Error) => void = () => {};
  const ready = new Promise<void>((resolve, reject) => (onReady = (err) => (err ? reject(err) : resolve())));
  bridge.stdout!.on('data', (d: Buffer) => {
    partial += d.toString('latin1');
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      if (line === 'ready') onReady();
      else if (line.startsWith('E ')) onReady(new Error(`TUN bridge: ${line.slice(2)}`));
      else if (line.startsWith('P ')) {
        const p = parseIpv4Tcp(Buffer.from(line.slice(2), 'hex'));
        if (p) conns.get(`${p.dst}:${p.dport}:${p.src}:${p.sport}`)?.onSegment(p.seg);
      }
    }
  });
  void gone.then(() => onReady(new Error('TUN bridge exited')));
  await ready;
  const ip = (args: string[]): void => {
    const r = spawnSync('ip', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
  };
  try {
    ip(['addr', 'add', `${prefix}.1/24`, 'dev', name]);
    ip(['link', 'set', name, 'up']);
  } catch (err) {
    bridge.stdin!.end();
    throw err;
  }
  const tun: Tun = {
    name,
    local: `${prefix}.1`,
    peer: (n) => `${prefix}.${n}`,
    async connect(o) {
      const fp = parseFingerprint(o.fingerprint);
      if (fp === null) throw new Error(`not a fingerprint: ${o.fingerprint}`);
      const a: Addresses = { src: o.src, dst: o.dst, sport: o.sport ?? randomInt(20000, 60000), dport: o.dport };
      const conn = new UserTcp(tun, a, fp, o.fingerprint);
      conns.set(`${a.src}:${a.sport}:${a.dst}:${a.dport}`, conn);
      await conn.open();
      return conn;
    },
    write(packet) {
      if (!exited) bridge.stdin!.write(packet.toString('hex') + '\n');
    },
    forget(conn) {
      const a = conn.addresses;
      conns.delete(`${a.src}:${a.sport}:${a.dst}:${a.dport}`);
    },
    async close() {
      bridge.stdin!.end();
      await gone;
    },
  };
  return tun;
}
