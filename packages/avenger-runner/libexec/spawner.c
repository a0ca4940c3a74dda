/*
 * spawner.c — the avenger runner's forker: start a child as the user, relay its output and status.
 *
 * SUMMARY
 *   Started once by the runner as `spawner --limits=NPROC,CPU,DATA,FSIZE,NOFILE` with an empty
 *   environment. It replaces libexec/spawner.pl with the same frames (below), for one reason:
 *   cost. Perl's fork copies the page tables of a big interpreter and every page the child touches
 *   before exec; here the child is a clone(CLONE_VM|CLONE_VFORK) on a stack of its own (what
 *   posix_spawn does), so nothing is copied and the parent sleeps until the exec. The child calls
 *   only system calls on data the parent prepared. Timing (timeouts, grace periods) is the runner's.
 *
 *   runner → spawner, on stdin:  LENGTH "\n" PAYLOAD, PAYLOAD = NUL-separated fields:
 *     "run", TOKEN, UID, GID, GROUPS ("g1 g2…", may be empty), CWD, STDIN ("" = /dev/null, else a
 *     /proc/RUNNER/fd/N path), DECISION ("1" = a pipe on fd 3), MAXBYTES,
 *     NLOOKUP, LOOKUP… (NLOOKUP fields; none for a body test), ARGC, ARGV…, "NAME=VALUE" environment
 *       LOOKUP = AS ("1": look with the child's uid, gid and groups; "0": as root), DIR, then per
 *       candidate file: NAME, NEXTRA, NEXTRA × "NAME=VALUE" added to the environment if it is found
 *     "abandon", TOKEN   — stop waiting for the child's pipes (it is reported once reaped)
 *   With a LOOKUP, the first candidate that exists in DIR is checked (find_script) and, if safe,
 *   opened O_PATH on fd 4 of the child and its path appended to ARGV. ARGV[0] without a '/' is
 *   searched in the PATH of the child's environment (as execvp would, /bin:/usr/bin without one).
 *   spawner → runner, on stdout:
 *     "S TOKEN PID FOUND\n"          started; FOUND = index of the script among the candidates
 *                                    (-1: none asked). Sent with the R of a child that ends within
 *                                    S_DELAY_MS (one write), else on its own after that
 *     "X TOKEN KIND TRIED REASON\n"  no script to run: KIND none|refused|error; TRIED = candidates looked at
 *     "E TOKEN MESSAGE\n"            nothing was started
 *     "R TOKEN STATUS TRUNC OUTLEN ERRLEN DECLEN\n" OUT ERR DEC    finished; STATUS = raw wait status
 *   A child's end is seen on its pidfd. When the program exits, the rest of its process group is
 *   killed; pipes still held open (by something that left the group) are given up 1.5 s later.
 *
 *   The child, in this order: new session; descriptors 0-4; signal dispositions to the defaults and
 *   an empty mask (this process ignores SIGPIPE: a child must not inherit that); groups, gid, uid
 *   (only when root; otherwise the ids must already be the requested ones); a check of real,
 *   effective, saved and filesystem uid and gid and of the exact supplementary groups, asked of
 *   the kernel; SIGKILL when the spawner dies (PR_SET_PDEATHSIG); resource limits (RLIMIT_NPROC,
 *   CPU, DATA, FSIZE, NOFILE as given at start, 0 = left as inherited; RLIMIT_CORE 0); chdir to
 *   CWD as the user; exec with the given environment only.
 *   A failure at any step ends the child with 126 and a line on its stderr; nothing runs.
 *
 * SECURITY
 *   Reads nothing but its stdin: no environment, no locale, no configuration. Refuses uid 0 (as
 *   root also gid 0 and group 0) and opens as stdin only a /proc/PID/fd/N path. A malformed frame
 *   is answered with E (or, without a usable token, ends the spawner: the runner fails the runs it
 *   waits for and starts a new one). The script lookup runs with the user's effective ids and
 *   groups (setegid/seteuid here, back to root before anything else happens): a directory the
 *   user points anywhere is opened with the user's rights. Checks, on the
 *   descriptors: DIR is a directory, the script a regular file, both owned by UID or root and
 *   neither group- nor world-writable; a symlinked script's real directory must pass the same. The
 *   first candidate that exists decides: an unsafe one is refused, never skipped. Every descriptor
 *   is close-on-exec (inherited ones beyond 0-2 are closed at start); fds 3..9 are parked on
 *   /dev/null so that the child's dup2 targets never collide with a live pipe. All signals are blocked around the clone so no handler ever runs on
 *   the shared memory; the child resets every disposition before it unblocks them.
 *   The clone suspends this process until the child's exec: a child stuck before it (a home on a
 *   hung network filesystem, where the lookup would have stuck already) stalls the spawner. The
 *   runner then sees no S line by the run's deadline, kills the spawner and starts a new one; the
 *   stuck child gets SIGKILL with it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_FRAME (16u << 20)
#define READ_CHUNK 65536
#define S_DELAY_MS 20
#define GIVE_UP_MS 1500
#define CHILD_STACK (256u << 10)
#define NSTREAMS 3 /* out, err, dec */

