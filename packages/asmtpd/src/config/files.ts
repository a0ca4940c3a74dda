/**
 * File checks for directives that name files (PasswdFile, Sendmail's program).
 *
 * Public: checkReadableFile(path), checkExecutableFile(path) → problems (empty = fine);
 * describeFileError(path, err) → the message for a failed stat or read.
 * Messages complete the sentence `Directive: …`. Only existence, type and mode are checked;
 * contents are the business of the module that reads the file.
 */
import { accessSync, constants, statSync } from 'node:fs';

/** `PATH: no such file` / `PATH: permission denied` / `PATH: <message>` for a failed stat or read. */
export function describeFileError(path: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return `${path}: no such file`;
  if (code === 'EACCES') return `${path}: permission denied`;
  return `${path}: ${(err as Error).message}`;
}

/** The path names an existing regular file. */
export function checkReadableFile(path: string): string[] {
  try {
    if (!statSync(path).isFile()) return [`${path}: not a regular file`];
  } catch (err) {
    return [describeFileError(path, err)];
  }
  return [];
}

/** The path names an existing regular file we may execute. */
export function checkExecutableFile(path: string): string[] {
  const problems = checkReadableFile(path);
  if (problems.length > 0) return problems;
  try {
    accessSync(path, constants.X_OK);
  } catch {
    return [`${path}: not executable`];
  }
  return [];
}
