/**
 * `asmtpd --synfp [-f FILE] [PORT [IP [IFACE…]]]` (issue 6): one line per SYN to PORT,
 * `SOURCE FINGERPRINT OS distance N`, with the OS from the configuration's SynFPDB; IP keeps SYNs
 * to that address only; IFACE captures on those interfaces only (a veth into a namespace here,
 * IPv4 and IPv6); SIGINT ends it with 0; without CAP_NET_RAW it exits 2 and says why.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ASMTPD_BIN } from '../support/daemon.js';
import { freePort } from '../support/ports.js';
import {
  createNetLab,
  linuxSynFingerprint,
  netnsUnavailable,
  readLinuxStack,
  type Link,
  type NetLab,
} from '../support/netns.js';

const unavailable = netnsUnavailable();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

let dir: string;
let conf: string;
let lab: NetLab;
let nsName: string;
let link: Link;
let port: number;
let server: Server;
const FP4 = unavailable ? '' : linuxSynFingerprint(readLinuxStack(null, 4, 'lo'));

before(async () => {
  if (unavailable) return;
  dir = mkdtempSync(join(tmpdir(), 'asmtpd-synfp-'));
  const db = join(dir, 'pf.os');
  writeFileSync(db, `${FP4}:Linux:lo:fixture:Loopback fixture\n`);
  conf = join(dir, 'asmtpd.conf');
  writeFileSync(conf, `SynFPDB ${db}\n`);
  lab = createNetLab();
  nsName = lab.namespace('cli');
  link = lab.link(null, nsName);
  port = await freePort();
  server = createServer((s) => s.destroy());
  await new Promise<void>((resolve) => server.listen(port, '::', resolve));
});

after(async () => {
  if (unavailable) return;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  lab.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<number | null>;
}

/** Starts --synfp; resolves once it says it captures. */
async function synfp(args: string[], prefix: string[] = []): Promise<Run> {
  const argv = [...prefix, process.execPath, ASMTPD_BIN, '--synfp', '-f', conf, ...args];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '',
    err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (/capturing TCP SYNs/.test(err)) resolve();
    });
    void exited.then((code) => reject(new Error(`--synfp exited ${code}: ${err}`)));
  });
  return { child, out: () => out, err: () => err, exited };
}

function connectFrom(host: string, localAddress?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, ...(localAddress ? { localAddress } : {}) }, () => {
      const local = s.localPort!;
      s.destroy();
      resolve(local);
    });
    s.on('error', reject);
  });
}

async function waitLines(run: Run, n: number, ms = 5000): Promise<string[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const lines = run
      .out()
      .split('\n')
      .filter((l) => l !== '');
    if (lines.length >= n || Date.now() > deadline) return lines;
    await new Promise((r) => setTimeout(r, 50));
  }
}

test(
  'one line per SYN: source, CLIENT_SYNFP, OS from SynFPDB, distance; IP filters the destination',
  { skip },
  async () => {
    const run = await synfp([String(port), '127.0.0.1']);
    const p4 = await connectFrom('127.0.0.1');
    await connectFrom('::1'); // to ::1: not printed
    const lines = await waitLines(run, 1);
    await new Promise((r) => setTimeout(r, 200));
    run.child.kill('SIGINT');
    assert.equal(await run.exited, 0);
    assert.deepEqual(
      run
        .out()
        .split('\n')
        .filter((l) => l !== ''),
      [`127.0.0.1:${p4} ${FP4} Loopback fixture distance 0`],
      run.err(),
    );
    assert.equal(lines.length, 1);
  },
);

test(
  'IFACE: only SYNs that came in on that interface; IPv6 sources in brackets; no match → unknown',
  { skip },
  async () => {
    const run = await synfp([String(port), 'any', link.aDev]);
    await connectFrom('127.0.0.1'); // on lo: not printed
    const v4 = await lab.run(nsName, [
      process.execPath,
      '-e',
      `const s=require('net').connect(${port},'${link.v4.a}',()=>{console.log(s.localPort);s.destroy()})`,
    ]);
    const v6 = await lab.run(nsName, [
      process.execPath,
      '-e',
      `const s=require('net').connect(${port},'${link.v6.a}',()=>{console.log(s.localPort);s.destroy()})`,
    ]);
    const lines = await waitLines(run, 2);
    run.child.kill('SIGTERM');
    assert.equal(await run.exited, 0);
    const fp4 = linuxSynFingerprint(readLinuxStack(nsName, 4, link.bDev));
    const fp6 = linuxSynFingerprint(readLinuxStack(nsName, 6, link.bDev));
    assert.deepEqual(
      lines.sort(),
      [
        `${link.v4.b}:${v4.out.trim()} ${fp4} unknown distance 0`,
        `[${link.v6.b}]:${v6.out.trim()} ${fp6} unknown distance 0`,
      ].sort(),
      run.err(),
    );
  },
);

test('without CAP_NET_RAW: exit 2 and a clear message', { skip }, () => {
  const r = spawnSync(
    'setpriv',
    [
      '--bounding-set',
      '-net_raw',
      '--inh-caps',
      '-all',
      '--',
      process.execPath,
      ASMTPD_BIN,
      '--synfp',
      '-f',
      conf,
      String(port),
    ],
    { encoding: 'utf8' },
  );
  if (r.error) return; // no setpriv: nothing to check with
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--synfp needs CAP_NET_RAW/);
  assert.equal(r.stdout, '');
});

test('bad usage: exit 2', { skip }, () => {
  for (const args of [['70000'], ['25', 'not-an-ip'], ['25', 'any', 'bad/iface']]) {
    const r = spawnSync(process.execPath, [ASMTPD_BIN, '--synfp', ...args], { encoding: 'utf8' });
    assert.equal(r.status, 2, args.join(' '));
    assert.match(r.stderr, /--synfp/);
  }
});
