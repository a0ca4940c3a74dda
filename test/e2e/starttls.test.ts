/**
 * STARTTLS (issue 16, item 1) with real clients: our own TLS client (RSA-only and ECDSA-only
 * signature algorithms, TLS 1.0/1.1), swaks --tls, openssl s_client -starttls smtp, and a private
 * Postfix sending with smtp_tls_security_level = encrypt. Certificates are made with openssl for
 * the test: a CA, an RSA and an ECDSA leaf, each served with its chain.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer, type ConnectionOptions } from 'node:tls';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startSink, type Sink } from '../support/sink.js';
import { canCreateUsers, createUser, etcWithPasswd, removeUser, writeScript, type TestUser } from '../support/users.js';
import { requirePostfix, startPostfix } from '../support/postfix.js';
import { SmtpClient, dotStuff } from '../support/smtp-client.js';
import { SmtpDialogue, startTls as openTls, type TlsDialogue } from '../support/smtp-dialogue.js';

const run = promisify(execFile);
const skip = canCreateUsers() ?? (existsSync('/usr/bin/openssl') ? false : 'openssl is not installed');
const SCRIPT = 'accept "tls=$SSL_VERSION cipher=$SSL_CIPHER bits=$SSL_CIPHER_BITS/$SSL_ALG_BITS"';
const RSA_ONLY = 'rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pkcs1_sha256:rsa_pkcs1_sha384';
const ECDSA_ONLY = 'ecdsa_secp256r1_sha256:ecdsa_secp384r1_sha384';

let certs: string;
let u: TestUser;
let etc: string;
let sink: Sink;
let d: Daemon;
let plain: Daemon;

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: certs, stdio: 'pipe' });
}

/** A leaf certificate for `cn` signed by the test CA, as NAME-chain.pem (leaf + CA) and NAME.key. */
function leaf(name: string, cn: string, keyArgs: string[]): void {
  openssl([
    'req',
    '-newkey',
    ...keyArgs,
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    `/CN=${cn}`,
  ]);
  openssl([
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-out',
    `${name}.crt`,
  ]);
  writeFileSync(
    join(certs, `${name}-chain.pem`),
    readFileSync(join(certs, `${name}.crt`), 'utf8') + readFileSync(join(certs, 'ca.pem'), 'utf8'),
  );
  // the daemon re-reads them on SIGHUP as DaemonUser (docs/decisions.md)
  chmodSync(join(certs, `${name}.key`), 0o644);
}

/** Connect, EHLO, STARTTLS, handshake with `options`, EHLO again. */
const startTls = (port: number, options: ConnectionOptions = {}): Promise<TlsDialogue> =>
  openTls(port, { tls: options });

async function send(s: SmtpDialogue, rcpt: string, body: string): Promise<{ rcpt: string; data: string }> {
  assert.match(await s.cmd('MAIL FROM:<s@remote.test>'), /^250 /m);
  const rcptReply = await s.cmd(`RCPT TO:<${rcpt}>`);
  assert.match(await s.cmd('DATA'), /^354 /);
  s.socket.write(dotStuff(`Subject: tls\r\n\r\n${body}\r\n`));
  s.socket.write('.\r\n');
  return { rcpt: rcptReply, data: await s.reply() };
}

const rcptOf = (): string => `${u.name}@a.example`;

before(async () => {
  if (skip) return;
  certs = mkdtempSync(join(tmpdir(), 'asmtpd-tls-'));
  chmodSync(certs, 0o755);
  openssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-subj',
    '/CN=asmtpd test CA',
    '-days',
    '2',
  ]);
  leaf('rsa', 'mx.test', ['rsa:2048']);
  leaf('ec', 'mx.test', ['ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1']);
  leaf('rsa2', 'mx2.test', ['rsa:2048']);
  for (const f of ['rsa-chain.pem', 'rsa.key']) copyFileSync(join(certs, f), join(certs, `served-${f}`));
  chmodSync(join(certs, 'served-rsa.key'), 0o644);
  u = createUser('tls');
  writeScript(u, 'rcpt', SCRIPT);
  const files = etcWithPasswd([u]);
  etc = files.etc;
  const passwd = files.passwd;
  sink = await startSink();
  const common = ['LocalDomain a.example', `PasswdFile ${passwd}`, `RelayHost 127.0.0.1:${sink.port}`];
  d = await startDaemon({
    etcDir: etc,
    conf: [
      ...common,
      `TLSCert ${join(certs, 'served-rsa-chain.pem')}`,
      `TLSKey ${join(certs, 'served-rsa.key')}`,
      `TLSCert ${join(certs, 'ec-chain.pem')}`,
      `TLSKey ${join(certs, 'ec.key')}`,
    ].join('\n'),
  });
  plain = await startDaemon({ etcDir: etc, conf: common.join('\n') });
});