struct kid {
  struct kid *next;
  char token[32];
  pid_t pid;
  bool reaped;
  int status;
  int64_t reaped_at;
  int pidfd;
  int fd[NSTREAMS]; /* read ends, -1 once closed */
  char *buf[NSTREAMS];
  size_t len[NSTREAMS], cap[NSTREAMS];
  size_t max;
  bool trunc;
  char started[80]; /* the S line while it waits, "" once sent */
  int64_t started_due;
};

/* Everything the child needs, prepared by the parent: the child allocates nothing. */
struct launch {
  int in, out, err, dec, script; /* -1: none */
  pid_t parent;
  bool root;
  uid_t uid;
  gid_t gid;
  gid_t *groups; /* sorted, unique */
  size_t ngroups;
  gid_t *have; /* room for NGROUPS_MAX + 1 */
  const char *cwd;
  char **argv, **envp;
  char **paths; /* execve candidates for argv[0], NULL-terminated */
};

static struct kid *kids;
static rlim_t limits[5];
static const int limit_kinds[5] = {RLIMIT_NPROC, RLIMIT_CPU, RLIMIT_DATA, RLIMIT_FSIZE, RLIMIT_NOFILE};
static bool pidfd_ok = true;
static gid_t *root_groups;
static int root_ngroups;
static char *child_stack;
static gid_t *have_groups;

static void die(const char *what) {
  fprintf(stderr, "spawner: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (q == NULL) die("out of memory");
  return q;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- output to the runner ---------------------------------------------------------------- */

static void kill_all_and_exit(int code) {
  for (struct kid *k = kids; k; k = k->next)
    if (!k->reaped) kill(-k->pid, SIGKILL);
  exit(code);
}

static void write_all(const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(1, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) kill_all_and_exit(0); /* the runner is gone */
    p += w;
    n -= (size_t)w;
  }
}

static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof line) { /* a long reason: cut, keep the newline */
    n = sizeof line - 1;
    line[n - 1] = '\n';
  }
  write_all(line, (size_t)n);
}

/* A reason goes on one line. */
static void one_line(char *s) {
  for (; *s; s++)
    if (*s == '\r' || *s == '\n') *s = ' ';
}

/* ---- the child: system calls only, on what the parent prepared ---------------------------- */

struct msg {
  char b[512];
  size_t n;
};

static void put(struct msg *m, const char *s) {
  while (*s && m->n < sizeof m->b - 1) m->b[m->n++] = *s++;
}

static void put_num(struct msg *m, unsigned long v) {
  char d[24];
  int i = 0;
  do d[i++] = (char)('0' + v % 10);
  while ((v /= 10) && i < 23);
  while (i > 0 && m->n < sizeof m->b - 1) m->b[m->n++] = d[--i];
}

static _Noreturn void child_fail(struct msg *m, int err) {
  if (err) {
    put(m, ": ");
    put(m, strerrordesc_np(err) ? strerrordesc_np(err) : "unknown error");
  }
  put(m, "\n");
  if (write(2, m->b, m->n) < 0) { /* nothing left to tell */
  }
  _exit(126);
}

/* Why the process does not have exactly the requested ids and groups, in m; false if it has. */
static bool credentials_problem(const struct launch *L, struct msg *m) {
  uid_t r, e, s;
  gid_t gr, ge, gs;
  if (getresuid(&r, &e, &s) != 0 || getresgid(&gr, &ge, &gs) != 0) return put(m, "getresuid"), true;
  uid_t fs = (uid_t)setfsuid((uid_t)-1);
  gid_t fg = (gid_t)setfsgid((gid_t)-1);
  if (r != L->uid || e != L->uid || s != L->uid || fs != L->uid) {
    put(m, "uids "), put_num(m, r), put(m, " "), put_num(m, e), put(m, " "), put_num(m, s);
    return put(m, " "), put_num(m, fs), true;
  }
  if (gr != L->gid || ge != L->gid || gs != L->gid || fg != L->gid) {
    put(m, "gids "), put_num(m, gr), put(m, " "), put_num(m, ge), put(m, " "), put_num(m, gs);
    return put(m, " "), put_num(m, fg), true;
  }
  int n = getgroups(NGROUPS_MAX + 1, L->have);
  if (n < 0) return put(m, "getgroups"), true;
  /* the kernel keeps the list sorted; compare as sets (a duplicate counts once) */
  size_t j = 0;
  for (int i = 0; i < n; i++) {
    if (i > 0 && L->have[i] == L->have[i - 1]) continue;
    if (j >= L->ngroups || L->have[i] != L->groups[j]) return put(m, "groups differ from the requested ones"), true;
    j++;
  }
  if (j != L->ngroups) return put(m, "groups differ from the requested ones"), true;
  return false;
}

