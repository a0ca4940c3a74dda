/**
 * `asmtpd --install-etc DIR`: install the stock EtcDir scripts (share/etcdir: unknown, relay,
 * default; docs/avenger.md "The stock EtcDir scripts") into DIR, usually /etc/avenger.
 *
 *   runInstallEtc(dir, out, err, options?) -> exit code   0 done (installed or kept), 1 failure
 *   STOCK_ETC_DIR                                       where the package keeps them
 *
 * DIR is created (0755, parents too) if missing. Each script is written to a temporary file in
 * DIR (mode 0755, owned by root when run as root; fsynced) and put in place with link(2), which
 * never replaces a file: an existing DIR/NAME — a script the administrator wrote, or an earlier
 * install — is kept and named as kept. One line per script: `installed PATH` or
 * `kept PATH (exists; not overwritten)`. A DIR that others may write is reported (the runner
 * refuses to run scripts from it), as is an install that is not root's (the scripts are then the
 * caller's; the runner takes EtcDir scripts owned by root or by AvengerUser).
 */
import { randomBytes } from 'node:crypto';
import {
  fchownSync,
  closeSync,
  fchmodSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const STOCK_ETC_DIR = fileURLToPath(new URL('../../share/etcdir', import.meta.url));

interface Out {
  write(text: string): unknown;
}

function installOne(source: string, target: string, asRoot: boolean): 'installed' | 'kept' {
  const temp = join(resolve(target, '..'), `.install-etc.${process.pid}.${randomBytes(4).toString('hex')}`);
  const fd = openSync(temp, 'wx', 0o700);
  try {
    writeSync(fd, readFileSync(source));
    if (asRoot) fchownSync(fd, 0, 0);
    fchmodSync(fd, 0o755);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(temp);
    throw err;
  }
  closeSync(fd);
  try {
    linkSync(temp, target);
    return 'installed';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return 'kept';
    throw err;
  } finally {
    unlinkSync(temp);
  }
}

export function runInstallEtc(dir: string, out: Out, err: Out, options: { source?: string } = {}): number {
  const source = options.source ?? STOCK_ETC_DIR;
  const asRoot = process.getuid?.() === 0;
  try {
    const scripts = readdirSync(source)
      .filter((name) => !name.startsWith('.'))
      .sort();
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const st = statSync(dir);
    if (!st.isDirectory()) throw new Error(`${dir}: not a directory`);
    for (const name of scripts) {
      const target = join(dir, name);
      const done = installOne(join(source, name), target, asRoot);
      out.write(done === 'installed' ? `installed ${target}\n` : `kept ${target} (exists; not overwritten)\n`);
    }
    if (st.mode & 0o022)
      err.write(`asmtpd: warning: ${dir} can be written by others: the runner will refuse its scripts (chmod go-w)\n`);
    if (!asRoot)
      err.write(
        `asmtpd: note: not run as root: the scripts belong to uid ${process.getuid?.()}; EtcDir scripts must be owned by root or AvengerUser\n`,
      );
    return 0;
  } catch (e) {
    err.write(`asmtpd: --install-etc: ${(e as Error).message}\n`);
    return 1;
  }
}
