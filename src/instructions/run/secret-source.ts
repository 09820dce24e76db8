// `--secret` as buildx reads it (controller/build/parse.go parseSecret, BuildKit's secretsprovider):
// `id=ID,src=PATH` (alias `source`), `id=ID,env=VAR`, `type=file|env`; with neither src nor env the
// secret is the environment variable named after the id when it is set, else the file named by the id
// (secretsprovider.NewStore). A file is only read for the RUN that mounts it, or the ADD of a git
// repository that uses it (GIT_AUTH_TOKEN, GIT_AUTH_HEADER).
import { readFile } from 'node:fs/promises';
import { UsageError } from '../../errors.js';

export type SecretSource =
  /** Read from this host file when a RUN mounts it. */
  | { readonly kind: 'file'; readonly path: string }
  /** Taken from the executor's environment when the flag was read. */
  | { readonly kind: 'env'; readonly variable: string; readonly value: string | undefined };

export interface SecretFlag {
  readonly id: string;
  readonly source: SecretSource;
}

/** Parses one `--secret` value; `env` is the executor's environment. */
export function parseSecretFlag(value: string, env: Readonly<Record<string, string | undefined>>): SecretFlag {
  const bad = (why: string): never => {
    throw new UsageError(`invalid --secret ${JSON.stringify(value)}: ${why}`);
  };
  let type: 'file' | 'env' | undefined;
  let id: string | undefined;
  let src: string | undefined;
  let variable: string | undefined;
  // buildx reads the value as one CSV record; ids, paths and names with commas are not worth quoting.
  for (const field of value.split(',')) {
    const eq = field.indexOf('=');
    if (eq < 0) bad(`field ${JSON.stringify(field)} must be a key=value pair`);
    const key = field.slice(0, eq).toLowerCase();
    const v = field.slice(eq + 1);
    switch (key) {
      case 'type':
        if (v !== 'file' && v !== 'env') bad(`unsupported secret type ${JSON.stringify(v)}`);
        type = v as 'file' | 'env';
        break;
      case 'id':
        id = v;
        break;
      case 'src':
      case 'source':
        src = v;
        break;
      case 'env':
        variable = v;
        break;
      default:
        bad(`unexpected key ${JSON.stringify(key)}`);
    }
  }
  if (id === undefined || id === '') return bad('id is required');
  if (type === 'env' && variable === undefined) {
    variable = src;
    src = undefined;
  }
  if (src !== undefined && variable !== undefined) bad('src and env cannot both be set');
  if (src !== undefined) return { id, source: { kind: 'file', path: src } };
  if (variable === undefined && env[id] === undefined) return { id, source: { kind: 'file', path: id } };
  const name = variable ?? id;
  return { id, source: { kind: 'env', variable: name, value: env[name] } };
}

/** A `--secret`'s value, read now; undefined when its environment variable is not set. */
export async function readSecretValue(source: SecretSource): Promise<Buffer | undefined> {
  switch (source.kind) {
    case 'env':
      return source.value === undefined ? undefined : Buffer.from(source.value, 'utf8');
    case 'file':
      // The path is the user's own --secret flag, not the Dockerfile's: read it as given.
      return readFile(source.path);
  }
}
