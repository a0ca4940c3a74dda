/**
 * etc/asmtpd.service as the tests use it (docs/deploy.md):
 *
 *   UNIT_PATH, RECIPE_CONF                     the shipped unit and the recipe's asmtpd.conf
 *   unitSettings(name) -> string[]             every value of a [Service] setting, in order
 *   unitCapabilities(text?) -> string[]        CapabilityBoundingSet (merged), as setpriv names them;
 *                                              a name it does not know is an error
 *   capabilityMask(names) -> bigint            the kernel's bit mask of those capabilities
 *   underUnitCapabilities() -> string[]        a setpriv command that starts a program as systemd
 *                                              starts the unit's: root, within its bounding set,
 *                                              nothing inheritable
 *   systemdToolsUnavailable() -> string | null why systemd-analyze or setpriv cannot be used here
 */
import { existsSync, readFileSync } from 'node:fs';

export const UNIT_PATH = new URL('../../../etc/asmtpd.service', import.meta.url).pathname;
export const RECIPE_CONF = new URL('../../../etc/deploy/asmtpd.conf', import.meta.url).pathname;
export const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';
const SETPRIV = '/usr/bin/setpriv';

/** Linux capability numbers (linux/capability.h) of the names a unit may use here. */
const CAP_NUMBERS: Record<string, number> = {
  chown: 0,
  dac_override: 1,
  dac_read_search: 2,
  fowner: 3,
  fsetid: 4,
  kill: 5,
  setgid: 6,
  setuid: 7,
  setpcap: 8,
  net_bind_service: 10,
  net_admin: 12,
  net_raw: 13,
  sys_chroot: 18,
  sys_ptrace: 19,
  sys_admin: 21,
  sys_resource: 24,
  audit_write: 29,
};

export function unitSettings(name: string, text = readFileSync(UNIT_PATH, 'utf8')): string[] {
  let section = '';
  const values: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      continue;
    }
    const eq = line.indexOf('=');
    if (section === 'Service' && eq > 0 && line.slice(0, eq) === name) values.push(line.slice(eq + 1));
  }
  return values;
}

/**
 * CapabilityBoundingSet of the unit (or of a unit's text): its lines merged, none of them an
 * exclusion ("~"); a name this file does not know is an error.
 */
export function unitCapabilities(text = readFileSync(UNIT_PATH, 'utf8')): string[] {
  const names = unitSettings('CapabilityBoundingSet', text).flatMap((v) => {
    if (v.startsWith('~')) throw new Error('CapabilityBoundingSet=~… is not handled by this test');
    return v.split(/\s+/).filter(Boolean);
  });
  return names.map((n) => {
    const name = n.replace(/^CAP_/, '').toLowerCase();
    if (CAP_NUMBERS[name] === undefined) throw new Error(`${n}: not a capability this test knows (add its number)`);
    return name;
  });
}

export function capabilityMask(names: readonly string[]): bigint {
  return names.reduce((m, n) => {
    const bit = CAP_NUMBERS[n];
    if (bit === undefined) throw new Error(`unknown capability ${n}`);
    return m | (1n << BigInt(bit));
  }, 0n);
}

export function underUnitCapabilities(): string[] {
  const keep = unitCapabilities()
    .map((c) => `+${c}`)
    .join(',');
  return [SETPRIV, '--bounding-set', `-all,${keep}`, '--inh-caps', '-all', '--'];
}

export function systemdToolsUnavailable(): string | null {
  if (!existsSync(SYSTEMD_ANALYZE)) return `${SYSTEMD_ANALYZE} is missing (Debian package systemd, see .ci/run)`;
  if (!existsSync(SETPRIV)) return `${SETPRIV} is missing (Debian package util-linux)`;
  if (process.getuid?.() !== 0) return 'starting the daemon as systemd would (root) needs root';
  return null;
}