static int child_main(void *arg) {
  const struct launch *L = arg;
  struct msg m = {.n = 0};
  setsid();
  if (dup2(L->in, 0) < 0 || dup2(L->out, 1) < 0 || dup2(L->err, 2) < 0 || (L->dec >= 0 && dup2(L->dec, 3) < 0) ||
      (L->script >= 0 && dup2(L->script, 4) < 0))
    put(&m, "spawner: cannot set up descriptors"), child_fail(&m, errno);
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < _NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, NULL); /* glibc's own signals: EINVAL, fine */
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (L->root) {
    if (syscall(SYS_setgroups, L->ngroups, L->groups) != 0 || syscall(SYS_setresgid, L->gid, L->gid, L->gid) != 0 ||
        syscall(SYS_setresuid, L->uid, L->uid, L->uid) != 0) {
      int err = errno;
      put(&m, "spawner: cannot switch to uid "), put_num(&m, L->uid), put(&m, " gid "), put_num(&m, L->gid);
      child_fail(&m, err);
    }
  }
  struct msg why = {.n = 0};
  if (credentials_problem(L, &why)) {
    why.b[why.n] = 0;
    put(&m, "spawner: cannot switch to uid "), put_num(&m, L->uid), put(&m, " gid "), put_num(&m, L->gid);
    put(&m, ": "), put(&m, why.b), child_fail(&m, 0);
  }
  /* the spawner's end is the child's (set after the switch, which clears it): a child that is
     still before its exec when the runner kills a stuck spawner does not run on unwatched */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != L->parent) {
    int err = errno;
    put(&m, "spawner: the spawner is gone"), child_fail(&m, err);
  }
  for (int i = 0; i < 5; i++) {
    if (limits[i] == 0) continue;
    struct rlimit rl = {limits[i], limits[i]};
    if (setrlimit(limit_kinds[i], &rl) != 0) {
      int err = errno;
      put(&m, "spawner: cannot set resource limit "), put_num(&m, (unsigned long)limit_kinds[i]), child_fail(&m, err);
    }
  }
  struct rlimit nocore = {0, 0};
  if (setrlimit(RLIMIT_CORE, &nocore) != 0) {
    int err = errno;
    put(&m, "spawner: cannot set resource limit 4"), child_fail(&m, err);
  }
  if (chdir(L->cwd) != 0) {
    int err = errno;
    put(&m, "spawner: cannot chdir to "), put(&m, L->cwd), child_fail(&m, err);
  }
  int err = ENOENT;
  bool denied = false;
  for (char **p = L->paths; *p; p++) {
    execve(*p, L->argv, L->envp);
    err = errno;
    if (err == EACCES) denied = true;
    else if (err != ENOENT && err != ENOTDIR && err != ESTALE && err != ENODEV && err != ETIMEDOUT) break;
  }
  if (denied && err != ENOEXEC) err = EACCES;
  put(&m, L->argv[0]), put(&m, ": "), put(&m, strerrordesc_np(err) ? strerrordesc_np(err) : "cannot execute");
  put(&m, "\n");
  if (write(2, m.b, m.n) < 0) { /* nothing left to tell */
  }
  _exit(127);
}

/* ---- the script lookup ---------------------------------------------------------------------- */

enum { FOUND, NONE, REFUSED, ERROR };

struct lookup_result {
  int kind;
  int tried;
  int fd;
  int index;
  char reason[768];
};

static bool unsafe(struct lookup_result *r, const char *path, const struct stat *st, uid_t uid, bool dir) {
  const char *why = NULL;
  if (!dir && !S_ISREG(st->st_mode)) why = "is not a regular file";
  else if (dir && !S_ISDIR(st->st_mode)) why = "is not a directory";
  else if (st->st_uid != uid && st->st_uid != 0) {
    snprintf(r->reason, sizeof r->reason, "%s is owned by uid %u, not %u or root", path, (unsigned)st->st_uid,
             (unsigned)uid);
    return true;
  } else if (st->st_mode & 020) why = "is group-writable";
  else if (st->st_mode & 002) why = "is world-writable";
  if (why == NULL) return false;
  snprintf(r->reason, sizeof r->reason, "%s %s", path, why);
  return true;
}

