// common.mjs — what bench.mjs and query-cost.mjs share: their options, the zone server child
// (zone-server.mjs), running a pyspf/libspf2 driver and reading its output, the median.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { SUITES } from '../../packages/spf/dist/testing/suites.js';

export const here = (p) => fileURLToPath(new URL(p, import.meta.url));

/** the value after `--name` on the command line, or def */
export const arg = (name, def) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : def;
};

/** zone-server.mjs with the rfc7208 suite: its addresses and a command(line) -> answer line */
export async function startZoneServerChild() {
  const child = spawn(process.execPath, [here('./zone-server.mjs'), SUITES.rfc7208], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const addr = JSON.parse((await lines.next()).value);
  return {
    addr,
    async command(cmd) {
      child.stdin.write(`${cmd}\n`);
      const r = await lines.next();
      if (r.done) throw new Error('zone server exited');
      return r.value;
    },
    quit() {
      child.stdin.write('quit\n');
    },
  };
}

/** Run a pyspf/libspf2 driver on `input`: {results: [[RESULT, NS]…], cpuNs, span: [start, end], late}. */
export function runDriver(cmd, args, input) {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('error', reject);
    c.on('close', (code) =>
      code === 0 ? resolve(parseDriverOutput(out)) : reject(new Error(`${cmd} exited ${code}`)),
    );
    c.stdin.end(input);
  });
}

/** RESULT<TAB>NS lines, then #cpu, #span (and #late) */
function parseDriverOutput(out) {
  const r = { results: [], cpuNs: 0, span: [0, 0], late: false };
  for (const line of out.trim().split('\n')) {
    const f = line.split('\t');
    if (f[0] === '#cpu') r.cpuNs = Number(f[1]);
    else if (f[0] === '#span') r.span = [Number(f[1]), Number(f[2])];
    else if (f[0] === '#late') r.late = true;
    else r.results.push([f[0], Number(f[1])]);
  }
  return r;
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
