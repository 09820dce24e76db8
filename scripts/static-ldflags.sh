#!/bin/sh
# Prints -static when the C compiler can link a static program here (glibc's libc.a installed: Debian's
# libc6-dev has it, Fedora needs glibc-static), else nothing. binding.gyp links kiln-isolate with it:
# sandbox mode runs a static kiln-isolate inside the stage's rootfs, where no host library exists
# (src/sandbox/chroot-sandbox.ts); without it, sandbox mode falls back to bwrap's user namespace.
tmp=$(mktemp -d) || exit 0
trap 'rm -rf "$tmp"' EXIT
printf 'int main(void){return 0;}\n' > "$tmp/t.c"
if ${CC:-cc} -static -o "$tmp/t" "$tmp/t.c" >/dev/null 2>&1; then echo -static; fi
