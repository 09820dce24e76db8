/*
 * /kaniko/executor: the executor image's entrypoint, linked statically.
 *
 * Why a compiled launcher: in container mode kiln empties `/` and unpacks the base image there, so the
 * node binary cannot rely on /lib64/ld-linux-x86-64.so.2 or /lib: its loader and libraries live in
 * /kaniko/lib. Starting node therefore means running the loader with --library-path, and a scratch
 * image has no shell to write that in. A shebang cannot do it either (the kernel passes everything
 * after the interpreter as a single argument). Patching node's ELF interpreter and RUNPATH would work
 * but needs patchelf and changes the binary we ship; LD_LIBRARY_PATH in the image's ENV would leak
 * kiln's glibc into every RUN of the build. A static binary needs nothing from `/` at all.
 *
 * The loader's own --library-path applies to node only: RUN commands, node's children, see none of it.
 * KILN_LOADER (e.g. /kaniko/lib/ld-linux-aarch64.so.1 on arm64) is set at compile time by
 * scripts/make-executor-root.sh from what ldd reports for node.
 *
 * The same source, built with KILN_TARGET=/kaniko/libexec/zstd and KILN_NO_SCRIPT, is /kaniko/bin/zstd:
 * Debian's zstd, which kiln runs for `--compression zstd` and zstd layers, started the same way; built
 * with KILN_SCRIPT=/kaniko/app/bin/warmer.js, it is /kaniko/warmer (kaniko's base-image cache warmer).
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#ifndef KILN_LOADER
#define KILN_LOADER "/kaniko/lib/ld-linux-x86-64.so.2"
#endif
#define KILN_LIBS "/kaniko/lib"
#ifndef KILN_TARGET
#define KILN_TARGET "/kaniko/bin/node"
#endif
#ifndef KILN_SCRIPT
#define KILN_SCRIPT "/kaniko/app/bin/executor.js"
#endif

int main(int argc, char **argv) {
  /* loader, --library-path, dir, node, script, the user's arguments, NULL */
  char **args = calloc((size_t)argc + 5, sizeof *args);
  if (args == NULL) {
    perror("executor");
    return 127;
  }
  int n = 0;
  args[n++] = KILN_LOADER;
  args[n++] = "--library-path";
  args[n++] = KILN_LIBS;
  args[n++] = KILN_TARGET;
#ifndef KILN_NO_SCRIPT
  args[n++] = KILN_SCRIPT;
#endif
  for (int i = 1; i < argc; i++) args[n++] = argv[i];
  args[n] = NULL;
  execv(KILN_LOADER, args);
  perror("executor: cannot start " KILN_LOADER);
  return 127;
}
