// `--ssh` as docker buildx parses it: ID[=PATH[,PATH...]], no path meaning the executor's SSH_AUTH_SOCK.
import { describe, expect, it } from 'vitest';
import { parseSshFlags } from '../../src/instructions/run/ssh-source.js';

describe('--ssh', () => {
  const env = { SSH_AUTH_SOCK: '/run/user/1000/agent.sock' };

  it('takes $SSH_AUTH_SOCK for an id without a path', () => {
    expect(parseSshFlags(['default'], env, '/w')).toEqual([{ id: 'default', paths: ['/run/user/1000/agent.sock'] }]);
    expect(parseSshFlags(['gh='], env, '/w')).toEqual([{ id: 'gh', paths: ['/run/user/1000/agent.sock'] }]);
  });

  it('takes a socket or key files, relative to the working directory', () => {
    expect(parseSshFlags(['default=/tmp/a.sock', 'keys=id_ed25519,/k/id_rsa'], {}, '/w')).toEqual([
      { id: 'default', paths: ['/tmp/a.sock'] },
      { id: 'keys', paths: ['/w/id_ed25519', '/k/id_rsa'] },
    ]);
  });

  it('names the id default when it is left out', () => {
    expect(parseSshFlags(['=/tmp/a.sock'], {}, '/w')).toEqual([{ id: 'default', paths: ['/tmp/a.sock'] }]);
  });

  it('refuses a missing SSH_AUTH_SOCK, empty paths and duplicate ids', () => {
    expect(() => parseSshFlags(['default'], {}, '/w')).toThrow(/SSH_AUTH_SOCK is not set/);
    expect(() => parseSshFlags(['default=/a,'], env, '/w')).toThrow(/empty path/);
    expect(() => parseSshFlags(['default', 'default=/x'], env, '/w')).toThrow(/duplicate agent ID "default"/);
  });
});
