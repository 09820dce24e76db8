/*
 * /kaniko/executor: the executor image's entrypoint, linked statically. The same file, hard-linked, is
 * /kaniko/warmer (kaniko's base-image cache warmer) and /kaniko/bin/zstd (Debian's zstd, which kiln runs
 * for `--compression zstd` and zstd layers): it looks at the name it was started by. One binary, not
 * three: a static glibc program is ~0.7 MB, and the image's size is a target.
 *
 * Why a compiled launcher: in container mode kiln empties `/` and unpacks the base image there, so the
 * node binary cannot rely on /lib64/ld-linux-x86-64.so.2 or /lib: its loader and libraries live in
 * /kaniko/lib. Starting node therefore means running the loader with --library-path, and a scratch
 * image has no shell to write that in. A shebang cannot do it either (the kernel passes everything
 * after the interpreter as a single argument). Patching node's ELF interpreter and RUNPATH would work
 * but needs patchelf and changes the binary we ship; LD_LIBRARY_PATH in the image's ENV would leak
 * kiln's glibc into every RUN of the build. A static binary needs nothing from `/` at all.
 *
 * The loader's own --library-path applies to its program only: RUN commands, node's children, see none
 * of it. KILN_LOADER (e.g. /kaniko/lib/ld-linux-aarch64.so.1 on arm64) is set at compile time by
 * scripts/make-executor-root.sh from what ldd reports for node.
 *
 * node gets no option of ours: any V8 flag would make node reject the code caches of its own built-in
 * modules and of kiln's bundle (V8 hashes the flags into them; see scripts/make-executor-root.sh).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef KILN_LOADER
#define KILN_LOADER "/kaniko/lib/ld-linux-x86-64.so.2"
#endif
#define KILN_LIBS "/kaniko/lib"
#define KILN_NODE "/kaniko/bin/node"
#define KILN_ZSTD "/kaniko/libexec/zstd"
#define KILN_EXECUTOR_SCRIPT "/kaniko/app/bin/executor.js"
#define KILN_WARMER_SCRIPT "/kaniko/app/bin/warmer.js"

int main(int argc, char **argv) {
  const char *name = argc > 0 ? strrchr(argv[0], '/') : NULL;
  name = name != NULL ? name + 1 : (argc > 0 ? argv[0] : "");
  /* loader, --library-path, dir, program, script, the user's arguments, NULL */
  char **args = calloc((size_t)argc + 6, sizeof *args);
  if (args == NULL) {
    perror("executor");
    return 127;
  }
  int n = 0;
  args[n++] = KILN_LOADER;
  args[n++] = "--library-path";
  args[n++] = KILN_LIBS;
  if (strcmp(name, "zstd") == 0) {
    args[n++] = KILN_ZSTD;
  } else {
    /* Any other name is the executor: a user's own symlink to it keeps working. */
    args[n++] = KILN_NODE;
    args[n++] = strcmp(name, "warmer") == 0 ? KILN_WARMER_SCRIPT : KILN_EXECUTOR_SCRIPT;
  }
  for (int i = 1; i < argc; i++) args[n++] = argv[i];
  args[n] = NULL;
  execv(KILN_LOADER, args);
  perror("executor: cannot start " KILN_LOADER);
  return 127;
}
