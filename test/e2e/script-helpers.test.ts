/**
 * The rcpt scripts' helpers `dns`, `rbl` and `spf` end to end (docs/facts.md "Script helpers"):
 * the compiled dist/cli/script-helper.js against a loopback DNS server (support/dns-server.ts),
 * with the environment the daemon gives scripts (helperEnvironment: ASMTPD_NODE, ASMTPD_HELPER,
 * ASMTPD_DNS). Exit codes and output; `DNSResolver system` over UDP and tangerine over DoH; as
 * the unprivileged user nobody (runuser), and from a real ~/.avenger/rcpt script run by the
 * avenger runner as a test account through the prelude's shell functions.
 * DNSServer is always the loopback server: no test asks the machine's resolvers.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { helperEnvironment } from 'asmtpd/dist/daemon/script-helper-env.js';
import { startDnsServer, rblName, reverseName, type DnsServer } from '../support/dns-server.js';
import { canCreateUsers, createUser, removeUser, writeScript, type TestUser } from '../support/users.js';

let dns: DnsServer;
let udpEnv: Record<string, string>;
let dohEnv: Record<string, string>;

const CLIENT = { CLIENT_IP: '192.0.2.2', SENDER: 'bob@sender.example', CLIENT_HELO: 'helo.sender.example' };

before(async () => {
  dns = await startDnsServer({
    records: {
      'a.example': [
        { type: 'A', address: '192.0.2.10' },
        { type: 'A', address: '192.0.2.11' },
        { type: 'AAAA', address: '2001:db8::10' },
        { type: 'MX', priority: 20, exchange: 'mx2.a.example' },
        { type: 'MX', priority: 10, exchange: 'mx1.a.example' },
        { type: 'TXT', data: ['v=spf1 ', 'a -all'] },
        { type: 'TXT', data: 'second record' },
      ],
      [reverseName('192.0.2.10')]: [{ type: 'PTR', domain: 'host.a.example' }],
      [reverseName('2001:db8::10')]: [{ type: 'PTR', domain: 'v6.a.example' }],
      'servfail.example': [{ type: 'SERVFAIL' }],
      'hang.example': [{ type: 'HANG' }],
      [rblName('192.0.2.2', 'bl.example')]: [
        { type: 'A', address: '127.0.0.2' },
        { type: 'TXT', data: 'spam source' },
      ],
      [rblName('192.0.2.2', 'other.example')]: [{ type: 'A', address: '127.0.0.3' }],
      [rblName('192.0.2.2', 'dead.example')]: [{ type: 'SERVFAIL' }],
      [rblName('192.0.2.2', 'slow.example')]: [{ type: 'HANG' }],
      [rblName('192.0.2.2', 'refusing.example')]: [{ type: 'A', address: '127.255.255.254' }],
      'sender.example': [{ type: 'TXT', data: 'v=spf1 ip4:198.51.100.0/24 -all' }],
      'relay.example': [{ type: 'A', address: '192.0.2.2' }],
    },
  });
  const base = { dnsProtocol: 'http' as const, dnsTimeoutMs: 1000, hostname: 'mx.test.example' };
  udpEnv = helperEnvironment({
    ...base,
    dnsResolver: 'system',
    dnsServers: [{ host: dns.udp.host, port: dns.udp.port, text: `${dns.udp.host}:${dns.udp.port}` }],
  });
  dohEnv = helperEnvironment({
    ...base,
    dnsResolver: 'tangerine',
    dnsServers: [{ host: '127.0.0.1', port: Number(dns.doh.split(':')[1]), text: dns.doh }],
  });
});

after(async () => {
  await dns?.close();
});

interface Ran {
  code: number | null;
  out: string;
  err: string;
}

/** Runs the helper (asynchronously: the DNS server lives in this process). */
function helper(args: string[], env: Record<string, string>, options: { asNobody?: boolean } = {}): Promise<Ran> {
  const [file, argv] = options.asNobody
    ? ['runuser', ['-u', 'nobody', '--', env.ASMTPD_NODE!, env.ASMTPD_HELPER!, ...args]]
    : [env.ASMTPD_NODE!, [env.ASMTPD_HELPER!, ...args]];
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, {
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...env },
      cwd: '/',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

const dnsOnly = (): Record<string, string> => ({ ...udpEnv, ...CLIENT });

test('dns: A, AAAA, MX (PRIO:HOST by preference), TXT (strings joined), PTR of an address and of a reverse name', async () => {
  assert.deepEqual(await helper(['dns', '-t', 'A', 'a.example'], dnsOnly()), {
    code: 0,
    out: '192.0.2.10\n192.0.2.11\n',
    err: '',
  });
  assert.deepEqual(await helper(['dns', '-t', 'AAAA', 'a.example'], dnsOnly()), {
    code: 0,
    out: '2001:db8::10\n',
    err: '',
  });
  assert.deepEqual(await helper(['dns', '-t', 'MX', 'a.example'], dnsOnly()), {
    code: 0,
    out: '10:mx1.a.example\n20:mx2.a.example\n',
    err: '',
  });
  const txt = await helper(['dns', '-t', 'TXT', 'a.example'], dnsOnly());
  assert.equal(txt.code, 0);
  assert.deepEqual(txt.out.split('\n').filter(Boolean).sort(), ['second record', 'v=spf1 a -all']);
  assert.deepEqual(await helper(['dns', '-t', 'PTR', '192.0.2.10'], dnsOnly()), {
    code: 0,
    out: 'host.a.example\n',
    err: '',
  });
  assert.deepEqual(await helper(['dns', '-t', 'PTR', '2001:db8::10'], dnsOnly()), {
    code: 0,
    out: 'v6.a.example\n',
    err: '',
  });
  assert.deepEqual(await helper(['dns', '-t', 'ptr', reverseName('192.0.2.10')], dnsOnly()), {
    code: 0,
    out: 'host.a.example\n',
    err: '',
  });
});

test('dns: NXDOMAIN and NODATA exit 1, SERVFAIL and a timeout exit 2, bad usage exits 2', async () => {
  assert.deepEqual(await helper(['dns', '-t', 'A', 'nx.a.example'], dnsOnly()), { code: 1, out: '', err: '' });
  assert.deepEqual(await helper(['dns', '-t', 'MX', 'relay.example'], dnsOnly()), { code: 1, out: '', err: '' });
  assert.deepEqual(await helper(['dns', '-t', 'PTR', '192.0.2.99'], dnsOnly()), { code: 1, out: '', err: '' });
  const servfail = await helper(['dns', '-t', 'A', 'servfail.example'], dnsOnly());
  assert.equal(servfail.code, 2);
  assert.match(servfail.err, /temporary failure \(ESERVFAIL\)/);
  const hang = await helper(['dns', '-t', 'TXT', 'hang.example'], dnsOnly());
  assert.equal(hang.code, 2);
  assert.match(hang.err, /temporary failure \(ETIMEOUT\)/);
  for (const args of [['dns'], ['dns', '-t', 'SRV', 'a.example'], ['dns', '-t', 'A', 'a.example', 'b.example']]) {
    const r = await helper(args, dnsOnly());
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.err, /^dns: /);
  }
});

