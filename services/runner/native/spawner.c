/*
 * drover-spawner: launches job processes for a Drover runner without forking the runner.
 *
 * Node's child_process forks the whole runner on its event-loop thread, so every spawn costs time in
 * proportion to the runner's memory. This helper is small; it starts children with clone(CLONE_VM|CLONE_VFORK) on a stack of
 * their own (the child borrows the helper's memory until execve, as glibc's posix_spawn does) and so costs the same whatever the runner's size.
 *
 * Protocol: frames over stdin (commands) and stdout (events): u32 payload length (little endian), u8 type,
 * payload. Integers are little endian; a string is u32 length + bytes.
 *   runner -> helper  START  1: u32 id, i32 uid, i32 gid, i32 ngroups (-1: none given), u32 group..., str cwd,
 *                                u32 argc, str argv..., u32 envc, str env..., u32 nlimits, (u32 resource, u64 soft, u64 hard)...,
 *                                u8 flags (1: the uid is the job's own), u32 ncgroups, (u8 version 1|2, str cgroup dir)...
 *                     SIGNAL 2: u32 id, i32 signo          (sent to every process of the job)
 *                     KILLUID 3: u32 id, u32 uid           (every process of that uid gets SIGKILL)
 *                     DEADLINE 4: u32 id, u32 ms           (unless renewed within ms, the job is killed and reported fenced)
 *   helper -> runner  STARTED 1: u32 id, i32 pid           (id 0: ready, followed by u32 protocol version)
 *                     FAILED  2: u32 id, i32 errno
 *                     OUTPUT  3: u32 id, u8 stream (1 stdout, 2 stderr), bytes
 *                     EXIT    4: u32 id, i32 exit code (-1 if killed), i32 signal, i64 user us, i64 system us, i64 max rss KiB,
 *                                u32 flags (1: killed by its deadline)
 *                     KILLED  5: u32 id, i32 errno (0: done)
 *
 * Containment. Every child leads its own session (setsid), so signals to the runner never reach it. When the
 * runner gives cgroup directories (made by the runner, one per attempt), the child joins them before anything
 * else, and "every process of the job" is the cgroup: the end of the main process, a cancel, a timeout or a
 * deadline kill the cgroup whole (cgroup.kill on v2, a kill sweep on v1), so setsid, double forks and daemons die
 * too. Without cgroups it is the process group, and the job's own uid when it has one. The helper is the child
 * subreaper of its jobs, so every orphan is reaped here, never left to PID 1.
 *
 * Dying with the runner. The helper gets SIGTERM when the runner dies (PR_SET_PDEATHSIG) and EOF on stdin when it
 * closes: either way it kills every job, whole, then exits. Each child gets SIGKILL if the helper dies. For a
 * helper killed outright (SIGKILL) a guard process, forked at start, sees its pipe close and kills what is left:
 * the runner's cgroups, the jobs' process groups and their own uids.
 *
 * Secrets: the runner starts the helper with an empty environment (each job's environment arrives in its START
 * frame) and the helper makes itself non-dumpable, so no other process of its uid, a job included, can read its
 * /proc/<pid>/environ, mem or maps, which hold the environments of every job in flight. A child is back to a normal,
 * dumpable process once it has exec'd (the kernel sets dumpability afresh on execve when real and effective ids agree).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/sched.h>
#include <time.h>
#include <unistd.h>

enum { CMD_START = 1, CMD_SIGNAL = 2, CMD_KILL_UID = 3, CMD_DEADLINE = 4 };
enum { EV_STARTED = 1, EV_FAILED = 2, EV_OUTPUT = 3, EV_EXIT = 4, EV_KILLED = 5 };
/* 2: KILLUID. 3: cgroups, DEADLINE, exit flags. The runner falls back to its own means for what an older helper lacks. */
#define PROTOCOL_VERSION 3
#define MAX_CGROUPS 4
#define EXIT_FENCED 1u
/* Guard messages: u8 op, u32 value. */
enum { GUARD_ADD_PGID = 1, GUARD_DEL_PGID = 2, GUARD_ADD_UID = 3, GUARD_DEL_UID = 4 };
/* The uids KILLUID accepts, as RUNNER_JOB_UIDS does (MIN_JOB_UID, MAX_JOB_UID of packages/core/src/config.ts). */
#define MIN_JOB_UID 1000u
#define MAX_JOB_UID 2147483647u
#define MAX_JOBS 4096
#define MAX_GROUPS 65536 /* NGROUPS_MAX of Linux */
#define MAX_FRAME (64u * 1024u * 1024u)
#define READ_CHUNK 65536
/* After a child exits, how long a grandchild that escaped the group may keep its output pipes open. */
#define LINGER_MS 2000

