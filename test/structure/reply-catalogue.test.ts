/**
 * Every reply text asmtpd gives comes from packages/asmtpd/src/reply/catalogue.ts: no other shipped
 * module builds one (a string that starts like "550 5.7.1 …" or "2.1.5 …", or a call such as
 * reply(550, '5.7.1', …)), and every entry of the catalogue is used.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPLIES, ANSWER_TEXTS } from 'asmtpd/dist/reply/catalogue.js';
import { REPO, callsWithCode, literalsOf, sourceFiles } from './source-tree.js';

const ASMTPD_SRC = join(REPO, 'packages/asmtpd/src');
const CATALOGUE = 'reply/catalogue.ts';
/** "550 5.7.1 text", "250-2.0.0 …", or the "X.Y.Z text" form smtp-server is given */
const REPLY_SHAPED = /^(?:[2-5]\d\d[ -][2-5]\.\d{1,3}\.\d{1,3}\b|[245]\.\d{1,3}\.\d{1,3} )/;

export function repliesBuiltOutside(srcDir: string): string[] {
  const found: string[] = [];
  for (const file of sourceFiles(srcDir)) {
    if (file === CATALOGUE) continue;
    for (const l of literalsOf(srcDir, file))
      if (REPLY_SHAPED.test(l.text)) found.push(`${file}:${l.line}: ${JSON.stringify(l.text)}`);
    for (const c of callsWithCode(srcDir, file)) found.push(`${file}:${c.line}: ${c.callee}(code, enhanced status, …)`);
  }
  return found;
}

test('no shipped module but the catalogue builds a reply text', () => {
  assert.deepEqual(repliesBuiltOutside(ASMTPD_SRC), []);
});

test('every entry of the catalogue is used', () => {
  const code = sourceFiles(ASMTPD_SRC)
    .filter((f) => f !== CATALOGUE)
    .map((f) => readFileSync(join(ASMTPD_SRC, f), 'utf8'))
    .join('\n');
  const unused = [
    ...Object.keys(REPLIES)
      .filter((k) => !new RegExp(`\\bREPLIES\\.${k}\\b`).test(code))
      .map((k) => `REPLIES.${k}`),
    ...Object.keys(ANSWER_TEXTS)
      .filter((k) => !new RegExp(`\\bANSWER_TEXTS\\.${k}\\b`).test(code))
      .map((k) => `ANSWER_TEXTS.${k}`),
  ];
  assert.deepEqual(unused, []);
});

test('the check fails on planted replies (a literal, a template, a reply() call)', (t) => {
  const copy = mkdtempSync(join(tmpdir(), 'asmtpd-replies-'));
  t.after(() => rmSync(copy, { recursive: true, force: true }));
  cpSync(ASMTPD_SRC, copy, { recursive: true });
  assert.deepEqual(repliesBuiltOutside(copy), [], 'the copy is clean');
  appendFileSync(
    join(copy, 'policy/outcome.ts'),
    [
      '',
      '// a comment that says 550 5.7.1 is no reply',
      "export const planted1 = (): Reply => reply(550, '5.7.1', 'planted');",
      "export const planted2 = '451 4.3.0 planted';",
      'export const planted3 = (who: string): string => `2.1.5 ${who} planted`;',
      '',
    ].join('\n'),
  );
  const found = repliesBuiltOutside(copy);
  assert.equal(found.length, 3, found.join('\n'));
  assert.ok(
    found.some((f) => /policy\/outcome\.ts:\d+: reply\(code, enhanced status/.test(f)),
    found.join('\n'),
  );
  assert.ok(
    found.some((f) => f.includes('"451 4.3.0 planted"')),
    found.join('\n'),
  );
  assert.ok(
    found.some((f) => f.includes('"2.1.5 "')),
    found.join('\n'),
  );
});
