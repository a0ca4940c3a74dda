import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSpfHosts, parseSpfHosts } from './spf-hosts.js';
import type { ConfigIssue } from '../config/issues.js';

test('parseSpfHosts: domain and record, comments and blank lines skipped, domains case-insensitive', () => {
  const text = '# trusted\n\nExample.COM.  ip4:192.0.2.0/24   -all\n  # indented comment\nv.example v=spf1 mx -all\n';
  const { value, issues } = parseSpfHosts(text, 'F');
  assert.deepEqual(issues, []);
  assert.deepEqual(
    [...value],
    [
      ['example.com', 'ip4:192.0.2.0/24 -all'],
      ['v.example', 'v=spf1 mx -all'],
    ],
  );
});

test('parseSpfHosts reports bad lines with their line numbers and keeps the rest', () => {
  const text = 'a.example\nbad..name -all\nb.example foo:bar\nc.example -all\nC.example +all\n';
  const { value, issues } = parseSpfHosts(text, 'F');
  assert.deepEqual([...value], [['c.example', '-all']]);
  assert.deepEqual(
    issues.map((i) => i.line),
    [1, 2, 3, 5],
  );
  assert.match(issues[0]!.message, /expected an SPF record/);
  assert.match(issues[1]!.message, /expected a domain name/);
  assert.match(issues[2]!.message, /not a valid SPF record/);
  assert.match(issues[3]!.message, /listed again/);
});

test('loadSpfHosts looks domains up case-insensitively and re-reads the file when its mtime changes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'spfhosts-'));
  try {
    const path = join(dir, 'spfhosts');
    writeFileSync(path, 'one.example -all\n');
    const issues: ConfigIssue[] = [];
    const lookup = loadSpfHosts(path, { checkIntervalMs: 0, onIssues: (i) => issues.push(...i) });
    assert.equal(lookup('ONE.example.'), '-all');
    assert.equal(lookup('two.example'), undefined);
    writeFileSync(path, 'one.example +all\n'); // same size: only the mtime tells
    utimesSync(path, new Date(), new Date(Date.now() + 5000));
    assert.equal(lookup('one.example'), '+all');
    rmSync(path);
    assert.equal(lookup('one.example'), '+all', 'a file that disappears keeps the last contents');
    assert.equal(issues.length, 1);
    assert.match(issues[0]!.message, /no such file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