struct job {
  uint32_t id;
  pid_t pid;
  int fd[2]; /* stdout, stderr read ends; -1 once closed */
  int exited;
  int status;
  struct rusage ru;
  long long linger_deadline;
  int cg_fd;       /* directory of the cgroup that holds the whole job (v2 preferred); -1: none */
  int cg_v2;
  uid_t own_uid;   /* the job's own uid (killed whole at shutdown); 0: none */
  long long deadline; /* monotonic ms; -1: none */
  int fenced;
};

static struct job *jobs[MAX_JOBS];
static int njobs;
static char *environ_path_default = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *what) {
  fprintf(stderr, "drover-spawner: %s: %s\n", what, strerror(errno));
  exit(2);
}

/* ---- output to the runner: one buffer, flushed with blocking writes ---- */
static unsigned char *obuf;
static size_t olen, ocap;

static void out_reserve(size_t n) {
  if (olen + n <= ocap) return;
  while (olen + n > ocap) ocap = ocap ? ocap * 2 : 1 << 16;
  obuf = realloc(obuf, ocap);
  if (!obuf) die("realloc");
}
static void put_u8(uint8_t v) { out_reserve(1); obuf[olen++] = v; }
static void put_u32(uint32_t v) { out_reserve(4); for (int i = 0; i < 4; i++) obuf[olen++] = (v >> (8 * i)) & 0xff; }
static void put_i64(int64_t v) { out_reserve(8); for (int i = 0; i < 8; i++) obuf[olen++] = ((uint64_t)v >> (8 * i)) & 0xff; }
static void put_bytes(const void *p, size_t n) { out_reserve(n); memcpy(obuf + olen, p, n); olen += n; }
static void frame(uint8_t type, uint32_t payload_len) { put_u32(payload_len); put_u8(type); }

static void flush_out(void) {
  size_t off = 0;
  while (off < olen) {
    ssize_t w = write(1, obuf + off, olen - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      exit(0); /* the runner is gone */
    }
    off += (size_t)w;
  }
  olen = 0;
}

/* ---- input from the runner ---- */
static unsigned char *ibuf;
static size_t ilen, icap;

struct reader { const unsigned char *p; size_t left; int bad; };
static uint32_t rd_u32(struct reader *r) {
  if (r->left < 4) { r->bad = 1; return 0; }
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= (uint32_t)r->p[i] << (8 * i);
  r->p += 4; r->left -= 4;
  return v;
}
static uint64_t rd_u64(struct reader *r) {
  uint64_t lo = rd_u32(r), hi = rd_u32(r);
  return lo | (hi << 32);
}
/* Strings are copied out NUL-terminated; the caller frees them with the frame's arena. */
static char *rd_str(struct reader *r, char **arena) {
  uint32_t n = rd_u32(r);
  if (r->bad || r->left < n) { r->bad = 1; return NULL; }
  char *s = *arena;
  memcpy(s, r->p, n);
  s[n] = 0;
  *arena += n + 1;
  r->p += n; r->left -= n;
  return s;
}

static struct job *find_job(uint32_t id) {
  for (int i = 0; i < njobs; i++) if (jobs[i]->id == id) return jobs[i];
  return NULL;
}

static void send_failed(uint32_t id, int err) {
  frame(EV_FAILED, 8);
  put_u32(id);
  put_u32((uint32_t)err);
}

/* PATH from the job's own environment, else the usual default. */
static const char *job_path(char **envp) {
  for (char **e = envp; *e; e++) if (strncmp(*e, "PATH=", 5) == 0) return *e + 5;
  return environ_path_default;
}

struct limit { uint32_t res; struct rlimit lim; };

#define CHILD_STACK_SIZE (256 * 1024)
static char *child_stack;
/* Every child's stdin; opened once (close-on-exec) rather than per spawn. */
static int null_fd = -1;

struct child_args {
  const char *path; /* PATH to search for argv[0] when it has no slash */
  char **argv, **envp;
  const char *cwd;
  int32_t uid, gid;
  pid_t parent;
  int32_t ngroups; /* -1: none given (dropped when gid is set) */
  const gid_t *groups;
  uint32_t nlim;
  int null_fd, out_fd, err_fd;
  volatile int err; /* written by the child before _exit: it shares our memory until execve */
  struct limit limits[32];
  uint32_t ncg;
  const char *cg_procs[MAX_CGROUPS]; /* <dir>/cgroup.procs of each cgroup the child joins */
  int skip_cg;   /* index of a cgroup the child was born into (clone3 CLONE_INTO_CGROUP): not joined again; -1 none */
  int err_pipe;  /* when the child has memory of its own: where it writes its errno; -1 otherwise */
};

/*
 * Executes argv[0], searching PATH for a name without a slash as execvp(3) does. It runs in the child after the
 * switch to the job's ids, so a directory or program only the helper's user may enter is skipped, as the job's own
 * shell would skip it. Returns only on failure, with the errno to report.
 */
