/**
 * NetPath with hops that do not answer (support/netns-route.ts): a router that sends no ICMP
 * time exceeded is `*` in the path, and the client behind it still gives the hop count; a client
 * that ignores echo requests leaves the destination unreached: hops = the last TTL that answered.
 * Each lab has its own namespaces; the kernel's ICMP rate limits stay on.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { ASMTPD_BIN } from '../support/daemon.js';
import { createRouteLab, LAB, routeLabUnavailable, type RouteLab } from '../support/netns-route.js';

const unavailable = routeLabUnavailable();
const skip = unavailable ?? false;
const labs: RouteLab[] = [];
after(() => {
  for (const l of labs) l.close();
});

function lab(o: Parameters<typeof createRouteLab>[0]): RouteLab {
  const l = createRouteLab({ rateLimit: true, ...o });
  labs.push(l);
  return l;
}

// each test has its own lab: they run at once (two of them wait for the whole 5 s bound)
describe('silent hops', { concurrency: true }, () => {
  test(
    'a router that sends no time exceeded is `*`; the client is still 3 hops away (IPv4 and IPv6)',
    { skip },
    async () => {
      const l = lab({ silent: ['r1'] });
      const [v4, v6] = await Promise.all(
        [LAB.client.v4, LAB.client.v6].map((ip) => l.run('server', [process.execPath, ASMTPD_BIN, '--netpath', ip])),
      );
      assert.equal(v4!.out, `hops: 3\n1 ${LAB.r2.v4}\n2 *\n3 ${LAB.client.v4}\n`);
      assert.equal(v6!.out, `hops: 3\n1 ${LAB.r2.v6}\n2 *\n3 ${LAB.client.v6}\n`);
      assert.deepEqual([v4!.code, v6!.code], [0, 0]);
      // (how long the silent hop is waited for is trace.test.ts' business: timing under load is not)
    },
  );

  test('a client that ignores echo requests: not reached, hops = the last router', { skip }, async () => {
    const l = lab({ silentClient: true });
    const r = await l.run('server', [process.execPath, ASMTPD_BIN, '--netpath', LAB.client.v4, '6']);
    assert.equal(r.out, `hops: 2 (destination not reached)\n1 ${LAB.r2.v4}\n2 ${LAB.r1.v4}\n`);
    assert.equal(r.code, 0);
  });

  test('nothing answers: exit 1, no answer', { skip }, async () => {
    const l = lab({ silent: ['r1', 'r2'], silentClient: true });
    const r = await l.run('server', [process.execPath, ASMTPD_BIN, '--netpath', LAB.client.v6, '4']);
    assert.equal(r.out, '');
    assert.match(r.err, /^asmtpd: --netpath: no answer from fd77:3::2 or any router within 4 hops and 5000 ms\n$/);
    assert.equal(r.code, 1);
  });
});
