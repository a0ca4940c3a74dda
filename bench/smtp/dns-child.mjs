// Loopback DNS servers for the client-facts runs of bench/smtp/run.mjs (issue 5), in a process
// of their own: the benchmark process runs the latency client and spawnSync's, and a DNS server
// sharing its event loop would be slowed (or stalled) by them. Started by run.mjs with fork():
//
//   fork('dns-child.mjs', [JSON.stringify([{ name, zone: 'empty' | 'cached' | 'facts', ttl }...])])
//
// One dns2 server (UDP + DNS over HTTP, test/support/dns-server.ts, built into test/dist by
// `pnpm build`) per entry, so every asmtpd target has its own records and query count.
//   zone 'empty': no records at all (NXDOMAIN for every name, without an SOA, so no resolver may
//     cache it: every lookup reaches the server): facts as cheap as they can be by content.
//   zone 'cached': the PTR, A and SPF records below, no DNSBL names (with TTL 300 s the daemon's
//     cache answers everything after the first connection)
//   zone 'facts': what a well-set-up client has (records with the given TTL in seconds):
//     PTR 1.0.0.127.in-addr.arpa -> client.bench.test, A client.bench.test -> 127.0.0.1
//       (a forward-confirmed reverse name)
//     TXT bench-source.test (the MAIL FROM domain) and bench-client.test (the HELO name):
//       "v=spf1 ip4:127.0.0.0/8 -all" (pass, one TXT lookup each)
//     DNSBLs bl1.bench.test, bl2.bench.test: 127.0.0.1 not listed (NXDOMAIN);
//       bl3.bench.test lists it (A 127.0.0.2 + TXT reason; the daemon then asks the TXT).
//   'cached' and 'facts': NXDOMAIN and NODATA answers carry the SOA of their zone (bench.test,
//     each DNSBL zone, bench-source.test, bench-client.test, in-addr.arpa) with TTL and MINIMUM
//     equal to the records' TTL, so a resolver may cache them for that long (RFC 2308); with TTL 0
//     nothing is cached.
// Messages (IPC): the child sends {ready: {name: {udp: 'HOST:PORT', doh: 'HOST:PORT'}}};
// the parent sends {cmd: 'stats', id} and gets {id, stats: {name: {total, byType}}} (queries
// since the previous 'stats', which clears the count), or {cmd: 'exit'}.
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { startDnsServer, reverseName, rblName } = await import(
  pathToFileURL(join(root, 'test', 'dist', 'support', 'dns-server.js')).href
);

const CLIENT_IP = '127.0.0.1';
const CLIENT_NAME = 'client.bench.test';
const RBL_ZONES = ['bl1.bench.test', 'bl2.bench.test', 'bl3.bench.test'];

function cachedZone(ttl) {
  const spf = [{ type: 'TXT', data: 'v=spf1 ip4:127.0.0.0/8 -all', ttl }];
  return {
    [reverseName(CLIENT_IP)]: [{ type: 'PTR', domain: CLIENT_NAME, ttl }],
    [CLIENT_NAME]: [{ type: 'A', address: CLIENT_IP, ttl }],
    'bench-source.test': spf,
    'bench-client.test': spf,
  };
}

function factsZone(ttl) {
  return {
    ...cachedZone(ttl),
    [rblName(CLIENT_IP, 'bl3.bench.test')]: [
      { type: 'A', address: '127.0.0.2', ttl },
      { type: 'TXT', data: 'bench: listed by bl3 (score below RBLThreshold)', ttl },
    ],
  };
}

const SOA_ZONES = ['bench.test', ...RBL_ZONES, 'bench-source.test', 'bench-client.test', 'in-addr.arpa'];
const soaOf = (ttl) => SOA_ZONES.map((zone) => ({ zone, ttl, minimum: ttl }));

const spec = JSON.parse(process.argv[2] ?? '[]');
const servers = new Map();
for (const s of spec) {
  const ttl = s.ttl ?? 300;
  const records = s.zone === 'facts' ? factsZone(ttl) : s.zone === 'cached' ? cachedZone(ttl) : {};
  const srv = await startDnsServer({
    records,
    udp: true,
    doh: true,
    ...(s.zone === 'empty' ? {} : { soa: soaOf(ttl) }),
  });
  servers.set(s.name, srv);
}
process.send({
  ready: Object.fromEntries([...servers].map(([n, s]) => [n, { udp: `${s.udp.host}:${s.udp.port}`, doh: s.doh }])),
});

process.on('message', async (m) => {
  if (m?.cmd === 'stats') {
    const stats = {};
    for (const [n, s] of servers) {
      const byType = {};
      for (const q of s.queries) byType[q.type] = (byType[q.type] ?? 0) + 1;
      stats[n] = { total: s.queries.length, byType };
      s.clearQueries();
    }
    process.send({ id: m.id, stats });
  } else if (m?.cmd === 'exit') {
    for (const s of servers.values()) await s.close().catch(() => undefined);
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