static int exec_program(const struct child_args *a) {
  const char *name = a->argv[0];
  if (strchr(name, '/')) {
    execve(name, a->argv, a->envp);
    return errno;
  }
  char buf[PATH_MAX];
  size_t nlen = strlen(name);
  int denied = 0;
  for (const char *p = a->path;;) {
    const char *end = strchrnul(p, ':');
    const char *dir = end == p ? "." : p; /* an empty entry is the working directory */
    size_t dlen = end == p ? 1 : (size_t)(end - p);
    if (dlen + 1 + nlen + 1 <= sizeof buf) {
      memcpy(buf, dir, dlen);
      buf[dlen] = '/';
      memcpy(buf + dlen + 1, name, nlen + 1);
      execve(buf, a->argv, a->envp);
      if (errno == EACCES) denied = 1;
      else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE && errno != ENODEV && errno != ETIMEDOUT) return errno;
    }
    if (!*end) break;
    p = end + 1;
  }
  return denied ? EACCES : ENOENT;
}

/* Runs in the child on its own stack, sharing the helper's memory: system calls only, no allocation. */
static int child_main(void *arg) {
  struct child_args *a = arg;
  sigset_t empty;
  sigemptyset(&empty);
  sigprocmask(SIG_SETMASK, &empty, NULL);
  signal(SIGPIPE, SIG_DFL);
  setsid();
  /* Into the job's cgroups first, while still root: from here on every process of the job is counted and killable. */
  for (uint32_t i = 0; i < a->ncg; i++) {
    if ((int)i == a->skip_cg) continue;
    int fd = open(a->cg_procs[i], O_WRONLY | O_CLOEXEC);
    if (fd < 0) goto fail;
    ssize_t w = write(fd, "0", 1);
    close(fd);
    if (w != 1) goto fail;
  }
  for (uint32_t i = 0; i < a->nlim; i++) {
    if (setrlimit((int)a->limits[i].res, &a->limits[i].lim) < 0) goto fail;
  }
  if (a->ngroups >= 0) {
    if (setgroups((size_t)a->ngroups, a->groups) < 0) goto fail;
  } else if (a->gid >= 0 && setgroups(0, NULL) < 0) goto fail;
  if (a->gid >= 0 && setgid((gid_t)a->gid) < 0) goto fail;
  if (a->uid >= 0 && setuid((uid_t)a->uid) < 0) goto fail;
  /* After the ids: a change of credentials clears the parent-death signal. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != a->parent) _exit(127); /* the helper died before the signal was armed */
  if (a->cwd && *a->cwd && chdir(a->cwd) < 0) goto fail;
  if (dup2(a->null_fd, 0) < 0 || dup2(a->out_fd, 1) < 0 || dup2(a->err_fd, 2) < 0) goto fail;
  errno = exec_program(a);
fail:
  a->err = errno ? errno : EINVAL;
  if (a->err_pipe >= 0) {
    int e = a->err;
    ssize_t w = write(a->err_pipe, &e, sizeof e);
    (void)w;
  }
  _exit(127);
}

/*
 * Starts the child directly inside the v2 cgroup `cg_fd` (clone3 with CLONE_INTO_CGROUP): no migration into it
 * afterwards, which takes the kernel's cgroup threadgroup lock for writing and costs an RCU grace period per job.
 * The child gets a copy of our (small) memory rather than sharing it, so it reports a failure through a pipe.
 * Returns the pid, or -1 with errno (ENOSYS and friends: the caller falls back to clone with CLONE_VM).
 */
static pid_t spawn_into_cgroup(struct child_args *a, int cg_fd, int *child_errno) {
  int ep[2];
  if (pipe2(ep, O_CLOEXEC) < 0) return -1;
  a->err_pipe = ep[1];
  struct clone_args ca;
  memset(&ca, 0, sizeof ca);
  ca.flags = CLONE_VFORK | CLONE_INTO_CGROUP;
  ca.exit_signal = SIGCHLD;
  ca.cgroup = (uint64_t)cg_fd;
  pid_t pid = (pid_t)syscall(SYS_clone3, &ca, sizeof ca);
  if (pid == 0) {
    close(ep[0]);
    child_main(a);
    _exit(127);
  }
  int saved = errno;
  close(ep[1]);
  a->err_pipe = -1;
  *child_errno = 0;
  if (pid > 0) {
    /* CLONE_VFORK: the child has exec'd (the pipe closed empty) or failed (its errno is in the pipe). */
    int e = 0;
    if (read(ep[0], &e, sizeof e) == (ssize_t)sizeof e) *child_errno = e;
  }
  close(ep[0]);
  errno = saved;
  return pid;
}