static void find_script(struct lookup_result *r, char *dir, uid_t uid, char **names, int n) {
  size_t dl = strlen(dir);
  while (dl > 1 && dir[dl - 1] == '/') dir[--dl] = 0;
  r->fd = -1;
  r->reason[0] = 0;
  int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) r->kind = NONE, r->tried = n;
    else {
      r->kind = ERROR, r->tried = 0;
      snprintf(r->reason, sizeof r->reason, "cannot open %s: %s", dir, strerrorname_np(errno));
    }
    return;
  }
  for (int i = 0; i < n; i++) {
    char script[PATH_MAX + 256];
    snprintf(script, sizeof script, "%s/%s", dir, names[i]);
    /* a name is one path component: the runner never sends another kind, and none is followed */
    if (names[i][0] == 0 || strchr(names[i], '/') || !strcmp(names[i], ".") || !strcmp(names[i], "..")) {
      r->kind = REFUSED, r->tried = i + 1;
      snprintf(r->reason, sizeof r->reason, "%s is not a file name", script);
      break;
    }
    int fd = openat(dfd, names[i], O_PATH | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) continue;
      r->kind = REFUSED, r->tried = i + 1;
      snprintf(r->reason, sizeof r->reason, "cannot open %s: %s", script, strerrorname_np(errno));
      break;
    }
    struct stat dst, fst;
    bool bad = fstat(dfd, &dst) != 0 || fstat(fd, &fst) != 0;
    if (bad) snprintf(r->reason, sizeof r->reason, "cannot stat %s: %s", script, strerrorname_np(errno));
    else bad = unsafe(r, dir, &dst, uid, true) || unsafe(r, script, &fst, uid, false);
    if (!bad) { /* a symlinked script sits in another directory: that one must be safe too */
      char link[64], target[PATH_MAX];
      snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
      ssize_t tl = readlink(link, target, sizeof target - 1);
      target[tl > 0 ? tl : 0] = 0;
      char parent[PATH_MAX];
      snprintf(parent, sizeof parent, "%s", target);
      char *slash = strrchr(parent, '/');
      if (slash) *slash = 0;
      if (parent[0] == 0) strcpy(parent, "/");
      if (strcmp(target, script) != 0 && strcmp(parent, dir) != 0) {
        struct stat pst;
        if (stat(parent, &pst) != 0) {
          bad = true;
          snprintf(r->reason, sizeof r->reason, "cannot stat %s: %s", parent, strerrorname_np(errno));
        } else bad = unsafe(r, parent, &pst, uid, true);
      }
    }
    if (bad) {
      close(fd);
      r->kind = REFUSED, r->tried = i + 1;
      break;
    }
    r->kind = FOUND, r->tried = i + 1, r->fd = fd, r->index = i;
    close(dfd);
    return;
  }
  if (r->reason[0] == 0) r->kind = NONE, r->tried = n;
  close(dfd);
}

/* Run the lookup with the effective ids of the user (when root), then return to root. */
static void find_as_user(struct lookup_result *r, uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups, char *dir,
                         char **names, int n) {
  if (geteuid() != 0) return find_script(r, dir, uid, names, n);
  if (setgroups(ngroups, groups) != 0 || setegid(gid) != 0 || seteuid(uid) != 0 || geteuid() != uid) {
    r->kind = ERROR, r->tried = 0, r->fd = -1;
    snprintf(r->reason, sizeof r->reason, "cannot take the ids of uid %u", (unsigned)uid);
  } else find_script(r, dir, uid, names, n);
  if (seteuid(0) != 0 || setegid(0) != 0 || setgroups((size_t)root_ngroups, root_groups) != 0 || geteuid() != 0 ||
      getegid() != 0) {
    fprintf(stderr, "spawner: cannot return to root ids\n");
    kill_all_and_exit(1);
  }
}

/* ---- parsing ---------------------------------------------------------------------------------- */

static bool number(const char *s, unsigned long long max, unsigned long long *out) {
  if (*s < '0' || *s > '9') return false;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v > max) return false;
  *out = v;
  return true;
}

static int cmp_gid(const void *a, const void *b) {
  gid_t x = *(const gid_t *)a, y = *(const gid_t *)b;
  return x < y ? -1 : x > y;
}

