/*
 * kiln-isolate: runs one RUN command of a container-mode build in a user, mount, PID and IPC namespace
 * of its own, so that it cannot see what kiln keeps for itself (its dir with the push credentials, the
 * --secret sources, the credentials the runtime mounted) and leaves no process behind.
 *
 * Why this works in an unprivileged container (no CAP_SYS_ADMIN): creating a user namespace needs no
 * capability, and the container's root, which holds CAP_SETUID and CAP_SETGID, may write the child's
 * uid_map and gid_map as the identity (`0 0 4294967295`): the RUN's root is the container's root, its
 * files' owners are the real ones, and nothing is gained that kiln did not already have. What is gained
 * is a private mount table: kiln's dir is covered with an empty tmpfs there. The mounts inherited from
 * the container are locked together (MNT_LOCKED) because a less privileged user namespace owns the new
 * mount namespace, so the RUN cannot peel them apart; and the RUN runs without CAP_SYS_ADMIN (dropped
 * from its bounding set too), so it cannot unmount the tmpfs kiln put on top either.
 *
 * Process tree: kiln (node) -> this program (P, in the container's namespaces) -> C, in the new user,
 * mount and IPC namespaces, which sets up the mounts, forks the command (G) and reaps. Two shapes,
 * chosen by whether the kernel lets C mount a /proc of its own (it refuses while the runtime masks
 * parts of the container's /proc, as podman and docker do):
 *  - it does: C makes a PID namespace and forks C1, its PID 1, which mounts that namespace's /proc and
 *    forks G (PID 2); when G exits, C1 exits with G's status and the kernel kills whatever else is left
 *    in the namespace (a daemon a RUN started).
 *  - it does not: no PID namespace, so that the RUN's PIDs are those of the /proc it sees (`$$` and
 *    /proc/$$ agree, as in kaniko; pidfile-checking tools such as start-stop-daemon work). C is a child
 *    subreaper instead: every orphan of the RUN becomes its child, and when G exits C kills them all
 *    (SIGKILL) and reaps them. C keeps root's capabilities in the user namespace for that; only G drops
 *    to the RUN's identity.
 * P is a subreaper too and does the same once C has ended: if the RUN killed C, what C left is
 * killed by P. P forwards SIGTERM/SIGINT/SIGHUP to C as SIGKILL: a cancelled build stops its RUN at once.
 *
 * --plain: no namespaces at all (the runtime forbids them, or --run-isolation=off): only the RUN's
 * identity (groups, gid, uid), its working directory and the exec, in place (the command keeps this
 * process). node's spawn cannot give a child supplementary groups (libuv calls setgroups(0) whenever it
 * sets a uid or gid), and docker build (BuildKit's AdditionalGids) and kaniko (syscall.Credential's
 * Groups) both give a RUN its /etc/group groups. Capabilities are left as they are, as kaniko's RUN has
 * them: a root RUN keeps kiln's, a non-root one loses them all with setuid.
 *
 * Sandbox mode runs a static build of --plain inside bwrap (as /proc/self/fd/N, so nothing of it is in
 * the rootfs): bwrap starts as root with no user namespace and only CAP_SETUID/CAP_SETGID, and this
 * program becomes the RUN's user, as runc does for docker build. --exec-fd N: the fd it was exec'd
 * from, closed when the command is exec'd.
 *
 * Usage (argv, built by src/sandbox/isolated-run.ts):
 *   kiln-isolate [--status-fd N] [--exec-fd N] [--probe | --plain] [--net-none] [--uid N] [--gid N] [--groups a,b,...]
 *                [--cwd DIR] [--hide PATH]... [--bind SRC DST | --ro-bind SRC DST | --tmpfs DST SIZE]...
 *                -- COMMAND ARG...
 * Hides are applied before the RUN's own mounts, whose sources were opened first (so a source under
 * kiln's dir, a cache dir or a heredoc script, is still reachable), parents before children. A target
 * missing after the hides (under a hidden dir) is created on that private tmpfs. --probe does all of
 * it and exits 0 instead of running a command. A setup failure is one line on the status fd (else
 * stderr) and exit status 125; the command's own status is passed through (128+N for signal N).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <grp.h>
#include <unistd.h>

/* From <linux/capability.h>, which musl's headers (the image's static build) do not carry. */
#define KILN_CAP_V3 0x20080522
struct cap_header { unsigned int version; int pid; };
struct cap_data { unsigned int effective, permitted, inheritable; };
enum {
  CAP_NET_ADMIN_ = 12, CAP_IPC_LOCK_ = 14, CAP_SYS_MODULE_ = 16, CAP_SYS_RAWIO_ = 17, CAP_SYS_PTRACE_ = 19,
  CAP_SYS_ADMIN_ = 21, CAP_SYS_BOOT_ = 22, CAP_SYS_NICE_ = 23, CAP_SYS_RESOURCE_ = 24, CAP_SYS_TIME_ = 25,
  CAP_SYS_TTY_CONFIG_ = 26, CAP_MKNOD_ = 27, CAP_AUDIT_CONTROL_ = 30, CAP_MAC_OVERRIDE_ = 32, CAP_MAC_ADMIN_ = 33,
  CAP_SYSLOG_ = 34, CAP_WAKE_ALARM_ = 35, CAP_BLOCK_SUSPEND_ = 36, CAP_AUDIT_READ_ = 37, CAP_PERFMON_ = 38,
  CAP_BPF_ = 39, CAP_CHECKPOINT_RESTORE_ = 40, CAP_LINUX_IMMUTABLE_ = 9,
};
typedef unsigned long long u64;

