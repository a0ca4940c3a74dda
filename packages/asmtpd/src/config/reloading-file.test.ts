import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConfigIssue } from './issues.js';
import { createReloadingFile, readDataFile } from './reloading-file.js';

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'asmtpd-reload-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** parses lines; a line "bad" is an issue */
function lines(text: string, file: string): { value: string[]; issues: ConfigIssue[] } {
  const all = text.split('\n').filter((l) => l !== '');
  return {
    value: all.filter((l) => l !== 'bad'),
    issues: all.flatMap((l, i) => (l === 'bad' ? [{ file, line: i + 1, message: 'bad line' }] : [])),
  };
}

test('reloading file: read at creation, re-read only after the interval and only when changed', () => {
  withDir((dir) => {
    const path = join(dir, 'data');
    writeFileSync(path, 'a\n');
    let clock = 1000;
    let parses = 0;
    const issues: ConfigIssue[][] = [];
    const file = createReloadingFile(
      path,
      (t, f) => {
        parses++;
        return lines(t, f);
      },
      [] as string[],
      { now: () => clock, onIssues: (i) => issues.push(i) },
    );
    assert.deepEqual([file.current(), parses], [['a'], 1]);

    writeFileSync(path, 'a\nb\nbad\n');
    assert.deepEqual(file.current(), ['a'], 'within the interval: no stat');
    clock += 1000;
    assert.deepEqual([file.current(), parses], [['a', 'b'], 2]);
    assert.deepEqual(issues, [[{ file: path, line: 3, message: 'bad line' }]]);
    clock += 5000;
    assert.deepEqual([file.current(), parses], [['a', 'b'], 2], 'unchanged: not parsed again');

    // same size and mtime, new inode (an editor's rename into place)
    const next = join(dir, 'data.new');
    writeFileSync(next, 'c\nd\nbad\n');
    utimesSync(next, 1_000_000, 1_000_000);
    utimesSync(path, 1_000_000, 1_000_000);
    clock += 1000;
    file.current();
    const parsesBefore = parses;
    renameSync(next, path);
    clock += 1000;
    assert.deepEqual([file.current(), parses], [['c', 'd'], parsesBefore + 1]);
  });
});

test('reloading file: a vanished file keeps the last contents, reported once; back → re-read', () => {
  withDir((dir) => {
    const path = join(dir, 'data');
    writeFileSync(path, 'a\n');
    let clock = 0;
    const issues: string[] = [];
    const file = createReloadingFile(path, lines, [] as string[], {
      now: () => clock,
      onIssues: (i) => issues.push(...i.map((x) => `${x.line}: ${x.message}`)),
    });
    rmSync(path);
    for (let i = 0; i < 3; i++) {
      clock += 1000;
      assert.deepEqual(file.current(), ['a']);
    }
    assert.deepEqual(issues, ['0: no such file; keeping the last contents read']);
    writeFileSync(path, 'z\n');
    clock += 1000;
    assert.deepEqual(file.current(), ['z']);
  });
});

test('reloading file: missing at start → empty, reported', () => {
  withDir((dir) => {
    const issues: ConfigIssue[] = [];
    const file = createReloadingFile(join(dir, 'nope'), lines, [] as string[], { onIssues: (i) => issues.push(...i) });
    assert.deepEqual(file.current(), []);
    assert.deepEqual(issues, [{ file: join(dir, 'nope'), line: 0, message: 'no such file' }]);
  });
});

test('readDataFile: text and signature, or why not', () => {
  withDir((dir) => {
    const path = join(dir, 'data');
    writeFileSync(path, 'x');
    const r = readDataFile(path);
    assert.equal(r.kind, 'ok');
    if (r.kind === 'ok') assert.equal(r.text, 'x');
    assert.deepEqual(readDataFile(dir), { kind: 'error', message: 'not a regular file' });
    assert.deepEqual(readDataFile(join(dir, 'nope')), { kind: 'error', message: 'no such file' });
    if (process.getuid?.() !== 0) {
      chmodSync(path, 0o000);
      assert.deepEqual(readDataFile(path), { kind: 'error', message: 'permission denied' });
    }
  });
});
