// runLocalDelivery (avenger.local's work): the request's own checks anywhere; as root, with real
// temporary users, who runs what with which stdin.
import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  closeSync,
  fstatSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runLocalDelivery, type LocalDeliveryRequest } from './local-delivery.js';
import { DEFAULT_LIMITS, type RunnerSettings } from './protocol.js';
import { createRunnerContext, type RunnerContext } from './runner.js';
import { createTempUser, isRoot, TEST_ENV_NAMES, type TempUser } from './testing/users.js';

/** An unlinked temporary file holding text, open read-write (as avenger.local's message file). */
function messageFile(text: string): number {
  const dir = mkdtempSync(join(tmpdir(), 'local-delivery-test-'));
  const fd = openSync(join(dir, 'm'), 'wx+', 0o600);
  unlinkSync(join(dir, 'm'));
  rmSync(dir, { recursive: true });
  writeSync(fd, text);
  return fd;
}

const request = (o: Partial<LocalDeliveryRequest>): LocalDeliveryRequest => ({
  account: 'nobody-here',
  candidates: ['local'],
  env: {},
  stdinFd: 0,
  fallback: ['/bin/true'],
  timeoutMs: 10_000,
  ...o,
});

const settings = (etcDir: string, avengerUser: string): RunnerSettings => ({
  etcDir,
  avengerUser,
  passwdFile: null,
  spoolDir: null,
  daemonUid: null,
  deniedUids: [],
  envNames: TEST_ENV_NAMES,
  fixedEnv: {},
  toolsDir: null,
  limits: DEFAULT_LIMITS,
});

test('only local file names and an absolute fallback are accepted', async () => {
  if (isRoot) return; // as root, createRunnerContext needs a real AvengerUser: the suite below
  const context = await createRunnerContext(settings('/nonexistent', 'nobody'));
  try {
    for (const candidates of [['rcpt'], ['local/x'], ['.local'], ['localx'], []])
      assert.equal((await runLocalDelivery(request({ candidates }), context)).kind, 'error', candidates.join());
    assert.equal((await runLocalDelivery(request({ fallback: ['deliver'] }), context)).kind, 'error');
  } finally {
    context.spawner.close();
  }
});

describe('runLocalDelivery as root', { skip: !isRoot && 'needs root (creates users)' }, () => {
  let user: TempUser;
  let av: TempUser;
  let context: RunnerContext;

  before(async () => {
    [user, av] = [createTempUser(), createTempUser()];
    context = await createRunnerContext(settings(av.base, av.name));
  });
  after(() => {
    context?.spawner.close();
    for (const u of [user, av]) u?.remove();
  });

  const script = (name: string, body: string, mode = 0o755) => {
    const path = join(user.avengerDir, name);
    writeFileSync(path, `#!/bin/sh\n${body}\n`);
    chownSync(path, user.uid, user.gid);
    chmodSync(path, mode);
    return path;
  };

  test('the first local file found runs as the user, with the message as a stdin it owns, and DEFAULT', async () => {
    script('local+default', 'id -u; echo "D=$DEFAULT S=$SENDER"; cat; stat -c %u /proc/self/fd/0');
    const fd = messageFile('the message\n');
    try {
      const r = await runLocalDelivery(
        request({
          account: user.name,
          candidates: ['local+a', 'local+default'],
          candidateEnv: { 'local+default': { DEFAULT: 'a' } },
          env: { SENDER: 's@x', NOT_LISTED: 'dropped' },
          stdinFd: fd,
        }),
        context,
      );
      assert.equal(r.kind, 'ran');
      if (r.kind !== 'ran') return;
      assert.equal(r.script, join(user.avengerDir, 'local+default'));
      assert.equal(r.exitCode, 0, r.stderr);
      assert.equal(r.stdout, `${user.uid}\nD=a S=s@x\nthe message\n${user.uid}\n`);
      assert.equal(fstatSync(fd).uid, user.uid, 'the message file is handed to the user');
    } finally {
      closeSync(fd);
    }
  });

  test('no local file: the fallback runs as the user in the home, with the message', async () => {
    const fd = messageFile('plain\n');
    try {
      const r = await runLocalDelivery(
        request({
          account: user.name,
          candidates: ['local'],
          stdinFd: fd,
          fallback: ['/bin/sh', '-c', 'cat > got; id -u'],
        }),
        context,
      );
      assert.equal(r.kind, 'ran');
      if (r.kind !== 'ran') return;
      assert.equal(r.script, null);
      assert.equal(r.stdout, `${user.uid}\n`);
      assert.equal(readFileSync(join(user.home, 'got'), 'utf8'), 'plain\n');
    } finally {
      closeSync(fd);
    }
  });

  test('refused: uid 0, a system account, an unsafe file; unknown: an account that does not exist', async () => {
    const fd = messageFile('x\n');
    try {
      const root = await runLocalDelivery(request({ account: 'root', stdinFd: fd }), context);
      assert.deepEqual(root, { kind: 'refused', script: null, reason: 'account root is uid 0: alias it to a person' });
      const daemon = await runLocalDelivery(request({ account: 'daemon', stdinFd: fd }), context);
      assert.equal(daemon.kind, 'refused');
      script('local', 'exit 0', 0o775);
      const unsafe = await runLocalDelivery(request({ account: user.name, stdinFd: fd }), context);
      assert.equal(unsafe.kind, 'refused');
      if (unsafe.kind === 'refused') assert.match(unsafe.reason, /group-writable/);
      assert.deepEqual(await runLocalDelivery(request({ account: 'nosuchuser9z', stdinFd: fd }), context), {
        kind: 'unknown-user',
      });
    } finally {
      closeSync(fd);
    }
  });
});
