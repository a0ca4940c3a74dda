import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_CONFIG_FILE, parseArgs, USAGE } from './args.js';

test('--spf and --rbl take an optional -f FILE and nothing else', () => {
  assert.deepEqual(parseArgs(['--spf']), { mode: 'spf', file: DEFAULT_CONFIG_FILE, fileGiven: false });
  assert.deepEqual(parseArgs(['--rbl', '-f', '/x.conf']), { mode: 'rbl', file: '/x.conf', fileGiven: true });
  assert.deepEqual(parseArgs(['-f/y.conf', '--spf']), { mode: 'spf', file: '/y.conf', fileGiven: true });
  assert.equal(parseArgs(['--spf', '1.2.3.4']).mode, 'usage-error');
  assert.equal(parseArgs(['--rbl', '-f']).mode, 'usage-error');
});

test('two modes cannot be combined', () => {
  for (const argv of [
    ['--spf', '--rbl'],
    ['--check', '--spf'],
    ['--rbl', '--avenge', 'a@b'],
    ['--avenge', 'a@b', '--check'],
  ]) {
    const r = parseArgs(argv);
    assert.equal(r.mode, 'usage-error', argv.join(' '));
  }
});

test('the other modes are unchanged', () => {
  assert.deepEqual(parseArgs([]), {
    mode: 'daemon',
    file: DEFAULT_CONFIG_FILE,
    fileGiven: false,
    foreground: false,
    verbose: false,
    detached: false,
  });
  assert.deepEqual(parseArgs(['--check', '-f', '/c']), { mode: 'check', file: '/c', fileGiven: true });
  assert.deepEqual(parseArgs(['--avenge', 'bob@x', '<>', '192.0.2.1']), {
    mode: 'avenge',
    file: DEFAULT_CONFIG_FILE,
    fileGiven: false,
    recipient: 'bob@x',
    sender: '',
    ip: '192.0.2.1',
  });
  assert.deepEqual(parseArgs(['--verify', '-f', '/c', 'bob@a.test']), {
    mode: 'verify',
    file: '/c',
    fileGiven: true,
    address: 'bob@a.test',
  });
  for (const bad of [
    ['--verify'],
    ['--verify', 'nodomain'],
    ['--verify', 'a@b', 'c@d'],
    ['--verify', 'a@b', '--avenge'],
  ])
    assert.equal(parseArgs(bad).mode, 'usage-error', bad.join(' '));
  assert.deepEqual(parseArgs(['--help']), { mode: 'help' });
  assert.deepEqual(parseArgs(['--version']), { mode: 'version' });
});

test('--detached is internal: only with -d (what a detaching asmtpd starts)', () => {
  assert.deepEqual(parseArgs(['-d', '--detached']), {
    mode: 'daemon',
    file: DEFAULT_CONFIG_FILE,
    fileGiven: false,
    foreground: true,
    verbose: false,
    detached: true,
  });
  assert.equal(parseArgs(['--detached']).mode, 'usage-error');
  assert.equal(parseArgs(['--check', '-d', '--detached']).mode, 'usage-error');
});

test('USAGE names every mode', () => {
  for (const flag of ['--check', '--avenge', '--verify', '--spf', '--rbl', '--install-etc', '--version'])
    assert.match(USAGE, new RegExp(flag));
});

test('the hold queue commands: --queue [DOMAIN] [--json], --queue --delete ID, --hold/--release ID, --flush [DOMAIN] [--to HOST:PORT]', () => {
  const f = { file: DEFAULT_CONFIG_FILE, fileGiven: false };
  assert.deepEqual(parseArgs(['--queue']), { mode: 'queue', ...f, domain: null, json: false, delete: null });
  assert.deepEqual(parseArgs(['--queue', 'Example.ORG.', '--json']), {
    mode: 'queue',
    ...f,
    domain: 'example.org',
    json: true,
    delete: null,
  });
  assert.deepEqual(parseArgs(['--queue', '--delete', '1.M2P3Q4.mx']), {
    mode: 'queue',
    ...f,
    domain: null,
    json: false,
    delete: '1.M2P3Q4.mx',
  });
  assert.deepEqual(parseArgs(['--hold', '1.M2P3Q4.mx']), { mode: 'hold', ...f, id: '1.M2P3Q4.mx' });
  assert.deepEqual(parseArgs(['--release', '1.M2P3Q4.mx', '-f', '/x.conf']), {
    mode: 'release',
    file: '/x.conf',
    fileGiven: true,
    id: '1.M2P3Q4.mx',
  });
  assert.deepEqual(parseArgs(['--flush', 'office.test', '--to', '[::1]:2525']), {
    mode: 'flush',
    ...f,
    domain: 'office.test',
    to: { host: '::1', port: 2525 },
  });
  assert.deepEqual(parseArgs(['--flush', '--to', 'site.example:25']).mode, 'flush');
  for (const argv of [
    ['--queue', '--delete', '../etc/passwd'],
    ['--queue', '--delete', '.hidden'],
    ['--hold'],
    ['--hold', 'a', 'b'],
    ['--release', 'x/y'],
    ['--flush', '--to', 'nohostport'],
    ['--flush', '--to', 'h:99999'],
    ['--flush', 'a', 'b'],
    ['--queue', '--to', 'h:25'],
    ['--flush', '--json'],
    ['--queue', 'bad domain!'],
    ['--queue', '--flush'],
  ])
    assert.equal(parseArgs(argv).mode, 'usage-error', argv.join(' '));
  assert.match(USAGE, /--flush \[-f FILE\] \[DOMAIN\] \[--to HOST:PORT\]/);
});
