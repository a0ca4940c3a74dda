/**
 * Protocol abuse end to end (issue 6, spec §4 "pipelining abuse" and "HTTP proxy abuse"): an early
 * talker (bytes before the banner, GreetingDelay), pipelining that was not offered (after HELO,
 * or before the EHLO reply), and HTTP request lines as commands, each seen by a raw socket client;
 * and none of them for well-behaved clients (a raw one, RFC 2920 pipelining after EHLO, nodemailer,
 * swaks with and without --pipeline).
 *
 * An HTTP request line gets 502 5.7.0 (a bad command) and the session goes on: a client that goes
 * on with SMTP reaches a policy that sees CLIENT_POST=1, and its message carries `post`; a proxied
 * request (request line, header lines, blank line, body) is a run of bad commands, cut by
 * MaxErrors with 421 before its body is read as commands.
 *
 * What a session's abuse is, is read three ways: the rcpt script's environment (its accept text
 * shows CLIENT_PIPELINING and CLIENT_POST, and it records its whole environment per client
 * port), the X-Avenger field of the relayed message (the sink is RelayHost), and the
 * session.abuse log lines of the session (found by the client's port in session.connect).
 * Daemons: `slow` (GreetingDelay 1s), `prompt` (GreetingDelay 0, the default) and `strict`
 * (GreetingDelay 0, MaxErrors 5).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { startDaemon, type Daemon, type LogLine } from '../support/daemon.js';
import { startSink, type Sink } from '../support/sink.js';
import { SmtpClient, type SmtpReply } from '../support/smtp-client.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';
import { readEnv } from '../support/facts.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;
const run = promisify(execFile);

let u: TestUser;
let etc: string;
let sink: Sink;
let slow: Daemon;
let prompt: Daemon;
let strict: Daemon;
let rcpt: string;

const FROM = 's@remote.example';
const MESSAGE = 'Subject: abuse\r\n\r\nbody\r\n';
const HTTP_REPLY = '502 5.7.0 HTTP requests are not accepted: this is an SMTP server';
/** smtp-server's answer to a line that is no SMTP command (an HTTP header line, a blank line) */
const UNKNOWN = /^500 5\.5\.2 Error: command not recognized$/;
const TOO_MANY_ERRORS = '421 4.7.0 too many errors, closing connection';
const CLEAN = 'pipelining=unset post=unset';

before(async () => {
  if (unavailable) return;
  u = createUser('abuse');
  rcpt = `${u.name}@a.example`;
  writeScript(
    u,
    'rcpt',
    'env -0 > "$HOME/env.$CLIENT_PORT"\naccept "pipelining=${CLIENT_PIPELINING-unset} post=${CLIENT_POST-unset}"',
  );
  writeScript(u, 'rcpt+slow', 'sleep 1; accept slow');
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-etc-'));
  chmodSync(etc, 0o755);
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, passwdLine(u));
  chmodSync(passwd, 0o644);
  sink = await startSink();
  const common = [
    'LocalDomain a.example',
    `PasswdFile ${passwd}`,
    'Separator +',
    'RelayNet 192.0.2.0/24',
    `RelayHost 127.0.0.1:${sink.port}`,
  ];
  [slow, prompt, strict] = await Promise.all([
    startDaemon({ etcDir: etc, conf: [...common, 'GreetingDelay 1s'].join('\n') }),
    startDaemon({ etcDir: etc, conf: common.join('\n') }),
    startDaemon({ etcDir: etc, conf: [...common, 'MaxErrors 5'].join('\n') }),
  ]);
});

after(async () => {
  await slow?.stop();
  await prompt?.stop();
  await strict?.stop();
  await sink?.close();
  if (u) removeUser(u);
  if (etc) rmSync(etc, { recursive: true, force: true });
});

/**
 * Where a test starts in the daemon's log and in the sink: client ports are reused (loopback
 * allows TIME_WAIT reuse), so a port identifies a session only among what came after the mark.
 * Every test waits for the session.end of its sessions, so an older session's lines are all in.
 */
interface Mark {
  d: Daemon;
  logs: number;
  sink: number;
}
function mark(d: Daemon): Mark {
  return { d, logs: d.logs.length, sink: sink.messages.length };
}

