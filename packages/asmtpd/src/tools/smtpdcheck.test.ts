import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { greets, parseServer, runSmtpdcheck, type Lookup } from './smtpdcheck.js';
import type { ToolIo } from './tool-io.js';

/** A listener on 127.0.0.1 that greets each connection with `greeting` (null: says nothing). */
async function listener(greeting: string[] | null): Promise<{ port: number; server: NetServer; heard: string[] }> {
  const heard: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('data', (d) => heard.push(d.toString()));
    s.on('error', () => {});
    for (const chunk of greeting ?? []) s.write(chunk);
  });
  server.on('close', () => sockets.forEach((s) => s.destroy()));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const close = server.close.bind(server);
  server.close = (cb?: (err?: Error) => void) => {
    sockets.forEach((s) => s.destroy());
    return close(cb);
  };
  return { port: (server.address() as { port: number }).port, server, heard };
}

let up: Awaited<ReturnType<typeof listener>>;
let refusing: Awaited<ReturnType<typeof listener>>;
let silent: Awaited<ReturnType<typeof listener>>;
let closedPort: number;

before(async () => {
  up = await listener(['220 primary.example ESMTP\r\n']);
  refusing = await listener(['554 5.3.2 not now\r\n']);
  silent = await listener(null);
  const gone = await listener(null);
  closedPort = gone.port;
  await new Promise((r) => gone.server.close(r));
});
after(() => {
  for (const l of [up, refusing, silent]) l?.server.close();
});

test('parseServer: [PRIO:]HOST[:PORT], IPv4 and [IPv6]; the printed name keeps what was given', () => {
  assert.deepEqual(parseServer('10:MX1.Example.ORG.'), {
    text: '10:MX1.Example.ORG.',
    name: 'MX1.Example.ORG.',
    prio: 10,
    host: 'mx1.example.org',
    port: 25,
  });
  assert.deepEqual(parseServer('mx1.example.org:2525'), {
    text: 'mx1.example.org:2525',
    name: 'mx1.example.org:2525',
    prio: null,
    host: 'mx1.example.org',
    port: 2525,
  });
  assert.deepEqual(parseServer('5:192.0.2.1'), {
    text: '5:192.0.2.1',
    name: '192.0.2.1',
    prio: 5,
    host: '192.0.2.1',
    port: 25,
  });
  assert.equal((parseServer('0:[2001:db8::1]:26') as { host: string }).host, '2001:db8::1');
  assert.equal((parseServer('0:[2001:db8::1]:26') as { port: number }).port, 26);
  assert.equal((parseServer('2001:db8::1') as { host: string }).host, '2001:db8::1');
  for (const bad of [
    '',
    '10:',
    'a b',
    'mx:0',
    'mx:70000',
    '$(reboot)',
    'a;b',
    '[192.0.2.1]',
    'x\0y',
    'h:1:2',
    'x'.repeat(301),
  ])
    assert.ok('error' in parseServer(bad), JSON.stringify(bad));
});

test('greets: a 220 greeting (whole, multi-line or in pieces) answers and gets a QUIT; 5xx, silence and a closed port do not', async () => {
  assert.equal(await greets('127.0.0.1', up.port, 5000), true);
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(up.heard.includes('QUIT\r\n'), JSON.stringify(up.heard));
  const multi = await listener(['220-first\r\n220 second\r\n']);
  const pieces = await listener(['2', '20', ' x\r\n']);
  try {
    assert.equal(await greets('127.0.0.1', multi.port, 5000), true);
    assert.equal(await greets('127.0.0.1', pieces.port, 5000), true);
  } finally {
    multi.server.close();
    pieces.server.close();
  }
  assert.equal(await greets('127.0.0.1', refusing.port, 5000), 'greeting "554 5.3.2 not now"');
  assert.equal(await greets('127.0.0.1', closedPort, 5000), 'ECONNREFUSED');
  const started = Date.now();
  assert.equal(await greets('127.0.0.1', silent.port, 300), 'timed out');
  assert.ok(Date.now() - started < 5000);
});

async function run(argv: string[], lookup?: Lookup): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '',
    err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  const io: ToolIo = { stdin: Readable.from([]), stdout, stderr, env: {} };
  const code = await runSmtpdcheck(argv, io, lookup);
  return { code, out, err };
}

