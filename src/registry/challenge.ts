// Parses `WWW-Authenticate` headers (RFC 7235) into challenges: the registry tells us, on a 401, which
// scheme it wants (Basic or Bearer) and, for Bearer, where to get a token (realm, service, scope).

export interface Challenge {
  /** Lower-cased scheme: `basic`, `bearer`, ... */
  readonly scheme: string;
  /** Parameters with lower-cased names and unquoted values. */
  readonly params: Readonly<Record<string, string>>;
}

/** All challenges in a header value; a header may hold several (`Basic realm="x", Bearer realm="y"`). */
export function parseChallenges(header: string): Challenge[] {
  const out: { scheme: string; params: Record<string, string> }[] = [];
  let i = 0;
  const n = header.length;
  const skipSpaces = (): void => {
    while (i < n && (header[i] === ' ' || header[i] === '\t')) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < n && !/[\s,=]/.test(header[i] ?? '')) i++;
    return header.slice(start, i);
  };
  while (i < n) {
    skipSpaces();
    while (i < n && header[i] === ',') {
      i++;
      skipSpaces();
    }
    const first = readToken();
    if (first === '') {
      i++;
      continue;
    }
    skipSpaces();
    const current = out.at(-1);
    if (header[i] === '=' && current !== undefined) {
      // `name=value`: a parameter of the current challenge.
      i++;
      skipSpaces();
      current.params[first.toLowerCase()] = readValue();
      continue;
    }
    // A bare token starts a new challenge: the scheme.
    out.push({ scheme: first.toLowerCase(), params: {} });
  }
  return out;

  function readValue(): string {
    if (header[i] !== '"') return readToken();
    i++;
    let v = '';
    while (i < n && header[i] !== '"') {
      if (header[i] === '\\' && i + 1 < n) i++;
      v += header[i];
      i++;
    }
    i++; // closing quote
    return v;
  }
}

/** The challenge we answer: Bearer when offered (it carries scopes), else Basic, else the first. */
export function preferredChallenge(header: string | null): Challenge | undefined {
  if (header === null) return undefined;
  const all = parseChallenges(header);
  return all.find((c) => c.scheme === 'bearer') ?? all.find((c) => c.scheme === 'basic') ?? all[0];
}
