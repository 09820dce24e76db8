// A non-root RUN's supplementary groups inside bubblewrap, on the plain rootfs and on an overlay: they
// grant access (setpriv sets them before bwrap) and read as themselves inside (kiln writes the user
// namespace's maps, user-namespace-maps.ts; bwrap's own would show them as 65534).
// Needs root, bwrap and util-linux, as sandbox mode does; the RUN is the host's busybox.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { ChrootSandbox } from '../../src/sandbox/chroot-sandbox.js';
import { staticIsolateHelperPath } from '../../src/sandbox/isolated-run.js';
import type { RunUser } from '../../src/sandbox/sandbox.js';

const BUSYBOX = '/usr/bin/busybox';
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const usable = process.getuid?.() === 0 && existsSync('/usr/bin/bwrap') && existsSync(BUSYBOX) && existsSync('/usr/bin/setpriv');
const log = { debug: () => undefined, info: () => undefined, warn: (m: unknown) => console.log('WARN', m) } as never;

describe.skipIf(!usable)('RUN with supplementary groups (sandbox mode)', () => {
  const work = mkdtempSync(join(tmpdir(), 'kiln-run-groups-'));
  chmodSync(work, 0o755);
  const root = join(work, 'root');
  mkdirSync(join(root, 'bin'), { recursive: true });
  mkdirSync(join(root, 'etc'));
  mkdirSync(join(root, 'shared'), { mode: 0o770 });
  chmodSync(join(root, 'shared'), 0o770);
  copyFileSync(BUSYBOX, join(root, 'bin/busybox'));
  chmodSync(join(root, 'bin/busybox'), 0o755);
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n');
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\napp:x:1000:\nextra:x:2000:app\n');
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  async function run(sb: ChrootSandbox, user: RunUser, argv: string[]): Promise<{ code: number; out: string }> {
    const out = new PassThrough();
    let text = '';
    out.on('data', (b: Buffer) => (text += b.toString()));
    const code = await sb.run({ argv, env: [], workdir: '/', user, stdout: out, stderr: out, network: 'default' }, { log, signal: new AbortController().signal } as never);
    return { code, out: text };
  }

  const app: RunUser = { uid: 1000, gid: 1000, groups: [1000, 2000] };
  const overlay = { tools: { unshare: '/usr/bin/unshare', mount: '/usr/bin/mount', setpriv: '/usr/bin/setpriv', sh: '/bin/sh' }, scratch: join(work, 'scratch'), collect: async () => undefined };
  // Without the static helper bwrap runs as the user in a user namespace (kiln writes its maps): files
  // of ids outside it (root's) read as 65534. With it, bwrap runs as root with no user namespace and
  // the helper becomes the user inside: every owner reads as it is, as in docker build.
  const helper = staticIsolateHelperPath();
  const cases: Array<[string, () => ChrootSandbox, string]> = [
    ['plain rootfs', () => new ChrootSandbox({ root, bwrap: '/usr/bin/bwrap' }), '65534'],
    ['overlay', () => new ChrootSandbox({ root, bwrap: '/usr/bin/bwrap', overlay }), '65534'],
  ];
  if (helper !== undefined) {
    cases.push(['plain rootfs, the user set by the static helper', () => new ChrootSandbox({ root, bwrap: '/usr/bin/bwrap', identityHelper: helper }), '0']);
    cases.push(['overlay, the user set by the static helper', () => new ChrootSandbox({ root, bwrap: '/usr/bin/bwrap', overlay, identityHelper: helper }), '0']);
  }
  // Where the compiler can link statically, npm's build made the helper static (binding.gyp).
  const canLinkStatic = execFileSync('sh', [join(REPO, 'scripts/static-ldflags.sh')]).toString().trim() === '-static';
  it.skipIf(!canLinkStatic)('the helper is static where the compiler can link one', () => {
    expect(helper).toBeDefined();
  });
  for (const [name, make, rootOwner] of cases) {
    it(name, { timeout: 15000 }, async () => {
      const { chownSync } = await import('node:fs');
      chownSync(join(root, 'shared'), 0, 2000);
      writeFileSync(join(root, 'nobodys'), '');
      chownSync(join(root, 'nobodys'), 65534, 65534);
      const sb = make();
      // Several in a row: each RUN's maps are its own.
      for (let i = 0; i < 3; i++) {
        const r = await run(sb, app, ['/bin/busybox', 'sh', '-c', 'id -u; id -g; grep -c "^Groups:.*1000" /proc/self/status; ls /shared']);
        expect(r, r.out).toEqual({ code: 0, out: '1000\n1000\n1\n' });
      }
      // Inside the user namespace the groups read as themselves, named from the rootfs's /etc/group
      // (kiln writes the maps: user-namespace-maps.ts), and the RUN gets no fd of the handshake.
      const id = await run(sb, app, ['/bin/busybox', 'sh', '-c', 'id; for f in 3 4; do test -e /proc/self/fd/$f && echo "fd $f open"; done; cat; echo end']);
      expect(id).toEqual({ code: 0, out: 'uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)\nend\n' });
      // The namespace's 0 is (uid_t)-2 outside, not 65534: a file the image gave nobody stays nobody's.
      const owner = await run(sb, app, ['/bin/busybox', 'stat', '-c', '%u:%g', '/nobodys', '/bin/busybox']);
      expect(owner).toEqual({ code: 0, out: `65534:65534\n${rootOwner}:${rootOwner}\n` });
      const only = await run(sb, { uid: 1000, gid: 1000, groups: [1000] }, ['/bin/busybox', 'id', '-G']);
      expect(only).toEqual({ code: 0, out: '1000\n' });
      // Without the group, /shared (root:2000 0770) is closed.
      expect((await run(sb, { uid: 1000, gid: 1000, groups: [1000] }, ['/bin/busybox', 'ls', '/shared'])).code).not.toBe(0);
      // Root gets its own groups, not kiln's.
      expect(await run(sb, { uid: 0, gid: 0, groups: [0] }, ['/bin/busybox', 'id', '-G'])).toEqual({ code: 0, out: '0\n' });
    });
  }
});
