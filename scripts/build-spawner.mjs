#!/usr/bin/env node
// Compiles the runner's forker, packages/avenger-runner/libexec/spawner.c, into libexec/spawner
// (not committed) with the hardening flags Debian builds its packages with. Run by `pnpm build`;
// skipped when the binary is newer than the source and this script. Needs a C compiler (gcc,
// libc6-dev: .ci/run installs them; node-gyp needs them too).
import { execFileSync } from 'node:child_process';
import { chmodSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(import.meta.url);
const libexec = join(dirname(here), '..', 'packages', 'avenger-runner', 'libexec');
const source = join(libexec, 'spawner.c');
const binary = join(libexec, 'spawner');
const mtime = (file) => {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return -1;
  }
};

if (mtime(binary) <= Math.max(mtime(source), mtime(here))) {
  const cc = process.env.CC || 'cc';
  const partial = `${binary}.${process.pid}.tmp`;
  const flags = [
    '-std=gnu11',
    '-O2',
    '-Wall',
    '-Wextra',
    '-Wshadow',
    '-Wformat=2',
    '-Wno-format-truncation', // reasons are cut to a line on purpose
    '-Werror',
    '-D_FORTIFY_SOURCE=2',
    '-fstack-protector-strong',
    '-fstack-clash-protection',
    '-fPIE',
    '-pie',
    '-Wl,-z,relro,-z,now',
  ];
  try {
    execFileSync(cc, [...flags, '-o', partial, source], { stdio: 'inherit' });
  } catch (err) {
    rmSync(partial, { force: true });
    console.error(`build-spawner: ${cc} failed (a C compiler and libc6-dev are needed): ${err.message}`);
    process.exit(1);
  }
  chmodSync(partial, 0o755);
  renameSync(partial, binary);
}
