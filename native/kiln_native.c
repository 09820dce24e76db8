// kiln's native helpers: the few Linux calls Node.js has no API for (extended attributes, mkfifo),
// and a directory reader that returns every entry's lstat in one packed buffer, so a walk costs one
// N-API call per directory instead of one fs call (and one Stats object) per entry.
// Plain N-API in C: no dependency beyond Node's own headers, ABI-stable across Node versions.
#include <node_api.h>

#include "grow-buffer.h"
#include "tree-walk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#define PATH_BUF 4096
#define XATTR_BUF 65536

static napi_value throw_errno(napi_env env, int err, const char *syscall, const char *path) {
  char msg[PATH_BUF + 128];
  snprintf(msg, sizeof msg, "%s: %s '%s'", syscall, strerror(err), path);
  napi_value code, message, error;
  const char *name = "EIO";
  switch (err) {
    case ENOENT: name = "ENOENT"; break;
    case ENOTDIR: name = "ENOTDIR"; break;
    case EACCES: name = "EACCES"; break;
    case EPERM: name = "EPERM"; break;
    case EEXIST: name = "EEXIST"; break;
    case ENOTSUP: name = "ENOTSUP"; break;
    case ENODATA: name = "ENODATA"; break;
    case ERANGE: name = "ERANGE"; break;
    case ENAMETOOLONG: name = "ENAMETOOLONG"; break;
    case EINVAL: name = "EINVAL"; break;
    case ENOSPC: name = "ENOSPC"; break;
    case ELOOP: name = "ELOOP"; break;
    default: break;
  }
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_value errno_value, syscall_value;
  napi_create_int32(env, -err, &errno_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value);
  napi_set_named_property(env, error, "syscall", syscall_value);
  napi_throw(env, error);
  return NULL;
}

/** Reads string argument `i` into `buf`; false (with a TypeError thrown) when it is not a string. */
static int string_arg(napi_env env, napi_value *argv, size_t argc, size_t i, char *buf, size_t cap) {
  size_t len = 0;
  if (i >= argc || napi_get_value_string_utf8(env, argv[i], buf, cap, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a string argument");
    return 0;
  }
  if (len >= cap - 1) {
    napi_throw_range_error(env, NULL, "path too long");
    return 0;
  }
  return 1;
}

// lgetxattr(path, name) -> Buffer | null (null when the attribute is not set or not supported).
static napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_BUF], name[256];
  if (!string_arg(env, argv, argc, 0, path, sizeof path) || !string_arg(env, argv, argc, 1, name, sizeof name)) return NULL;
  static char value[XATTR_BUF];
  ssize_t n = lgetxattr(path, name, value, sizeof value);
  napi_value result;
  if (n < 0) {
    if (errno == ENODATA || errno == ENOTSUP) {
      napi_get_null(env, &result);
      return result;
    }
    return throw_errno(env, errno, "lgetxattr", path);
  }
  void *data;
  napi_create_buffer_copy(env, (size_t)n, value, &data, &result);
  return result;
}

// llistxattr(path) -> string[]
static napi_value js_llistxattr(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_BUF];
  if (!string_arg(env, argv, argc, 0, path, sizeof path)) return NULL;
  static char names[XATTR_BUF];
  ssize_t n = llistxattr(path, names, sizeof names);
  napi_value result;
  napi_create_array(env, &result);
  if (n < 0) {
    if (errno == ENOTSUP) return result;
    return throw_errno(env, errno, "llistxattr", path);
  }
  uint32_t i = 0;
  for (ssize_t off = 0; off < n;) {
    size_t len = strlen(names + off);
    napi_value s;
    napi_create_string_utf8(env, names + off, len, &s);
    napi_set_element(env, result, i++, s);
    off += (ssize_t)len + 1;
  }
  return result;
}

// lsetxattr(path, name, value: Buffer)
static napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_BUF], name[256];
  if (!string_arg(env, argv, argc, 0, path, sizeof path) || !string_arg(env, argv, argc, 1, name, sizeof name)) return NULL;
  void *data = NULL;
  size_t len = 0;
  if (argc < 3 || napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a Buffer value");
    return NULL;
  }
  if (lsetxattr(path, name, data, len, 0) != 0) return throw_errno(env, errno, "lsetxattr", path);
  return NULL;
}

// lremovexattr(path, name): no error when the attribute is not set.
static napi_value js_lremovexattr(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_BUF], name[256];
  if (!string_arg(env, argv, argc, 0, path, sizeof path) || !string_arg(env, argv, argc, 1, name, sizeof name)) return NULL;
  if (lremovexattr(path, name) != 0 && errno != ENODATA) return throw_errno(env, errno, "lremovexattr", path);
  return NULL;
}

