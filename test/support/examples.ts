/**
 * The shipped examples (examples/dot-avenger) installed verbatim for a test account, as a user
 * would: scripts into ~/.avenger owned by the user, 0755; data files 0644.
 *
 *   EXAMPLES                                   the examples directory
 *   installExample(user, example, file, as?)   copy EXAMPLE/FILE to ~/.avenger/AS; asserts the copy is exact
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeScript, type TestUser } from './users.js';

export const EXAMPLES = new URL('../../../examples/dot-avenger/', import.meta.url).pathname;

export function installExample(u: TestUser, example: string, file: string, as = file): void {
  const src = join(EXAMPLES, example, file);
  const body = readFileSync(src, 'utf8');
  if (body.startsWith('#!')) {
    // writeScript keeps a body that starts with "#!" as it is (and creates ~/.avenger)
    writeScript(u, as, body, 0o755);
  } else {
    const dir = join(u.home, '.avenger');
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    chownSync(dir, u.uid, u.gid);
    const dest = join(u.home, '.avenger', as);
    copyFileSync(src, dest);
    chownSync(dest, u.uid, u.gid);
    chmodSync(dest, 0o644);
  }
  assert.equal(readFileSync(join(u.home, '.avenger', as), 'utf8'), body);
}
