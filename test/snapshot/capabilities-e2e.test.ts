// A capability set by a RUN (`setcap`, Debian's libcap2-bin, copied into the image with its libraries)
// reaches the image built by the executor, with both snapshot strategies, and comes back out of it:
// through umoci (an independent unpacker, which as root restores xattrs) and through kiln's own unpack.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { IgnoreList } from '../../src/rootfs/ignore-list.js';
import { unpackLayer } from '../../src/rootfs/unpack.js';
import { executor, unpackWithUmoci, writeContext } from '../support/executor.js';
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';

interface Index {
  manifests: Array<{ digest: string }>;
}
interface Manifest {
  layers: Array<{ digest: string }>;
}

const getcap = (path: string): string => execFileSync('getcap', [path]).toString().trim().replace(/^\S+\s*/, '');

describe('file capabilities end to end', () => {
  const images = inject('images');
  let ctx: string;
  let out: string;

  beforeAll(async () => {
    ctx = await writeContext({
      Dockerfile: [
        `FROM ${images.busybox}`,
        'COPY tools/ /',
        'RUN cp /bin/busybox /bin/pinger && /usr/sbin/setcap cap_net_raw+ep /bin/pinger',
        '',
      ].join('\n'),
    });
    // setcap and the libraries it loads, at the paths its loader looks in.
    const needed = ['/usr/sbin/setcap', ...execFileSync('ldd', ['/usr/sbin/setcap']).toString().split('\n').flatMap((l) => /(\/\S+) \(0x/.exec(l)?.slice(1, 2) ?? [])];
    for (const file of needed) {
      await mkdir(join(ctx, 'tools', file, '..'), { recursive: true });
      execFileSync('cp', ['-L', file, join(ctx, 'tools', file)]);
    }
    out = await mkdtemp(join(tmpdir(), 'kiln-caps-'));
  });
  afterAll(async () => {
    await rm(ctx, { recursive: true, force: true });
    await rm(out, { recursive: true, force: true });
  });

  for (const strategy of ['overlay', 'walk']) {
    it(`RUN setcap survives the image (${strategy}): umoci unpack and kiln's unpack both show it`, async () => {
      const layout = join(out, strategy);
      const r = await executor(['--context', `dir://${ctx}`, '--no-push', '--insecure-pull', '--oci-layout-path', layout, '--snapshot-strategy', strategy]);
      if (r.code !== 0) throw new Error(`executor failed (${r.code}): ${r.stderr}`);

      const umoci = await unpackWithUmoci(`oci:${layout}`);
      try {
        expect(getcap(join(umoci.rootfs, 'bin/pinger'))).toBe('cap_net_raw=ep');
        expect(getcap(join(umoci.rootfs, 'bin/busybox'))).toBe('');
      } finally {
        await umoci.cleanup();
      }

      const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as Index;
      const manifest = JSON.parse(await readFile(join(layout, 'blobs/sha256', (index.manifests[0]?.digest ?? '').slice(7)), 'utf8')) as Manifest;
      const root = join(out, `${strategy}-kiln`);
      await mkdir(root);
      for (const l of manifest.layers) {
        await unpackLayer(root, createReadStream(join(layout, 'blobs/sha256', l.digest.slice(7))).pipe(createGunzip()), { ignore: IgnoreList.empty() });
      }
      expect(getcap(join(root, 'bin/pinger'))).toBe('cap_net_raw=ep');
    });
  }
});
