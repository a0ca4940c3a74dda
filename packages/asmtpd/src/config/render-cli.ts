/**
 * Regenerates the configuration docs from the directive table.
 *
 *   node packages/asmtpd/dist/config/render-cli.js --write   write etc/asmtpd.conf,
 *                                                            docs/configuration.md, README region
 *   node packages/asmtpd/dist/config/render-cli.js --check   exit 1 if any is out of date
 *
 * Paths are relative to the repository root (found from this file's location, or --root DIR).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GENERATED_FILES } from './render.js';

function main(args: readonly string[]): number {
  const mode = args.includes('--write') ? 'write' : args.includes('--check') ? 'check' : null;
  const rootIndex = args.indexOf('--root');
  const root = rootIndex >= 0 ? args[rootIndex + 1] : join(dirname(fileURLToPath(import.meta.url)), '../../../..');
  if (mode === null || root === undefined) {
    process.stderr.write('usage: render-cli.js --write | --check [--root DIR]\n');
    return 2;
  }
  let stale = 0;
  for (const generated of GENERATED_FILES) {
    const path = join(root, generated.path);
    const current = existsSync(path) ? readFileSync(path, 'utf8') : null;
    const expected = generated.render(current);
    if (current === expected) continue;
    if (mode === 'write') {
      writeFileSync(path, expected);
      process.stdout.write(`wrote ${generated.path}\n`);
    } else {
      process.stdout.write(`${generated.path}: out of date\n`);
      stale++;
    }
  }
  return stale === 0 ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
