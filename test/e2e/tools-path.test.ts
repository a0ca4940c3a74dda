/**
 * The utilities on the scripts' PATH (docs/utilities.md): a user's rcpt script run by the real
 * daemon finds `synos` in packages/asmtpd/tools, first on its PATH, and runs it as the user; and a
 * runner started as root refuses a utilities directory that someone other than root could change.
 * Needs root (useradd, switching users).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { SmtpClient } from '../support/smtp-client.js';
import { canCreateUsers, createUser, etcWithPasswd, removeUser, writeScript, type TestUser } from '../support/users.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;
const TOOLS = fileURLToPath(new URL('../../../packages/asmtpd/tools', import.meta.url));

let user: TestUser;
let av: TestUser;
let etc: string;
let d: Daemon;

before(async () => {
  if (unavailable) return;
  user = createUser('tools');
  av = createUser('toolsav');
  const e = etcWithPasswd([user, av]);
  etc = e.etc;
  writeScript(
    user,
    'rcpt',
    [
      'os=$(synos 64240:64:1:60:M1460,S,T,N,W7); code=$?',
      'reject "550 5.7.1 path=$(command -v synos) uid=$(id -u) code=$code first=${PATH%%:*}"',
    ].join('\n'),
  );
  d = await startDaemon({
    etcDir: etc,
    conf: ['LocalDomain a.example', `PasswdFile ${e.passwd}`, `AvengerUser ${av.name}`].join('\n'),
  });
});

after(async () => {
  if (unavailable) return;
  await d?.stop();
  for (const u of [user, av]) if (u) removeUser(u);
  if (etc) rmSync(etc, { recursive: true, force: true });
});

test("a user's rcpt script finds the utilities first on its PATH and runs them as the user", { skip }, async () => {
  const c = await SmtpClient.connect(d.port);
  try {
    await c.greeting();
    await c.cmd('EHLO client.example');
    await c.cmd('MAIL FROM:<bob@sender.example>');
    const r = await c.cmd(`RCPT TO:<${user.name}@a.example>`);
    // synos answers 0 (matched) or 1 (unknown): either way it ran; 127 would be "not found"
    assert.match(r.last, new RegExp(`^550 5\\.7\\.1 path=${TOOLS}/synos uid=${user.uid} code=[01] first=${TOOLS}$`));
  } finally {
    c.close();
  }
});

test('a runner started as root refuses a utilities directory others can change', { skip }, async () => {
  const runnerModule = (await import(
    new URL('../../../packages/avenger-runner/dist/index.js', import.meta.url).href
  )) as {
    startRunner(o: { settings: unknown; onLog?: (l: string) => void }): Promise<{ close(): Promise<void> }>;
    DEFAULT_LIMITS: unknown;
  };
  const open = mkdtempSync(join(tmpdir(), 'asmtpd-tools-open-'));
  chmodSync(open, 0o775);
  const settings = (toolsDir: string) => ({
    etcDir: etc,
    avengerUser: av.name,
    passwdFile: null,
    spoolDir: null,
    daemonUid: null,
    deniedUids: [],
    envNames: [],
    limits: runnerModule.DEFAULT_LIMITS,
    fixedEnv: {},
    toolsDir,
  });
  try {
    const said: string[] = [];
    await assert.rejects(runnerModule.startRunner({ settings: settings(open), onLog: (l) => said.push(l) }));
    assert.match(said.join('\n'), /must be a directory that only root can change/);
    const ok = await runnerModule.startRunner({ settings: settings(TOOLS), onLog: () => {} });
    await ok.close();
  } finally {
    rmSync(open, { recursive: true, force: true });
  }
});