#define SETUP_FAILED 125
#define MAX_ITEMS 512
#define MAX_GROUPS 256

enum kind { HIDE, BIND, RO_BIND, TMPFS };
struct item {
  enum kind kind;
  const char *src;
  const char *dst;
  const char *size;
  int fd; /* BIND/RO_BIND: the source, opened before anything is hidden */
};

struct options {
  int status_fd;
  int probe;
  int plain;
  int exec_fd;
  int net_none;
  uid_t uid;
  gid_t gid;
  gid_t groups[MAX_GROUPS];
  int ngroups;
  const char *cwd;
  struct item items[MAX_ITEMS];
  int nitems;
  char **argv;
};

static struct options opt = {.status_fd = -1, .exec_fd = -1};
/* C -> P: a setup failure's message; closed (CLOEXEC) when the command is exec'd. */
static int report_pipe[2] = {-1, -1};
/* P -> C: the maps are written. */
static int go_pipe[2] = {-1, -1};
static pid_t child_pid = -1;
/* Kiln's own effective capabilities: the most a RUN gets (minus those dropped below). */
static u64 parent_caps;

/* A message, to the report pipe in C (P relays it) or to the status fd / stderr in P; then exit. */
static void fail(const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  int fd = report_pipe[1] >= 0 ? report_pipe[1] : opt.status_fd >= 0 ? opt.status_fd : 2;
  ssize_t w = write(fd, buf, (size_t)n);
  (void)w;
  _exit(SETUP_FAILED);
}

static unsigned long parse_num(const char *s, const char *what) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno != 0 || *s == '\0' || *end != '\0') fail("kiln-isolate: bad %s: %s", what, s);
  return v;
}