/* "g1 g2 …" → sorted unique list; false if malformed. */
static bool parse_groups(char *s, gid_t **out, size_t *n) {
  size_t cap = 8, k = 0;
  gid_t *g = xrealloc(NULL, cap * sizeof *g);
  for (char *save = NULL, *t = strtok_r(s, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
    unsigned long long v;
    if (!number(t, 0xfffffffeULL, &v) || k >= NGROUPS_MAX) return free(g), false;
    if (k == cap) g = xrealloc(g, (cap *= 2) * sizeof *g);
    g[k++] = (gid_t)v;
  }
  qsort(g, k, sizeof *g, cmp_gid);
  size_t u = 0;
  for (size_t i = 0; i < k; i++)
    if (u == 0 || g[i] != g[u - 1]) g[u++] = g[i];
  *out = g;
  *n = u;
  return true;
}

/* The environment: NAME=VALUE entries, a later one replacing an earlier one of the same name. */
static char **build_env(char **entries, int n, char **extra, int nextra) {
  char **env = xrealloc(NULL, (size_t)(n + nextra + 1) * sizeof *env);
  int k = 0;
  for (int i = 0; i < n + nextra; i++) {
    char *e = i < n ? entries[i] : extra[i - n];
    char *eq = strchr(e, '=');
    if (eq == NULL || eq == e) continue;
    size_t nl = (size_t)(eq - e) + 1;
    int j = 0;
    while (j < k && strncmp(env[j], e, nl) != 0) j++;
    env[j] = e;
    if (j == k) k++;
  }
  env[k] = NULL;
  return env;
}

/* Where execve is tried for FILE: itself if it has a '/', else each PATH entry (execvp's rule). */
static char **exec_paths(const char *file, char **envp) {
  char **paths = xrealloc(NULL, 2 * sizeof *paths);
  if (strchr(file, '/') || file[0] == 0) {
    paths[0] = strdup(file);
    paths[1] = NULL;
    return paths;
  }
  const char *path = "/bin:/usr/bin";
  for (char **e = envp; *e; e++)
    if (!strncmp(*e, "PATH=", 5)) path = *e + 5;
  size_t k = 0;
  for (const char *p = path;; p++) {
    const char *end = strchr(p, ':');
    size_t dl = end ? (size_t)(end - p) : strlen(p);
    char *full;
    if (asprintf(&full, "%.*s%s%s", (int)dl, p, dl ? "/" : "", file) < 0) die("out of memory");
    paths = xrealloc(paths, (k + 2) * sizeof *paths);
    paths[k++] = full;
    if (!end) break;
    p = end;
  }
  paths[k] = NULL;
  return paths;
}

/* ---- starting a child ------------------------------------------------------------------------ */

/* "/proc/PID/fd/N": how the runner hands over a descriptor it opened (nothing else is opened as root) */
static bool proc_fd_path(const char *s) {
  if (strncmp(s, "/proc/", 6)) return false;
  s += 6;
  if (*s < '1' || *s > '9') return false;
  while (*s >= '0' && *s <= '9') s++;
  if (strncmp(s, "/fd/", 4)) return false;
  s += 4;
  if (*s < '0' || *s > '9') return false;
  while (*s >= '0' && *s <= '9') s++;
  return *s == 0;
}

static void set_nonblock(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void watch_exit(struct kid *k) {
  k->pidfd = -1;
  if (!pidfd_ok) return;
  int fd = (int)syscall(SYS_pidfd_open, k->pid, 0); /* close-on-exec by definition */
  if (fd < 0 && errno == ENOSYS) pidfd_ok = false;
  k->pidfd = fd;
}

static void start(char **f, int nf) {
  /* TOKEN UID GID GROUPS CWD STDIN DECISION MAXBYTES NLOOKUP … */
  const char *token = f[0];
  unsigned long long uid, gid, max, nlookup, argc;
  if (nf < 9 || !number(f[1], 0xfffffffeULL, &uid) || !number(f[2], 0xfffffffeULL, &gid) ||
      !number(f[7], SIZE_MAX / 2, &max) || !number(f[8], (unsigned long long)nf, &nlookup) ||
      9 + nlookup >= (unsigned)nf || !number(f[9 + nlookup], (unsigned long long)nf, &argc) ||
      10 + nlookup + argc > (unsigned)nf)
    return reply("E %s malformed request\n", token);
  if (uid == 0) return reply("E %s refusing uid 0\n", token);
  if (argc == 0) return reply("E %s no program\n", token);
  bool root = geteuid() == 0;
  gid_t *groups;
  size_t ngroups;
  if (!parse_groups(f[3], &groups, &ngroups)) return reply("E %s malformed groups\n", token);
  if (ngroups == 0 && root) groups[0] = (gid_t)gid, ngroups = 1; /* as root, an empty list means just the gid */
  if (root && (gid == 0 || groups[0] == 0)) return free(groups), reply("E %s refusing group 0\n", token);
  if (f[5][0] && !proc_fd_path(f[5])) return free(groups), reply("E %s stdin is not a /proc/PID/fd/N path\n", token);
  char **lookup = f + 9;
  char **argv_in = f + 10 + nlookup;
  char **env_in = argv_in + argc;
  int nenv = nf - (int)(10 + nlookup + argc);
  char **extra = NULL;
  int nextra = 0, found = -1, script_fd = -1;
  char *script_path = NULL;
  if (nlookup > 0) {
    /* AS DIR (NAME NEXTRA EXTRA…)… */
    if (nlookup < 2 || (strcmp(lookup[0], "0") && strcmp(lookup[0], "1")))
      return free(groups), reply("E %s malformed lookup\n", token);
    int ncand = 0;
    char **names = xrealloc(NULL, nlookup * sizeof *names);
    int *at = xrealloc(NULL, nlookup * sizeof *at);
    for (unsigned long long i = 2; i < nlookup;) {
      unsigned long long ne;
      if (i + 1 >= nlookup || !number(lookup[i + 1], nlookup, &ne) || i + 2 + ne > nlookup) {
        free(names), free(at), free(groups);
        return reply("E %s malformed lookup\n", token);
      }
      names[ncand] = lookup[i];
      at[ncand++] = (int)i;
      i += 2 + ne;
    }
    struct lookup_result r;
    if (!strcmp(lookup[0], "1"))
      find_as_user(&r, (uid_t)uid, (gid_t)gid, groups, ngroups, lookup[1], names, ncand);
    else find_script(&r, lookup[1], (uid_t)uid, names, ncand);
    if (r.kind != FOUND) {
      static const char *kinds[] = {"found", "none", "refused", "error"};
      one_line(r.reason);
      free(names), free(at), free(groups);
      return reply("X %s %s %d %s\n", token, kinds[r.kind], r.tried, r.reason);
    }
    found = r.index;
    script_fd = r.fd;
    extra = lookup + at[found] + 2;
    nextra = atoi(lookup[at[found] + 1]);
    if (asprintf(&script_path, "%s/%s", lookup[1], names[found]) < 0) die("out of memory");
    char *w = script_path; /* '//' → '/' */
    for (char *p = script_path; *p; p++)
      if (!(p[0] == '/' && p[1] == '/')) *w++ = *p;
    *w = 0;
    free(names), free(at);
  }
  char **argv = xrealloc(NULL, (argc + 2) * sizeof *argv);
  memcpy(argv, argv_in, argc * sizeof *argv);
  if (script_path) argv[argc++] = script_path;
  argv[argc] = NULL;
  char **envp = build_env(env_in, nenv, extra, nextra);
  char **paths = exec_paths(argv[0], envp);

  struct launch L = {.in = -1, .out = -1, .err = -1, .dec = -1, .script = script_fd, .parent = getpid(),
                     .root = root, .uid = (uid_t)uid, .gid = (gid_t)gid, .groups = groups, .ngroups = ngroups,
                     .have = have_groups, .cwd = f[4], .argv = argv, .envp = envp, .paths = paths};
  int pipes[NSTREAMS][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
  int nstreams = !strcmp(f[6], "1") ? 3 : 2;
  const char *fail = NULL;
  int fail_errno = 0;
  L.in = open(f[5][0] ? f[5] : "/dev/null", O_RDONLY | O_CLOEXEC);
  if (L.in < 0) fail = f[5][0] ? "cannot open stdin" : "/dev/null", fail_errno = errno;
  for (int i = 0; !fail && i < nstreams; i++)
    if (pipe2(pipes[i], O_CLOEXEC) != 0) fail = "pipe", fail_errno = errno;
  pid_t pid = -1;
  if (!fail) {
    L.out = pipes[0][1], L.err = pipes[1][1], L.dec = nstreams == 3 ? pipes[2][1] : -1;
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid = clone(child_main, child_stack + CHILD_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, &L);
    fail_errno = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) fail = "fork";
  }
  if (L.in >= 0) close(L.in);
  if (script_fd >= 0) close(script_fd);
  for (int i = 0; i < NSTREAMS; i++)
    if (pipes[i][1] >= 0) close(pipes[i][1]);
  for (char **p = paths; *p; p++) free(*p);
  free(paths), free(envp), free(argv), free(script_path), free(groups);
  if (fail) {
    for (int i = 0; i < NSTREAMS; i++)
      if (pipes[i][0] >= 0) close(pipes[i][0]);
    return reply("E %s %s: %s\n", token, fail, strerror(fail_errno));
  }
  struct kid *k = xrealloc(NULL, sizeof *k);
  memset(k, 0, sizeof *k);
  snprintf(k->token, sizeof k->token, "%s", token);
  k->pid = pid;
  k->max = (size_t)max;
  for (int i = 0; i < NSTREAMS; i++) {
    k->fd[i] = pipes[i][0];
    if (k->fd[i] >= 0) set_nonblock(k->fd[i]);
  }
  snprintf(k->started, sizeof k->started, "S %s %d %d\n", token, (int)pid, found);
  k->started_due = now_ms() + S_DELAY_MS;
  watch_exit(k);
  k->next = kids;
  kids = k;
}

/* ---- children's ends ---------------------------------------------------------------------- */

static bool has_pipes(const struct kid *k) {
  return k->fd[0] >= 0 || k->fd[1] >= 0 || k->fd[2] >= 0;
}

static void drop_pipe(struct kid *k, int i) {
  if (k->fd[i] >= 0) close(k->fd[i]);
  k->fd[i] = -1;
}

static void drop_pidfd(struct kid *k) {
  if (k->pidfd >= 0) close(k->pidfd);
  k->pidfd = -1;
}

static void finish_if_done(struct kid *k) {
  if (!k->reaped || has_pipes(k)) return;
  struct kid **p = &kids;
  while (*p != k) p = &(*p)->next;
  *p = k->next;
  char head[256];
  int n = snprintf(head, sizeof head, "%sR %s %d %d %zu %zu %zu\n", k->started, k->token, k->status, k->trunc ? 1 : 0,
                   k->len[0], k->len[1], k->len[2]);
  write_all(head, (size_t)n);
  for (int i = 0; i < NSTREAMS; i++) {
    write_all(k->buf[i] ? k->buf[i] : "", k->len[i]);
    free(k->buf[i]);
  }
  free(k);
}

static struct kid *by_pid(pid_t pid) {
  for (struct kid *k = kids; k; k = k->next)
    if (k->pid == pid && !k->reaped) return k;
  return NULL;
}

/* PID was reaped with STATUS: if it is one of ours, record it and kill what is left of its group. */
static void reaped(pid_t pid, int status) {
  struct kid *k = by_pid(pid);
  if (k == NULL) return; /* an orphan of a script: we are the subreaper */
  k->reaped = true;
  k->status = status;
  k->reaped_at = now_ms();
  drop_pidfd(k);
  kill(-pid, SIGKILL); /* the script's background jobs do not outlive it */
  finish_if_done(k);
}

static void reap(void) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) reaped(pid, status);
}

