// The multi-threaded rootfs walk behind the addon's walkTree (tree-walk.c).
#ifndef KILN_TREE_WALK_H
#define KILN_TREE_WALK_H
#include <stddef.h>
#include <stdint.h>

/*
 * Result layout (little endian, 8-byte aligned):
 *   header: u64 record count, u64 byte offset of the string table, u64 1 when every string is ASCII
 *   (JS can then decode the table once and slice it)
 *   records, WALK_RECORD bytes each:
 *     u64[0] size  u64[1] mtime ns  u64[2] ctime ns  u64[3] dev  u64[4] ino  u64[5] rdev
 *     u64[6] birth time ns (0: unknown)
 *     u32[14] st_mode  u32[15] uid  u32[16] gid  u32[17] nlink
 *     u32[18] offset of the path in the string table  u32[19] path length  u32[20] link target length
 *     u32[21] zero
 *   string table: each record's root-relative path, then (symlinks) its target, UTF-8 bytes as stored.
 * Records come in no particular order (threads interleave).
 */
#define WALK_HEADER 24
#define WALK_RECORD 88

struct walk_result {
  char *data;
  size_t len;
};

struct walk_error {
  int err;
  const char *syscall;
  char path[4096];
};

/* Walks everything under `start` (root-relative, "" for the root) of the directory `root_fd`, leaving
 * out the paths in `ignored` and what lies under them. 1 on success (out->data to be freed), 0 with
 * `error` set. A directory that vanishes during the walk is simply absent. */
int walk_tree(int root_fd, const char *start, const char *const *ignored, size_t n_ignored, int threads, struct walk_result *out, struct walk_error *error);

#endif
