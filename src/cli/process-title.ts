// What kiln's process shows as its command line once it runs. /proc/<pid>/cmdline is readable by every
// process of the container (no ptrace check guards it, unlike environ), a RUN's included where the
// runtime refuses it a /proc of its own. kiln's flags can carry secrets: user info and pre-signed
// query strings in URLs (--context https://..., git://user:token@...), --build-arg values meant for
// one stage. So the title keeps the flags and drops those values. PURE.

const HIDDEN = '***';

/** `executor` and its flags with the values that may be secrets replaced by `***`. */
export function redactedTitle(name: string, args: readonly string[]): string {
  const out: string[] = [name];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--build-arg' && i + 1 < args.length) {
      out.push(a, redactBuildArg(args[++i] as string));
    } else if (a.startsWith('--build-arg=')) {
      out.push(`--build-arg=${redactBuildArg(a.slice('--build-arg='.length))}`);
    } else {
      out.push(redactUrls(a));
    }
  }
  return out.join(' ');
}

/** `K=V` -> `K=***`; a bare `K` (taken from the environment) stays. */
function redactBuildArg(kv: string): string {
  const eq = kv.indexOf('=');
  return eq < 0 ? kv : `${kv.slice(0, eq + 1)}${HIDDEN}`;
}

/** A URL's user info and query, wherever one appears in the argument (`--context=https://...`). */
function redactUrls(arg: string): string {
  if (!arg.includes('://')) return arg;
  return arg.replace(/([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)([^/?#\s]*@)?([^?#\s]*)(\?[^#\s]*)?/g, (_m, scheme: string, user: string | undefined, rest: string, query: string | undefined) => {
    return `${scheme}${user !== undefined ? `${HIDDEN}@` : ''}${rest}${query !== undefined ? `?${HIDDEN}` : ''}`;
  });
}