static void reap_one(struct kid *k) {
  int status;
  pid_t r = waitpid(k->pid, &status, WNOHANG);
  if (r == k->pid) reaped(r, status);
  else if (r < 0) drop_pidfd(k); /* reaped elsewhere */
}

static void read_child(struct kid *k, int i) {
  char chunk[READ_CHUNK];
  ssize_t n = read(k->fd[i], chunk, sizeof chunk);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    drop_pipe(k, i);
    /* the last pipe usually closes a few microseconds before the child becomes reapable */
    if (!has_pipes(k) && !k->reaped && k->pidfd < 0) {
      pid_t pid = k->pid;
      for (int t = 0; t < 40 && by_pid(pid); t++) {
        reap();
        if (by_pid(pid)) usleep(50);
      }
      return; /* reaped() finished it, or the main loop will */
    }
    finish_if_done(k);
    return;
  }
  size_t room = k->max > k->len[i] ? k->max - k->len[i] : 0;
  size_t take = (size_t)n;
  if (room < take) {
    if (i != 2) k->trunc = true;
    take = room;
  }
  if (take == 0) return;
  if (k->len[i] + take > k->cap[i]) {
    size_t cap = k->cap[i] ? k->cap[i] : 4096;
    while (cap < k->len[i] + take) cap *= 2;
    k->buf[i] = xrealloc(k->buf[i], cap);
    k->cap[i] = cap;
  }
  memcpy(k->buf[i] + k->len[i], chunk, take);
  k->len[i] += take;
}