static void parse_args(int argc, char **argv) {
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
#define NEED(n) \
  if (i + (n) >= argc) fail("kiln-isolate: %s needs %d argument(s)", a, (n))
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    } else if (strcmp(a, "--status-fd") == 0) {
      NEED(1);
      opt.status_fd = (int)parse_num(argv[++i], "--status-fd");
    } else if (strcmp(a, "--probe") == 0) {
      opt.probe = 1;
    } else if (strcmp(a, "--plain") == 0) {
      opt.plain = 1;
    } else if (strcmp(a, "--exec-fd") == 0) {
      NEED(1);
      opt.exec_fd = (int)parse_num(argv[++i], "--exec-fd");
    } else if (strcmp(a, "--net-none") == 0) {
      opt.net_none = 1;
    } else if (strcmp(a, "--uid") == 0) {
      NEED(1);
      opt.uid = (uid_t)parse_num(argv[++i], "--uid");
    } else if (strcmp(a, "--gid") == 0) {
      NEED(1);
      opt.gid = (gid_t)parse_num(argv[++i], "--gid");
    } else if (strcmp(a, "--groups") == 0) {
      NEED(1);
      char *list = argv[++i];
      for (char *tok = strtok(list, ","); tok != NULL; tok = strtok(NULL, ",")) {
        if (opt.ngroups == MAX_GROUPS) fail("kiln-isolate: more than %d groups", MAX_GROUPS);
        opt.groups[opt.ngroups++] = (gid_t)parse_num(tok, "--groups");
      }
    } else if (strcmp(a, "--cwd") == 0) {
      NEED(1);
      opt.cwd = argv[++i];
    } else if (strcmp(a, "--hide") == 0 || strcmp(a, "--bind") == 0 || strcmp(a, "--ro-bind") == 0 || strcmp(a, "--tmpfs") == 0) {
      if (opt.nitems == MAX_ITEMS) fail("kiln-isolate: more than %d mounts", MAX_ITEMS);
      struct item *it = &opt.items[opt.nitems++];
      it->fd = -1;
      if (strcmp(a, "--hide") == 0) {
        NEED(1);
        it->kind = HIDE;
        it->dst = argv[++i];
      } else if (strcmp(a, "--tmpfs") == 0) {
        NEED(2);
        it->kind = TMPFS;
        it->dst = argv[++i];
        it->size = argv[++i];
        parse_num(it->size, "--tmpfs size");
      } else {
        NEED(2);
        it->kind = strcmp(a, "--bind") == 0 ? BIND : RO_BIND;
        it->src = argv[++i];
        it->dst = argv[++i];
      }
    } else {
      fail("kiln-isolate: unknown option %s", a);
    }
  }
  opt.argv = &argv[i];
  if (!opt.probe && opt.argv[0] == NULL) fail("kiln-isolate: no command");
  if (opt.plain && (opt.probe || opt.net_none || opt.nitems > 0)) fail("kiln-isolate: --plain takes no --probe, --net-none or mounts");
}

static void write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) fail("kiln-isolate: cannot open %s: %s", path, strerror(errno));
  size_t n = strlen(text);
  if (write(fd, text, n) != (ssize_t)n) fail("kiln-isolate: cannot write %s: %s", path, strerror(errno));
  close(fd);
}

/* The flags a bind mount's source carries that an unprivileged remount must keep (else EPERM). */
static unsigned long locked_flags(const char *path) {
  struct statvfs st;
  unsigned long f = 0;
  if (statvfs(path, &st) != 0) return 0;
  if (st.f_flag & ST_NOSUID) f |= MS_NOSUID;
  if (st.f_flag & ST_NODEV) f |= MS_NODEV;
  if (st.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
  if (st.f_flag & ST_NOATIME) f |= MS_NOATIME;
  if (st.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
  if (st.f_flag & ST_RELATIME) f |= MS_RELATIME;
  return f;
}

/* Creates a missing mount target (and its parents): only ever on a hide tmpfs, see the header. */
static void make_target(const char *path, int dir) {
  struct stat st;
  if (lstat(path, &st) == 0) return;
  char buf[4096];
  if (strlen(path) >= sizeof buf) fail("kiln-isolate: path too long: %s", path);
  strcpy(buf, path);
  for (char *p = buf + 1; *p != '\0'; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) fail("kiln-isolate: cannot create %s: %s", buf, strerror(errno));
    *p = '/';
  }
  if (dir) {
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) fail("kiln-isolate: cannot create %s: %s", buf, strerror(errno));
  } else {
    int fd = open(buf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST) fail("kiln-isolate: cannot create %s: %s", buf, strerror(errno));
    if (fd >= 0) close(fd);
  }
}

