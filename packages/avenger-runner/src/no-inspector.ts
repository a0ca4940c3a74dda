/*
 * no-inspector — imported first by every long-lived Node process of asmtpd (the daemon, the
 * runner, the network-facts process): a SIGUSR1 listener, so the signal no longer opens Node's
 * inspector (Node 20 listens on 127.0.0.1:9229 without authentication when a process without a
 * listener gets SIGUSR1; with one, the signal is an ordinary event). Node 20 has no
 * --disable-sigusr1. Importing it has this one side effect.
 */
process.on('SIGUSR1', () => {
  /* ignored: no inspector, no stop */
});

export const INSPECTOR_DISABLED = true;