// mkfifo(path, mode): never follows a symlink (mkfifo fails with EEXIST on any existing path).
static napi_value js_mkfifo(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_BUF];
  if (!string_arg(env, argv, argc, 0, path, sizeof path)) return NULL;
  uint32_t mode = 0644;
  if (argc > 1) napi_get_value_uint32(env, argv[1], &mode);
  if (mkfifo(path, (mode_t)(mode & 07777)) != 0) return throw_errno(env, errno, "mkfifo", path);
  return NULL;
}

/*
 * lstatDir(dir, xattrName?) -> ArrayBuffer | null (null when `dir` is gone or not a directory).
 * One record per entry (`.` and `..` left out), each 8-byte aligned:
 *   u64[0] size  u64[1] mtime ns  u64[2] ctime ns  u64[3] dev  u64[4] ino  u64[5] rdev
 *   u64[6] birth time ns (0: unknown)
 *   u32[14] record length  u32[15] mode  u32[16] uid  u32[17] gid  u32[18] nlink
 *   u32[19] name length  u32[20] link target length  u32[21] xattr length (0xffffffff: none)
 *   then name, link target (symlinks), xattr value (when asked for and set), zero-padded.
 * The entry is stat'ed relative to the directory's fd (statx, AT_SYMLINK_NOFOLLOW): no path is
 * resolved twice, and a symlink is never followed. The birth time tells a directory that was removed
 * and re-created from the old one even when the filesystem reused its inode number.
 */
#define HEADER 88

static napi_value js_lstat_dir(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_BUF], xname[256];
  if (!string_arg(env, argv, argc, 0, path, sizeof path)) return NULL;
  int want_xattr = 0;
  if (argc > 1) {
    napi_valuetype t;
    napi_typeof(env, argv[1], &t);
    if (t == napi_string) {
      if (!string_arg(env, argv, argc, 1, xname, sizeof xname)) return NULL;
      want_xattr = 1;
    }
  }
  napi_value result;
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) {
      napi_get_null(env, &result);
      return result;
    }
    return throw_errno(env, errno, "opendir", path);
  }
  DIR *dir = fdopendir(fd);
  if (dir == NULL) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "fdopendir", path);
  }
  struct grow b = {0};
  static char link[PATH_BUF];
  static char xval[XATTR_BUF];
  char proc[64];
  int failed = 0, err = 0;
  const char *failed_call = "";
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(dir);
    if (de == NULL) {
      if (errno != 0) {
        failed = 1, err = errno, failed_call = "readdir";
      }
      break;
    }
    const char *name = de->d_name;
    if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
    struct statx stx;
    if (statx(fd, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME, &stx) != 0) {
      if (errno == ENOENT) continue;  // gone since readdir: it is simply not there
      failed = 1, err = errno, failed_call = "lstat";
      break;
    }
    size_t name_len = strlen(name);
    ssize_t link_len = 0;
    if (S_ISLNK(stx.stx_mode)) {
      link_len = readlinkat(fd, name, link, sizeof link);
      if (link_len < 0) {
        if (errno == ENOENT) continue;
        failed = 1, err = errno, failed_call = "readlink";
        break;
      }
    }
    ssize_t x_len = -1;
    if (want_xattr && !S_ISLNK(stx.stx_mode)) {
      // The *at family has no getxattr: go through the directory fd's /proc path, which names the
      // same directory even if it was renamed meanwhile.
      snprintf(proc, sizeof proc, "/proc/self/fd/%d/", fd);
      char full[PATH_BUF + 64];
      snprintf(full, sizeof full, "%s%s", proc, name);
      x_len = lgetxattr(full, xname, xval, sizeof xval);
      if (x_len < 0) {
        if (errno != ENODATA && errno != ENOTSUP && errno != ENOENT) {
          failed = 1, err = errno, failed_call = "lgetxattr";
          break;
        }
        x_len = -1;
      }
    }
    size_t body = name_len + (size_t)link_len + (x_len > 0 ? (size_t)x_len : 0);
    size_t rec = (HEADER + body + 7) & ~(size_t)7;
    if (!grow_reserve(&b, rec)) {
      failed = 1, err = ENOMEM, failed_call = "malloc";
      break;
    }
    char *r = b.data + b.len;
    memset(r, 0, rec);
    uint64_t *q = (uint64_t *)r;
    uint32_t *w = (uint32_t *)r;
    q[0] = (uint64_t)stx.stx_size;
    q[1] = (uint64_t)stx.stx_mtime.tv_sec * 1000000000ull + (uint64_t)stx.stx_mtime.tv_nsec;
    q[2] = (uint64_t)stx.stx_ctime.tv_sec * 1000000000ull + (uint64_t)stx.stx_ctime.tv_nsec;
    q[3] = (uint64_t)makedev(stx.stx_dev_major, stx.stx_dev_minor);
    q[4] = (uint64_t)stx.stx_ino;
    q[5] = (uint64_t)makedev(stx.stx_rdev_major, stx.stx_rdev_minor);
    q[6] = (stx.stx_mask & STATX_BTIME) ? (uint64_t)stx.stx_btime.tv_sec * 1000000000ull + (uint64_t)stx.stx_btime.tv_nsec : 0;
    w[14] = (uint32_t)rec;
    w[15] = (uint32_t)stx.stx_mode;
    w[16] = (uint32_t)stx.stx_uid;
    w[17] = (uint32_t)stx.stx_gid;
    w[18] = (uint32_t)stx.stx_nlink;
    w[19] = (uint32_t)name_len;
    w[20] = (uint32_t)link_len;
    w[21] = x_len < 0 ? 0xffffffffu : (uint32_t)x_len;
    memcpy(r + HEADER, name, name_len);
    if (link_len > 0) memcpy(r + HEADER + name_len, link, (size_t)link_len);
    if (x_len > 0) memcpy(r + HEADER + name_len + link_len, xval, (size_t)x_len);
    b.len += rec;
  }
  closedir(dir);
  if (failed) {
    free(b.data);
    return throw_errno(env, err, failed_call, path);
  }
  void *data;
  if (napi_create_arraybuffer(env, b.len, &data, &result) != napi_ok) {
    free(b.data);
    return NULL;
  }
  if (b.len > 0) memcpy(data, b.data, b.len);
  free(b.data);
  return result;
}