static void hide(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return; /* nothing there to hide */
  if (S_ISDIR(st.st_mode)) {
    /* Writable for now, so that mount targets below it can be made; made read-only at the end. */
    if (mount("kiln-hidden", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=1m") != 0) {
      fail("kiln-isolate: cannot hide %s: %s", path, strerror(errno));
    }
  } else if (!S_ISLNK(st.st_mode)) {
    if (mount("/dev/null", path, NULL, MS_BIND, NULL) != 0) fail("kiln-isolate: cannot hide %s: %s", path, strerror(errno));
  }
}

static void bind_item(struct item *it) {
  char src[64];
  snprintf(src, sizeof src, "/proc/self/fd/%d", it->fd);
  struct stat st;
  if (fstat(it->fd, &st) != 0) fail("kiln-isolate: cannot stat %s: %s", it->src, strerror(errno));
  make_target(it->dst, S_ISDIR(st.st_mode));
  if (mount(src, it->dst, NULL, MS_BIND | MS_REC, NULL) != 0) fail("kiln-isolate: cannot bind %s on %s: %s", it->src, it->dst, strerror(errno));
  if (it->kind == RO_BIND) {
    unsigned long f = MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags(it->dst);
    if (mount(NULL, it->dst, NULL, f, NULL) != 0) fail("kiln-isolate: cannot make %s read-only: %s", it->dst, strerror(errno));
  }
  close(it->fd);
  it->fd = -1;
}

static void tmpfs_item(const struct item *it) {
  char data[64];
  make_target(it->dst, 1);
  /* docker's tmpfs mounts are world-writable with the sticky bit, like /tmp. */
  if (strcmp(it->size, "0") == 0) snprintf(data, sizeof data, "mode=1777");
  else snprintf(data, sizeof data, "mode=1777,size=%s", it->size);
  if (mount("tmpfs", it->dst, "tmpfs", MS_NOSUID | MS_NODEV, data) != 0) fail("kiln-isolate: cannot mount a tmpfs on %s: %s", it->dst, strerror(errno));
}

static void loopback_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) fail("kiln-isolate: socket: %s", strerror(errno));
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0) fail("kiln-isolate: lo: %s", strerror(errno));
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) fail("kiln-isolate: bringing lo up: %s", strerror(errno));
  close(s);
}

/* Capabilities a RUN never keeps: those that act on the kernel rather than the build's files (the
 * list of sandbox mode, src/sandbox/chroot-sandbox.ts). CAP_SYS_ADMIN above all: with it, the RUN's
 * root could unmount what hides kiln's dir. */
static const int DROPPED[] = {
    CAP_SYS_ADMIN_, CAP_SYS_MODULE_, CAP_SYS_RAWIO_, CAP_SYS_BOOT_, CAP_SYS_TIME_, CAP_SYS_PTRACE_, CAP_SYS_NICE_,
    CAP_SYS_RESOURCE_, CAP_SYS_TTY_CONFIG_, CAP_MKNOD_, CAP_MAC_ADMIN_, CAP_MAC_OVERRIDE_, CAP_SYSLOG_, CAP_NET_ADMIN_,
    CAP_LINUX_IMMUTABLE_, CAP_IPC_LOCK_, CAP_WAKE_ALARM_, CAP_BLOCK_SUSPEND_, CAP_AUDIT_CONTROL_, CAP_AUDIT_READ_,
    CAP_BPF_, CAP_PERFMON_, CAP_CHECKPOINT_RESTORE_,
};

static u64 read_parent_caps(void) {
  struct cap_header h = {.version = KILN_CAP_V3, .pid = 0};
  struct cap_data d[2];
  if (syscall(SYS_capget, &h, d) != 0) fail("kiln-isolate: capget: %s", strerror(errno));
  return ((u64)d[1].effective << 32) | d[0].effective;
}

static void set_identity(void);

/* The RUN's identity and capabilities: at most kiln's own, never the dropped ones. */
static void become_user(void) {
  u64 keep = parent_caps;
  for (size_t i = 0; i < sizeof DROPPED / sizeof DROPPED[0]; i++) keep &= ~((u64)1 << DROPPED[i]);
  for (int cap = 0; cap <= 63; cap++) {
    if (keep & ((u64)1 << cap)) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) fail("kiln-isolate: dropping capability %d: %s", cap, strerror(errno));
  }
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  set_identity();
  if (opt.uid == 0) {
    struct cap_header h = {.version = KILN_CAP_V3, .pid = 0};
    struct cap_data d[2];
    memset(d, 0, sizeof d);
    d[0].effective = d[0].permitted = (unsigned int)keep;
    d[1].effective = d[1].permitted = (unsigned int)(keep >> 32);
    if (syscall(SYS_capset, &h, d) != 0) fail("kiln-isolate: capset: %s", strerror(errno));
  }
}

