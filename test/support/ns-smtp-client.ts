/**
 * A one-shot SMTP client for a network namespace, where this process's own sockets cannot go:
 * `nsSmtpClientArgv(...)` is the argv (`node -e SOURCE host port helo from rcpt…`) to run there
 * (e.g. with a lab's `run(ns, argv)`). It says EHLO, MAIL FROM and each RCPT TO, then QUIT, one
 * reply awaited each, and prints {"port": its local port, "replies": [every final reply line]} or
 * {"error": "..."} on stdout. The tests of SYN fingerprints use it: the SYN is the namespace's.
 */
const SOURCE = `
const [host, port, helo, from, ...rcpts] = process.argv.slice(1);
const steps = ['EHLO ' + helo, 'MAIL FROM:<' + from + '>', ...rcpts.map((r) => 'RCPT TO:<' + r + '>'), 'QUIT'];
const replies = [];
let local = 0, partial = '';
const s = require('net').connect({ host, port: Number(port) }, () => { local = s.localPort; });
s.setTimeout(10000, () => s.destroy(new Error('timeout')));
s.on('data', (d) => {
  partial += d;
  let i;
  while ((i = partial.indexOf('\\r\\n')) >= 0) {
    const line = partial.slice(0, i);
    partial = partial.slice(i + 2);
    if (!/^\\d{3} /.test(line)) continue;
    replies.push(line);
    const next = steps.shift();
    if (next) s.write(next + '\\r\\n'); else s.end();
  }
});
s.on('error', (e) => { console.log(JSON.stringify({ error: e.message })); process.exitCode = 1; });
s.on('close', () => { if (process.exitCode !== 1) console.log(JSON.stringify({ port: local, replies })); });
`;

export interface NsSmtpDialogue {
  host: string;
  port: number;
  rcpts: readonly string[];
  from?: string;
  helo?: string;
}

export function nsSmtpClientArgv(d: NsSmtpDialogue): string[] {
  return [
    process.execPath,
    '-e',
    SOURCE,
    d.host,
    String(d.port),
    d.helo ?? 'ns.example',
    d.from ?? 's@b.example',
    ...d.rcpts,
  ];
}