/** The session.abuse lines of the session from `port` (waits for its session.end, so all are in). */
async function abuseOf(m: Mark, port: number): Promise<Array<Record<string, unknown>>> {
  const connect = await m.d.waitLog(
    (x) => x.event === 'session.connect' && x.port === port && m.d.logs.indexOf(x) >= m.logs,
  );
  const sid = connect.sid as string;
  assert.equal(m.d.logs.filter((x, i) => i >= m.logs && x.event === 'session.connect' && x.port === port).length, 1);
  await m.d.waitLog((x) => x.event === 'session.end' && x.sid === sid);
  return m.d.logs.filter((x) => x.event === 'session.abuse' && x.sid === sid).map(strip);
}
/** A session.abuse line without ts, sid, level (info) and event: kind and its details. */
function strip(l: LogLine): Record<string, unknown> {
  assert.equal(l.level, 'info');
  const rest: Record<string, unknown> = { ...l };
  for (const k of ['ts', 'sid', 'level', 'event']) delete rest[k];
  return rest;
}

/** The X-Avenger items about abuse (pipelining=…, post) of the message relayed from `port`. */
function xAvengerAbuse(m: Mark, port: number): string[] {
  const hits = sink.messages
    .slice(m.sink)
    .map((msg) => msg.data.toString('latin1'))
    .map((text) => /^X-Avenger: ([^\r]*(?:\r\n[ \t][^\r]*)*)\r\n/m.exec(text)?.[1]?.replace(/\r\n[ \t]/g, ' ') ?? '')
    .filter((x) => x.includes(`client-port=${port};`));
  assert.equal(hits.length, 1, `one relayed message from port ${port}`);
  return hits[0]!.split(/;\s*/).filter((t) => t === 'post' || t.startsWith('pipelining='));
}

/** The client port of the one message relayed since the mark (nodemailer, swaks). */
function relayedFrom(m: Mark): number {
  assert.equal(sink.messages.length, m.sink + 1);
  return Number(/client-port=(\d+);/.exec(sink.messages.at(-1)!.data.toString('latin1'))![1]);
}

/** The abuse variables in the environment the rcpt script saw for the client at `port`. */
function envAbuse(port: number): Record<string, string> {
  const env = readEnv(u.home, String(port));
  rmSync(join(u.home, `env.${port}`)); // the port may come again
  assert.equal(env.CLIENT_PORT, String(port));
  const out: Record<string, string> = {};
  for (const k of ['CLIENT_PIPELINING', 'CLIENT_POST']) if (k in env) out[k] = env[k]!;
  return out;
}

/** Log sample of client bytes, as abuse.ts writes it. */
function sample(s: string): string {
  return s.length > 64 ? s.slice(0, 64).replace(/\r\n/g, '\\r\\n') + '...' : s.replace(/\r\n/g, '\\r\\n');
}

/** MAIL, RCPT (its reply returned), DATA, message; the message must be relayed. */
async function transaction(c: SmtpClient): Promise<SmtpReply> {
  assert.equal((await c.cmd(`MAIL FROM:<${FROM}>`)).last, '250 2.1.0 sender ok');
  const r = await c.cmd(`RCPT TO:<${rcpt}>`);
  await finishMessage(c);
  return r;
}
async function finishMessage(c: SmtpClient): Promise<void> {
  assert.equal((await c.cmd('DATA')).code, 354);
  c.write(MESSAGE + '.\r\n');
  assert.match((await c.reply(30_000)).last, /^250 2\.0\.0 Ok: queued as /);
}

test(
  'early talker: EHLO before the banner (GreetingDelay 1s) is answered after it; CLIENT_PIPELINING=pre-greeting',
  { skip },
  async () => {
    const t0 = Date.now();
    const m = mark(slow);
    const c = await SmtpClient.connect(slow.port);
    const port = c.socket.localPort!;
    c.write('EHLO early.example\r\n');
    assert.equal((await c.greeting()).last, '220 mx.example.test ESMTP asmtpd');
    assert.ok(Date.now() - t0 >= 950, `the banner waited for GreetingDelay (${Date.now() - t0} ms)`);
    const ehlo = await c.reply();
    assert.equal(ehlo.code, 250, 'the early EHLO is answered after the banner');
    assert.ok(ehlo.lines.includes('250-PIPELINING'));
    const r = await transaction(c);
    await c.cmd('QUIT');
    c.close();
    assert.equal(r.last, '250 2.1.5 pipelining=pre-greeting post=unset');
    assert.deepEqual(envAbuse(port), { CLIENT_PIPELINING: 'pre-greeting' });
    assert.deepEqual(xAvengerAbuse(m, port), ['pipelining=pre-greeting']);
    assert.deepEqual(await abuseOf(m, port), [{ kind: 'pre-greeting', bytes: 20, sample: 'EHLO early.example\\r\\n' }]);
  },
);