/* The RUN's group list (its primary gid when none is given), gid and uid. */
static void set_identity(void) {
  gid_t groups[MAX_GROUPS];
  int n = opt.ngroups;
  if (n == 0) {
    groups[0] = opt.gid;
    n = 1;
  } else {
    memcpy(groups, opt.groups, sizeof(gid_t) * (size_t)n);
  }
  if (setgroups((size_t)n, groups) != 0) fail("kiln-isolate: setgroups: %s", strerror(errno));
  if (setresgid(opt.gid, opt.gid, opt.gid) != 0) fail("kiln-isolate: setgid %u: %s", opt.gid, strerror(errno));
  if (setresuid(opt.uid, opt.uid, opt.uid) != 0) fail("kiln-isolate: setuid %u: %s", opt.uid, strerror(errno));
}

static volatile sig_atomic_t command_pid = -1;

static void forward_to_command(int sig) {
  if (command_pid > 0) kill(command_pid, sig);
}

/* Kills every child of this process (the RUN's orphans, reparented to it as a subreaper) and reaps them
 * until none is left; the command's own child must have been reaped already. Children are found in
 * /proc by their parent pid: /proc is the one of this process's PID namespace in both places it runs
 * (P, and C when there is no PID namespace). */
static void kill_orphans(void) {
  pid_t self = getpid();
  for (;;) {
    int status;
    pid_t w;
    while ((w = waitpid(-1, &status, WNOHANG)) > 0) {
    }
    if (w < 0 && errno == ECHILD) return;
    if (w < 0 && errno == EINTR) continue;
    int killed = 0;
    DIR *d = opendir("/proc");
    if (d != NULL) {
      struct dirent *e;
      while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0) continue;
        buf[n] = '\0';
        /* "pid (comm) S ppid ...": comm may hold spaces and parentheses, the last ')' ends it. */
        char *p = strrchr(buf, ')');
        if (p == NULL) continue;
        char state;
        int ppid;
        if (sscanf(p + 1, " %c %d", &state, &ppid) != 2 || ppid != self) continue;
        kill((pid_t)atoi(e->d_name), SIGKILL);
        killed = 1;
      }
      closedir(d);
    }
    if (killed) {
      /* One of them ends soon; its own children, if any, are ours by then. */
      if (waitpid(-1, &status, 0) < 0 && errno == ECHILD) return;
    } else {
      /* A child not yet in /proc (a fork in flight): look again shortly. */
      struct timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};
      nanosleep(&ts, NULL);
    }
  }
}

/* The mounts of the RUN, in the mount namespace C made; `own_proc`: /proc is mounted for the RUN's PID
 * namespace first. */