/* clone3 or CLONE_INTO_CGROUP missing (old kernel, seccomp): found once, not tried again. */
static int clone3_unavailable;

/* ---- the guard: kills what a helper killed outright left behind ---- */
static int guard_fd = -1;

static void guard_send(uint8_t op, uint32_t value) {
  if (guard_fd < 0) return;
  unsigned char m[5] = { op, value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff, (value >> 24) & 0xff };
  while (write(guard_fd, m, sizeof m) < 0 && errno == EINTR) {}
}

/* ---- cgroups ---- */

/* Reads a cgroup's cgroup.procs and sends `sig` to each process in it; returns how many there were (-1: unreadable). */
static int signal_cgroup_procs(int dir_fd, int sig) {
  int fd = openat(dir_fd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[8192];
  int count = 0;
  long pid = 0;
  int digits = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; i++) {
      if (buf[i] >= '0' && buf[i] <= '9') { pid = pid * 10 + (buf[i] - '0'); digits++; continue; }
      if (digits && pid > 0) { kill((pid_t)pid, sig); count++; }
      pid = 0;
      digits = 0;
    }
  }
  if (digits && pid > 0) { kill((pid_t)pid, sig); count++; }
  close(fd);
  return count;
}

/* Every process in the cgroup gets SIGKILL: one write on v2; on v1, sweeps until a read finds it empty. */
static void kill_cgroup(int dir_fd, int v2) {
  if (v2) {
    int fd = openat(dir_fd, "cgroup.kill", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      ssize_t w = write(fd, "1", 1);
      close(fd);
      if (w == 1) return;
    }
  }
  struct timespec pause = { 0, 1000000 };
  for (int round = 0; round < 200 && signal_cgroup_procs(dir_fd, SIGKILL) > 0; round++) nanosleep(&pause, NULL);
}

/*
 * A signal for the whole job: its cgroup when it has one, else its process group. A catchable signal reaches each
 * process once: every process of the group is in the cgroup too, and a shell that took a first SIGTERM before the
 * second came would run its trap twice. SIGKILL goes both ways (it cannot be caught, and a missed one is a leak).
 */
static void signal_tree(struct job *j, int sig) {
  if (j->cg_fd >= 0) {
    if (sig == SIGKILL) kill_cgroup(j->cg_fd, j->cg_v2);
    else if (signal_cgroup_procs(j->cg_fd, sig) >= 0) return;
  }
  kill(-j->pid, sig);
}

