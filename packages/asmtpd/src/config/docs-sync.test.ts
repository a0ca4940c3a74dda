import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DIRECTIVES } from './directives.js';
import { loadConfig, parseConfigText } from './load.js';
import { extractReadmeRegion, GENERATED_FILES, renderReadmeRegion } from './render.js';

// this file runs from packages/asmtpd/dist/config/
const REPO_ROOT = fileURLToPath(new URL('../../../..', import.meta.url));
const HINT = 'regenerate with: npx tsc -b packages/asmtpd && node packages/asmtpd/dist/config/render-cli.js --write';

function readRepoFile(path: string): string | null {
  const full = REPO_ROOT + path;
  return existsSync(full) ? readFileSync(full, 'utf8') : null;
}

for (const generated of GENERATED_FILES) {
  test(`docs-sync: ${generated.path} matches the directive table`, () => {
    const current = readRepoFile(generated.path);
    assert.notEqual(current, null, `${generated.path} is missing; ${HINT}`);
    assert.ok(current === generated.render(current), `${generated.path} is out of date with directives.ts; ${HINT}`);
  });
}

test('docs-sync: the README region is present and lists every directive', () => {
  const region = extractReadmeRegion(readRepoFile('README.md') ?? '');
  assert.equal(region, renderReadmeRegion(), HINT);
  for (const d of DIRECTIVES) assert.ok(region?.includes(`\`${d.name}\``), d.name);
});

test('docs-sync: every directive appears in the sample conf and the docs page', () => {
  const sample = readRepoFile('etc/asmtpd.conf') ?? '';
  const page = readRepoFile('docs/configuration.md') ?? '';
  for (const d of DIRECTIVES) {
    assert.ok(sample.includes(`\n#${d.name} `), `etc/asmtpd.conf lacks ${d.name}`);
    assert.ok(page.includes(`| \`${d.name}\``), `docs/configuration.md lacks ${d.name}`);
  }
});

test('the sample etc/asmtpd.conf loads cleanly: all commented out, so all defaults', () => {
  const r = loadConfig(`${REPO_ROOT}etc/asmtpd.conf`, { systemHostname: 'mx.example.org' });
  assert.equal(r.kind, 'ok', r.kind === 'error' ? r.errors.map((e) => `${e.line}: ${e.message}`).join('\n') : '');
  if (r.kind === 'ok') {
    assert.deepEqual(r.warnings, []);
    assert.equal(r.config.smtpPort, 25);
    assert.equal(r.config.holdQueue, '/var/spool/avenger/queue');
  }
});

test('the sample with every example uncommented (but the directives naming files) loads cleanly', () => {
  const sample = readRepoFile('etc/asmtpd.conf') ?? '';
  const namesFile = (line: string): boolean =>
    [
      'Sendmail',
      'PasswdFile',
      'DomainFile',
      'AliasFile',
      'SPFHostsFile',
      'WhiteListFile',
      'SynFPDB',
      'TLSCert',
      'TLSKey',
      'AuthFile',
      'Mailertable',
    ].some((name) => line.startsWith(`#${name} `));
  const uncommented = sample
    .split('\n')
    .map((line) => (/^#[A-Za-z]/.test(line) && !namesFile(line) ? line.slice(1) : line))
    .join('\n');
  const result = parseConfigText(uncommented, 'etc/asmtpd.conf', { systemHostname: 'mx.example.org' });
  assert.equal(
    result.kind,
    'ok',
    result.kind === 'error' ? result.errors.map((e) => `${e.line}: ${e.message}`).join('\n') : '',
  );
});