test('control: a client that waits for the banner of the same daemon is not an early talker', { skip }, async () => {
  const m = mark(slow);
  const c = await SmtpClient.connect(slow.port);
  const port = c.socket.localPort!;
  await c.greeting();
  await c.cmd('EHLO patient.example');
  const r = await transaction(c);
  await c.cmd('QUIT');
  c.close();
  assert.equal(r.last, `250 2.1.5 ${CLEAN}`);
  assert.deepEqual(envAbuse(port), {});
  assert.deepEqual(xAvengerAbuse(m, port), []);
  assert.deepEqual(await abuseOf(m, port), []);
});

test(
  'GreetingDelay 0: no window, bytes sent at connect come after the banner and are not flagged',
  { skip },
  async () => {
    const m = mark(prompt);
    const c = await SmtpClient.connect(prompt.port);
    const port = c.socket.localPort!;
    c.write('EHLO eager.example\r\n');
    assert.equal((await c.greeting()).last, '220 mx.example.test ESMTP asmtpd');
    assert.equal((await c.reply()).code, 250);
    const r = await transaction(c);
    c.close();
    assert.equal(r.last, `250 2.1.5 ${CLEAN}`);
    assert.deepEqual(xAvengerAbuse(m, port), []);
    assert.deepEqual(await abuseOf(m, port), []);
  },
);

test(
  'an HTTP client that talks first: pre-greeting and post; 502 after the banner, its header lines 500; then SMTP: both facts reach the script and X-Avenger',
  { skip },
  async () => {
    const m = mark(slow);
    const c = await SmtpClient.connect(slow.port);
    const port = c.socket.localPort!;
    c.write('GET / HTTP/1.1\r\nHost: mx.example.test\r\n\r\n');
    assert.equal((await c.greeting()).last, '220 mx.example.test ESMTP asmtpd');
    assert.equal((await c.reply()).last, HTTP_REPLY);
    assert.match((await c.reply()).last, UNKNOWN, 'Host: is a bad command');
    assert.match((await c.reply()).last, UNKNOWN, 'the blank line is a bad command');
    // three bad commands, under MaxErrors (10): the session goes on
    assert.equal((await c.cmd('EHLO client.example')).code, 250);
    const r = await transaction(c);
    await c.cmd('QUIT');
    c.close();
    assert.equal(r.last, '250 2.1.5 pipelining=pre-greeting post=1');
    assert.deepEqual(envAbuse(port), { CLIENT_PIPELINING: 'pre-greeting', CLIENT_POST: '1' });
    assert.deepEqual(xAvengerAbuse(m, port), ['pipelining=pre-greeting', 'post']);
    assert.deepEqual(await abuseOf(m, port), [
      { kind: 'pre-greeting', bytes: 41, sample: 'GET / HTTP/1.1\\r\\nHost: mx.example.test\\r\\n\\r\\n' },
      { kind: 'post', command: 'GET / HTTP/1.1' },
    ]);
  },
);

test('unadvertised: after HELO, MAIL and RCPT in one write', { skip }, async () => {
  const m = mark(prompt);
  const c = await SmtpClient.connect(prompt.port);
  const port = c.socket.localPort!;
  await c.greeting();
  assert.equal((await c.cmd('HELO client.example')).code, 250);
  const segment = `MAIL FROM:<${FROM}>\r\nRCPT TO:<${rcpt}>\r\n`;
  c.write(segment);
  assert.equal((await c.reply()).last, '250 2.1.0 sender ok');
  assert.equal((await c.reply()).last, '250 2.1.5 pipelining=unadvertised post=unset');
  await finishMessage(c);
  c.close();
  assert.deepEqual(envAbuse(port), { CLIENT_PIPELINING: 'unadvertised' });
  assert.deepEqual(xAvengerAbuse(m, port), ['pipelining=unadvertised']);
  assert.deepEqual(await abuseOf(m, port), [{ kind: 'unadvertised', after: 'MAIL', sample: sample(segment) }]);
});

test('unadvertised: after HELO, a second RCPT sent while the first is still unanswered', { skip }, async () => {
  const m = mark(prompt);
  const c = await SmtpClient.connect(prompt.port);
  const port = c.socket.localPort!;
  await c.greeting();
  await c.cmd('HELO client.example');
  assert.equal((await c.cmd(`MAIL FROM:<${FROM}>`)).code, 250);
  c.write(`RCPT TO:<${u.name}+slow@a.example>\r\n`); // its script sleeps 1 s
  await new Promise((r) => setTimeout(r, 300));
  c.write(`RCPT TO:<${rcpt}>\r\n`);
  assert.equal((await c.reply()).last, '250 2.1.5 slow');
  assert.equal((await c.reply()).last, '250 2.1.5 pipelining=unadvertised post=unset');
  await finishMessage(c);
  c.close();
  assert.deepEqual(xAvengerAbuse(m, port), ['pipelining=unadvertised']);
  const lines = await abuseOf(m, port);
  assert.equal(lines.length, 1);
  assert.equal(lines[0]!.kind, 'unadvertised');
  assert.equal(lines[0]!.after, 'RCPT');
  assert.ok(String(lines[0]!.sample).endsWith(`RCPT TO:<${rcpt}>\\r\\n`), String(lines[0]!.sample));
});