after(async () => {
  if (skip) return;
  await d?.stop();
  await plain?.stop();
  await sink?.close();
  if (u) removeUser(u);
  rmSync(certs, { recursive: true, force: true });
  rmSync(etc, { recursive: true, force: true });
});

test('STARTTLS is offered only with certificates, and refused without', { skip }, async () => {
  const c = await SmtpClient.connect(plain.port);
  await c.greeting();
  const ehlo = await c.cmd('EHLO client.test');
  assert.doesNotMatch(ehlo.lines.join('\n'), /STARTTLS/);
  assert.match((await c.cmd('STARTTLS')).last, /^5\d\d /);
  // a refused STARTTLS leaves the transaction as it was (the fuzz test found it dropped once)
  assert.match((await c.cmd('MAIL FROM:<s@remote.test>')).last, /^250 /);
  assert.match((await c.cmd('STARTTLS')).last, /^5\d\d /);
  assert.match((await c.cmd(`RCPT TO:<${rcptOf()}>`)).last, /^250 2\.1\.5 tls= cipher= bits=\/$/);
  c.close();
  const s = await startTls(d.port);
  assert.match(s.ehloInClear, /250[ -]STARTTLS/);
  assert.doesNotMatch(await s.dialogue.cmd('EHLO again.test'), /STARTTLS/, 'not offered again inside TLS');
  s.tls.end();
});

test('a message over STARTTLS: SSL_* for the script, Received with ESMTPS, X-Avenger tls=', { skip }, async () => {
  const before = sink.messages.length;
  const s = await startTls(d.port);
  const version = s.tls.getProtocol();
  const cipher = s.tls.getCipher().name;
  const r = await send(s.dialogue, rcptOf(), 'over TLS');
  assert.equal(r.rcpt, `250 2.1.5 tls=${version} cipher=${cipher} bits=256/256`);
  assert.match(r.data, /^250 2\.0\.0 /);
  s.tls.end();
  const m = sink.messages[before];
  assert.ok(m, 'relayed');
  const head = m.data.toString('latin1').split('\r\n\r\n')[0]!;
  assert.match(head.replace(/\r\n\s+/g, ' '), new RegExp(`with ESMTPS \\(${version}:${cipher}\\)`));
  assert.match(head.replace(/\r\n\s+/g, ' '), new RegExp(`X-Avenger: .*tls=${version}:${cipher}`));
  const started = await d.waitLog((l) => l.event === 'tls.started' && l.cipher === cipher);
  assert.equal(started.version, version);
});

test('RSA-only and ECDSA-only clients each get their certificate', { skip }, async () => {
  const rsa = await startTls(d.port, { sigalgs: RSA_ONLY });
  const rsaCert = rsa.tls.getPeerCertificate();
  assert.equal(rsaCert.asn1Curve, undefined);
  assert.equal(rsaCert.bits, 2048);
  rsa.tls.end();
  const ec = await startTls(d.port, { sigalgs: ECDSA_ONLY });
  assert.equal(ec.tls.getPeerCertificate().asn1Curve, 'prime256v1');
  ec.tls.end();
});