static void setup_mounts(int own_proc) {
  if (own_proc && mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) {
    fail("kiln-isolate: mounting /proc: %s", strerror(errno));
  }
  if (opt.net_none) loopback_up();
  for (int i = 0; i < opt.nitems; i++) {
    struct item *it = &opt.items[i];
    if (it->kind != BIND && it->kind != RO_BIND) continue;
    it->fd = open(it->src, O_PATH | O_CLOEXEC);
    if (it->fd < 0) fail("kiln-isolate: mount source %s: %s", it->src, strerror(errno));
  }
  for (int i = 0; i < opt.nitems; i++)
    if (opt.items[i].kind == HIDE) hide(opt.items[i].dst);
  for (int i = 0; i < opt.nitems; i++) {
    struct item *it = &opt.items[i];
    if (it->kind == BIND || it->kind == RO_BIND) bind_item(it);
    else if (it->kind == TMPFS) tmpfs_item(it);
  }
  for (int i = 0; i < opt.nitems; i++) {
    const struct item *it = &opt.items[i];
    struct stat st;
    if (it->kind != HIDE || lstat(it->dst, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    if (mount(NULL, it->dst, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=1m") != 0) {
      fail("kiln-isolate: making %s read-only: %s", it->dst, strerror(errno));
    }
  }
}

/* Forks the command and reaps until it ends; exits with its status. `pid_init`: this is PID 1 of the
 * RUN's PID namespace (the kernel ends the rest with it) and drops to the RUN's identity itself; else it
 * is a subreaper that keeps its capabilities to kill the RUN's orphans, and only the command drops. */
static void run_command(int pid_init) {
  if (opt.cwd != NULL && chdir(opt.cwd) != 0) fail("kiln-isolate: cannot enter the working directory %s: %s", opt.cwd, strerror(errno));
  if (pid_init) become_user();

  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  pid_t pid = fork();
  if (pid < 0) fail("kiln-isolate: fork: %s", strerror(errno));
  if (pid == 0) {
    if (!pid_init) become_user();
    sigprocmask(SIG_SETMASK, &old, NULL);
    setsid();
    execvp(opt.argv[0], opt.argv);
    fail("kiln-isolate: cannot run %s: %s", opt.argv[0], strerror(errno));
  }
  command_pid = pid;
  /* The report pipe stays open in C until the command has exec'd (CLOEXEC closes G's copy): P reads
   * EOF only then. C's own copy is closed now; an exec failure is reported by G itself. */
  close(report_pipe[1]);
  report_pipe[1] = -1;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward_to_command;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  sigprocmask(SIG_SETMASK, &old, NULL);
  for (;;) {
    int status;
    pid_t w = waitpid(-1, &status, 0);
    if (w < 0) {
      if (errno == EINTR) continue;
      _exit(SETUP_FAILED);
    }
    if (w != pid) continue; /* an orphan of the RUN, reaped as init (or a subreaper) must */
    if (!pid_init) kill_orphans();
    if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) _exit(128 + WTERMSIG(status));
  }
}

/* Exits as `pid` ended: its exit status, 128+N for signal N. */
static void exit_as(pid_t pid) {
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) _exit(SETUP_FAILED);
  }
  if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
  _exit(WIFSIGNALED(status) ? 128 + WTERMSIG(status) : SETUP_FAILED);
}

static char trial_stack[64 * 1024] __attribute__((aligned(16)));

/* In a PID and mount namespace of its own (both thrown away): 0 when a /proc mounts, else errno. */
static int trial_entry(void *arg) {
  (void)arg;
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0) return 0;
  return errno > 0 && errno < 256 ? errno : EPERM;
}

/* Whether the RUN can have a /proc of its own PID namespace. A proc instance can only be mounted from
 * inside the namespace it shows (the container's is owned by a user namespace above ours), and once a
 * process is there it cannot leave, so a throwaway child tries first. */
static int can_mount_own_proc(void) {
  pid_t t = clone(trial_entry, trial_stack + sizeof trial_stack, CLONE_NEWPID | CLONE_NEWNS | SIGCHLD, NULL);
  if (t < 0) fail("kiln-isolate: cannot create a PID namespace: %s", strerror(errno));
  int status;
  while (waitpid(t, &status, 0) < 0) {
    if (errno != EINTR) fail("kiln-isolate: waiting for the /proc trial: %s", strerror(errno));
  }
  int e = WIFEXITED(status) ? WEXITSTATUS(status) : EPERM;
  if (e == 0) return 1;
  if (e == EPERM || e == EACCES) return 0;
  fail("kiln-isolate: mounting /proc: %s", strerror(e));
  return 0;
}