/* ---- requests ---------------------------------------------------------------------------------- */

static bool valid_token(const char *t) {
  size_t n = strlen(t);
  if (n == 0 || n >= sizeof((struct kid *)0)->token) return false;
  for (; *t; t++)
    if (!((*t >= '0' && *t <= '9') || (*t >= 'A' && *t <= 'Z') || (*t >= 'a' && *t <= 'z') || *t == '-' || *t == '_'))
      return false;
  return true;
}

static void handle_frame(char *payload, size_t len) {
  size_t nf = 1;
  for (size_t i = 0; i < len; i++) nf += payload[i] == 0;
  char **f = xrealloc(NULL, nf * sizeof *f);
  f[0] = payload;
  for (size_t i = 0, j = 1; i < len; i++)
    if (payload[i] == 0) f[j++] = payload + i + 1;
  if (nf < 2 || !valid_token(f[1])) {
    fprintf(stderr, "spawner: a frame without a valid token\n");
    kill_all_and_exit(2);
  }
  if (!strcmp(f[0], "run")) start(f + 1, (int)nf - 1);
  else if (!strcmp(f[0], "abandon")) {
    for (struct kid *k = kids; k; k = k->next)
      if (!strcmp(k->token, f[1])) {
        for (int i = 0; i < NSTREAMS; i++) drop_pipe(k, i);
        finish_if_done(k);
        break;
      }
  } else reply("E %s unknown request\n", f[1]);
  free(f);
}

static char *inbuf;
static size_t inlen, incap;

static void read_requests(void) {
  if (incap - inlen < READ_CHUNK) inbuf = xrealloc(inbuf, incap = inlen + READ_CHUNK * 2);
  ssize_t n = read(0, inbuf + inlen, incap - inlen);
  if (n < 0 && errno == EINTR) return;
  if (n <= 0) kill_all_and_exit(0); /* the runner is gone: take every child down with us */
  inlen += (size_t)n;
  size_t at = 0;
  for (;;) {
    char *nl = memchr(inbuf + at, '\n', inlen - at);
    if (nl == NULL) {
      if (inlen - at > 12) break;
      goto keep;
    }
    *nl = 0;
    unsigned long long want;
    if (!number(inbuf + at, MAX_FRAME, &want)) break;
    size_t head = (size_t)(nl - (inbuf + at)) + 1;
    if (inlen - at < head + want) {
      *nl = '\n';
      goto keep;
    }
    char *payload = xrealloc(NULL, (size_t)want + 1);
    memcpy(payload, inbuf + at + head, (size_t)want);
    payload[want] = 0;
    at += head + (size_t)want;
    handle_frame(payload, (size_t)want);
    free(payload);
  }
  fprintf(stderr, "spawner: a malformed frame length\n");
  kill_all_and_exit(2);
keep:
  memmove(inbuf, inbuf + at, inlen - at);
  inlen -= at;
}

/* ---- main ------------------------------------------------------------------------------------- */

static void on_chld(int sig) {
  (void)sig; /* only to interrupt poll() */
}

