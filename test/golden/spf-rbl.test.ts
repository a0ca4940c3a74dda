/**
 * Golden files for `asmtpd --spf` and `asmtpd --rbl`, against a loopback DNS server
 * (support/dns-server.ts) serving test/golden/{spf,rbl}/zone.json.
 *
 * Each case NAME in test/golden/spf/ or test/golden/rbl/ is three files:
 *   NAME.conf  the configuration; placeholders $DNS_UDP (the server's UDP address, for
 *              DNSResolver system), $DNS_DOH (its DNS-over-HTTP address, for DNSResolver tangerine
 *              with DNSProtocol http) and $DIR (the case's directory) are filled in. Every case
 *              must name a DNSServer: no test may ask the machine's own resolvers.
 *   NAME.in    standard input
 *   NAME.out   `exit N`, standard output, then each stderr line as `stderr: …`, with the
 *              temporary configuration path written as $CONF and the golden directory as $DIR
 *              (no port ever appears in the output).
 * UPDATE_GOLDEN=1 rewrites the .out files from the current output.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ASMTPD_BIN } from '../support/daemon.js';
import { startDnsServer, type DnsServer, type Records } from '../support/dns-server.js';

const GOLDEN = new URL('../../golden/', import.meta.url).pathname;

let dns: DnsServer;
let tmp: string;

before(async () => {
  dns = await startDnsServer();
  tmp = mkdtempSync(join(tmpdir(), 'asmtpd-golden-facts-'));
});

after(async () => {
  await dns?.close();
  rmSync(tmp, { recursive: true, force: true });
});

function run(args: string[], input: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  // asynchronous: the DNS server answers from this very process
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ASMTPD_BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

for (const mode of ['spf', 'rbl'] as const) {
  const dir = join(GOLDEN, mode);
  const cases = readdirSync(dir).filter((f) => f.endsWith('.conf')).map((f) => f.slice(0, -5));
  for (const name of cases) {
    test(`--${mode} ${name}`, async () => {
      const template = readFileSync(join(dir, `${name}.conf`), 'utf8');
      assert.match(template, /^DNSServer /m, 'every case names a DNSServer (never the machine\'s resolvers)');
      dns.set(JSON.parse(readFileSync(join(dir, 'zone.json'), 'utf8')) as Records);
      const conf = join(tmp, `${mode}-${name}.conf`);
      writeFileSync(conf, template.replaceAll('$DNS_UDP', `${dns.udp.host}:${dns.udp.port}`).replaceAll('$DNS_DOH', dns.doh).replaceAll('$DIR', dir));
      const r = await run([`--${mode}`, '-f', conf], readFileSync(join(dir, `${name}.in`), 'utf8'));
      const stderr = r.stderr === '' ? '' : r.stderr.replace(/\n$/, '').split('\n').map((l) => `stderr: ${l}\n`).join('');
      const got = `exit ${r.status}\n${r.stdout}${stderr}`.replaceAll(conf, '$CONF').replaceAll(dir, '$DIR');
      const outFile = join(dir, `${name}.out`);
      if (process.env.UPDATE_GOLDEN) writeFileSync(outFile, got);
      assert.equal(got, readFileSync(outFile, 'utf8'));
    });
  }
}