/*
 * walkTree(root, start, ignored: string[], threads?) -> ArrayBuffer: everything under `start`
 * (root-relative, "" for the root itself) in one call, on `threads` threads (default: the online
 * CPUs, at most 4). Layout in tree-walk.h. `ignored` holds the IgnoreList's normalized entries.
 */
static napi_value js_walk_tree(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char root[PATH_BUF], start[PATH_BUF];
  if (!string_arg(env, argv, argc, 0, root, sizeof root) || !string_arg(env, argv, argc, 1, start, sizeof start)) return NULL;
  bool is_array = false;
  uint32_t n_ignored = 0;
  if (argc < 3 || napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[2], &n_ignored) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected an array of ignored paths");
    return NULL;
  }
  int32_t threads = 0;
  if (argc > 3) {
    napi_valuetype t;
    napi_typeof(env, argv[3], &t);
    if (t == napi_number) napi_get_value_int32(env, argv[3], &threads);
  }
  if (threads <= 0) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    threads = cpus < 1 ? 1 : cpus > 4 ? 4 : (int32_t)cpus;
  }
  char **ignored = calloc(n_ignored + 1, sizeof *ignored);
  if (ignored == NULL) return throw_errno(env, ENOMEM, "malloc", root);
  napi_value result = NULL;
  int fd = -1;
  for (uint32_t i = 0; i < n_ignored; i++) {
    napi_value e;
    char buf[PATH_BUF];
    if (napi_get_element(env, argv[2], i, &e) != napi_ok) goto done;
    if (!string_arg(env, &e, 1, 0, buf, sizeof buf)) goto done;
    ignored[i] = strdup(buf);
    if (ignored[i] == NULL) {
      throw_errno(env, ENOMEM, "malloc", root);
      goto done;
    }
  }
  fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    throw_errno(env, errno, "opendir", root);
    goto done;
  }
  struct walk_result out;
  struct walk_error error;
  if (!walk_tree(fd, start, (const char *const *)ignored, n_ignored, threads, &out, &error)) {
    char where[PATH_BUF * 2 + 2];
    snprintf(where, sizeof where, "%s/%s", root, error.path);
    throw_errno(env, error.err, error.syscall, where);
    goto done;
  }
  void *data;
  if (napi_create_arraybuffer(env, out.len, &data, &result) == napi_ok) {
    memcpy(data, out.data, out.len);
  } else {
    result = NULL;
  }
  free(out.data);
done:
  if (fd >= 0) close(fd);
  for (uint32_t i = 0; i < n_ignored; i++) free(ignored[i]);
  free(ignored);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"lgetxattr", NULL, js_lgetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"llistxattr", NULL, js_llistxattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lsetxattr", NULL, js_lsetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lremovexattr", NULL, js_lremovexattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mkfifo", NULL, js_mkfifo, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lstatDir", NULL, js_lstat_dir, NULL, NULL, NULL, napi_enumerable, NULL},
      {"walkTree", NULL, js_walk_tree, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
