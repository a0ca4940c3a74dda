/**
 * macutil, smtpdcheck and aliascheck as installed (packages/asmtpd/tools/NAME), run as real
 * non-root users: their options and exit codes (docs/man/*.1.md). smtpdcheck talks to a real
 * Postfix, a closed port and a silent listener, and resolves names through a loopback DNS server
 * the way it does inside an rcpt script (ASMTPD_DNS, over UDP and over DoH). Needs root
 * (test accounts, setpriv, a private Postfix); in CI that is a failure if missing, elsewhere the
 * tests are skipped with the reason.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canCreateUsers, createUser, removeUser, type TestUser } from '../support/users.js';
import { postfixUnavailableReason, startPostfix, type PostfixInstance } from '../support/postfix.js';
import { startDnsServer, type DnsServer } from '../support/dns-server.js';
import { freePort } from '../support/ports.js';

const TOOLS = fileURLToPath(new URL('../../../packages/asmtpd/tools', import.meta.url));
const unavailable = canCreateUsers() ?? postfixUnavailableReason();
if (unavailable && process.env.CI) throw new Error(`CI runs as root with Postfix (.ci/run): ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

let alice: TestUser, bob: TestUser;
let pf: PostfixInstance;
let dns: DnsServer;
let silent: Server;
const silentSockets = new Set<Socket>();
let silentPort: number, closedPort: number;
let dir: string;

before(async () => {
  if (unavailable) return;
  alice = createUser('utila');
  bob = createUser('utilb');
  pf = await startPostfix({ mode: 'maildir' });
  silent = createServer((s) => {
    silentSockets.add(s); // accepts, never greets
    s.on('error', () => {});
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  silentPort = (silent.address() as { port: number }).port;
  closedPort = await freePort();
  dns = await startDnsServer({
    records: {
      'mx1.example.test': [{ type: 'A', address: '127.0.0.1' }],
      'us.example.test': [{ type: 'A', address: '127.0.0.9' }],
      'example.test': [
        { type: 'MX', priority: 10, exchange: 'mx1.example.test' },
        { type: 'MX', priority: 20, exchange: 'us.example.test' },
      ],
    },
  });
  dir = mkdtempSync(join(tmpdir(), 'asmtpd-util-'));
  chmodSync(dir, 0o755);
});

after(async () => {
  if (unavailable) return;
  for (const s of silentSockets) s.destroy();
  silent?.close();
  await pf?.stop();
  await dns?.close();
  for (const u of [alice, bob]) if (u) removeUser(u);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The installed command NAME run as the user (setpriv, no supplementary groups, a clean environment). */
function tool(u: TestUser, name: string, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(
    'setpriv',
    [`--reuid=${u.uid}`, `--regid=${u.gid}`, '--clear-groups', '--', join(TOOLS, name), ...args],
    {
      encoding: 'utf8',
      cwd: u.home,
      env: { HOME: u.home, USER: u.name, PATH: '/usr/local/bin:/usr/bin:/bin', ...env },
      timeout: 60_000,
    },
  );
  return { status: r.status, out: r.stdout, err: r.stderr };
}

/** The same without blocking this process (whose DNS server must answer meanwhile). */
function toolAsync(
  u: TestUser,
  name: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ status: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const c = spawn(
      'setpriv',
      [`--reuid=${u.uid}`, `--regid=${u.gid}`, '--clear-groups', '--', join(TOOLS, name), ...args],
      {
        cwd: u.home,
        env: { HOME: u.home, USER: u.name, PATH: '/usr/local/bin:/usr/bin:/bin', ...env },
      },
    );
    let out = '',
      err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('close', (status) => resolve({ status, out, err }));
  });
}

// --- macutil ------------------------------------------------------------------------------------

