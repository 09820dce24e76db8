import { describe, expect, it } from 'vitest';
import { resolveUser } from '../../src/sandbox/user-database.js';

const passwd = 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nsvc:x:1001:100::/:/bin/sh\n';
const group = 'root:x:0:\nwheel:x:10:root,app\napp:x:1000:\nusers:x:100:\nextra:x:2000:app,svc\n';

// BuildKit's executor/oci GetUser: uid:gid fast path, else moby/sys/user GetExecUser (supplementary
// groups from /etc/group for a user found in passwd), with the primary gid first (ensureAdditionalGids).
describe('resolveUser (BuildKit GetUser)', () => {
  it('a name or a uid found in passwd gets its /etc/group groups, primary gid first', () => {
    expect(resolveUser('app', passwd, group)).toEqual({ uid: 1000, gid: 1000, groups: [1000, 10, 2000] });
    expect(resolveUser('1000', passwd, group)).toEqual({ uid: 1000, gid: 1000, groups: [1000, 10, 2000] });
    expect(resolveUser('svc', passwd, group)).toEqual({ uid: 1001, gid: 100, groups: [100, 2000] });
  });
  it('no USER is uid 0 looked up: root with its groups; 0:0 without passwd', () => {
    expect(resolveUser('', passwd, group)).toEqual({ uid: 0, gid: 0, groups: [0, 10] });
    expect(resolveUser('', undefined, undefined)).toEqual({ uid: 0, gid: 0, groups: [0] });
  });
  it('an explicit group, or uid:gid, gives that group only', () => {
    expect(resolveUser('app:users', passwd, group)).toEqual({ uid: 1000, gid: 100, groups: [100] });
    expect(resolveUser('1000:2000', passwd, group)).toEqual({ uid: 1000, gid: 2000, groups: [2000] });
    expect(resolveUser('app:4242', passwd, group)).toEqual({ uid: 1000, gid: 4242, groups: [4242] });
  });
  it('a uid missing from passwd runs with gid 0 and no groups', () => {
    expect(resolveUser('4321', passwd, group)).toEqual({ uid: 4321, gid: 0, groups: [0] });
  });
  it('root is uid 0 without a passwd entry (llb parseUID), root:root too', () => {
    expect(resolveUser('root', undefined, undefined)).toEqual({ uid: 0, gid: 0, groups: [0] });
    expect(resolveUser('root:root', undefined, undefined)).toEqual({ uid: 0, gid: 0, groups: [0] });
    expect(resolveUser('1000:root', undefined, undefined)).toEqual({ uid: 1000, gid: 0, groups: [0] });
  });
  it('unknown names fail as docker does', () => {
    expect(() => resolveUser('nosuch', passwd, group)).toThrow('unable to find user nosuch: no matching entries in passwd file');
    expect(() => resolveUser('app:nosuch', passwd, group)).toThrow('unable to find group nosuch: no matching entries in group file');
  });
});
