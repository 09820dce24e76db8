import { homedir } from 'node:os';

/**
 * os.homedir() throws when HOME is unset and the uid has no passwd entry: the executor image has no
 * /etc/passwd and some runtimes set no HOME. It only locates ~/.docker, so fall back as docker does for
 * a user it cannot find: `/`.
 */
export function homeDirOrRoot(): string {
  try {
    return homedir();
  } catch {
    return '/';
  }
}
