// walkTree: the whole walk of a rootfs in one N-API call. The metadata syscalls are the cost of a
// walk (~2 us each on a VM), so they run on a few threads sharing a queue of directories, each entry
// stat'ed relative to its directory's fd (getdents64 + statx, never following a symlink), and the
// result comes back as one buffer of fixed-size records plus a string table: JS decodes it with typed
// arrays instead of receiving one object per entry (docs/snapshots.md has the measurements).
#include "grow-buffer.h"
#include "tree-walk.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define MAX_THREADS 8
#define DENTS_BUF 32768
#define LINK_BUF 4096

struct linux_dirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};


/* A directory waiting to be read: its root-relative path ("" for the root). */
struct queued {
  char *rel;
};

struct walk {
  int root_fd;
  const char *const *ignored;
  size_t n_ignored;
  pthread_mutex_t lock;
  pthread_cond_t more;
  struct queued *queue;
  size_t queue_len, queue_cap;
  int busy; /* threads reading a directory: the queue may still grow while one is */
  int failed;
  struct walk_error error;
};

struct worker {
  struct walk *w;
  struct grow records, strings;
  uint64_t count;
  int non_ascii;
};

static void fail(struct walk *w, int err, const char *syscall, const char *rel) {
  pthread_mutex_lock(&w->lock);
  if (!w->failed) {
    w->failed = 1;
    w->error.err = err;
    w->error.syscall = syscall;
    size_t n = strlen(rel);
    if (n >= sizeof w->error.path) n = sizeof w->error.path - 1;
    memcpy(w->error.path, rel, n);
    w->error.path[n] = 0;
  }
  pthread_cond_broadcast(&w->more);
  pthread_mutex_unlock(&w->lock);
}

/* Called with the lock held. */
static int enqueue_locked(struct walk *w, char *rel) {
  if (w->queue_len == w->queue_cap) {
    size_t cap = w->queue_cap == 0 ? 256 : w->queue_cap * 2;
    struct queued *q = realloc(w->queue, cap * sizeof *q);
    if (q == NULL) return 0;
    w->queue = q;
    w->queue_cap = cap;
  }
  w->queue[w->queue_len++].rel = rel;
  return 1;
}

/* The IgnoreList's entries are normalized root-relative paths, and walked paths are always clean, so
 * an exact comparison is the list's own test: an ignored directory is never entered, so no ancestor
 * of a walked entry is ignored. */
static int is_ignored(const struct walk *w, const char *rel, size_t len) {
  for (size_t i = 0; i < w->n_ignored; i++) {
    const char *e = w->ignored[i];
    if (strlen(e) == len && memcmp(e, rel, len) == 0) return 1;
  }
  return 0;
}

static inline uint64_t ns(struct statx_timestamp t) { return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec; }

/* Reads one directory: one record per entry, subdirectories queued. Returns 0 after fail(). */
static int read_dir(struct worker *k, const char *rel, char *dents, char *link) {
  struct walk *w = k->w;
  int fd = openat(w->root_fd, rel[0] == 0 ? "." : rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    // Gone (or replaced by something else) since its parent was read: it simply is not there.
    if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) return 1;
    fail(w, errno, "opendir", rel);
    return 0;
  }
  size_t rel_len = strlen(rel);
  char *path = malloc(rel_len + 258);
  if (path == NULL) {
    close(fd);
    fail(w, ENOMEM, "malloc", rel);
    return 0;
  }
  memcpy(path, rel, rel_len);
  size_t prefix = rel_len;
  if (rel_len > 0) path[prefix++] = '/';
  int ok = 1;
  for (;;) {
    long n = syscall(SYS_getdents64, fd, dents, DENTS_BUF);
    if (n == 0) break;
    if (n < 0) {
      fail(w, errno, "getdents64", rel);
      ok = 0;
      break;
    }
    for (long off = 0; off < n && ok;) {
      struct linux_dirent64 *de = (struct linux_dirent64 *)(dents + off);
      off += de->d_reclen;
      const char *name = de->d_name;
      if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
      size_t name_len = strlen(name);
      memcpy(path + prefix, name, name_len + 1);
      size_t path_len = prefix + name_len;
      if (w->n_ignored > 0 && is_ignored(w, path, path_len)) continue;
      struct statx stx;
      if (statx(fd, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME, &stx) != 0) {
        if (errno == ENOENT) continue;  // gone since getdents: it is simply not there
        fail(w, errno, "lstat", path);
        ok = 0;
        break;
      }
      ssize_t link_len = 0;
      if (S_ISLNK(stx.stx_mode)) {
        link_len = readlinkat(fd, name, link, LINK_BUF);
        if (link_len < 0) {
          if (errno == ENOENT) continue;
          fail(w, errno, "readlink", path);
          ok = 0;
          break;
        }
      }
      if (!grow_reserve(&k->records, WALK_RECORD) || !grow_reserve(&k->strings, path_len + (size_t)link_len)) {
        fail(w, ENOMEM, "malloc", path);
        ok = 0;
        break;
      }
      uint64_t *q = (uint64_t *)(k->records.data + k->records.len);
      uint32_t *u = (uint32_t *)q;
      q[0] = stx.stx_size;
      q[1] = ns(stx.stx_mtime);
      q[2] = ns(stx.stx_ctime);
      q[3] = makedev(stx.stx_dev_major, stx.stx_dev_minor);
      q[4] = stx.stx_ino;
      q[5] = makedev(stx.stx_rdev_major, stx.stx_rdev_minor);
      q[6] = (stx.stx_mask & STATX_BTIME) ? ns(stx.stx_btime) : 0;
      u[14] = stx.stx_mode;
      u[15] = stx.stx_uid;
      u[16] = stx.stx_gid;
      u[17] = stx.stx_nlink;
      u[18] = (uint32_t)k->strings.len; /* rebased onto the joined string table at the end */
      u[19] = (uint32_t)path_len;
      u[20] = (uint32_t)link_len;
      u[21] = 0;
      k->records.len += WALK_RECORD;
      memcpy(k->strings.data + k->strings.len, path, path_len);
      if (link_len > 0) memcpy(k->strings.data + k->strings.len + path_len, link, (size_t)link_len);
      for (size_t i = 0; i < path_len + (size_t)link_len && !k->non_ascii; i++) k->non_ascii = (unsigned char)k->strings.data[k->strings.len + i] >= 0x80;
      k->strings.len += path_len + (size_t)link_len;
      k->count++;
      if (S_ISDIR(stx.stx_mode)) {
        char *sub = malloc(path_len + 1);
        if (sub == NULL) {
          fail(w, ENOMEM, "malloc", path);
          ok = 0;
          break;
        }
        memcpy(sub, path, path_len + 1);
        pthread_mutex_lock(&w->lock);
        int queued = enqueue_locked(w, sub);
        if (queued) pthread_cond_signal(&w->more);
        pthread_mutex_unlock(&w->lock);
        if (!queued) {
          free(sub);
          fail(w, ENOMEM, "malloc", path);
          ok = 0;
          break;
        }
      }
    }
    if (!ok) break;
  }
  free(path);
  close(fd);
  return ok;
}