test('rbl: listed (exit 0, ZONE REASON), not listed (1), every lookup failed (2), bad usage (2)', async () => {
  assert.deepEqual(await helper(['rbl', 'bl.example', 'clean.example', 'other.example'], dnsOnly()), {
    code: 0,
    out: 'bl.example spam source\nother.example listed by other.example\n',
    err: '',
  });
  assert.deepEqual(await helper(['rbl', 'clean.example'], dnsOnly()), { code: 1, out: '', err: '' });
  const partly = await helper(['rbl', 'clean.example', 'dead.example'], dnsOnly());
  assert.equal(partly.code, 1);
  assert.match(partly.err, /dead\.example: lookup failed \(ESERVFAIL\)/);
  const failed = await helper(['rbl', 'dead.example', 'slow.example', 'refusing.example'], dnsOnly());
  assert.equal(failed.code, 2);
  assert.match(failed.err, /slow\.example: lookup failed \(ETIMEOUT\)/);
  assert.match(failed.err, /refusing\.example: refused the query \(127\.255\.255\.254\)/);
  assert.equal((await helper(['rbl'], dnsOnly())).code, 2);
  assert.equal((await helper(['rbl', 'bl.example'], { ...udpEnv, CLIENT_IP: 'not-an-ip' })).code, 2);
});

test('spf: pass (0), fail and others (1), invalid mechanisms (2); the null sender uses CLIENT_HELO', async () => {
  assert.deepEqual(await helper(['spf', 'a:relay.example', '-all'], dnsOnly()), { code: 0, out: 'pass\n', err: '' });
  assert.deepEqual(await helper(['spf', 'include:sender.example', '-all'], dnsOnly()), {
    code: 1,
    out: 'fail\n',
    err: '',
  });
  assert.deepEqual(await helper(['spf', 'include:servfail.example', '-all'], dnsOnly()), {
    code: 1,
    out: 'temperror\n',
    err: '',
  });
  assert.deepEqual(await helper(['spf', 'a', '-all'], { ...dnsOnly(), SENDER: '', CLIENT_HELO: 'relay.example' }), {
    code: 0,
    out: 'pass\n',
    err: '',
  });
  const bad = await helper(['spf', 'bogus:x', '-all'], dnsOnly());
  assert.equal(bad.code, 2);
  assert.match(bad.err, /^spf: invalid mechanisms/);
  assert.equal((await helper(['spf'], dnsOnly())).code, 2);
});

