// For RUN --mount=type=ssh tests: a real ssh-agent (openssh-client) started on a socket, and a small
// static program a RUN runs to speak the agent protocol (busybox has no Unix-socket client): it sends
// one request of the given type and prints the reply's type and body.
import { spawn, type ChildProcess } from 'node:child_process';

export const PROBE_C = String.raw`
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
/* agent-probe TYPE: one request of TYPE (no body) to $SSH_AUTH_SOCK; prints "type=N" and the reply body. */
static int readn(int fd, unsigned char *p, size_t n) {
  while (n > 0) { ssize_t r = read(fd, p, n); if (r <= 0) return -1; p += r; n -= (size_t)r; }
  return 0;
}
int main(int argc, char **argv) {
  const char *path = getenv("SSH_AUTH_SOCK");
  if (argc < 2 || path == NULL) { fprintf(stderr, "usage: SSH_AUTH_SOCK=... agent-probe TYPE\n"); return 3; }
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  strncpy(a.sun_path, path, sizeof a.sun_path - 1);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { fprintf(stderr, "connect %s: %s\n", path, strerror(errno)); return 2; }
  unsigned char req[5] = {0, 0, 0, 1, (unsigned char)atoi(argv[1])};
  if (write(fd, req, 5) != 5) return 4;
  unsigned char h[4];
  if (readn(fd, h, 4) != 0) return 5;
  size_t len = ((size_t)h[0] << 24) | ((size_t)h[1] << 16) | ((size_t)h[2] << 8) | h[3];
  unsigned char *body = malloc(len + 1);
  if (len == 0 || readn(fd, body, len) != 0) return 5;
  printf("type=%d\n", body[0]);
  fwrite(body + 1, 1, len - 1, stdout);
  return 0;
}
`;

/** SSH2_AGENTC_REQUEST_IDENTITIES, SSH2_AGENTC_REMOVE_ALL_IDENTITIES. */
export const LIST = 11;
export const REMOVE_ALL = 19;
export const PROBE_MOUNT = '--mount=type=bind,source=agent-probe,target=/probe';

export async function startAgent(socket: string): Promise<ChildProcess> {
  const agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((res, rej) => {
    agent.stdout?.on('data', (b: Buffer) => b.toString().includes('SSH_AUTH_SOCK=') && res());
    agent.once('close', () => rej(new Error('ssh-agent exited')));
  });
  return agent;
}

