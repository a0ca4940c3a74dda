/**
 * What ships: for each workspace package, the files `pnpm pack` takes (package.json `files`:
 * bin, libexec, share, dist without its tests, `dist/testing/`, source maps and build info).
 * Unit tests sit beside their module in src/ and fixtures in `src/testing/`; the one build
 * compiles both into dist/, where scripts/run-tests.mjs finds the tests. This test fails when
 *   - a shipped file is a test (`*.test.*`), a fixture (`testing/`), a source map, build info
 *     or TypeScript source;
 *   - a shipped module is imported only by tests or fixtures (a fixture outside `src/testing/`);
 *   - a shipped module imports one that does not ship (it would break the package);
 *   - a shipped dist/*.js has no source in src/ (a stale output: remove dist/ and rebuild).
 * Needs the build (`pnpm build`) and pnpm on PATH.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = new URL('../../../', import.meta.url).pathname;
const PACKAGES = readdirSync(join(ROOT, 'packages')).filter((name) =>
  existsSync(join(ROOT, 'packages', name, 'package.json')),
);

/** The paths (relative to the package) `pnpm pack` puts in the tarball. */
function packedFiles(pkgDir: string): string[] {
  const out = execFileSync('pnpm', ['pack', '--dry-run', '--json'], {
    cwd: pkgDir,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const json = JSON.parse(out.slice(out.indexOf('{'))) as { files: { path: string }[] };
  return json.files.map((f) => f.path);
}

function walk(dir: string, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

const isTestOrFixture = (path: string): boolean =>
  /\.test\.[^/]*$/.test(path) || /(^|\/)testing\//.test(path) || path.startsWith(join(ROOT, 'test') + '/');

/** The workspace's bare specifiers → file: `@asmtpd/x[/sub]` through its package.json, `asmtpd/dist/…` as a path. */
function resolveBare(spec: string): string | null {
  for (const name of PACKAGES) {
    const dir = join(ROOT, 'packages', name);
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
      name: string;
      main?: string;
      exports?: Record<string, { default: string }>;
    };
    if (spec !== manifest.name && !spec.startsWith(manifest.name + '/')) continue;
    const sub = '.' + spec.slice(manifest.name.length);
    const target = manifest.exports?.[sub]?.default ?? (sub === '.' ? manifest.main : sub);
    return target === undefined ? null : join(dir, target);
  }
  return null;
}

/**
 * Import edges of every compiled module and its declarations, the bin, tools and libexec scripts and
 * the e2e tests:
 * file → what it loads. A module whose only production users import types (log/events.js) is used
 * through the declarations that name it.
 */
function importGraph(): Map<string, Set<string>> {
  const sources = [
    ...PACKAGES.flatMap((name) => [
      ...walk(join(ROOT, 'packages', name, 'dist')),
      ...walk(join(ROOT, 'packages', name, 'bin')),
      // the scripts' utilities (packages/asmtpd/tools) and node entry points in libexec
      ...walk(join(ROOT, 'packages', name, 'tools')),
      ...walk(join(ROOT, 'packages', name, 'libexec')),
    ]),
    ...walk(join(ROOT, 'test', 'dist')),
  ].filter((p) => p.endsWith('.js') || p.endsWith('.mjs') || p.endsWith('.d.ts') || !/\.[a-z]+$/.test(p));
  const edges = new Map<string, Set<string>>();
  // static and dynamic imports, and the entry points spawned by path (new URL('./x.js', import.meta.url))
  const re = /(?:\bfrom\s*|\bimport\s*\(?\s*|new URL\(\s*)['"]([^'"]+\.js|@asmtpd\/[^'"]+|asmtpd\/[^'"]+)['"]/g;
  for (const file of sources) {
    const text = readFileSync(file, 'utf8');
    const targets = new Set<string>();
    for (const m of text.matchAll(re)) {
      const spec = m[1] as string;
      const target = spec.startsWith('.') ? resolve(dirname(file), spec) : resolveBare(spec);
      if (target !== null) targets.add(target);
    }
    edges.set(file, targets);
  }
  return edges;
}

test('the build ran: every package has a dist/', () => {
  for (const name of PACKAGES)
    assert.ok(existsSync(join(ROOT, 'packages', name, 'dist')), `packages/${name}/dist missing: run pnpm build`);
});

const graph = importGraph();
const importers = new Map<string, string[]>();
for (const [file, targets] of graph) for (const t of targets) importers.set(t, [...(importers.get(t) ?? []), file]);

for (const name of PACKAGES) {
  const pkgDir = join(ROOT, 'packages', name);
  test(`packages/${name}: the packed files hold no test, fixture, map, build info or source`, () => {
    const files = packedFiles(pkgDir);
    assert.ok(
      files.some((f) => f.startsWith('dist/') && f.endsWith('.js')),
      `no dist/*.js packed: ${files.join(' ')}`,
    );
    const wrong = files.filter(
      (f) =>
        isTestOrFixture(f) ||
        f.endsWith('.map') ||
        f.endsWith('.tsbuildinfo') ||
        f.startsWith('src/') ||
        (f.endsWith('.ts') && !f.endsWith('.d.ts')),
    );
    assert.deepEqual(wrong, [], `packages/${name} ships tests or fixtures; package.json "files" should leave them out`);
  });

  test(`packages/${name}: every shipped module has a source, is used by more than tests, and imports only shipped modules`, () => {
    const shipped = new Set(packedFiles(pkgDir).map((f) => join(pkgDir, f)));
    const modules = [...shipped].filter((f) => f.startsWith(join(pkgDir, 'dist') + '/') && f.endsWith('.js'));
    const stale = modules.filter(
      (f) => !existsSync(join(pkgDir, 'src', relative(join(pkgDir, 'dist'), f)).replace(/\.js$/, '.ts')),
    );
    assert.deepEqual(
      stale.map((f) => relative(ROOT, f)),
      [],
      `stale outputs (no source in src/): rm -rf packages/${name}/dist && pnpm build`,
    );
    const testOnly = modules.filter((f) => {
      const by = importers.get(f) ?? [];
      return by.length > 0 && by.every(isTestOrFixture);
    });
    assert.deepEqual(
      testOnly.map((f) => relative(ROOT, f)),
      [],
      'modules imported only by tests or fixtures: move them to src/testing/',
    );
    const broken: string[] = [];
    for (const f of modules) {
      for (const t of graph.get(f) ?? []) {
        if (t.startsWith(pkgDir + '/') && !shipped.has(t)) broken.push(`${relative(ROOT, f)} → ${relative(ROOT, t)}`);
      }
    }
    assert.deepEqual(broken, [], 'shipped modules load files that do not ship');
  });
}
