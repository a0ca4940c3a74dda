"""pyspf-driver.py — times pyspf (Debian python3-spf) on the benchmark's checks.

Reads lines IP<TAB>SENDER<TAB>HELO from stdin, runs them WARMUP times (argv[2], default 0)
unmeasured and then REPEAT times (argv[1]) with spf.check2() (system resolver via
/etc/resolv.conf), prints RESULT<TAB>NANOSECONDS per measured check.
Run with /usr/bin/python3 (the Debian interpreter that has the spf module).
"""
import sys, time, spf

repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 1
warmup = int(sys.argv[2]) if len(sys.argv) > 2 else 0
checks = []
for line in sys.stdin:
    line = line.rstrip('\r\n')
    if not line:
        continue
    parts = (line.split('\t') + ['', ''])[:3]
    ip, sender, helo = parts
    checks.append((ip, '' if sender == '<>' else sender, helo))
out = []
for r in range(-warmup, repeat):
    for ip, sender, helo in checks:
        t0 = time.perf_counter_ns()
        try:
            res, _exp = spf.check2(i=ip, s=sender, h=helo, timeout=5)
        except Exception as e:  # pyspf raises on some malformed input
            res = 'error'
        t1 = time.perf_counter_ns()
        if r >= 0:
            out.append('%s\t%d' % (res, t1 - t0))
sys.stdout.write('\n'.join(out) + '\n')
