"""pyspf-driver.py — times pyspf (Debian python3-spf) on the benchmark's checks.

Reads lines IP<TAB>SENDER<TAB>HELO from stdin, runs them WARMUP times (argv[2], default 0)
unmeasured and then REPEAT times (argv[1]) with spf.check2() (system resolver via
/etc/resolv.conf), prints RESULT<TAB>NANOSECONDS per measured check, then "#cpu<TAB>NS"
(process time of the measured passes) and "#span<TAB>START<TAB>END" (CLOCK_MONOTONIC ns).
START_AT (argv[3], CLOCK_MONOTONIC ns, optional): after the warm-up, wait until then (several
drivers measure the same window); "#late" if the warm-up ended after it.
Run with /usr/bin/python3 (the Debian interpreter that has the spf module).
"""
import sys, time, spf

repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 1
warmup = int(sys.argv[2]) if len(sys.argv) > 2 else 0
start_at = int(sys.argv[3]) if len(sys.argv) > 3 else 0
checks = []
for line in sys.stdin:
    line = line.rstrip('\r\n')
    if not line:
        continue
    parts = (line.split('\t') + ['', ''])[:3]
    ip, sender, helo = parts
    checks.append((ip, '' if sender == '<>' else sender, helo))
out = []
cpu0 = span0 = 0
for r in range(-warmup, repeat):
    if r == 0:
        if start_at:
            wait = start_at - time.monotonic_ns()
            if wait < 0:
                out.append('#late')
            else:
                time.sleep(wait / 1e9)
        cpu0 = time.process_time_ns()
        span0 = time.monotonic_ns()
    for ip, sender, helo in checks:
        t0 = time.perf_counter_ns()
        try:
            res, _exp = spf.check2(i=ip, s=sender, h=helo, timeout=5)
        except Exception as e:  # pyspf raises on some malformed input
            res = 'error'
        t1 = time.perf_counter_ns()
        if r >= 0:
            out.append('%s\t%d' % (res, t1 - t0))
out.append('#cpu\t%d' % (time.process_time_ns() - cpu0))
out.append('#span\t%d\t%d' % (span0, time.monotonic_ns()))
sys.stdout.write('\n'.join(out) + '\n')