test('unadvertised: EHLO and MAIL in one write (pipelining before the EHLO reply offered it)', { skip }, async () => {
  const m = mark(prompt);
  const c = await SmtpClient.connect(prompt.port);
  const port = c.socket.localPort!;
  await c.greeting();
  const segment = `EHLO client.example\r\nMAIL FROM:<${FROM}>\r\n`;
  c.write(segment);
  assert.ok((await c.reply()).lines.includes('250-PIPELINING'));
  assert.equal((await c.reply()).last, '250 2.1.0 sender ok');
  const r = await c.cmd(`RCPT TO:<${rcpt}>`);
  assert.equal(r.last, '250 2.1.5 pipelining=unadvertised post=unset');
  await finishMessage(c);
  c.close();
  assert.deepEqual(envAbuse(port), { CLIENT_PIPELINING: 'unadvertised' });
  assert.deepEqual(xAvengerAbuse(m, port), ['pipelining=unadvertised']);
  assert.deepEqual(await abuseOf(m, port), [{ kind: 'unadvertised', after: 'EHLO', sample: sample(segment) }]);
});

test('unadvertised: after HELO, QUIT in the same write as the end of the message', { skip }, async () => {
  const m = mark(prompt);
  const c = await SmtpClient.connect(prompt.port);
  const port = c.socket.localPort!;
  await c.greeting();
  await c.cmd('HELO client.example');
  assert.equal((await c.cmd(`MAIL FROM:<${FROM}>`)).code, 250);
  assert.equal((await c.cmd(`RCPT TO:<${rcpt}>`)).last, `250 2.1.5 ${CLEAN}`);
  assert.equal((await c.cmd('DATA')).code, 354);
  c.write(MESSAGE + '.\r\nQUIT\r\n');
  assert.match((await c.reply(30_000)).last, /^250 2\.0\.0 Ok: queued as /);
  assert.equal((await c.reply()).code, 221);
  c.close();
  assert.deepEqual(
    xAvengerAbuse(m, port),
    ['pipelining=unadvertised'],
    'the X-Avenger field is made after the end of the message',
  );
  assert.deepEqual(await abuseOf(m, port), [{ kind: 'unadvertised', after: '.', sample: 'QUIT\\r\\n' }]);
});

test(
  'RFC 2920: MAIL, RCPT, DATA in one write after the EHLO reply, then the message and QUIT: not flagged',
  { skip },
  async () => {
    const m = mark(prompt);
    const c = await SmtpClient.connect(prompt.port);
    const port = c.socket.localPort!;
    await c.greeting();
    assert.ok((await c.cmd('EHLO client.example')).lines.includes('250-PIPELINING'));
    c.write(`MAIL FROM:<${FROM}>\r\nRCPT TO:<${rcpt}>\r\nDATA\r\n`);
    assert.equal((await c.reply()).last, '250 2.1.0 sender ok');
    assert.equal((await c.reply()).last, `250 2.1.5 ${CLEAN}`);
    assert.equal((await c.reply()).code, 354);
    c.write(MESSAGE + '.\r\nQUIT\r\n');
    assert.match((await c.reply(30_000)).last, /^250 2\.0\.0 Ok: queued as /);
    assert.equal((await c.reply()).code, 221);
    c.close();
    assert.deepEqual(envAbuse(port), {});
    assert.deepEqual(xAvengerAbuse(m, port), []);
    assert.deepEqual(await abuseOf(m, port), []);
  },
);

/**
 * A proxied request: the request line, header lines, a blank line, then a body that is an SMTP
 * dialogue (what an open-proxy abuser relays); `CONNECT` sends its SMTP after the blank line too.
 */
