/**
 * source-tree.ts — the shipped TypeScript modules of a package as the structure tests see them:
 * every src/ file but tests and test fixtures, with its relative imports resolved to files, and
 * its string literals (what the TypeScript parser sees, comments excluded).
 *
 *   sourceFiles(srcDir) -> string[]                      paths relative to srcDir
 *   importsOf(srcDir, file) -> string[]                   relative imports, resolved (src-relative .ts)
 *   literalsOf(srcDir, file) -> {text, line}[]            string and template literal texts
 *   callsWithCode(srcDir, file) -> {callee, line}[]       calls whose first two arguments are a
 *                                                         reply code (200-599) and an enhanced status
 *   fileCycles(graph) -> string[][]                        strongly connected sets of more than one file
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import ts from 'typescript';

export const REPO = new URL('../../../', import.meta.url).pathname;

/** Test files and fixtures are not shipped code: they may import anything. */
export function isShipped(rel: string): boolean {
  return (
    !/\.test\.ts$/.test(rel) &&
    !/(^|\/)(testing|fixtures?)(\/|\.ts$)/.test(rel) &&
    !/(test-helpers|test-support|-fixtures)\.ts$/.test(rel)
  );
}

export function sourceFiles(srcDir: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(relative(srcDir, path));
    }
  };
  walk(srcDir);
  return out.filter(isShipped);
}

function parse(srcDir: string, file: string): ts.SourceFile {
  return ts.createSourceFile(file, readFileSync(join(srcDir, file), 'utf8'), ts.ScriptTarget.ES2022, true);
}

export function importsOf(srcDir: string, file: string): string[] {
  const info = ts.preProcessFile(readFileSync(join(srcDir, file), 'utf8'), true, true);
  return info.importedFiles
    .map((f) => f.fileName)
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => normalize(join(dirname(file), spec)).replace(/\.js$/, '.ts'));
}

export function literalsOf(srcDir: string, file: string): { text: string; line: number }[] {
  const sf = parse(srcDir, file);
  const out: { text: string; line: number }[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node) || ts.isTemplateHead(node)) {
      out.push({ text: node.text, line: sf.getLineAndCharacterOfPosition(node.getStart()).line + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

export function callsWithCode(srcDir: string, file: string): { callee: string; line: number }[] {
  const sf = parse(srcDir, file);
  const out: { callee: string; line: number }[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && node.arguments.length >= 2) {
      const [code, enhanced] = node.arguments;
      if (
        code &&
        enhanced &&
        ts.isNumericLiteral(code) &&
        Number(code.text) >= 200 &&
        Number(code.text) <= 599 &&
        ts.isStringLiteralLike(enhanced) &&
        /^[245]\.\d{1,3}\.\d{1,3}$/.test(enhanced.text)
      ) {
        out.push({
          callee: node.expression.getText(sf),
          line: sf.getLineAndCharacterOfPosition(node.getStart()).line + 1,
        });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** Tarjan's strongly connected components; only those of more than one file (a cycle). */
export function fileCycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const stack: string[] = [];
  const onStack = new Set<string>();
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const cycles: string[][] = [];
  const connect = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) cycles.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) connect(v);
  return cycles;
}
