import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseMailerValue, parseMailertable } from './mailertable.js';
import { createRelayDomainTable } from './relay-domains.js';

test('mailertable values: sendmail mailers, bracketed hosts, IPv6 literals, fallbacks, ports', () => {
  const table: [string, { host: string; port: number }[] | RegExp][] = [
    ['smtp:[192.0.2.25]', [{ host: '192.0.2.25', port: 25 }]],
    [
      'esmtp:[mx1.example.net]:[192.0.2.26]',
      [
        { host: 'mx1.example.net', port: 25 },
        { host: '192.0.2.26', port: 25 },
      ],
    ],
    ['smtp:[IPv6:2001:db8::25]', [{ host: '2001:db8::25', port: 25 }]],
    [
      'smtp:[IPv6:::1]:2525:[127.0.0.1]',
      [
        { host: '::1', port: 2525 },
        { host: '127.0.0.1', port: 25 },
      ],
    ],
    ['SMTP8:[::1]', [{ host: '::1', port: 25 }]],
    [
      'relay:Backend.Example.:[192.0.2.1]:26',
      [
        { host: 'backend.example', port: 25 },
        { host: '192.0.2.1', port: 26 },
      ],
    ],
    ['dsmtp:host.example', [{ host: 'host.example', port: 25 }]],
    ['local:bob', /names no SMTP backend/],
    ['error:5.1.1:550 no', /names no SMTP backend/],
    ['smtp:', /empty host/],
    ['smtp:[h1.example]:', /empty host/],
    ['smtp:[192.0.2.1', /unclosed/],
    ['smtp:[IPv6:2001:zz::1]', /bad IPv6/],
    ['smtp:2525', /follows no host/],
    ['smtp:[h.example]:25:26', /follows no host/],
    ['smtp:[h.example]:70000', /port 70000/],
    ['192.0.2.1', /expected mailer:host/],
    ['smtp:[h.example]x', /expected : after \]/],
  ];
  for (const [text, want] of table) {
    const r = parseMailerValue(text);
    if (want instanceof RegExp) {
      assert.equal(r.kind, 'error', text);
      if (r.kind === 'error') assert.match(r.message, want, text);
    } else assert.deepEqual(r, { kind: 'ok', value: want }, text);
  }
});

test('mailertable file: keys, .subdomain keys, comments, bad lines reported with FILE:LINE and skipped', () => {
  const { entries, issues } = parseMailertable(
    [
      '# gateway',
      'A.Example.   smtp:[192.0.2.25]   # primary',
      '.a.example   esmtp:[192.0.2.26]',
      '',
      'b.example    local:bob',
      'a.example    smtp:[192.0.2.99]',
      'c.example',
      'bad_domain!  smtp:[192.0.2.1]',
      'd.example    smtp:[192.0.2.1] extra',
    ].join('\n'),
    'mt',
  );
  assert.deepEqual(
    entries.map((e) => [e.domain, e.subdomainsOnly, e.backends[0]!.host, e.line]),
    [
      ['a.example', false, '192.0.2.25', 2],
      ['a.example', true, '192.0.2.26', 3],
    ],
  );
  assert.deepEqual(
    issues.map((i) => `${i.file}:${i.line}`),
    ['mt:5', 'mt:6', 'mt:7', 'mt:8', 'mt:9'],
  );
  assert.match(issues[1]!.message, /given twice \(first at line 2\)/);
});

test('relay-domain table: RelayDomain lines win, sendmail .keys, RcptVerifySubdomains, re-read on change', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mt-'));
  try {
    const file = join(dir, 'mailertable');
    writeFileSync(file, 'x.example smtp:[192.0.2.1]\n.y.example smtp:[192.0.2.2]\nz.example smtp:[192.0.2.3]\n');
    let now = 0;
    const issues: string[] = [];
    const mk = (subdomains: boolean) =>
      createRelayDomainTable([{ domain: 'z.example', backends: [{ host: '192.0.2.9', port: 25 }] }], {
        subdomains,
        mailertable: file,
        now: () => now,
        onIssues: (i) => issues.push(...i.map((x) => `${x.line}: ${x.message}`)),
      });
    const off = mk(false);
    const on = mk(true);
    const host = (t: ReturnType<typeof mk>, d: string) => t.lookup(d)?.backends[0]!.host ?? null;
    const rows: [string, string | null, string | null][] = [
      // domain, subdomains off, subdomains on
      ['x.example', '192.0.2.1', '192.0.2.1'],
      ['X.Example.', '192.0.2.1', '192.0.2.1'],
      ['sub.x.example', null, '192.0.2.1'],
      ['y.example', null, null],
      ['a.b.y.example', '192.0.2.2', '192.0.2.2'],
      ['z.example', '192.0.2.9', '192.0.2.9'],
      ['s.z.example', null, '192.0.2.9'],
      ['other.example', null, null],
    ];
    for (const [d, wantOff, wantOn] of rows) {
      assert.equal(host(off, d), wantOff, `off ${d}`);
      assert.equal(host(on, d), wantOn, `on ${d}`);
    }
    // an edit (a new file renamed into place) is seen at the next lookup a second later
    writeFileSync(`${file}.new`, 'x.example smtp:[192.0.2.7]:[192.0.2.8]\nw.example bogus\n');
    renameSync(`${file}.new`, file);
    assert.equal(host(off, 'x.example'), '192.0.2.1', 'not before the check interval');
    now = 1000;
    assert.deepEqual(off.lookup('x.example')?.backends, [
      { host: '192.0.2.7', port: 25 },
      { host: '192.0.2.8', port: 25 },
    ]);
    assert.equal(host(off, 'a.y.example'), null, 'the removed line is gone');
    assert.ok(
      issues.some((i) => /^2: w\.example: expected mailer:host/.test(i)),
      issues.join('\n'),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
