/*
 * capability-guard — imported right after no-inspector by the processes asmtpd starts through
 * setpriv(1) as root (the script runner, the network-facts process). When ASMTPD_CAPABILITIES
 * names what the process may hold, it reads its own capability sets (bounding, permitted,
 * effective, inheritable, ambient) from /proc/self/status and exits 2 with one line naming the
 * extra ones if any set holds more. setpriv cannot shrink the bounding set without CAP_SETPCAP,
 * and util-linux's setpriv then says nothing: a service manager that starts asmtpd without
 * CAP_SETPCAP would leave these processes with everything root had (docs/security.md).
 *
 *   extraCapabilities(status, allowed) -> names     (exported for the unit test)
 */
import { readFileSync } from 'node:fs';

/** capability(7) names by bit number (Linux 6.x) */
const NAMES = [
  'chown',
  'dac_override',
  'dac_read_search',
  'fowner',
  'fsetid',
  'kill',
  'setgid',
  'setuid',
  'setpcap',
  'linux_immutable',
  'net_bind_service',
  'net_broadcast',
  'net_admin',
  'net_raw',
  'ipc_lock',
  'ipc_owner',
  'sys_module',
  'sys_rawio',
  'sys_chroot',
  'sys_ptrace',
  'sys_pacct',
  'sys_admin',
  'sys_boot',
  'sys_nice',
  'sys_resource',
  'sys_time',
  'sys_tty_config',
  'mknod',
  'lease',
  'audit_write',
  'audit_control',
  'setfcap',
  'mac_override',
  'mac_admin',
  'syslog',
  'wake_alarm',
  'block_suspend',
  'audit_read',
  'perfmon',
  'bpf',
  'checkpoint_restore',
];

export function extraCapabilities(status: string, allowed: readonly string[]): string[] {
  const extra = new Set<string>();
  for (const set of ['CapBnd', 'CapPrm', 'CapEff', 'CapInh', 'CapAmb']) {
    const hex = new RegExp(`^${set}:\\s*([0-9a-f]+)$`, 'im').exec(status)?.[1];
    if (hex === undefined) return [`${set} unreadable`];
    const bits = BigInt(`0x${hex}`);
    for (let bit = 0; bit < 64; bit++) {
      if (((bits >> BigInt(bit)) & 1n) === 0n) continue;
      const name = NAMES[bit] ?? `cap_${bit}`;
      if (!allowed.includes(name)) extra.add(name);
    }
  }
  return [...extra];
}

const expected = process.env.ASMTPD_CAPABILITIES;
if (expected !== undefined) {
  const extra = extraCapabilities(readFileSync('/proc/self/status', 'utf8'), expected.split(',').filter(Boolean));
  if (extra.length > 0) {
    process.stderr.write(
      `asmtpd: ${process.argv[1] ?? 'this process'} holds capabilities beyond ${expected || 'none'}: ${extra.join(',')} ` +
        '(setpriv could not drop them: start asmtpd with CAP_SETPCAP in its bounding set)\n',
    );
    process.exit(2);
  }
}
