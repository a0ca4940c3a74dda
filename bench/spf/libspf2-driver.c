/*
 * libspf2-driver.c — times libspf2 (Debian libspf2-2, the library behind spfquery) on the
 * benchmark's checks. Reads lines IP<TAB>SENDER<TAB>HELO from stdin, runs them WARMUP times
 * (argv[2], default 0) unmeasured and then REPEAT times (argv[1]) in one process with the resolv
 * DNS layer (no cross-check cache, like the others), and prints one line per measured check:
 * RESULT<TAB>NANOSECONDS, then "#cpu<TAB>NS" (user+system time of the measured passes) and
 * "#span<TAB>START<TAB>END" (CLOCK_MONOTONIC ns of the measured passes).
 * START_AT (argv[3], CLOCK_MONOTONIC ns, optional): after the warm-up, wait until then, so that
 * several drivers started together measure the same window (throughput mode); "#late" is
 * printed if the warm-up ended after it.
 * Build: cc -O2 -o libspf2-driver libspf2-driver.c -lspf2 (bench/spf/run.sh does it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <spf2/spf.h>

#define MAXLINES 4096
static char *ips[MAXLINES], *senders[MAXLINES], *helos[MAXLINES];

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long cpu_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}

static void wait_until(long long at) {
  struct timespec ts = { (time_t)(at / 1000000000LL), (long)(at % 1000000000LL) };
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {}
}

int main(int argc, char **argv) {
  int repeat = argc > 1 ? atoi(argv[1]) : 1;
  int warmup = argc > 2 ? atoi(argv[2]) : 0;
  long long start_at = argc > 3 ? atoll(argv[3]) : 0;
  char line[4096];
  int n = 0;
  while (n < MAXLINES && fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\r\n")] = 0;
    char *a = line, *b = strchr(a, '\t'), *c;
    if (!b) continue;
    *b++ = 0;
    c = strchr(b, '\t');
    if (c) *c++ = 0; else c = "";
    ips[n] = strdup(a);
    senders[n] = strdup(strcmp(b, "<>") == 0 ? "" : b);
    helos[n] = strdup(c);
    n++;
  }
  SPF_server_t *srv = SPF_server_new(SPF_DNS_RESOLV, 0);
  long long cpu0 = 0, span0 = 0;
  for (int r = -warmup; r < repeat; r++) {
    if (r == 0) {
      if (start_at > 0) {
        if (now_ns() > start_at) printf("#late\n");
        else wait_until(start_at);
      }
      cpu0 = cpu_ns();
      span0 = now_ns();
    }
    for (int i = 0; i < n; i++) {
      long long t0 = now_ns();
      SPF_request_t *req = SPF_request_new(srv);
      const char *res = "error";
      SPF_response_t *resp = NULL;
      if (SPF_request_set_ipv4_str(req, ips[i]) != SPF_E_SUCCESS &&
          SPF_request_set_ipv6_str(req, ips[i]) != SPF_E_SUCCESS) {
        res = "badip";
      } else {
        if (helos[i][0]) SPF_request_set_helo_dom(req, helos[i]);
        if (senders[i][0]) SPF_request_set_env_from(req, senders[i]);
        else if (helos[i][0]) {
          char buf[4200];
          snprintf(buf, sizeof buf, "postmaster@%s", helos[i]);
          SPF_request_set_env_from(req, buf);
        }
        SPF_request_query_mailfrom(req, &resp);
        if (resp) res = SPF_strresult(SPF_response_result(resp));
      }
      long long t1 = now_ns();
      if (r >= 0) printf("%s\t%lld\n", res, t1 - t0);
      if (resp) SPF_response_free(resp);
      SPF_request_free(req);
    }
  }
  printf("#cpu\t%lld\n#span\t%lld\t%lld\n", cpu_ns() - cpu0, span0, now_ns());
  SPF_server_free(srv);
  return 0;
}
