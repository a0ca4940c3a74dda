/**
 * Manual pages (docs/utilities.md): every utility in packages/asmtpd/tools has docs/man/NAME.1.md
 * (sendmac shares macutil's), `pnpm build` rendered it to packages/asmtpd/share/man/man1/NAME.1,
 * and `man --warnings -l` renders that with no warning and the sections a manual page has.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const tools = join(root, 'packages', 'asmtpd', 'tools');
const sources = join(root, 'docs', 'man');
const rendered = join(root, 'packages', 'asmtpd', 'share', 'man', 'man1');
/** commands documented on another command's page */
const SHARED_PAGE: Record<string, string> = { sendmac: 'macutil' };

const manAvailable = spawnSync('man', ['--version'], { encoding: 'utf8' }).status === 0;
if (!manAvailable && process.env.CI) throw new Error('CI installs man-db (.ci/run)');

test('every utility has a manual page in docs/man', () => {
  const missing = readdirSync(tools)
    .map((name) => SHARED_PAGE[name] ?? name)
    .filter((name) => !existsSync(join(sources, `${name}.1.md`)));
  assert.deepEqual(missing, []);
});

for (const file of readdirSync(sources).filter((f) => f.endsWith('.1.md'))) {
  const name = file.slice(0, -'.1.md'.length);
  test(
    `man -l renders ${name}(1) without a warning`,
    { skip: manAvailable ? false : 'skipped: man-db is not installed' },
    () => {
      const page = join(rendered, `${name}.1`);
      assert.ok(existsSync(page), `${page}: run pnpm build (scripts/build-man.mjs)`);
      const r = spawnSync('man', ['--warnings', '-l', page], {
        encoding: 'utf8',
        env: { ...process.env, MANWIDTH: '80', MAN_KEEP_FORMATTING: '', PAGER: 'cat', MANPAGER: 'cat' },
      });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, '', 'no groff warning');
      const text = r.stdout.replace(/.\x08/g, '');
      for (const section of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'EXIT STATUS'])
        assert.match(text, new RegExp(`^${section}$`, 'm'), `${name}(1) has a ${section} section`);
      assert.match(text, new RegExp(`^\\s+${name.replace('.', '\\.')} - `, 'm'), 'NAME says what it is');
    },
  );
}
