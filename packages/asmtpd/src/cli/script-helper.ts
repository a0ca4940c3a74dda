/**
 * script-helper.ts — the program behind the rcpt scripts' `spf`, `dns` and `rbl` shell functions
 * (packages/avenger-runner/src/prelude.ts): `node dist/cli/script-helper.js NAME ARGS…`, run as
 * the script's user with the script's environment (CLIENT_IP, SENDER, CLIENT_HELO, ASMTPD_DNS).
 * The work is in script-helper-commands.ts; this file only wires stdio and exits.
 * Everything it loads must stay readable by any user (scripts never run as root). The commands
 * are loaded dynamically so that a module that cannot be loaded exits 2 (a failure), never
 * node's 1, which the helpers use for "no answer" / "not listed". SIGUSR1 is neutralised first,
 * as in every Node process of asmtpd (no inspector).
 */
process.on('SIGUSR1', () => {});
const fail = (err: unknown): void => {
  process.stderr.write(`asmtpd helper: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
};
process.on('uncaughtException', fail);

import('./script-helper-commands.js')
  .then(({ runHelper }) =>
    runHelper(process.argv.slice(2), process.env, {
      out: (t) => process.stdout.write(t),
      err: (t) => process.stderr.write(t),
    }),
  )
  // exit once stdout is flushed (a DoH keep-alive socket must not keep the helper alive)
  .then((code) => process.stdout.write('', () => process.exit(code)), fail);
