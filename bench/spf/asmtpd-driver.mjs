// asmtpd-driver.mjs — times @asmtpd/spf on the benchmark's checks, in its own process, the way
// libspf2-driver.c and pyspf-driver.py time theirs (the bench process only feeds and collects).
// Usage: node asmtpd-driver.mjs udp|doh SERVER   (udp: "127.0.0.1:53" through node's c-ares
// dns.promises.Resolver; doh: "127.0.0.1:PORT" through tangerine, built as spf-check builds it).
// A long-lived process (a daemon's checks run in a warm process): it reads one JSON command per
// stdin line and answers one line per command:
//   {"checks":[[IP,SENDER,HELO],…],"repeat":N,"warmup":W}  → W unmeasured passes, then N passes,
//     one check at a time; answers {"results":"RESULT NS,RESULT NS,…" (per check, in order),
//     "cpuNs": user+system time of the N passes}.
//   {"checks":…,"repeat":N,"concurrency":C}  → the N passes with up to C checks in flight;
//     answers {"ms": elapsed milliseconds, "cpuNs": …}.
import { Resolver } from 'node:dns/promises';
import { createInterface } from 'node:readline';
import { checkMailFrom } from '../../packages/spf/dist/index.js';
import { makeResolver } from '../../packages/spf/dist/cli.js';

const [kind, server] = process.argv.slice(2);
let resolver;
if (kind === 'udp') {
  resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([server]);
} else if (kind === 'doh') {
  resolver = makeResolver({ servers: [server], protocol: 'http', timeoutMs: 2000 });
} else {
  throw new Error('usage: asmtpd-driver.mjs udp|doh SERVER');
}
const options = { resolver, timeoutMs: 5000 };
const cpuNs = (since) => {
  const d = process.cpuUsage(since);
  return (d.user + d.system) * 1000;
};

for await (const line of createInterface({ input: process.stdin })) {
  if (line === '') continue;
  const cmd = JSON.parse(line);
  const checks = cmd.checks.map(([ip, sender, helo]) => [ip, sender === '<>' ? '' : sender, helo]);
  if (cmd.concurrency) {
    const all = [];
    for (let r = 0; r < cmd.repeat; r++) all.push(...checks);
    let next = 0;
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: cmd.concurrency }, async () => {
        while (next < all.length) {
          const [ip, sender, helo] = all[next++];
          await checkMailFrom(ip, sender, helo, options);
        }
      }),
    );
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    process.stdout.write(`${JSON.stringify({ ms, cpuNs: cpuNs(cpu0) })}\n`);
    continue;
  }
  for (let r = 0; r < (cmd.warmup ?? 0); r++) {
    for (const [ip, sender, helo] of checks) await checkMailFrom(ip, sender, helo, options);
  }
  const out = new Array(cmd.repeat * checks.length);
  let k = 0;
  const cpu0 = process.cpuUsage();
  for (let r = 0; r < cmd.repeat; r++) {
    for (const [ip, sender, helo] of checks) {
      const t0 = process.hrtime.bigint();
      const res = await checkMailFrom(ip, sender, helo, options);
      out[k++] = `${res.result} ${Number(process.hrtime.bigint() - t0)}`;
    }
  }
  process.stdout.write(`${JSON.stringify({ results: out.join(','), cpuNs: cpuNs(cpu0) })}\n`);
}
