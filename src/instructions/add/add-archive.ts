// ADD of a local tar archive: detected by content as docker does (archive.DetectCompression on the
// magic bytes, then a valid tar header after decompression: a gzip file holding no tar is copied as
// it is), and extracted into the destination directory like `tar -x` as root: modes, owners and times
// from the archive, no whiteout semantics. `--chown` is applied to every extracted entry (BuildKit
// v0.23+, testDockerfileAddChownArchive). Every entry stays inside the destination: a name with `..`
// climbing out of it, or one reaching it through a symlink pointing elsewhere, is refused as docker's
// archive.Untar refuses a "breakout".
//
// Extraction is the layer unpacker's (src/rootfs/unpack.ts, with `within` the destination,
// `whiteouts: false` and `--chown` as `owner`): what exists at a path is replaced by the entry, an
// existing directory is merged into, hardlinks point inside the archive, FIFOs are made, devices are
// skipped, `security.capability` (binary PAX) is kept, and nothing on the build's ignore list is written.
//
// gzip uses Node's zlib; bzip2, xz and zstd (none in Node 20's zlib) stream through Debian's
// `bzip2 -dc`, `xz -dc` and `zstd -dc`.
import { spawn } from 'node:child_process';
import { createReadStream, type Stats } from 'node:fs';
import { basename } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { detectCompression, isTarHeader, type Compression } from '../../blob/archive-sniff.js';
import { DockerfileError } from '../../errors.js';
import { DEFAULT_ARCHIVE_LIMITS, type RunContext } from '../../log/run-context.js';
import type { IgnoreList } from '../../rootfs/ignore-list.js';
import type { Owner } from '../../rootfs/in-root.js';
import { resolveInRoot } from '../../rootfs/root-path.js';
import { shortName } from '../../rootfs/name-limits.js';
import { EntryRefusedError, unpackLayer, type UnpackStats } from '../../rootfs/unpack.js';
import type { InstructionSite } from '../handler.js';

const TOOLS: Record<Exclude<Compression, 'none' | 'gzip'>, { cmd: string; pkg: string }> = {
  bzip2: { cmd: 'bzip2', pkg: 'bzip2' },
  xz: { cmd: 'xz', pkg: 'xz-utils' },
  zstd: { cmd: 'zstd', pkg: 'zstd' },
};

/** The decompressed bytes of `file`. */
function openDecompressed(file: string, compression: Compression, fileStream: () => Readable, site: InstructionSite): Readable {
  if (compression === 'none') return fileStream();
  if (compression === 'gzip') {
    const out = new PassThrough();
    pipeline(fileStream(), createGunzip(), out).catch((err: unknown) => out.destroy(err as Error));
    return out;
  }
  const tool = TOOLS[compression];
  const child = spawn(tool.cmd, ['-dc', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = new PassThrough();
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  child.once('error', (err) => {
    out.destroy(new DockerfileError(`ADD of a ${compression} archive needs ${tool.cmd} (apt-get install ${tool.pkg}): ${err.message}`, site, { cause: err }));
  });
  child.stdout.pipe(out, { end: false });
  // A reader that stops early (the probe in detectArchive, a refused entry) must not leave the tool
  // blocked on a full pipe.
  out.once('close', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill();
  });
  child.once('close', (code) => {
    if (code === 0) out.end();
    else out.destroy(new DockerfileError(`${tool.cmd} -dc failed (exit ${code}): ${stderr.trim().split('\n')[0] ?? ''}`, site));
  });
  return out;
}

async function readHead(stream: Readable, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let len = 0;
  try {
    for await (const c of stream) {
      chunks.push(c as Buffer);
      len += (c as Buffer).length;
      if (len >= n) break;
    }
  } catch {
    // A corrupt stream is simply not an archive.
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks).subarray(0, n);
}

/** The compression of `file` when it is a tar archive (possibly compressed); undefined otherwise. */
export async function detectArchive(file: string, st: Stats, site: InstructionSite): Promise<Compression | undefined> {
  if (!st.isFile() || st.size < 4) return undefined;
  const head = await readHead(createReadStream(file, { start: 0, end: 15 }), 16);
  const compression = detectCompression(head);
  if (compression !== 'none') {
    // A missing decompressor is an error only when the file really is an archive; probe with it.
    const block = await readHead(openDecompressed(file, compression, () => createReadStream(file), site), 512).catch(() => Buffer.alloc(0));
    return isTarHeader(block) ? compression : undefined;
  }
  const block = await readHead(createReadStream(file, { start: 0, end: 511 }), 512);
  return isTarHeader(block) ? 'none' : undefined;
}

export interface ExtractOptions {
  readonly file: string;
  readonly compression: Compression;
  readonly destRoot: string;
  /** Absolute destination directory inside the rootfs (created by the caller). */
  readonly destDir: string;
  /** `--chown`, applied to every entry; undefined keeps the archive's owners. */
  readonly owner: Owner | undefined;
  /** The build's ignore list: no entry is written there (kiln's own paths, mount points). */
  readonly ignore: IgnoreList;
  readonly ctx: RunContext;
  readonly site: InstructionSite;
}

export async function extractArchive(o: ExtractOptions): Promise<UnpackStats> {
  const name = basename(o.file);
  const what = `extracting ${name}`;
  try {
    // The destination as it resolves in the rootfs (it may be, or pass through, a symlink).
    const within = resolveInRoot(o.destRoot, o.destDir.replace(/^\/+/, ''));
    const stats = await unpackLayer(o.destRoot, openDecompressed(o.file, o.compression, () => createReadStream(o.file), o.site), {
      ignore: o.ignore,
      ctx: o.ctx,
      what,
      whiteouts: false,
      within,
      limits: o.ctx.archiveLimits ?? DEFAULT_ARCHIVE_LIMITS,
      ...(o.owner !== undefined ? { owner: o.owner } : {}),
    });
    // docker build writes every entry (BuildKit's unpack into the snapshot). What the ignore list keeps
    // out is, in container mode, the running container's own /proc, /sys, /dev, runtime files and
    // mounts (kaniko's UnTar would write into the live sysfs, or fail there): never written, and said.
    if (stats.ignored > 0) {
      const first = stats.firstIgnored ?? '';
      o.ctx.log.warn(
        `ADD ${name}: ${stats.ignored === 1 ? `entry ${first} left out` : `${stats.ignored} entries left out (the first: ${first})`}: it lies on the build's ignore list (in container mode /proc, /sys, /dev, the runtime's files and mounts; --ignore-path), which kiln never writes; docker build would put it in the layer`,
      );
    }
    return stats;
  } catch (err) {
    if (err instanceof DockerfileError) throw err;
    if (err instanceof EntryRefusedError) {
      throw new DockerfileError(`ADD ${name}: refusing archive entry ${shortName(err.entry)}: ${err.reason}`, o.site, { cause: err });
    }
    const message = err instanceof Error ? err.message : String(err);
    throw new DockerfileError(message.startsWith(`${what}: `) ? message : `${what}: ${message}`, o.site, { cause: err });
  }
}
