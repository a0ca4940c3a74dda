// query-cost.mjs — what one DNS query costs each client, against the benchmark's zone server:
// wall and CPU time per operation, one at a time. Isolates the per-query cost behind the SPF
// benchmark's one-at-a-time figures: every check here asks exactly one TXT query (a domain whose
// record is "v=spf1 -all"), so check = query + SPF work.
// Run through bench/spf/run.sh with BENCH=query-cost (libspf2 and pyspf need the private
// resolv.conf). Options: --count N operations per measurement (default 5000), --rounds N (3).
// Rows:
//   node dgram round trip   one persistent UDP socket, fixed query bytes, no DNS code at all:
//                           the floor for any DNS client written for node
//   tangerine over UDP      tangerine with a request function sending its packet over one
//                           persistent UDP socket (the experiment: would tangerine be cheaper
//                           than c-ares without HTTP?)
//   c-ares / tangerine DoH  the resolvers asmtpd offers (system, tangerine), resolveTxt
//   checks                  @asmtpd/spf through c-ares; pyspf; libspf2 (their drivers)
import dgram from 'node:dgram';
import { createRequire } from 'node:module';
import { Resolver } from 'node:dns/promises';
import { checkMailFrom } from '../../packages/spf/dist/index.js';
import { makeResolver } from '../../packages/spf/dist/cli.js';
import { arg, here, median, runDriver, startZoneServerChild } from './common.mjs';

const COUNT = Number(arg('--count', '5000'));
const ROUNDS = Number(arg('--rounds', '3'));
const LIBSPF2 = arg('--libspf2-driver', '/tmp/asmtpd-bench-libspf2');
const PYTHON = arg('--python', '/usr/bin/python3');
const NAME = 'a12345678901234567890123456789012345678901234567890123456789012.example.com';
const SENDER = `x@${NAME}`;

const require = createRequire(new URL('../../packages/spf/package.json', import.meta.url));
const Tangerine = require('tangerine');
const dnsPacket = createRequire(require.resolve('tangerine'))('dns-packet'); // tangerine's own

const server = await startZoneServerChild();
const { addr } = server;
const udpServer = `${addr.udp.host}:${addr.udp.port}`;
const keepAlive = setInterval(() => {}, 1 << 30); // the measured sockets are unref'd

const query = dnsPacket.encode({
  type: 'query',
  id: 1,
  flags: dnsPacket.RECURSION_DESIRED,
  questions: [{ type: 'TXT', name: NAME }],
});
const socket = dgram.createSocket('udp4');
socket.unref();
let answered = () => {};
socket.on('message', () => answered());
const roundTrip = () =>
  new Promise((resolve) => {
    answered = resolve;
    socket.send(query, addr.udp.port, addr.udp.host);
  });

/** tangerine's request(url, options) answered over one UDP socket (ids matched; the experiment). */
function udpRequest() {
  const s = dgram.createSocket('udp4');
  s.unref();
  const pending = new Map();
  let nextId = 1;
  s.on('message', (msg) => {
    const p = pending.get(msg.readUInt16BE(0));
    if (p) {
      pending.delete(msg.readUInt16BE(0));
      p({ statusCode: 200, headers: {}, body: msg });
    }
  });
  return (_url, o) =>
    new Promise((resolve) => {
      const id = (nextId = (nextId + 1) & 0xffff);
      const pkt = Buffer.from(o.body);
      pkt.writeUInt16BE(id, 0);
      pending.set(id, resolve);
      s.send(pkt, addr.udp.port, addr.udp.host);
    });
}

const cares = new Resolver({ timeout: 2000, tries: 1 });
cares.setServers([udpServer]);
const tangerineUdp = new Tangerine(
  {
    servers: [udpServer],
    protocol: 'http',
    timeout: 2000,
    tries: 1,
    cache: false,
    requestOptions: { method: 'POST', headers: {} },
  },
  udpRequest(),
);
const doh = makeResolver({ servers: [addr.doh], protocol: 'http', timeoutMs: 2000 });

async function inProcess(op) {
  for (let i = 0; i < 500; i++) await op();
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < COUNT; i++) await op();
  const wall = Number(process.hrtime.bigint() - t0) / 1e3 / COUNT;
  const c = process.cpuUsage(cpu0);
  return { wall, cpu: (c.user + c.system) / COUNT, sys: c.system / COUNT };
}

async function driver(cmd, args) {
  const r = await runDriver(cmd, [...args, String(COUNT), '1'], `192.0.2.1\t${SENDER}\thelo.example\n`);
  const ns = r.results.reduce((a, [, t]) => a + t, 0);
  return { wall: ns / 1e3 / COUNT, cpu: r.cpuNs / 1e3 / COUNT, sys: NaN };
}

const measured = (op) => () => inProcess(op);
const rows = {
  'node dgram round trip (floor)': measured(roundTrip),
  'tangerine over one UDP socket (experiment)': measured(() => tangerineUdp.resolveTxt(NAME)),
  'node c-ares resolveTxt': measured(() => cares.resolveTxt(NAME)),
  'tangerine DoH resolveTxt': measured(() => doh.resolveTxt(NAME)),
  '@asmtpd/spf check, c-ares': measured(() =>
    checkMailFrom('192.0.2.1', SENDER, 'helo.example', { resolver: cares, timeoutMs: 5000 }),
  ),
  'pyspf check': () => driver(PYTHON, [here('./pyspf-driver.py')]),
  'libspf2 check': () => driver(LIBSPF2, []),
};
const results = Object.fromEntries(Object.keys(rows).map((k) => [k, []]));
for (let r = 0; r < ROUNDS; r++) {
  const names = Object.keys(rows);
  for (let k = 0; k < names.length; k++) {
    const name = names[(k + r) % names.length];
    results[name].push(await rows[name]());
  }
}
console.log(`${ROUNDS} rounds × ${COUNT} operations, one at a time; median of the rounds (µs per operation)`);
console.log('operation | wall | CPU | of which system');
for (const [name, rs] of Object.entries(results)) {
  const m = (k) => median(rs.map((x) => x[k]));
  console.log(
    `${name} | ${m('wall').toFixed(1)} | ${m('cpu').toFixed(1)} | ${Number.isNaN(m('sys')) ? '' : m('sys').toFixed(1)}`,
  );
}
clearInterval(keepAlive);
server.quit();
process.exit(0);