test('TLS 1.0 and 1.1 are refused, logged, and the daemon serves on', { skip }, async () => {
  // control: this client does speak TLS 1.1 with a server that allows it
  const old: ConnectionOptions = { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' };
  const server = createTlsServer({
    cert: readFileSync(join(certs, 'rsa-chain.pem')),
    key: readFileSync(join(certs, 'rsa.key')),
    minVersion: 'TLSv1',
    ciphers: 'DEFAULT@SECLEVEL=0',
  });
  server.on('secureConnection', (sock) => sock.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const control = await new Promise<string>((resolve, reject) => {
    const c = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false, ...old }, () => {
      resolve(c.getProtocol() ?? '');
      c.end();
    });
    c.on('error', reject);
  });
  server.close();
  assert.equal(control, 'TLSv1.1');
  for (const maxVersion of ['TLSv1', 'TLSv1.1'] as const) {
    await assert.rejects(startTls(d.port, { ...old, maxVersion }), /protocol|version|alert/i, maxVersion);
  }
  const failed = await d.waitLog((l) => l.event === 'tls.failed');
  assert.equal(failed.ip, '127.0.0.1');
  assert.match(String(failed.reason), /protocol|version/i);
  const s = await startTls(d.port);
  assert.match(await s.dialogue.cmd('NOOP'), /^250 /);
  s.tls.end();
  assert.equal(d.proc.exitCode, null);
});

test('commands sent in clear behind STARTTLS are dropped, not run inside TLS', { skip }, async () => {
  const raw = netConnect(d.port, '127.0.0.1');
  const dialogue = new SmtpDialogue(raw);
  await dialogue.reply();
  await dialogue.cmd('EHLO client.test');
  raw.write('STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n');
  assert.match(await dialogue.reply(), /^220 /);
  raw.removeAllListeners('data');
  const tls = tlsConnect({ socket: raw, rejectUnauthorized: false });
  await new Promise<void>((r, j) => {
    tls.once('secureConnect', () => r());
    tls.once('error', j);
  });
  dialogue.listen(tls);
  assert.match(await dialogue.cmd('EHLO client.test'), /^250 /m, 'the first reply in TLS is to our EHLO');
  assert.match(await dialogue.cmd('RCPT TO:<x@a.example>'), /^503 /, 'no transaction was opened by the injected MAIL');
  tls.end();
});

