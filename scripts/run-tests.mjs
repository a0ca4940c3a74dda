#!/usr/bin/env node
// Runs every compiled test file (packages/*/dist/**/*.test.js, test/dist/**/*.test.js)
// with node:test. Extra arguments are passed to `node --test` (e.g. --test-name-pattern).
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
function collect(dir, out) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) collect(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}
const files = [];
for (const pkg of readdirSync(join(root, 'packages'))) collect(join(root, 'packages', pkg, 'dist'), files);
collect(join(root, 'test', 'dist'), files);
const only = process.env.TEST_FILTER;
const selected = only ? files.filter((f) => f.includes(only)) : files;
if (selected.length === 0) {
  console.error('run-tests: no test files found (did the build run?)');
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...process.argv.slice(2), ...selected], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