test("macutil as a user: --gen makes the key (0600, the user's), --check 0/1, --sender, bad usage 2", { skip }, () => {
  const gen = tool(alice, 'macutil', ['--gen', '--expire=+1d']);
  assert.equal(gen.status, 0, gen.err);
  assert.match(gen.out, /^[a-z2-7]{16}\n$/);
  const code = gen.out.trim();
  const key = statSync(join(alice.home, '.avenger', '.macpass'));
  assert.deepEqual([key.uid, key.mode & 0o777], [alice.uid, 0o600]);
  assert.equal(statSync(join(alice.home, '.avenger')).mode & 0o777, 0o700);

  assert.deepEqual(tool(alice, 'macutil', ['--check', code]), { status: 0, out: '', err: '' });
  assert.equal(tool(alice, 'macutil', ['--check', code.toUpperCase()]).status, 0);
  const forged = tool(alice, 'macutil', ['--check', 'a'.repeat(16)]);
  assert.deepEqual(forged, { status: 1, out: '', err: `macutil: "${'a'.repeat(16)}": not a genuine code\n` });
  const old = tool(alice, 'macutil', ['--gen', '--expire=-1m']).out.trim();
  const expired = tool(alice, 'macutil', ['--check', old]);
  assert.equal(expired.status, 1);
  assert.match(expired.err, /: expired at /);
  assert.equal(tool(bob, 'macutil', ['--check', code]).status, 1, "bob's (absent) key does not take alice's code");

  const sender = tool(alice, 'macutil', ['--sender', `${alice.name}+*@a.example`]);
  assert.equal(sender.status, 0);
  const m = new RegExp(`^${alice.name}\\+([a-z2-7]{16})@a\\.example\\n$`).exec(sender.out);
  assert.ok(m, sender.out);
  assert.equal(tool(alice, 'macutil', ['--check', m[1]!]).status, 0);

  for (const args of [[], ['--check'], ['--sender', 'no-star'], ['--gen', '--expire=soon'], ['--bogus']]) {
    const r = tool(alice, 'macutil', args);
    assert.equal(r.status, 2, args.join(' '));
    assert.match(r.err, /^macutil: /);
  }
  assert.equal(tool(alice, 'macutil', ['--help']).status, 0);
  // bob cannot use alice's key: her ~/.avenger is hers alone
  const steal = tool(bob, 'macutil', ['--check', code], { MACUTIL_PASSFILE: join(alice.home, '.avenger', '.macpass') });
  assert.equal(steal.status, 2);
  assert.match(steal.err, /EACCES|permission denied/i);
});

test('macutil: 10 first uses at once by one user end with one key that checks every code', { skip }, async () => {
  rmSync(join(bob.home, '.avenger'), { recursive: true, force: true });
  const codes = await Promise.all(
    Array.from(
      { length: 10 },
      () =>
        new Promise<string>((resolve, reject) => {
          const c = spawn(
            'setpriv',
            [`--reuid=${bob.uid}`, `--regid=${bob.gid}`, '--clear-groups', '--', join(TOOLS, 'macutil'), '--gen'],
            {
              env: { HOME: bob.home, PATH: '/usr/local/bin:/usr/bin:/bin' },
            },
          );
          let out = '';
          c.stdout.on('data', (d: Buffer) => (out += d.toString()));
          c.on('close', (status) => (status === 0 ? resolve(out.trim()) : reject(new Error(`exit ${status}`))));
        }),
    ),
  );
  assert.deepEqual(readdirSync(join(bob.home, '.avenger')), ['.macpass']);
  for (const code of codes) assert.equal(tool(bob, 'macutil', ['--check', code]).status, 0, code);
});

// --- smtpdcheck ---------------------------------------------------------------------------------

test(
  'smtpdcheck as a user: a real Postfix answering → 1 and its name; closed and silent ports → 0; bad usage → 2',
  { skip },
  () => {
    assert.deepEqual(tool(alice, 'smtpdcheck', [`10:127.0.0.1:${pf.port}`]), {
      status: 1,
      out: `127.0.0.1:${pf.port}\n`,
      err: '',
    });
    assert.deepEqual(tool(alice, 'smtpdcheck', [`10:127.0.0.1:${closedPort}`]), { status: 0, out: '', err: '' });
    const started = Date.now();
    const quiet = tool(alice, 'smtpdcheck', ['--timeout', '1', '-v', `10:127.0.0.1:${silentPort}`]);
    assert.equal(quiet.status, 0);
    assert.equal(quiet.err, `smtpdcheck: 10:127.0.0.1:${silentPort}: 127.0.0.1 port ${silentPort}: timed out\n`);
    assert.ok(Date.now() - started < 20_000, 'the timeout bounds the wait');
    // the first of several that answers, best priority first
    assert.equal(
      tool(alice, 'smtpdcheck', [`30:127.0.0.1:${pf.port}`, `20:127.0.0.1:${closedPort}`]).out,
      `127.0.0.1:${pf.port}\n`,
    );
    // --stop: we are the best (or as good as the best): nothing to check
    assert.equal(tool(alice, 'smtpdcheck', ['--stop', '127.0.0.1', `10:127.0.0.1:${pf.port}`]).status, 0);
    for (const args of [[], ['--timeout', 'x', 'mx'], ['--bogus', 'mx'], ['$(touch /tmp/x)']]) {
      const r = tool(alice, 'smtpdcheck', args);
      assert.equal(r.status, 2, args.join(' '));
      assert.match(r.err, /^smtpdcheck: /);
    }
    assert.equal(tool(alice, 'smtpdcheck', ['--help']).status, 0);
  },
);

