// Postfix 3.7 (Debian) for bench/fair: the private relay instance of test/support/postfix.ts
// (relayhost = the sink, clients in mynetworks relay), started inside its cgroup, with:
//   - smtpd_peername_lookup = yes (Postfix's default; the harness turns it off): the client's
//     reverse name and its forward confirmation, through the run's resolver, as in production;
//   - a shell per recipient of SCRIPT_DOMAIN, the closest Postfix has to asmtpd's per-user rcpt
//     script: check_recipient_access maps that domain to a restriction class whose one step is
//     check_policy_service unix:private/policy, a spawn(8) service that runs `/bin/sh SCRIPT` as
//     nobody for every connection to it; smtpd_policy_service_reuse_count_limit = 1 makes smtpd
//     close the policy connection after each request, so every RCPT gets a new shell (without it
//     one shell would answer many requests: a resident policy daemon, not a script a decision).
//     The script reads the request (name=value lines up to an empty line) and answers
//     `action=OK`; the request data reach it on stdin, never as shell text.
import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  copyFileSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadHarness, sleep } from '../smtp/lib.mjs';

/** The policy script; `countFile`: each run also appends a line there (--count-scripts). */
export const policyScript = (countFile) => `#!/bin/sh
# bench/fair: Postfix's per-recipient script (spawn(8), one request per connection)
while read -r line && [ -n "$line" ]; do :; done
${countFile ? `echo postfix >> ${countFile}\n` : ''}printf 'action=OK\\n\\n'
`;

/**
 * Starts the instance. `inGroup(fn)` runs fn with this process inside the server's cgroup, so
 * master and everything it forks are born there.
 */
export async function startPostfixServer({ sinkPort, script, inGroup, group }) {
  const harness = await loadHarness();
  const aux = mkdtempSync(join(tmpdir(), 'bench-fair-postfix-'));
  chmodSync(aux, 0o755);
  const access = join(aux, 'rcpt_access');
  writeFileSync(access, `${script.domain} bench_script\n`);
  const policy = join(aux, 'policy.sh');
  writeFileSync(policy, policyScript(script.countFile));
  chmodSync(policy, 0o755);
  const pf = await inGroup(() =>
    harness.startPostfix({
      mode: { relayTo: `127.0.0.1:${sinkPort}` },
      mainCf: {
        smtpd_restriction_classes: 'bench_script',
        bench_script: 'check_policy_service unix:private/policy',
        smtpd_recipient_restrictions: `check_recipient_access texthash:${access}`,
        smtpd_policy_service_reuse_count_limit: '1',
      },
    }),
  );
  const etc = join(pf.dir, 'etc');
  appendFileSync(join(etc, 'master.cf'), `policy unix - n n - - spawn user=nobody argv=/bin/sh ${policy}\n`);
  const past = new Date(Date.now() - 60_000);
  utimesSync(join(etc, 'master.cf'), past, past);
  // after start, not through the harness's mainCf: a second smtpd_peername_lookup line would make
  // every Postfix process log an "overriding earlier entry" warning
  const pc = spawnSync('/usr/sbin/postconf', ['-c', etc, '-e', 'smtpd_peername_lookup=yes'], { encoding: 'utf8' });
  if (pc.status !== 0) throw new Error(`postconf -e: ${pc.stderr}`);
  utimesSync(join(etc, 'main.cf'), past, past);
  const r = spawnSync('/usr/sbin/postfix', ['-c', etc, 'reload'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`postfix reload: ${r.stdout}${r.stderr}`);
  await sleep(1500);
  const masterPid = Number(readFileSync(join(pf.dir, 'spool', 'pid', 'master.pid'), 'utf8').trim());
  return {
    name: 'postfix',
    port: pf.port,
    pid: masterPid,
    logFile: join(pf.dir, 'maillog'),
    log: () => pf.log(),
    stop: async () => {
      try {
        copyFileSync(join(pf.dir, 'maillog'), join(tmpdir(), 'bench-fair-postfix.log')); // kept after the run
      } catch {
        /* no log */
      }
      await pf.stop();
      for (const pid of group.pids()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      rmSync(aux, { recursive: true, force: true });
    },
  };
}
