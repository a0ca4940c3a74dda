/**
 * The layering of packages/asmtpd/src, as docs/architecture.md draws it: the picture is the rule.
 * A module may import from its own directory and from directories of lower layers only; two
 * directories of one layer do not import each other; no set of files imports itself in a cycle
 * (in any package). Tests and test fixtures are not shipped code and are not held to it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, fileCycles, importsOf, sourceFiles } from './source-tree.js';

const ASMTPD_SRC = join(REPO, 'packages/asmtpd/src');

/** The layers of docs/architecture.md's picture, lowest first: each a list of units (`dir/` or `file.ts`). */
export function layersFromDoc(text: string): string[][] {
  const block = /## Layers[\s\S]*?```text\n([\s\S]*?)```/.exec(text)?.[1];
  if (!block) throw new Error('docs/architecture.md: no ```text block under "## Layers"');
  const rows = block
    .split('\n')
    .map((line) => /^(\d+)\s+(.*)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({
      n: Number(m[1]),
      units: m[2]!
        .split(/\s+/)
        .filter((t) => /^[a-z][a-z0-9-]*(\/|\.ts)$/.test(t))
        .map((t) => t.replace(/\/$/, '')),
    }));
  rows.sort((a, b) => a.n - b.n);
  rows.forEach((r, i) => assert.equal(r.n, i, 'layers are numbered 0, 1, 2, … without gaps'));
  return rows.map((r) => r.units);
}

/** The unit of a file: its top directory, or the file itself at the top. */
const unitOf = (file: string): string => (file.includes('/') ? file.split('/')[0]! : file);

export function layeringViolations(srcDir: string, layers: string[][]): string[] {
  const layerOf = new Map<string, number>();
  layers.forEach((units, i) => units.forEach((u) => layerOf.set(u, i)));
  const problems: string[] = [];
  for (const file of sourceFiles(srcDir)) {
    const from = unitOf(file);
    const fromLayer = layerOf.get(from);
    if (fromLayer === undefined) {
      problems.push(`${file}: ${from} is in no layer of docs/architecture.md`);
      continue;
    }
    for (const target of importsOf(srcDir, file)) {
      const to = unitOf(target);
      if (to === from) continue;
      const toLayer = layerOf.get(to);
      if (toLayer === undefined) problems.push(`${file} imports ${target}: ${to} is in no layer`);
      else if (toLayer > fromLayer)
        problems.push(
          `${file} imports ${target}: upward, from ${from} (layer ${fromLayer}) to ${to} (layer ${toLayer})`,
        );
      else if (toLayer === fromLayer)
        problems.push(`${file} imports ${target}: sideways, ${from} and ${to} are both in layer ${fromLayer}`);
    }
  }
  return problems;
}

export function cyclesIn(srcDir: string): string[][] {
  const graph = new Map(sourceFiles(srcDir).map((f) => [f, importsOf(srcDir, f)]));
  return fileCycles(graph);
}

const layers = layersFromDoc(readFileSync(join(REPO, 'docs/architecture.md'), 'utf8'));

test('asmtpd: no import runs upward or sideways in the layers of docs/architecture.md', () => {
  assert.deepEqual(layeringViolations(ASMTPD_SRC, layers), []);
});

test('every package: no import cycle among its files', () => {
  for (const pkg of ['asmtpd', 'avenger-runner', 'spf']) {
    assert.deepEqual(cyclesIn(join(REPO, 'packages', pkg, 'src')), [], `cycles in packages/${pkg}/src`);
  }
});

test('the picture names every directory of asmtpd/src, and each once', () => {
  const units = layers.flat();
  assert.equal(new Set(units).size, units.length, 'a unit in two layers');
  const present = new Set(sourceFiles(ASMTPD_SRC).map(unitOf));
  assert.deepEqual(
    [...present].filter((u) => !units.includes(u)),
    [],
    'directories missing from the picture',
  );
  assert.deepEqual(
    units.filter((u) => !present.has(u)),
    [],
    'units in the picture that do not exist',
  );
});

test('the checks fail on planted violations (an upward import, a sideways one, a cycle)', (t) => {
  const copy = mkdtempSync(join(tmpdir(), 'asmtpd-layering-'));
  t.after(() => rmSync(copy, { recursive: true, force: true }));
  cpSync(ASMTPD_SRC, copy, { recursive: true });
  assert.deepEqual(layeringViolations(copy, layers), [], 'the copy is clean');
  appendFileSync(join(copy, 'policy/decide.ts'), "\nimport type { Session } from '../smtp/session.js';\n");
  appendFileSync(join(copy, 'relay/types.ts'), "\nexport type { Outcome } from '../policy/outcome.js';\n");
  const found = layeringViolations(copy, layers);
  assert.ok(
    found.some((p) => p.startsWith('policy/decide.ts imports smtp/session.ts: upward')),
    found.join('\n'),
  );
  assert.ok(
    found.some((p) => p.startsWith('relay/types.ts imports policy/outcome.ts: sideways')),
    found.join('\n'),
  );
  writeFileSync(
    join(copy, 'reply/planted.ts'),
    "import { REPLIES } from './catalogue.js';\nexport const x = REPLIES;\n",
  );
  appendFileSync(join(copy, 'reply/catalogue.ts'), "\nexport { x } from './planted.js';\n");
  const cycles = cyclesIn(copy).map((c) => c.join(' '));
  assert.ok(cycles.includes('reply/catalogue.ts reply/planted.ts'), cycles.join('\n'));
  assert.ok(
    cycles.includes('policy/body-test.ts policy/decide.ts smtp/session.ts'),
    'the upward import closed a cycle too',
  );
});
