// Writes an htpasswd file with bcrypt entries, as docker-registry's htpasswd auth requires
// (`htpasswd -B`, from Debian's apache2-utils).
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

export async function writeHtpasswd(path: string, users: Readonly<Record<string, string>>): Promise<void> {
  const lines: string[] = [];
  for (const [user, password] of Object.entries(users)) {
    // -C 4: the lowest bcrypt cost, since every test request is checked against it.
    const { stdout } = await run('htpasswd', ['-nbB', '-C', '4', user, password]);
    lines.push(stdout.trim());
  }
  await writeFile(path, `${lines.join('\n')}\n`);
}
