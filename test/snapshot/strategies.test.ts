// The two snapshot strategies agree: the same change, made once directly in the rootfs (walk) and once
// through an overlay mount whose upper dir is merged back (overlay), gives byte-identical layers and
// identical rootfs trees. And scoped snapshots (COPY-like path marks) give the layers a full walk gives.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IgnoreList } from '../../src/rootfs/ignore-list.js';
import { nativeFs } from '../../src/rootfs/native-fs.js';
import { overlayArgv, overlayDirsFor, probeOverlay, type OverlayTools } from '../../src/sandbox/overlay-run.js';
import { Snapshotter } from '../../src/snapshot/snapshotter.js';
import { scanTree } from '../../src/snapshot/tree-index.js';
import { listTar, tempDir } from '../rootfs/fixtures.js';

const TOOLS: OverlayTools = { unshare: '/usr/bin/unshare', mount: '/usr/bin/mount', setpriv: '/usr/bin/setpriv', sh: '/bin/sh' };
const IGNORE = IgnoreList.of(['/proc']);

/** A small rootfs, every time stamp fixed, so that two copies are the same down to the mtimes. */
const FIXTURE = `
set -e; cd "$1"
mkdir -p etc/conf.d usr/bin usr/share/replaced/sub var/lib/gone/deep proc opt
echo root > etc/passwd; echo old > etc/old; echo keep > etc/keep; echo own > etc/owned
echo a > etc/conf.d/a; echo t > usr/bin/tool; chmod 755 usr/bin/tool
echo r > usr/share/replaced/sub/x; echo g > var/lib/gone/deep/g; echo f > etc/file-to-dir
ln -s tool usr/bin/alias; ln etc/keep etc/keep-link
find . -exec touch -h -d @1500000000 {} +
`;

/** One RUN's worth of changes of every kind; then every changed path gets a fixed mtime. */
const CHANGE = `
set -e; cd "$1"
touch -d @1550000000 /tmp/kiln-marker-$$
echo new > etc/new; mkdir -p opt/a/b; echo f > opt/a/b/f; ln opt/a/b/f opt/hard
rm etc/old; rm -rf var/lib/gone; chmod 600 etc/passwd; chown 1000:1000 etc/owned
ln -s ../etc/new opt/link; rm usr/bin/alias; ln -s /bin/busybox usr/bin/alias
rm -rf usr/share/replaced; mkdir usr/share/replaced; echo r2 > usr/share/replaced/r
echo changed > usr/bin/tool; rm etc/file-to-dir; mkdir etc/file-to-dir; echo in > etc/file-to-dir/in
mkfifo opt/fifo
find . -xdev -newer /tmp/kiln-marker-$$ -exec touch -h -d @1600000000 {} +
rm /tmp/kiln-marker-$$
`;

function sh(script: string, dir: string): void {
  execFileSync('/bin/sh', ['-c', script, 'sh', dir]);
}

let tmp: { path: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  tmp = await tempDir();
});
afterEach(async () => {
  await tmp.cleanup();
});

