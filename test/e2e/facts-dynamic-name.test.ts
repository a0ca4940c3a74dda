/**
 * Dynamic-looking client names end to end (issue 19): CLIENT_DYNAMIC as a script sees it, the
 * `dynamic` X-Avenger token on a relayed message, and DynamicNameReject yes deferring such a
 * client as the system default (451 4.7.1) — only when no script decided.
 *
 * The loopback DNS server gives PTR and A records for three 127.0.0.x clients:
 *   .70 dsl-127-0-0-70.dyn.example.test, confirmed   dynamic
 *   .71 mail71.example.test, confirmed               static (a number, not the address)
 *   .72 dsl-127-0-0-72.dyn.example.test, its A elsewhere: not confirmed, so not dynamic
 * Scripts of one test user, by extension: `pa` records its environment and decides nothing
 * (provisional: the system default applies); `ok` records it and accepts. Needs root (test accounts).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, chmodSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startDnsServer, reverseName, type DnsServer } from '../support/dns-server.js';
import { startSink, type Sink } from '../support/sink.js';
import { SmtpClient } from '../support/smtp-client.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';
import { dialogue, readEnv } from '../support/facts.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

const DYNAMIC = '127.0.0.70';
const STATIC = '127.0.0.71';
const UNCONFIRMED = '127.0.0.72';
const DEFER =
  "451 4.7.1 client host name dsl-127-0-0-70.dyn.example.test looks dynamic: send through your provider's mail server";

let u: TestUser;
let etc: string;
let dns: DnsServer;
let sink: Sink;
let plain: Daemon;
let rejecting: Daemon;

before(async () => {
  if (unavailable) return;
  u = createUser('dyn');
  writeScript(u, 'rcpt+pa+default', 'env -0 > "$HOME/env.$EXTENSION"');
  writeScript(u, 'rcpt+ok+default', 'env -0 > "$HOME/env.$EXTENSION"; accept');
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-etc-'));
  chmodSync(etc, 0o755);
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, passwdLine(u));
  chmodSync(passwd, 0o644);
  sink = await startSink();
  dns = await startDnsServer({
    doh: false,
    records: {
      [reverseName(DYNAMIC)]: [{ type: 'PTR', domain: 'dsl-127-0-0-70.dyn.example.test' }],
      'dsl-127-0-0-70.dyn.example.test': [{ type: 'A', address: DYNAMIC }],
      [reverseName(STATIC)]: [{ type: 'PTR', domain: 'mail71.example.test' }],
      'mail71.example.test': [{ type: 'A', address: STATIC }],
      [reverseName(UNCONFIRMED)]: [{ type: 'PTR', domain: 'dsl-127-0-0-72.dyn.example.test' }],
      'dsl-127-0-0-72.dyn.example.test': [{ type: 'A', address: '192.0.2.72' }],
    },
  });
  const common = [
    'LocalDomain a.example',
    `PasswdFile ${passwd}`,
    'Separator +',
    'RelayNet 192.0.2.0/24',
    `RelayHost 127.0.0.1:${sink.port}`,
    'DNSResolver system',
    `DNSServer 127.0.0.1:${dns.udp.port}`,
    'DNSTimeout 1s',
    'AllowDNSFailures yes',
  ];
  [plain, rejecting] = await Promise.all([
    startDaemon({ etcDir: etc, conf: common.join('\n') }),
    startDaemon({ etcDir: etc, conf: [...common, 'DynamicNameReject yes'].join('\n') }),
  ]);
});

after(async () => {
  if (unavailable) return;
  for (const d of [plain, rejecting]) await d?.stop();
  await dns?.close();
  await sink?.close();
  if (u) removeUser(u);
  if (etc) rmSync(etc, { recursive: true, force: true });
});

let seq = 0;

async function rcpt(
  d: Daemon,
  script: 'pa' | 'ok',
  ip: string,
): Promise<{ reply: string; env: Record<string, string> }> {
  const tag = `t${++seq}`;
  const r = await dialogue(d.port, { local: ip, from: 's@remote.example', to: `${u.name}+${script}+${tag}@a.example` });
  return { reply: r.rcpt, env: readEnv(u.home, `${script}+${tag}`) };
}

test('CLIENT_DYNAMIC: set for the dynamic confirmed name only', { skip }, async () => {
  const dyn = await rcpt(plain, 'ok', DYNAMIC);
  assert.equal(dyn.env.CLIENT_NAME, 'dsl-127-0-0-70.dyn.example.test');
  assert.equal(dyn.env.CLIENT_DYNAMIC, '1');
  assert.equal(dyn.env.MAIL_ERROR, undefined, 'DynamicNameReject no: a fact, no system default');
  const stat = await rcpt(plain, 'ok', STATIC);
  assert.equal(stat.env.CLIENT_NAME, 'mail71.example.test');
  assert.equal(stat.env.CLIENT_DYNAMIC, undefined);
  const unconfirmed = await rcpt(plain, 'ok', UNCONFIRMED);
  assert.equal(unconfirmed.env.CLIENT_PTR, 'dsl-127-0-0-72.dyn.example.test');
  assert.equal(unconfirmed.env.CLIENT_NAME, undefined);
  assert.equal(unconfirmed.env.CLIENT_DYNAMIC, undefined, 'only a confirmed name counts');
});

async function xAvenger(ip: string): Promise<string> {
  const before = sink.messages.length;
  const c = await SmtpClient.connect(plain.port, '127.0.0.1', ip);
  await c.greeting();
  const r = await c.send('s@remote.example', [`${u.name}+pa+x${++seq}@a.example`], 'Subject: dyn\r\n\r\nbody\r\n');
  c.close();
  assert.match(r.last, /^250 2\.0\.0 Ok: queued as /);
  assert.equal(sink.messages.length, before + 1);
  const text = sink.messages.at(-1)!.data.toString('latin1');
  const m = /^X-Avenger: (.*(?:\r\n[ \t].*)*)/m.exec(text);
  return (m?.[1] ?? '').replace(/\r\n[ \t]/g, ' ');
}

test('X-Avenger: the `dynamic` token after client-dns, absent for a static name', { skip }, async () => {
  assert.match(await xAvenger(DYNAMIC), /; client-dns=dsl-127-0-0-70\.dyn\.example\.test; dynamic(;|$)/);
  const stat = await xAvenger(STATIC);
  assert.match(stat, /; client-dns=mail71\.example\.test(;|$)/);
  assert.doesNotMatch(stat, /dynamic/);
});

test(
  'DynamicNameReject yes: the system default defers a dynamic name, a script that decides wins',
  { skip },
  async () => {
    const deferred = await rcpt(rejecting, 'pa', DYNAMIC);
    assert.equal(deferred.reply, DEFER);
    assert.equal(deferred.env.MAIL_ERROR, DEFER, 'scripts see it as MAIL_ERROR');
    assert.equal(deferred.env.CLIENT_DYNAMIC, '1');
    const accepted = await rcpt(rejecting, 'ok', DYNAMIC);
    assert.match(accepted.reply, /^250 /, "a script's accept is not overridden");
    assert.match((await rcpt(rejecting, 'pa', STATIC)).reply, /^250 /);
    assert.match((await rcpt(rejecting, 'pa', UNCONFIRMED)).reply, /^250 /);
  },
);
