// zone-server.mjs — the benchmark's DNS server, in its own process: one rfc7208 scenario's zone
// at a time, over UDP (127.0.0.1:$UDP_PORT, default 53, for pyspf and libspf2 via the system
// resolver) and DoH over http (127.0.0.1, free port, for tangerine). TIMEOUT names answer
// SERVFAIL at once (the benchmark measures SPF work, not waiting). Commands on stdin:
// "load N" (scenario index) -> "ok", "count" -> questions received since the last count, "quit".
import { createInterface } from 'node:readline';
import { loadSuite } from '../../packages/spf/dist/testing/zone.js';
import { startZoneServer } from '../../packages/spf/dist/testing/dns-server.js';

const scenarios = loadSuite(process.argv[2]);
const server = await startZoneServer(scenarios[0].zone, {
  doh: true,
  udp: true,
  udpPort: Number(process.env.UDP_PORT ?? 53),
  timeouts: 'servfail',
});
process.stdout.write(`${JSON.stringify({ doh: server.doh, udp: server.udp })}\n`);
let counted = 0;
for await (const line of createInterface({ input: process.stdin })) {
  const [cmd, arg] = line.split(' ');
  if (cmd === 'load') {
    server.setZone(scenarios[Number(arg)].zone);
    process.stdout.write('ok\n');
  } else if (cmd === 'count') {
    const now = server.queries();
    process.stdout.write(`${now - counted}\n`);
    counted = now;
  } else if (cmd === 'quit') break;
}
await server.close();
process.exit(0);