test(
  "smtpdcheck inside a script resolves with the daemon's DNS settings (ASMTPD_DNS): UDP and DoH",
  { skip },
  async () => {
    for (const settings of [
      { kind: 'system', servers: [`127.0.0.1:${dns.udp.port}`], protocol: 'https' },
      { kind: 'tangerine', servers: [dns.doh], protocol: 'http' },
    ]) {
      const env = { ASMTPD_DNS: JSON.stringify({ ...settings, timeoutMs: 3000, receiver: 'mx.example.test' }) };
      const label = settings.kind;
      assert.deepEqual(
        await toolAsync(
          alice,
          'smtpdcheck',
          ['--stop', 'us.example.test', `10:mx1.example.test:${pf.port}`, '20:us.example.test'],
          env,
        ),
        { status: 1, out: `mx1.example.test:${pf.port}\n`, err: '' },
        label,
      );
      // the better MX is down (nothing on its port): we take the mail
      assert.equal(
        (
          await toolAsync(
            alice,
            'smtpdcheck',
            ['--stop', '127.0.0.9', `10:mx1.example.test:${closedPort}`, '20:us.example.test'],
            env,
          )
        ).status,
        0,
        label,
      );
      const stop = await toolAsync(alice, 'smtpdcheck', ['--stop', 'nosuch.example.test', '10:mx1.example.test'], env);
      assert.deepEqual(
        stop,
        { status: 2, out: '', err: 'smtpdcheck: --stop nosuch.example.test has no address\n' },
        label,
      );
    }
  },
);

// --- aliascheck ---------------------------------------------------------------------------------

test(
  'aliascheck as a user: an alias → 0 and its targets, an account → 0 (not with --nopwd), neither → 1, unreadable → 2',
  { skip },
  () => {
    const aliases = join(dir, 'aliases');
    writeFileSync(
      aliases,
      `# test aliases\nsales: ${alice.name},\n  bob@example.org\n"role desk": :include:/etc/mail/desk\n`,
    );
    chmodSync(aliases, 0o644);
    assert.deepEqual(tool(bob, 'aliascheck', ['Sales', aliases]), {
      status: 0,
      out: `${alice.name}, bob@example.org\n`,
      err: '',
    });
    assert.deepEqual(tool(bob, 'aliascheck', ['role desk', aliases]), {
      status: 0,
      out: ':include:/etc/mail/desk\n',
      err: '',
    });
    assert.deepEqual(tool(bob, 'aliascheck', [alice.name, aliases]), { status: 0, out: `${alice.name}\n`, err: '' });
    assert.deepEqual(tool(bob, 'aliascheck', ['--nopwd', alice.name, aliases]), { status: 1, out: '', err: '' });
    assert.deepEqual(tool(bob, 'aliascheck', ['--', 'no-such-name', aliases]), { status: 1, out: '', err: '' });
    const mark = join(dir, 'pwned');
    assert.equal(tool(bob, 'aliascheck', ['--', `$(touch ${mark})`, aliases]).status, 1);
    assert.equal(existsSync(mark), false, 'a name is data');
    const secret = join(dir, 'secret-aliases');
    writeFileSync(secret, 'x: y\n');
    chmodSync(secret, 0o600);
    const denied = tool(bob, 'aliascheck', ['x', secret]);
    assert.deepEqual(denied, { status: 2, out: '', err: `aliascheck: ${secret}: permission denied\n` });
    for (const args of [[], ['a', 'b', 'c'], ['--bogus', 'x']]) assert.equal(tool(bob, 'aliascheck', args).status, 2);
    assert.equal(tool(bob, 'aliascheck', ['--help']).status, 0);
  },
);