function proxiedRequest(line: string): string {
  const body = [
    `HELO proxy.example`,
    `MAIL FROM:<${FROM}>`,
    `RCPT TO:<${rcpt}>`,
    'DATA',
    'Subject: proxied',
    '',
    'body',
    '.',
    'QUIT',
    '',
  ].join('\r\n');
  return `${line}\r\nHost: mx.example.test\r\nUser-Agent: probe/1.0\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
}

for (const line of [
  'POST / HTTP/1.1',
  'get http://www.example.org/ HTTP/1.0',
  'CONNECT mx.example.test:25 HTTP/1.1',
  'HEAD / HTTP/1.0',
]) {
  test(
    `a proxied request: ${line} -> 502 5.7.0, its header lines and blank line 500, 421 at MaxErrors (5); its body never runs`,
    { skip },
    async () => {
      const m = mark(strict);
      const c = await SmtpClient.connect(strict.port);
      const port = c.socket.localPort!;
      await c.greeting();
      c.write(proxiedRequest(line));
      assert.equal((await c.reply()).last, HTTP_REPLY);
      for (const what of ['Host:', 'User-Agent:', 'Content-Length:', 'the blank line'])
        assert.match((await c.reply()).last, UNKNOWN, what);
      assert.equal((await c.reply()).last, TOO_MANY_ERRORS);
      // nothing else: the body's SMTP commands are not answered
      await assert.rejects(c.reply(5000), /^Error: connection closed; buffered: ""$/);
      assert.deepEqual(await abuseOf(m, port), [{ kind: 'post', command: line }]);
      assert.equal(sink.messages.length, m.sink, 'nothing was relayed');
      assert.equal(existsSync(join(u.home, `env.${port}`)), false, 'no policy ran');
    },
  );
}

test(
  'an HTTP verb after EHLO: 502, the session goes on; the RCPT script sees CLIENT_POST=1, X-Avenger carries post',
  { skip },
  async () => {
    const m = mark(prompt);
    const c = await SmtpClient.connect(prompt.port);
    const port = c.socket.localPort!;
    await c.greeting();
    await c.cmd('EHLO client.example');
    assert.equal((await c.cmd('POST /cgi-bin/mail HTTP/1.0')).last, HTTP_REPLY);
    const r = await transaction(c);
    await c.cmd('QUIT');
    c.close();
    assert.equal(r.last, '250 2.1.5 pipelining=unset post=1');
    assert.deepEqual(envAbuse(port), { CLIENT_POST: '1' });
    assert.deepEqual(xAvengerAbuse(m, port), ['post']);
    assert.deepEqual(await abuseOf(m, port), [{ kind: 'post', command: 'POST /cgi-bin/mail HTTP/1.0' }]);
  },
);

test('nodemailer (RFC 2920 pipelining after EHLO): nothing flagged', { skip }, async () => {
  for (const d of [prompt, slow]) {
    const m = mark(d);
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: d.port,
      secure: false,
      ignoreTLS: true,
      name: 'client.example',
    });
    const info = await transport.sendMail({ envelope: { from: FROM, to: [rcpt] }, raw: MESSAGE });
    transport.close();
    assert.deepEqual(info.accepted, [rcpt]);
    assert.match(info.response, /^250 2\.0\.0 Ok: queued as /);
    const port = relayedFrom(m);
    assert.deepEqual(envAbuse(port), {});
    assert.deepEqual(xAvengerAbuse(m, port), []);
    assert.deepEqual(await abuseOf(m, port), []);
  }
});

for (const pipeline of [false, true]) {
  test(
    `swaks${pipeline ? ' --pipeline' : ''}: nothing flagged`,
    { skip: skip || (existsSync('/usr/bin/swaks') ? false : 'swaks is not installed') },
    async () => {
      for (const d of [prompt, slow]) {
        const m = mark(d);
        const { stdout } = await run(
          'swaks',
          [
            '--server',
            `127.0.0.1:${d.port}`,
            '--from',
            FROM,
            '--to',
            rcpt,
            '--helo',
            'client.example',
            '--header',
            'Subject: swaks',
            '--body',
            'body',
            ...(pipeline ? ['--pipeline'] : []),
          ],
          { timeout: 30_000 },
        );
        assert.equal(sink.messages.length, m.sink + 1, stdout);
        if (pipeline)
          assert.match(
            stdout,
            / -> MAIL FROM:<s@remote\.example>\n -> RCPT TO:<[^>]+>\n -> DATA\n/,
            'swaks did pipeline',
          );
        assert.match(stdout, new RegExp(`<-  250 2\\.1\\.5 ${CLEAN}\\n`));
        const port = relayedFrom(m);
        assert.deepEqual(envAbuse(port), {});
        assert.deepEqual(xAvengerAbuse(m, port), []);
        assert.deepEqual(await abuseOf(m, port), []);
      }
    },
  );
}