int main(int argc, char **argv) {
  unsigned long long v[5];
  char *s = argc == 2 && !strncmp(argv[1], "--limits=", 9) ? argv[1] + 9 : NULL;
  for (int i = 0; i < 5 && s; i++) {
    char *end = strchr(s, i < 4 ? ',' : 0);
    if (end == NULL) {
      s = NULL;
      break;
    }
    char saved = *end;
    *end = 0;
    if (!number(s, RLIM_INFINITY - 1, &v[i])) s = NULL;
    *end = saved;
    if (s) s = i < 4 ? end + 1 : end;
  }
  if (s == NULL || *s) {
    fprintf(stderr, "spawner: usage: spawner --limits=NPROC,CPU,DATA,FSIZE,NOFILE\n");
    return 2;
  }
  for (int i = 0; i < 5; i++) limits[i] = (rlim_t)v[i];
  signal(SIGPIPE, SIG_IGN);
  signal(SIGUSR1, SIG_IGN); /* a stray signal must not end it (children get the defaults back) */
  signal(SIGUSR2, SIG_IGN);
  struct sigaction chld = {.sa_handler = on_chld};
  sigaction(SIGCHLD, &chld, NULL);
  /* Orphans of a script come back to us, not to pid 1: reap() collects them, so their zombies
     never count against the user's RLIMIT_NPROC even where pid 1 does not reap. */
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) die("cannot become the child subreaper");
  closefrom(3); /* a descriptor inherited without close-on-exec would reach every child */
  for (int fd = 3; fd <= 9; fd++) { /* parked: every pipe we create is >= 10 */
    int p = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (p < 0) die("/dev/null");
    if (p != fd) {
      if (dup3(p, fd, O_CLOEXEC) < 0) die("dup3");
      close(p);
    }
  }
  root_ngroups = getgroups(0, NULL);
  root_groups = xrealloc(NULL, (size_t)(root_ngroups + 1) * sizeof *root_groups);
  if (root_ngroups < 0 || getgroups(root_ngroups, root_groups) < 0) die("getgroups");
  have_groups = xrealloc(NULL, (NGROUPS_MAX + 1) * sizeof *have_groups);
  child_stack = xrealloc(NULL, CHILD_STACK);

  struct pollfd *pfd = NULL;
  struct kid **owner = NULL;
  int *which = NULL;
  size_t cap = 0;
  for (;;) {
    int64_t now = now_ms();
    int timeout = -1;
    size_t n = 0;
    for (struct kid *k = kids; k; k = k->next) n += 4;
    if (n + 1 > cap) {
      cap = (n + 1) * 2;
      pfd = xrealloc(pfd, cap * sizeof *pfd), owner = xrealloc(owner, cap * sizeof *owner);
      which = xrealloc(which, cap * sizeof *which);
    }
    n = 0;
    for (struct kid *k = kids; k; k = k->next) {
      if (k->started[0] && k->started_due <= now) {
        write_all(k->started, strlen(k->started));
        k->started[0] = 0;
      }
      int64_t due = -1;
      if (k->started[0]) due = k->started_due;
      if (k->reaped) due = due < 0 || k->reaped_at + GIVE_UP_MS < due ? k->reaped_at + GIVE_UP_MS : due;
      else if (k->pidfd < 0) { /* no pidfd (kernel < 5.3): poll for the exit */
        int64_t poll_at = now + (has_pipes(k) ? 250 : 5);
        due = due < 0 || poll_at < due ? poll_at : due;
      }
      if (due >= 0) {
        int t = due > now ? (int)(due - now) : 0;
        if (timeout < 0 || t < timeout) timeout = t;
      }
      for (int i = 0; i < NSTREAMS; i++)
        if (k->fd[i] >= 0) pfd[n] = (struct pollfd){k->fd[i], POLLIN, 0}, owner[n] = k, which[n++] = i;
      if (k->pidfd >= 0) pfd[n] = (struct pollfd){k->pidfd, POLLIN, 0}, owner[n] = k, which[n++] = -1;
    }
    if (kids && (timeout < 0 || timeout > 1000)) timeout = 1000; /* a safety net: SIGCHLD can race poll() */
    pfd[n] = (struct pollfd){0, POLLIN, 0};
    int ready = poll(pfd, n + 1, timeout);
    if (ready < 0 && errno != EINTR) die("poll");
    /* a kid may finish (and be freed) while its entries are handled: look it up again each time */
    for (size_t i = 0; ready > 0 && i < n; i++) {
      if (!pfd[i].revents) continue;
      struct kid *k = kids;
      while (k && k != owner[i]) k = k->next;
      if (k == NULL) continue;
      if (which[i] >= 0) {
        if (k->fd[which[i]] == pfd[i].fd) read_child(k, which[i]);
      } else if (k->pidfd == pfd[i].fd) reap_one(k);
    }
    reap();
    now = now_ms();
    for (struct kid *k = kids, *next; k; k = next) {
      next = k->next;
      if (k->reaped && has_pipes(k) && now - k->reaped_at >= GIVE_UP_MS) {
        for (int i = 0; i < NSTREAMS; i++) drop_pipe(k, i);
        finish_if_done(k);
      }
    }
    if (ready > 0 && pfd[n].revents) read_requests(); /* last: new pipes may reuse closed fd numbers */
  }
}