test('the helpers over DNS-over-HTTP (DNSResolver tangerine, DNSProtocol http)', async () => {
  const env = { ...dohEnv, ...CLIENT };
  assert.deepEqual(await helper(['dns', '-t', 'MX', 'a.example'], env), {
    code: 0,
    out: '10:mx1.a.example\n20:mx2.a.example\n',
    err: '',
  });
  assert.deepEqual(await helper(['dns', '-t', 'A', 'nx.a.example'], env), { code: 1, out: '', err: '' });
  assert.equal((await helper(['dns', '-t', 'A', 'servfail.example'], env)).code, 2);
  assert.deepEqual(await helper(['rbl', 'bl.example'], env), { code: 0, out: 'bl.example spam source\n', err: '' });
  assert.deepEqual(await helper(['spf', 'a:relay.example', '-all'], env), { code: 0, out: 'pass\n', err: '' });
});

const asRoot = process.getuid?.() === 0 && spawnSync('runuser', ['--help'], { stdio: 'ignore' }).status === 0;

test(
  'the helper runs as an unprivileged user (every file it loads is readable)',
  { skip: !asRoot && 'needs root and runuser' },
  async () => {
    assert.deepEqual(await helper(['dns', '-t', 'A', 'a.example'], dnsOnly(), { asNobody: true }), {
      code: 0,
      out: '192.0.2.10\n192.0.2.11\n',
      err: '',
    });
    assert.deepEqual(await helper(['rbl', 'bl.example'], dnsOnly(), { asNobody: true }), {
      code: 0,
      out: 'bl.example spam source\n',
      err: '',
    });
    assert.deepEqual(await helper(['spf', 'a:relay.example', '-all'], dnsOnly(), { asNobody: true }), {
      code: 0,
      out: 'pass\n',
      err: '',
    });
    assert.deepEqual(await helper(['dns', '-t', 'MX', 'a.example'], { ...dohEnv, ...CLIENT }, { asNobody: true }), {
      code: 0,
      out: '10:mx1.a.example\n20:mx2.a.example\n',
      err: '',
    });
  },
);

interface RunnerLike {
  run(request: unknown): Promise<{ kind: string; decision?: { verb: string; args: string[] } | null; stderr?: string }>;
  close(): Promise<void>;
}

const noUsers = canCreateUsers();

test(
  'a real rcpt script uses spf, dns and rbl through the prelude, as its user',
  { skip: noUsers ?? false },
  async () => {
    // the runner package is not a dependency of the test workspace: load its build by path
    const runnerModule = (await import(
      new URL('../../../packages/avenger-runner/dist/index.js', import.meta.url).href
    )) as {
      startRunner(o: { settings: unknown; onLog?: (l: string) => void }): Promise<RunnerLike>;
      DEFAULT_LIMITS: unknown;
    };
    const user: TestUser = createUser('helper');
    // the helpers' program paths are the runner's own (fixedEnv); ASMTPD_DNS and the facts come with the request
    const settings = {
      etcDir: user.home,
      avengerUser: user.name,
      passwdFile: null,
      spoolDir: null,
      daemonUid: null,
      deniedUids: [],
      envNames: ['ASMTPD_DNS', ...Object.keys(CLIENT)],
      limits: runnerModule.DEFAULT_LIMITS,
      fixedEnv: { ASMTPD_NODE: udpEnv.ASMTPD_NODE!, ASMTPD_HELPER: udpEnv.ASMTPD_HELPER! },
      toolsDir: null,
    };
    const runner = await runnerModule.startRunner({ settings, onLog: () => {} });
    try {
      writeScript(
        user,
        'rcpt',
        [
          'mx=$(dns -t MX a.example | tr "\\n" " ")',
          'nx=$(dns -t A nx.a.example); nxc=$?',
          's=$(spf a:relay.example -all); sc=$?',
          'r=$(rbl bl.example dead.example); rc=$?',
          'if rbl clean.example; then c=listed; else c="not listed $?"; fi',
          'reject "550 5.7.1 mx=[$mx] nx=$nxc spf=$s/$sc rbl=$r/$rc clean=$c uid=$(id -u)"',
        ].join('\n'),
      );
      const result = await runner.run({
        kind: 'rcpt',
        scope: 'user',
        account: user.name,
        candidates: ['rcpt'],
        timeoutMs: 30_000,
        env: { ...udpEnv, ...CLIENT },
      });
      assert.equal(result.kind, 'ran', JSON.stringify(result));
      assert.deepEqual(
        result.decision,
        {
          verb: 'reject',
          args: [
            `550 5.7.1 mx=[10:mx1.a.example 20:mx2.a.example ] nx=1 spf=pass/0 rbl=bl.example spam source/0 clean=not listed 1 uid=${user.uid}`,
          ],
        },
        result.stderr,
      );
    } finally {
      await runner.close();
      removeUser(user);
    }
  },
);
