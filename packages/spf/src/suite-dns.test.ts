/*
 * suite-dns.test.ts — the suites again, end to end: each scenario's zone is served by a dns2
 * DNS-over-HTTP server on 127.0.0.1 (a free port), and bin/spf-check (tangerine resolver,
 * --dns-protocol http) checks every test of the scenario in batch mode. TIMEOUT names are
 * never answered, so tangerine's own timeout (--timeout) produces the temperror.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadSuite, type Scenario } from './testing/zone.js';
import { startZoneServer, type ZoneServer } from './testing/dns-server.js';
import { DEFAULT_SENTINEL, expectedResults, EXCEPTIONS, SUITES, type SuiteName } from './testing/suites.js';

const BIN = fileURLToPath(new URL('../bin/spf-check', import.meta.url));

// at most two spf-check processes at a time: they share two cores with the DNS servers, and a
// starved process would see its own DNS timeouts fire
let slots = 2;
const waiting: Array<() => void> = [];
async function limited<T>(f: () => Promise<T>): Promise<T> {
  while (slots === 0) await new Promise<void>((r) => waiting.push(r));
  slots--;
  try {
    return await f();
  } finally {
    slots++;
    waiting.shift()?.();
  }
}

function runBatch(server: string, input: string): Promise<string[]> {
  return limited(() => spawnBatch(server, input));
}

function spawnBatch(server: string, input: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        BIN,
        '--dns-server',
        server,
        '--dns-protocol',
        'http',
        '--timeout',
        '1000',
        '--receiver',
        'receiver.example',
        '--default-explanation',
        DEFAULT_SENTINEL,
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`spf-check exited ${code}: ${err}`));
      else resolve(out.split('\n').slice(0, -1));
    });
    child.stdin.end(input);
  });
}

for (const suite of Object.keys(SUITES) as SuiteName[]) {
  describe(`${suite} suite through spf-check, tangerine and a DoH server on loopback`, () => {
    const scenarios: Scenario[] = loadSuite(SUITES[suite]);
    const outputs = new Map<Scenario, Promise<string[]>>();
    const servers: ZoneServer[] = [];
    before(async () => {
      for (const sc of scenarios) {
        const server = await startZoneServer(sc.zone, { doh: true, timeouts: 'hang' });
        servers.push(server);
        const input = sc.tests.map((t) => `${t.host}\t${t.mailfrom === '' ? '<>' : t.mailfrom}\t${t.helo}\n`).join('');
        const p = runBatch(server.doh as string, input);
        p.catch(() => undefined);
        outputs.set(sc, p);
      }
    });
    after(async () => {
      await Promise.all(servers.map((s) => s.close()));
    });
    for (const sc of scenarios) {
      sc.tests.forEach((t, i) => {
        test(`${sc.description} / ${t.name}`, async () => {
          const lines = await (outputs.get(sc) as Promise<string[]>);
          assert.equal(lines.length, sc.tests.length, 'one output line per input line');
          const [result, explanation = ''] = (lines[i] as string).split('\t');
          const want = expectedResults(suite, t);
          assert.ok(want.includes(result as string), `${t.name}: got ${result}, want ${want.join('|')}`);
          if (t.explanation !== undefined && EXCEPTIONS[`${suite}/${t.name}`] === undefined) {
            assert.equal(explanation, t.explanation, `${t.name}: explanation`);
          }
        });
      });
    }
  });
}