/* C: in the new user, mount and IPC (and network) namespaces. */
static int child_main(void) {
  close(go_pipe[1]);
  char ok;
  if (read(go_pipe[0], &ok, 1) != 1) fail("kiln-isolate: parent gave up before the user namespace was mapped");
  close(go_pipe[0]);
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0) fail("kiln-isolate: becoming root of the user namespace: %s", strerror(errno));
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) fail("kiln-isolate: making mounts private: %s", strerror(errno));
  int own_proc = can_mount_own_proc();
  if (!own_proc) {
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) fail("kiln-isolate: becoming a subreaper: %s", strerror(errno));
    setup_mounts(0);
    if (opt.probe) _exit(0);
    run_command(0);
  }
  if (unshare(CLONE_NEWPID) != 0) fail("kiln-isolate: cannot create a PID namespace: %s", strerror(errno));
  /* C1 must not outlive C (the PID namespace would go on without anyone to end it): the death signal,
   * and a pipe whose end is seen closed if C died before the signal was armed. */
  int alive[2];
  if (pipe2(alive, O_CLOEXEC) != 0) fail("kiln-isolate: pipe: %s", strerror(errno));
  pid_t init = fork();
  if (init < 0) fail("kiln-isolate: fork: %s", strerror(errno));
  if (init == 0) {
    close(alive[1]);
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    struct pollfd pfd = {.fd = alive[0], .events = POLLIN};
    if (poll(&pfd, 1, 0) != 0) _exit(SETUP_FAILED);
    close(alive[0]);
    setup_mounts(1);
    if (opt.probe) _exit(0);
    run_command(1);
  }
  close(alive[0]);
  /* C1 holds the report pipe until the command runs. */
  close(report_pipe[1]);
  report_pipe[1] = -1;
  exit_as(init);
  return SETUP_FAILED;
}

static void kill_child(int sig) {
  (void)sig;
  if (child_pid > 0) kill(child_pid, SIGKILL);
}

static char child_stack[256 * 1024] __attribute__((aligned(16)));

static int child_entry(void *arg) {
  (void)arg;
  return child_main();
}

/* --plain: the identity and the working directory, then the command in this very process. */
static int plain_main(void) {
  if (opt.cwd != NULL && chdir(opt.cwd) != 0) fail("kiln-isolate: cannot enter the working directory %s: %s", opt.cwd, strerror(errno));
  set_identity();
  execvp(opt.argv[0], opt.argv);
  fail("kiln-isolate: cannot run %s: %s", opt.argv[0], strerror(errno));
  return SETUP_FAILED;
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  if (opt.status_fd >= 0) fcntl(opt.status_fd, F_SETFD, FD_CLOEXEC);
  if (opt.exec_fd >= 0) fcntl(opt.exec_fd, F_SETFD, FD_CLOEXEC);
  if (opt.plain) return plain_main();
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  parent_caps = read_parent_caps();
  if (pipe2(report_pipe, O_CLOEXEC) != 0 || pipe2(go_pipe, O_CLOEXEC) != 0) fail("kiln-isolate: pipe: %s", strerror(errno));
  /* What C leaves behind if the RUN kills it comes to P (see the header). */
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  int flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC | SIGCHLD;
  if (opt.net_none) flags |= CLONE_NEWNET;
  child_pid = clone(child_entry, child_stack + sizeof child_stack, flags, NULL);
  if (child_pid < 0) {
    int e = errno;
    report_pipe[1] = -1;
    fail("kiln-isolate: cannot create a user namespace: %s", strerror(e));
  }
  close(report_pipe[1]);
  close(go_pipe[0]);
  int rp = report_pipe[0];
  report_pipe[1] = -1;
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/uid_map", child_pid);
  write_file(path, "0 0 4294967295\n");
  snprintf(path, sizeof path, "/proc/%d/gid_map", child_pid);
  write_file(path, "0 0 4294967295\n");
  if (write(go_pipe[1], "x", 1) != 1) fail("kiln-isolate: pipe: %s", strerror(errno));
  close(go_pipe[1]);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = kill_child;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);

  /* EOF once the command runs (or C failed): anything read before is a setup failure. */
  char msg[1024];
  size_t len = 0;
  for (;;) {
    ssize_t r = read(rp, msg + len, sizeof msg - 1 - len);
    if (r > 0) {
      len += (size_t)r;
      if (len == sizeof msg - 1) break;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    break;
  }
  close(rp);
  int status;
  while (waitpid(child_pid, &status, 0) < 0) {
    if (errno != EINTR) return SETUP_FAILED;
  }
  kill_orphans();
  if (len > 0) {
    msg[len] = '\0';
    int fd = opt.status_fd >= 0 ? opt.status_fd : 2;
    ssize_t w = write(fd, msg, len);
    (void)w;
    return SETUP_FAILED;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return SETUP_FAILED;
}