static void *work(void *arg) {
  struct worker *k = arg;
  struct walk *w = k->w;
  char *dents = malloc(DENTS_BUF);
  char *link = malloc(LINK_BUF);
  if (dents == NULL || link == NULL) fail(w, ENOMEM, "malloc", "");
  pthread_mutex_lock(&w->lock);
  for (;;) {
    while (!w->failed && w->queue_len == 0 && w->busy > 0) pthread_cond_wait(&w->more, &w->lock);
    if (w->failed || w->queue_len == 0) break;  // failed, or nothing queued and nobody to queue more
    char *rel = w->queue[--w->queue_len].rel;
    w->busy++;
    pthread_mutex_unlock(&w->lock);
    read_dir(k, rel, dents, link);
    free(rel);
    pthread_mutex_lock(&w->lock);
    w->busy--;
    if (w->busy == 0 && w->queue_len == 0) pthread_cond_broadcast(&w->more);
  }
  pthread_cond_broadcast(&w->more);
  pthread_mutex_unlock(&w->lock);
  free(dents);
  free(link);
  return NULL;
}

int walk_tree(int root_fd, const char *start, const char *const *ignored, size_t n_ignored, int threads, struct walk_result *out, struct walk_error *error) {
  memset(out, 0, sizeof *out);
  if (threads < 1) threads = 1;
  if (threads > MAX_THREADS) threads = MAX_THREADS;
  struct walk w = {.root_fd = root_fd, .ignored = ignored, .n_ignored = n_ignored};
  pthread_mutex_init(&w.lock, NULL);
  pthread_cond_init(&w.more, NULL);
  struct worker workers[MAX_THREADS];
  memset(workers, 0, sizeof workers);
  pthread_t ids[MAX_THREADS];
  int started = 0;
  char *first = strdup(start);
  if (first == NULL || !enqueue_locked(&w, first)) {
    free(first);
    w.failed = 1;
    w.error = (struct walk_error){.err = ENOMEM, .syscall = "malloc"};
  }
  for (int i = 0; i < threads && !w.failed; i++) {
    workers[i].w = &w;
    // Thread 0 is this one; a thread that cannot be started just leaves its share to the others.
    if (i > 0 && pthread_create(&ids[i], NULL, work, &workers[i]) != 0) break;
    started = i + 1;
  }
  if (started > 0) work(&workers[0]);
  for (int i = 1; i < started; i++) pthread_join(ids[i], NULL);
  for (size_t i = 0; i < w.queue_len; i++) free(w.queue[i].rel);
  free(w.queue);
  pthread_mutex_destroy(&w.lock);
  pthread_cond_destroy(&w.more);

  int ok = !w.failed;
  size_t records = 0, strings = 0;
  for (int i = 0; i < started; i++) {
    records += workers[i].records.len;
    strings += workers[i].strings.len;
  }
  if (ok && strings > UINT32_MAX) {
    ok = 0;
    w.error = (struct walk_error){.err = EOVERFLOW, .syscall = "walk"};
  }
  if (ok) {
    out->len = WALK_HEADER + records + strings;
    out->data = malloc(out->len);
    if (out->data == NULL) {
      ok = 0;
      w.error = (struct walk_error){.err = ENOMEM, .syscall = "malloc"};
    }
  }
  if (ok) {
    uint64_t *h = (uint64_t *)out->data;
    h[0] = records / WALK_RECORD;
    h[1] = WALK_HEADER + records; /* where the string table starts */
    h[2] = 1;
    for (int i = 0; i < started; i++) if (workers[i].non_ascii) h[2] = 0;
    char *r = out->data + WALK_HEADER, *s = out->data + h[1];
    uint32_t base = 0;
    for (int i = 0; i < started; i++) {
      struct worker *k = &workers[i];
      memcpy(r, k->records.data, k->records.len);
      for (size_t off = 0; off < k->records.len; off += WALK_RECORD) ((uint32_t *)(r + off))[18] += base;
      memcpy(s + base, k->strings.data, k->strings.len);
      r += k->records.len;
      base += (uint32_t)k->strings.len;
    }
  }
  for (int i = 0; i < MAX_THREADS; i++) {
    free(workers[i].records.data);
    free(workers[i].strings.data);
  }
  if (!ok) *error = w.error;
  return ok;
}