async function fixture(name: string): Promise<{ root: string; work: string; snap: Snapshotter }> {
  const root = join(tmp.path, name, 'root');
  const work = join(tmp.path, name, 'work');
  await mkdir(root, { recursive: true });
  await mkdir(work, { recursive: true });
  sh(FIXTURE, root);
  const snap = new Snapshotter({ root, ignore: IGNORE, workDir: work });
  await snap.init();
  return { root, work, snap };
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

async function describeTree(root: string): Promise<string[]> {
  const index = await scanTree(root, IGNORE);
  return [...index]
    .map(([p, m]) => `${p} ${m.kind} ${m.kind === 'symlink' ? '' : m.mode.toString(8)} ${m.uid}:${m.gid} ${m.kind === 'dir' ? '' : m.size} ${m.mtimeNs / 1_000_000_000n} ${m.linkTarget ?? ''} ${m.kind === 'file' ? sha256(join(root, p)) : ''}`)
    .sort();
}

const overlayWorks = nativeFs() !== null && process.getuid?.() === 0;

describe('snapshot strategies', () => {
  it('the native addon is built (npm install runs node-gyp)', () => {
    expect(nativeFs()).not.toBeNull();
  });

  it.runIf(overlayWorks)('overlay and walk give byte-identical layers and the same rootfs for the same change', async () => {
    const walk = await fixture('walk');
    sh(CHANGE, walk.root);
    const walkLayer = await walk.snap.snapshot('walk.tar');

    const ov = await fixture('overlay');
    const scratch = join(tmp.path, 'overlay', 'scratch');
    expect(await probeOverlay(TOOLS, scratch)).toBeUndefined();
    const dirs = await overlayDirsFor(scratch, ov.root);
    const argv = overlayArgv(TOOLS, dirs, { uid: 0, gid: 0 }, ['/bin/sh', '-c', CHANGE, 'sh', dirs.merged]);
    const res = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' });
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    // The mount lived in the RUN's own namespace only.
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(scratch);
    await ov.snap.mergeUpper(dirs.upper);
    const ovLayer = await ov.snap.snapshot('overlay.tar');

    expect(walkLayer).not.toBeNull();
    expect(ovLayer).not.toBeNull();
    const names = (await listTar(await ovLayer!.uncompressed())).map((e) => e.name);
    expect(names).toEqual(expect.arrayContaining(['etc/.wh.old', 'var/lib/.wh.gone', 'usr/share/replaced/.wh..wh..opq', 'opt/hard', 'etc/file-to-dir/in']));
    const show = async (l: typeof ovLayer) => (await listTar(await l!.uncompressed())).map((e) => `${e.name} ${e.type} ${e.mode.toString(8)} ${e.uid}:${e.gid} ${e.linkname ?? ''} ${e.content}`);
    expect(await show(ovLayer)).toEqual(await show(walkLayer));
    expect(await ovLayer!.diffId()).toBe(await walkLayer!.diffId());
    expect(await ovLayer!.digest()).toBe(await walkLayer!.digest());
    expect(await describeTree(ov.root)).toEqual(await describeTree(walk.root));
    // The baseline moved forward on both roads: nothing more to record.
    expect(await ov.snap.snapshot('again.tar')).toBeNull();
    expect(await walk.snap.snapshot('again.tar')).toBeNull();
  });

  it('path-scoped snapshots (COPY, WORKDIR) give the layer a full walk gives, and move the baseline', async () => {
    const full = await fixture('full');
    const scoped = await fixture('scoped');
    const copy = async (root: string): Promise<void> => {
      await mkdir(join(root, 'app/lib'), { recursive: true });
      await writeFile(join(root, 'app/lib/m.js'), 'x');
      await writeFile(join(root, 'etc/conf.d/a'), 'replaced');
      execFileSync('touch', ['-h', '-d', '@1600000000', join(root, 'app/lib/m.js'), join(root, 'app/lib'), join(root, 'app'), join(root, 'etc/conf.d/a'), join(root, 'etc/conf.d')]);
    };
    await copy(full.root);
    await copy(scoped.root);
    scoped.snap.markPaths(['/app/lib/', '/etc/conf.d/a']);
    const a = await full.snap.snapshot('a.tar');
    const b = await scoped.snap.snapshot('b.tar');
    expect((await listTar(await b!.uncompressed())).map((e) => e.name)).toEqual(['app/', 'app/lib/', 'app/lib/m.js', 'etc/', 'etc/conf.d/', 'etc/conf.d/a']);
    expect(await b!.digest()).toBe(await a!.digest());
    // A later full walk finds nothing the scoped snapshot missed.
    scoped.snap.markAll();
    expect(await scoped.snap.snapshot('c.tar')).toBeNull();
  });

  it('a scoped snapshot rewrites hardlinked siblings outside the scope, as a walk would', async () => {
    const full = await fixture('full');
    const scoped = await fixture('scoped');
    for (const f of [full, scoped]) await writeFile(join(f.root, 'etc/keep'), 'rewritten in place');
    scoped.snap.markPaths(['/etc/keep']);
    const a = await full.snap.snapshot('a.tar');
    const b = await scoped.snap.snapshot('b.tar');
    expect((await listTar(await b!.uncompressed())).map((e) => e.name)).toEqual((await listTar(await a!.uncompressed())).map((e) => e.name));
    expect((await listTar(await b!.uncompressed())).map((e) => e.name)).toContain('etc/keep-link');
  });

  it('--reproducible layers do not depend on the mtimes of the files', async () => {
    const digests: string[] = [];
    for (const [i, stamp] of ['@1600000000', '@1700000000'].entries()) {
      const root = join(tmp.path, `r${i}`, 'root');
      const work = join(tmp.path, `r${i}`, 'work');
      await mkdir(root, { recursive: true });
      await mkdir(work, { recursive: true });
      sh(FIXTURE, root);
      const snap = new Snapshotter({ root, ignore: IGNORE, workDir: work, reproducible: true });
      await snap.init();
      await mkdir(join(root, 'opt/new'));
      await writeFile(join(root, 'opt/new/file'), 'same');
      execFileSync('touch', ['-h', '-d', stamp, join(root, 'opt/new/file'), join(root, 'opt/new'), join(root, 'opt')]);
      const layer = await snap.snapshot('l.tar');
      digests.push(await layer!.digest());
      const listing = execFileSync('tar', ['-tvzf', join(work, 'l.tar'), '--full-time', '--numeric-owner']).toString().trim().split('\n');
      expect(listing.every((l) => l.includes('1970-01-01 00:00:00'))).toBe(true);
    }
    expect(digests[0]).toBe(digests[1]);
  });

  it('--snapshot-mode=time records mtime changes only', async () => {
    const root = join(tmp.path, 't', 'root');
    const work = join(tmp.path, 't', 'work');
    await mkdir(root, { recursive: true });
    await mkdir(work);
    sh(FIXTURE, root);
    const snap = new Snapshotter({ root, ignore: IGNORE, workDir: work, mode: 'time' });
    await snap.init();
    execFileSync('chmod', ['600', join(root, 'etc/passwd')]);
    expect(await snap.snapshot('a.tar')).toBeNull();
    await writeFile(join(root, 'etc/passwd'), 'root2');
    expect((await listTar(await (await snap.snapshot('b.tar'))!.uncompressed())).map((e) => e.name)).toEqual(['etc/', 'etc/passwd']);
  });
});