test(
  'swaks --tls delivers through asmtpd',
  { skip: skip || (existsSync('/usr/bin/swaks') ? false : 'swaks is not installed') },
  async () => {
    const before = sink.messages.length;
    // not spawnSync: the sink behind asmtpd answers from this process's event loop
    const r = await run(
      'swaks',
      [
        '--server',
        `127.0.0.1:${d.port}`,
        '--tls',
        '--from',
        's@remote.test',
        '--to',
        rcptOf(),
        '--body',
        'swaks over TLS',
      ],
      {
        timeout: 30_000,
      },
    );
    assert.match(r.stdout, /TLS started with cipher TLSv1\.[23]:/);
    assert.match(r.stdout, /<~  250 2\.1\.5 tls=TLSv1\.[23] /);
    assert.equal(sink.messages.length, before + 1);
    assert.match(sink.messages[before]!.data.toString('latin1'), /with ESMTPS \(TLSv1\.[23]:/);
  },
);

test('openssl s_client -starttls smtp sees the chain and verifies it against the CA', { skip }, async () => {
  const r = spawnSync(
    'openssl',
    [
      's_client',
      '-starttls',
      'smtp',
      '-connect',
      `127.0.0.1:${d.port}`,
      '-servername',
      'mx.test',
      '-showcerts',
      '-CAfile',
      join(certs, 'ca.pem'),
      '-sigalgs',
      'RSA-PSS+SHA256:RSA+SHA256',
    ],
    { input: 'QUIT\r\n', encoding: 'utf8', timeout: 30_000 },
  );
  assert.equal((r.stdout.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length, 2, 'leaf and CA');
  assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
  assert.match(r.stdout, /s:CN ?= ?mx\.test/);
});

test(
  'SIGHUP with new files: a session opened before finishes, the next gets the new certificate; a broken file keeps it',
  { skip },
  async () => {
    const early = await startTls(d.port, { sigalgs: RSA_ONLY });
    assert.equal(String(early.tls.getPeerCertificate().subject.CN), 'mx.test');
    assert.match(await early.dialogue.cmd('MAIL FROM:<s@remote.test>'), /^250 /m);
    copyFileSync(join(certs, 'rsa2-chain.pem'), join(certs, 'served-rsa-chain.pem'));
    copyFileSync(join(certs, 'rsa2.key'), join(certs, 'served-rsa.key'));
    const mark = d.logs.length;
    d.signal('SIGHUP');
    await d.waitLog((l) => l.event === 'tls.loaded' && d.logs.indexOf(l) >= mark);
    assert.match(await early.dialogue.cmd(`RCPT TO:<${rcptOf()}>`), /^250 /m);
    assert.match(await early.dialogue.cmd('DATA'), /^354 /);
    early.tls.write('Subject: early\r\n\r\nopened before the reload\r\n.\r\n');
    assert.match(await early.dialogue.reply(), /^250 2\.0\.0 /, 'the session opened before the reload finishes');
    early.tls.end();
    const next = await startTls(d.port, { sigalgs: RSA_ONLY });
    assert.equal(String(next.tls.getPeerCertificate().subject.CN), 'mx2.test');
    next.tls.end();
    const ec = await startTls(d.port, { sigalgs: ECDSA_ONLY });
    assert.equal(ec.tls.getPeerCertificate().asn1Curve, 'prime256v1', 'the ECDSA pair is still served');
    ec.tls.end();
    // a broken file: the reload is refused and logged, the pair read last stays
    writeFileSync(
      join(certs, 'served-rsa-chain.pem'),
      '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n',
    );
    const mark2 = d.logs.length;
    d.signal('SIGHUP');
    const refused = await d.waitLog((l) => l.event === 'daemon.reload_failed' && d.logs.indexOf(l) >= mark2);
    assert.match(JSON.stringify(refused.errors), /TLSCert\/TLSKey: .*served-rsa-chain\.pem/);
    const after = await startTls(d.port, { sigalgs: RSA_ONLY });
    assert.equal(String(after.tls.getPeerCertificate().subject.CN), 'mx2.test');
    after.tls.end();
    copyFileSync(join(certs, 'rsa2-chain.pem'), join(certs, 'served-rsa-chain.pem'));
  },
);

test('a key only root can read is served, with a warning that SIGHUP could not re-read it', { skip }, async () => {
  assert.deepEqual(
    d.logs.filter((l) => l.event === 'config.error' && /not readable by DaemonUser/.test(String(l.warning))),
    [],
    'no warning for keys DaemonUser can read',
  );
  const rootOnly = join(certs, 'root-only.key');
  copyFileSync(join(certs, 'ec.key'), rootOnly);
  chmodSync(rootOnly, 0o600);
  const r = await startDaemon({
    etcDir: etc,
    conf: [`TLSCert ${join(certs, 'ec-chain.pem')}`, `TLSKey ${rootOnly}`].join('\n'),
  });
  try {
    const w = await r.waitLog(
      (l) => l.event === 'config.error' && /not readable by DaemonUser/.test(String(l.warning)),
    );
    assert.match(String(w.warning), new RegExp(`^${rootOnly}: not readable by DaemonUser asmtpd: .*chmod 640`));
    const s = await startTls(r.port);
    assert.equal(s.tls.getPeerCertificate().asn1Curve, 'prime256v1', 'served all the same');
    s.tls.end();
  } finally {
    await r.stop();
  }
});

test('Postfix with smtp_tls_security_level = encrypt delivers through asmtpd', { skip }, async (t) => {
  if (!requirePostfix(t)) return;
  const pf = await startPostfix({
    mode: { relayTo: `127.0.0.1:${d.port}` },
    mainCf: { smtp_tls_security_level: 'encrypt', smtp_tls_loglevel: '1' },
  });
  t.after(() => pf.stop());
  const before = sink.messages.length;
  const c = await SmtpClient.connect(pf.port);
  await c.greeting();
  await c.cmd('EHLO client.test');
  assert.match((await c.cmd('MAIL FROM:<s@remote.test>')).last, /^250 /m);
  assert.match((await c.cmd(`RCPT TO:<${rcptOf()}>`)).last, /^250 /m);
  assert.match((await c.cmd('DATA')).last, /^354 /);
  c.socket.write(dotStuff('Subject: from Postfix\r\n\r\nencrypt\r\n'));
  assert.match((await c.cmd('.')).last, /^250 /m);
  c.close();
  const deadline = Date.now() + 30_000;
  while (sink.messages.length === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.equal(sink.messages.length, before + 1, await pf.log());
  assert.match(sink.messages[before]!.data.toString('latin1'), /with ESMTPS \(TLSv1\.[23]:/);
  assert.match(await pf.log(), /TLS connection established to 127\.0\.0\.1/);
});