static void start_job(struct reader *r) {
  uint32_t id = rd_u32(r);
  int32_t uid = (int32_t)rd_u32(r);
  int32_t gid = (int32_t)rd_u32(r);
  int32_t ngroups = (int32_t)rd_u32(r);
  gid_t *groups = NULL;
  if (ngroups > MAX_GROUPS || ngroups < -1) { r->bad = 1; ngroups = -1; }
  if (ngroups > 0 && !r->bad) {
    groups = calloc((size_t)ngroups, sizeof(gid_t));
    if (!groups) die("calloc");
    for (int32_t i = 0; i < ngroups && !r->bad; i++) groups[i] = (gid_t)rd_u32(r);
  }
  /* One arena holds every string of this frame: no string is longer than the frame itself. */
  char *arena_base = malloc(r->left * 2 + 16 + MAX_CGROUPS * 16);
  if (!arena_base) die("malloc");
  char *arena = arena_base;
  char *cwd = rd_str(r, &arena);
  uint32_t argc = rd_u32(r);
  char **argv = calloc((size_t)argc + 1, sizeof(char *));
  for (uint32_t i = 0; argv && i < argc && !r->bad; i++) argv[i] = rd_str(r, &arena);
  uint32_t envc = rd_u32(r);
  char **envp = calloc((size_t)envc + 1, sizeof(char *));
  for (uint32_t i = 0; envp && i < envc && !r->bad; i++) envp[i] = rd_str(r, &arena);
  uint32_t nlim = rd_u32(r);
  struct limit limits[32];
  if (nlim > 32) { r->bad = 1; nlim = 0; }
  for (uint32_t i = 0; i < nlim && !r->bad; i++) {
    limits[i].res = rd_u32(r);
    limits[i].lim.rlim_cur = rd_u64(r);
    limits[i].lim.rlim_max = rd_u64(r);
  }
  /* Version 3: flags and cgroups (absent from an older runner's frame). */
  uint8_t flags = 0;
  uint32_t ncg = 0;
  char *cg_dir[MAX_CGROUPS];
  int cg_v2[MAX_CGROUPS];
  const char *cg_procs[MAX_CGROUPS];
  if (!r->bad && r->left > 0) {
    flags = r->p[0];
    r->p++; r->left--;
    ncg = rd_u32(r);
    if (ncg > MAX_CGROUPS) { r->bad = 1; ncg = 0; }
    for (uint32_t i = 0; i < ncg && !r->bad; i++) {
      if (r->left < 1) { r->bad = 1; break; }
      cg_v2[i] = r->p[0] == 2;
      r->p++; r->left--;
      cg_dir[i] = rd_str(r, &arena);
      /* "<dir>/cgroup.procs", built here: the child may not allocate. */
      if (!r->bad) {
        size_t n = strlen(cg_dir[i]);
        memcpy(arena, cg_dir[i], n);
        memcpy(arena + n, "/cgroup.procs", 14);
        cg_procs[i] = arena;
        arena += n + 14;
      }
    }
  }
  if (r->bad || !argv || !envp || argc == 0 || njobs >= MAX_JOBS) {
    send_failed(id, r->bad || argc == 0 ? EINVAL : EAGAIN);
    goto out;
  }
  /* The cgroup that holds the whole job, kept open to kill it: the v2 one if given, else the first. */
  int kill_dir = -1, kill_v2 = 0;
  for (uint32_t i = 0; i < ncg && kill_dir < 0; i++) if (cg_v2[i]) { kill_dir = (int)i; kill_v2 = 1; }
  if (kill_dir < 0 && ncg > 0) kill_dir = 0;
  int cg_fd = -1;
  if (kill_dir >= 0) {
    cg_fd = open(cg_dir[kill_dir], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cg_fd < 0) { send_failed(id, errno); goto out; }
  }

  int outp[2], errp[2];
  if (pipe2(outp, O_CLOEXEC) < 0) { send_failed(id, errno); if (cg_fd >= 0) close(cg_fd); goto out; }
  if (pipe2(errp, O_CLOEXEC) < 0) { send_failed(id, errno); close(outp[0]); close(outp[1]); if (cg_fd >= 0) close(cg_fd); goto out; }

  struct child_args a = {
    .path = job_path(envp), .argv = argv, .envp = envp, .cwd = cwd, .uid = uid, .gid = gid, .ngroups = ngroups, .groups = groups,
    .parent = getpid(),
    .nlim = nlim, .null_fd = null_fd, .out_fd = outp[1], .err_fd = errp[1], .err = 0,
  };
  memcpy(a.limits, limits, sizeof(limits[0]) * nlim);
  a.ncg = ncg;
  for (uint32_t i = 0; i < ncg; i++) a.cg_procs[i] = cg_procs[i];
  a.skip_cg = -1;
  a.err_pipe = -1;
  pid_t pid = -1;
  int child_errno = 0;
  if (kill_v2 && !clone3_unavailable) {
    a.skip_cg = kill_dir;
    pid = spawn_into_cgroup(&a, cg_fd, &child_errno);
    if (pid < 0 && (errno == ENOSYS || errno == E2BIG || errno == EPERM || errno == EINVAL)) {
      clone3_unavailable = 1;
      a.skip_cg = -1;
    } else if (pid < 0) {
      child_errno = errno;
    }
  }
  if (a.skip_cg < 0) {
    /* CLONE_VFORK: we resume once the child has called execve or exited, so one stack serves every child. */
    pid = clone(child_main, child_stack + CHILD_STACK_SIZE, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
    child_errno = a.err;
  }
  int spawn_errno = pid < 0 ? errno : child_errno;
  close(outp[1]);
  close(errp[1]);
  if (spawn_errno) {
    if (pid > 0) waitpid(pid, NULL, 0);
    close(outp[0]);
    close(errp[0]);
    if (cg_fd >= 0) close(cg_fd);
    send_failed(id, spawn_errno);
    goto out;
  }
  struct job *j = calloc(1, sizeof *j);
  if (!j) die("calloc");
  j->id = id;
  j->pid = pid;
  j->fd[0] = outp[0];
  j->fd[1] = errp[0];
  j->cg_fd = cg_fd;
  j->cg_v2 = kill_v2;
  j->own_uid = (flags & 1) && uid > 0 ? (uid_t)uid : 0;
  j->deadline = -1;
  jobs[njobs++] = j;
  guard_send(GUARD_ADD_PGID, (uint32_t)pid);
  if (j->own_uid) guard_send(GUARD_ADD_UID, (uint32_t)j->own_uid);
  frame(EV_STARTED, 8);
  put_u32(id);
  put_u32((uint32_t)pid);
out:
  free(groups);
  free(argv);
  free(envp);
  free(arena_base);
}

static void signal_job(struct reader *r) {
  uint32_t id = rd_u32(r);
  int signo = (int)rd_u32(r);
  struct job *j = find_job(id);
  if (r->bad || !j) return;
  signal_tree(j, signo);
}

static void set_deadline(struct reader *r) {
  uint32_t id = rd_u32(r);
  uint32_t ms = rd_u32(r);
  struct job *j = find_job(id);
  if (r->bad || !j || j->exited) return;
  j->deadline = now_ms() + (long long)ms;
}

struct kill_args {
  uid_t uid;
  volatile int err;
};

/*
 * Runs in a child sharing the helper's memory: becomes the uid (no groups, its own gid), then kill(-1) signals
 * every process that uid may signal, which is every process of that uid but itself; nothing of any other uid.
 */
static int kill_uid_main(void *arg) {
  struct kill_args *a = arg;
  if (setgroups(0, NULL) < 0 || setgid((gid_t)a->uid) < 0 || setuid(a->uid) < 0) goto fail;
  if (kill(-1, SIGKILL) < 0 && errno != ESRCH) goto fail; /* ESRCH: nothing was left */
  _exit(0);
fail:
  a->err = errno ? errno : EINVAL;
  _exit(1);
}

/* Returns 0 or an errno. Never root or a system uid: that would kill the system's own processes. */
static int kill_uid_now(uint32_t uid) {
  if (uid < MIN_JOB_UID || uid > MAX_JOB_UID) return EINVAL;
  struct kill_args a = { .uid = (uid_t)uid, .err = 0 };
  pid_t pid = clone(kill_uid_main, child_stack + CHILD_STACK_SIZE, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
  if (pid < 0) return errno;
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
  return a.err;
}

static void kill_uid(struct reader *r) {
  uint32_t id = rd_u32(r);
  uint32_t uid = rd_u32(r);
  int err = r->bad ? EINVAL : kill_uid_now(uid);
  frame(EV_KILLED, 8);
  put_u32(id);
  put_u32((uint32_t)err);
}

static void handle_frames(void) {
  size_t off = 0;
  while (ilen - off >= 5) {
    uint32_t len = 0;
    for (int i = 0; i < 4; i++) len |= (uint32_t)ibuf[off + i] << (8 * i);
    if (len > MAX_FRAME) { fprintf(stderr, "drover-spawner: frame too large\n"); exit(2); }
    if (ilen - off < 5 + (size_t)len) break;
    uint8_t type = ibuf[off + 4];
    struct reader r = { ibuf + off + 5, len, 0 };
    if (type == CMD_START) start_job(&r);
    else if (type == CMD_SIGNAL) signal_job(&r);
    else if (type == CMD_KILL_UID) kill_uid(&r);
    else if (type == CMD_DEADLINE) set_deadline(&r);
    off += 5 + len;
  }
  memmove(ibuf, ibuf + off, ilen - off);
  ilen -= off;
}

static void finish_if_done(int index) {
  struct job *j = jobs[index];
  if (!j->exited || j->fd[0] >= 0 || j->fd[1] >= 0) return;
  int code = WIFEXITED(j->status) ? WEXITSTATUS(j->status) : -1;
  int sig = WIFSIGNALED(j->status) ? WTERMSIG(j->status) : 0;
  frame(EV_EXIT, 4 + 4 + 4 + 8 + 8 + 8 + 4);
  put_u32(j->id);
  put_u32((uint32_t)code);
  put_u32((uint32_t)sig);
  put_i64((int64_t)j->ru.ru_utime.tv_sec * 1000000 + j->ru.ru_utime.tv_usec);
  put_i64((int64_t)j->ru.ru_stime.tv_sec * 1000000 + j->ru.ru_stime.tv_usec);
  put_i64((int64_t)j->ru.ru_maxrss);
  put_u32(j->fenced ? EXIT_FENCED : 0);
  guard_send(GUARD_DEL_PGID, (uint32_t)j->pid);
  if (j->own_uid) guard_send(GUARD_DEL_UID, (uint32_t)j->own_uid);
  if (j->cg_fd >= 0) close(j->cg_fd);
  free(j);
  jobs[index] = jobs[--njobs];
}

static void close_stream(struct job *j, int s) {
  if (j->fd[s] >= 0) close(j->fd[s]);
  j->fd[s] = -1;
}

/* Called when poll says the pipe is readable, so one read does not block; more data waits for the next poll. */
static void read_stream(struct job *j, int s) {
  static unsigned char buf[READ_CHUNK];
  ssize_t n;
  do n = read(j->fd[s], buf, sizeof buf); while (n < 0 && errno == EINTR);
  if (n <= 0) {
    close_stream(j, s); /* EOF or error */
    return;
  }
  frame(EV_OUTPUT, 4 + 1 + (uint32_t)n);
  put_u32(j->id);
  put_u8((uint8_t)(s + 1));
  put_bytes(buf, (size_t)n);
}

static void reap(void) {
  for (;;) {
    int status;
    struct rusage ru;
    pid_t pid = wait4(-1, &status, WNOHANG, &ru);
    if (pid <= 0) return;
    for (int i = 0; i < njobs; i++) {
      if (jobs[i]->pid != pid) continue;
      jobs[i]->exited = 1;
      jobs[i]->status = status;
      jobs[i]->ru = ru;
      jobs[i]->linger_deadline = now_ms() + LINGER_MS;
      jobs[i]->deadline = -1;
      /* Whatever the command left behind (its group, or its whole cgroup) goes with it. */
      signal_tree(jobs[i], SIGKILL);
      break;
    }
  }
}

static void kill_all_and_exit(int code) {
  for (int i = 0; i < njobs; i++) {
    signal_tree(jobs[i], SIGKILL);
    if (jobs[i]->own_uid) kill_uid_now((uint32_t)jobs[i]->own_uid);
  }
  flush_out();
  exit(code);
}

/* ---- the guard process ---- */
struct guard_cgroup { char *dir; int v2; };

static void guard_remove(uint32_t *set, int *n, uint32_t v) {
  for (int i = 0; i < *n; i++) if (set[i] == v) { set[i] = set[--*n]; return; }
}

/* On v2 one write kills the runner's whole subtree; on v1 each job's cgroup (one level down) is swept. */
static void guard_kill_cgroup(const struct guard_cgroup *cg) {
  int dir_fd = open(cg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return;
  if (cg->v2) {
    kill_cgroup(dir_fd, 1);
  } else {
    int list_fd = dup(dir_fd);
    DIR *d = list_fd >= 0 ? fdopendir(list_fd) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (e->d_type != DT_DIR || e->d_name[0] == '.') continue;
      int sub = openat(dir_fd, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (sub >= 0) { kill_cgroup(sub, 0); close(sub); }
    }
    if (d) closedir(d);
  }
  close(dir_fd);
}

/*
 * Runs in its own process (a real fork, in a session of its own) until the helper's end of `fd` closes, which
 * happens however the helper ends. Then it kills every process the helper's jobs may have left, and exits.
 */
static void guard_main(int fd, const struct guard_cgroup *cgs, int ncgs) {
  setsid();
  static uint32_t pgids[MAX_JOBS], uids[MAX_JOBS];
  int npgids = 0, nuids = 0;
  unsigned char buf[5 * 1024];
  size_t have = 0;
  for (;;) {
    ssize_t n = read(fd, buf + have, sizeof buf - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    have += (size_t)n;
    size_t off = 0;
    for (; have - off >= 5; off += 5) {
      uint32_t v = (uint32_t)buf[off + 1] | (uint32_t)buf[off + 2] << 8 | (uint32_t)buf[off + 3] << 16 | (uint32_t)buf[off + 4] << 24;
      switch (buf[off]) {
        case GUARD_ADD_PGID: if (npgids < MAX_JOBS) pgids[npgids++] = v; break;
        case GUARD_DEL_PGID: guard_remove(pgids, &npgids, v); break;
        case GUARD_ADD_UID: if (nuids < MAX_JOBS) uids[nuids++] = v; break;
        case GUARD_DEL_UID: guard_remove(uids, &nuids, v); break;
      }
    }
    memmove(buf, buf + off, have - off);
    have -= off;
  }
  for (int i = 0; i < ncgs; i++) guard_kill_cgroup(&cgs[i]);
  for (int i = 0; i < npgids; i++) kill(-(pid_t)pgids[i], SIGKILL);
  for (int i = 0; i < nuids; i++) kill_uid_now(uids[i]);
  _exit(0);
}

/* Forks the guard; the helper keeps the write end of its pipe (close-on-exec, so no job inherits it). */
static void start_guard(const struct guard_cgroup *cgs, int ncgs) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) die("pipe2");
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    close(p[1]);
    /* Nothing of the helper's but the pipe and stderr: above all not stdin/stdout, whose EOF the runner watches. */
    int keep = p[0] == 3 ? 3 : dup2(p[0], 3);
    if (keep < 0) _exit(1);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) { dup2(devnull, 0); dup2(devnull, 1); if (devnull > 3) close(devnull); }
    for (int fd = 4; fd < 1024; fd++) close(fd);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* A stop signal meant for the helper (SIGTERM) must not stop the guard before its work. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    guard_main(3, cgs, ncgs);
  }
  close(p[0]);
  guard_fd = p[1];
}