/** Names of a test zone: the listeners are on 127.0.0.1 (the port says which one). */
const zone: Lookup = async (name) => {
  if (name === 'fail.test') throw Object.assign(new Error('queryA ESERVFAIL fail.test'), { code: 'ESERVFAIL' });
  if (name === 'us.test') return ['127.0.0.2', '::1']; // never connected to: it is the stop host
  return name.endsWith('.test') && name !== 'none.test' ? ['127.0.0.1'] : [];
};

test('exit 1 and the name when a server answers, 0 when none does; best priority first', async () => {
  assert.deepEqual(await run([`10:primary.test:${up.port}`], zone), {
    code: 1,
    out: `primary.test:${up.port}\n`,
    err: '',
  });
  const down = [`10:a.test:${closedPort}`, `20:b.test:${refusing.port}`, `30:none.test`, `40:fail.test`];
  assert.deepEqual(await run(['--timeout', '2', ...down], zone), { code: 0, out: '', err: '' });
  // sorted by priority when every server has one: 5 comes first although it is last
  assert.equal((await run([`20:b.test:${closedPort}`, `5:x.test:${up.port}`], zone)).out, `x.test:${up.port}\n`);
  const v = await run(['-v', `10:a.test:${closedPort}`, '20:none.test', '30:fail.test'], zone);
  assert.equal(v.code, 0);
  assert.equal(
    v.err,
    [
      `smtpdcheck: 10:a.test:${closedPort}: 127.0.0.1 port ${closedPort}: ECONNREFUSED`,
      'smtpdcheck: 20:none.test: no address',
      'smtpdcheck: 30:fail.test: lookup failed: queryA ESERVFAIL fail.test',
      '',
    ].join('\n'),
  );
});

test('--stop: the servers from the stop host on, and those of its priority, are not checked', async () => {
  const primary = `10:primary.test:${up.port}`;
  // we (us.test) are the secondary at 20: the primary answers
  assert.equal((await run(['--stop', 'us.test', primary, '20:us.test'], zone)).code, 1);
  // we are one of two at priority 10: the other one being up is no reason to refuse
  assert.deepEqual(await run(['--stop', 'us.test', primary, '10:us.test', `20:c.test:${up.port}`], zone), {
    code: 0,
    out: '',
    err: '',
  });
  // the stop host named by address (MY_IP), the server by name
  assert.equal((await run(['--stop', '::1', primary, '10:us.test'], zone)).code, 0);
  assert.equal((await run(['--stop', '::1', primary, '20:us.test'], zone)).code, 1);
  // a better server that is down, then us: 0; servers after the stop host are never tried
  assert.equal(
    (await run(['--stop=us.test', `5:a.test:${closedPort}`, '10:us.test', `20:c.test:${up.port}`], zone)).code,
    0,
  );
  const v = await run(['-v', '--stop', 'us.test', primary, '10:us.test'], zone);
  assert.equal(
    v.err,
    `smtpdcheck: 10:us.test: is us.test: stop\nsmtpdcheck: ${primary}: same priority as us.test: not checked\n`,
  );
});

test('--timeout bounds each server (a silent one counts as down); exit 2 on bad usage or an unresolvable --stop', async () => {
  const started = Date.now();
  assert.deepEqual(await run(['--timeout=0.3', `10:s.test:${silent.port}`], zone), { code: 0, out: '', err: '' });
  assert.ok(Date.now() - started < 5000);
  for (const [argv, why] of [
    [[], /no SERVER given/],
    [['--timeout', 'x', 'a.test'], /bad --timeout/],
    [['--timeout'], /--timeout needs a value/],
    [['--frob', 'a.test'], /unknown option/],
    [['$(reboot)'], /bad server/],
    [['--stop', 'a b', 'x.test'], /bad --stop/],
  ] as const) {
    const r = await run([...argv], zone);
    assert.equal(r.code, 2, argv.join(' '));
    assert.match(r.err, why);
    assert.match(r.err, /usage: smtpdcheck/);
  }
  assert.deepEqual(await run(['--stop', 'none.test', 'a.test'], zone), {
    code: 2,
    out: '',
    err: 'smtpdcheck: --stop none.test has no address\n',
  });
  assert.match(
    (await run(['--stop', 'fail.test', 'a.test'], zone)).err,
    /^smtpdcheck: cannot look up --stop fail\.test/,
  );
  assert.equal((await run(['--help'])).code, 0);
});
