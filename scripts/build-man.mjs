#!/usr/bin/env node
// Renders every manual page of docs/man (NAME.SECTION.md, marked-man's Markdown) to roff in
// packages/asmtpd/share/man/manSECTION/NAME.SECTION, where `man -l` and MANPATH find them.
// Run by `pnpm build`; the output is not committed.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'docs', 'man');
const out = join(root, 'packages', 'asmtpd', 'share', 'man');
const bin = join(root, 'node_modules', '.bin', 'marked-man');
const version = JSON.parse(
  execFileSync('node', ['-p', 'JSON.stringify(require("./packages/asmtpd/package.json").version)'], {
    cwd: root,
    encoding: 'utf8',
  }),
);

for (const file of readdirSync(src)
  .filter((f) => /^[\w.+-]+\.\d\.md$/.test(f))
  .sort()) {
  const [, name, section] = /^(.+)\.(\d)\.md$/.exec(file);
  const roff = execFileSync(
    bin,
    [
      '--no-breaks',
      '--name',
      name,
      '--section',
      section,
      '--version',
      `asmtpd ${version}`,
      '--manual',
      'asmtpd utilities',
      join(src, file),
    ],
    { encoding: 'utf8' },
  );
  mkdirSync(join(out, `man${section}`), { recursive: true });
  writeFileSync(join(out, `man${section}`, `${name}.${section}`), roff);
}