int main(int argc, char **argv) {
  /* First, before anything lands in memory: no same-uid process may read our memory or /proc files. */
  if (prctl(PR_SET_DUMPABLE, 0) < 0) die("prctl(PR_SET_DUMPABLE)");
  clearenv(); /* expected empty already; nothing of it may reach a job */
  /* If the runner dies we get SIGTERM (caught below: every job is killed, then we exit). */
  if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0) die("prctl");
  pid_t runner = getppid();
  if (runner == 1) return 0;
  /* Out of the runner's process group: a Ctrl-C meant for the runner (which drains) must not kill the jobs. */
  setpgid(0, 0);
  /* Orphans of the jobs are reparented to us, not to PID 1: reaped at once, and still below us to be killed. */
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  /* argv: --cgroup <1|2>:<dir of the runner's job cgroups>, for the guard. */
  static struct guard_cgroup cgs[MAX_CGROUPS];
  int ncgs = 0;
  for (int i = 1; i + 1 < argc && ncgs < MAX_CGROUPS; i += 2) {
    if (strcmp(argv[i], "--cgroup") != 0 || (argv[i + 1][0] != '1' && argv[i + 1][0] != '2') || argv[i + 1][1] != ':') {
      fprintf(stderr, "drover-spawner: unknown argument %s\n", argv[i]);
      return 2;
    }
    cgs[ncgs].v2 = argv[i + 1][0] == '2';
    cgs[ncgs++].dir = argv[i + 1] + 2;
  }
  signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) die("sigprocmask");
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) die("signalfd");
  fcntl(0, F_SETFL, O_NONBLOCK);
  fcntl(0, F_SETFD, FD_CLOEXEC);
  fcntl(1, F_SETFD, FD_CLOEXEC);
  null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) die("open /dev/null");
  child_stack = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (child_stack == MAP_FAILED) die("mmap");
  start_guard(cgs, ncgs);
  /* The runner may have died before the parent-death signal was armed. */
  if (getppid() != runner) kill_all_and_exit(0);
  icap = 1 << 16;
  ibuf = malloc(icap);
  if (!ibuf) die("malloc");
  /* Tell the runner we are ready: a STARTED frame for id 0, with the protocol version this helper speaks. */
  frame(EV_STARTED, 12);
  put_u32(0);
  put_u32((uint32_t)getpid());
  put_u32(PROTOCOL_VERSION);
  flush_out();

  static struct pollfd pfd[2 + 2 * MAX_JOBS];
  static struct { int job; int stream; } map[2 + 2 * MAX_JOBS];
  int input_open = 1;
  for (;;) {
    int n = 0;
    pfd[n++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
    if (input_open) pfd[n++] = (struct pollfd){ .fd = 0, .events = POLLIN };
    long long deadline = -1;
    for (int i = 0; i < njobs; i++) {
      for (int s = 0; s < 2; s++) {
        if (jobs[i]->fd[s] < 0) continue;
        map[n].job = i;
        map[n].stream = s;
        pfd[n++] = (struct pollfd){ .fd = jobs[i]->fd[s], .events = POLLIN };
      }
      if (jobs[i]->exited && (deadline < 0 || jobs[i]->linger_deadline < deadline)) deadline = jobs[i]->linger_deadline;
      if (!jobs[i]->exited && jobs[i]->deadline >= 0 && (deadline < 0 || jobs[i]->deadline < deadline)) deadline = jobs[i]->deadline;
    }
    int timeout = deadline < 0 ? -1 : (int)(deadline > now_ms() ? deadline - now_ms() : 0);
    if (poll(pfd, (nfds_t)n, timeout) < 0 && errno != EINTR) die("poll");

    for (int k = 0; k < n; k++) {
      if (!pfd[k].revents) continue;
      if (pfd[k].fd == sfd) {
        struct signalfd_siginfo si;
        int stop = 0;
        while (read(sfd, &si, sizeof si) == sizeof si) if (si.ssi_signo != SIGCHLD) stop = 1;
        if (stop) kill_all_and_exit(0);
        reap();
      } else if (input_open && pfd[k].fd == 0) {
        for (;;) {
          if (icap - ilen < READ_CHUNK) {
            icap *= 2;
            ibuf = realloc(ibuf, icap);
            if (!ibuf) die("realloc");
          }
          ssize_t r = read(0, ibuf + ilen, icap - ilen);
          if (r > 0) { ilen += (size_t)r; continue; }
          if (r == 0) input_open = 0;
          else if (errno == EINTR) continue;
          break;
        }
        handle_frames();
        if (!input_open) kill_all_and_exit(0); /* the runner closed us: nothing may outlive it */
      } else {
        read_stream(jobs[map[k].job], map[k].stream);
      }
    }
    long long now = now_ms();
    for (int i = njobs - 1; i >= 0; i--) {
      if (!jobs[i]->exited && jobs[i]->deadline >= 0 && now >= jobs[i]->deadline) {
        /* Its lease could not be renewed in time: the job stops before another runner may start it again. */
        jobs[i]->fenced = 1;
        jobs[i]->deadline = -1;
        signal_tree(jobs[i], SIGKILL);
      }
      if (jobs[i]->exited && now >= jobs[i]->linger_deadline) {
        close_stream(jobs[i], 0);
        close_stream(jobs[i], 1);
      }
      finish_if_done(i);
    }
    flush_out();
  }
}
