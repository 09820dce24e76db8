import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Looks a program up on a PATH string; undefined when absent. */
export function findExecutable(name: string, path: string | undefined): string | undefined {
  for (const dir of (path ?? '/usr/local/bin:/usr/bin:/bin').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}
