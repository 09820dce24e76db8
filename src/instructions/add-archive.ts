// ADD of a local tar archive: detected by content as docker does (archive.DetectCompression on the
// magic bytes, then a valid tar header after decompression: a gzip file holding no tar is copied as
// it is), and extracted into the destination directory like `tar -x` as root: modes, owners and times
// from the archive, no whiteout semantics. `--chown` is applied to every extracted entry (BuildKit
// v0.23+, testDockerfileAddChownArchive). Every entry stays inside the destination: a name with `..`
// climbing out of it, or one reaching it through a symlink pointing elsewhere, is refused as docker's
// archive.Untar refuses a "breakout".
//
// gzip uses Node's zlib; bzip2, xz and zstd (none in Node 20's zlib) stream through Debian's
// `bzip2 -dc`, `xz -dc` and `zstd -dc`.
import { spawn } from 'node:child_process';
import { constants as fsConstants, createReadStream, type Stats } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, rm, symlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract as tarExtract, type Header } from 'tar-stream';
import { DockerfileError } from '../errors.js';
import type { Owner } from '../rootfs/in-root.js';
import { cleanEntryName, resolveInRoot, resolveParentInRoot } from '../rootfs/root-path.js';
import type { InstructionSite } from './handler.js';

export type Compression = 'none' | 'gzip' | 'bzip2' | 'xz' | 'zstd';

const TOOLS: Record<Exclude<Compression, 'none' | 'gzip'>, { cmd: string; pkg: string }> = {
  bzip2: { cmd: 'bzip2', pkg: 'bzip2' },
  xz: { cmd: 'xz', pkg: 'xz-utils' },
  zstd: { cmd: 'zstd', pkg: 'zstd' },
};

/** archive.DetectCompression: the compression named by a file's first bytes. */
export function detectCompression(head: Buffer): Compression {
  const starts = (...bytes: number[]): boolean => bytes.every((b, i) => head[i] === b);
  if (starts(0x1f, 0x8b, 0x08)) return 'gzip';
  if (starts(0x42, 0x5a, 0x68)) return 'bzip2';
  if (starts(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) return 'xz';
  if (starts(0x28, 0xb5, 0x2f, 0xfd)) return 'zstd';
  return 'none';
}

/** Whether 512 bytes are a tar header: its checksum matches (POSIX ustar and old v7 tars alike). */
export function isTarHeader(block: Buffer): boolean {
  if (block.length < 512) return false;
  const field = block.subarray(148, 156).toString('latin1').replace(/[\0 ]+$/g, '').trim();
  if (!/^[0-7]+$/.test(field)) return false;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] as number);
  return sum === Number.parseInt(field, 8);
}

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
  /** Absolute destination directory inside the rootfs (created when missing). */
  readonly destDir: string;
  /** `--chown`, applied to every entry; undefined keeps the archive's owners. */
  readonly owner: Owner | undefined;
  readonly site: InstructionSite;
}

type PaxHeader = Omit<Header, 'pax'> & { readonly pax?: Readonly<Record<string, string>> | null };

interface Entry extends AsyncIterable<Buffer> {
  readonly header: Header;
}

const CREATE_FILE = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

export async function extractArchive(o: ExtractOptions): Promise<void> {
  const destRel = resolveInRoot(o.destRoot, o.destDir.replace(/^\/+/, ''));
  const refuse = (name: string, why: string): DockerfileError => new DockerfileError(`ADD ${o.file.split('/').pop() ?? ''}: refusing archive entry ${JSON.stringify(name)}: ${why}`, o.site);
  const inside = (rel: string): boolean => destRel === '' || rel === destRel || rel.startsWith(`${destRel}/`);
  const dirTimes: Array<{ host: string; atime: number; mtime: number }> = [];
  const extract = tarExtract();
  const input = openDecompressed(o.file, o.compression, () => createReadStream(o.file), o.site);
  const piped = pipeline(input, extract).then(
    () => undefined,
    (err: unknown) => err,
  );
  let failure: unknown;
  try {
    for await (const raw of extract) {
      const entry = raw as unknown as Entry;
      const h = entry.header as PaxHeader;
      const name = cleanEntryName(h.name);
      if (name === null) throw refuse(h.name, 'its path climbs out of the destination');
      if (name === '') {
        await drain(entry);
        continue;
      }
      const rel = resolveParentInRoot(o.destRoot, destRel === '' ? name : `${destRel}/${name}`);
      if (!inside(rel)) throw refuse(h.name, 'a symlink leads it out of the destination');
      const host = join(o.destRoot, rel);
      const slash = rel.lastIndexOf('/');
      if (slash > 0) await mkdir(join(o.destRoot, rel.slice(0, slash)), { recursive: true, mode: 0o755 });
      const existing = await lstat(host).catch(() => undefined);
      const { uid, gid } = o.owner ?? ownerOf(h);
      const [atime, mtime] = timesOf(h);
      switch (h.type) {
        case 'directory':
          if (existing !== undefined && !existing.isDirectory()) await rm(host, { recursive: true, force: true });
          if (existing === undefined || !existing.isDirectory()) await mkdir(host, { mode: 0o755 });
          await lchown(host, uid, gid);
          await chmod(host, (h.mode ?? 0o755) & 0o7777);
          dirTimes.push({ host, atime, mtime });
          break;
        case 'file':
        case 'contiguous-file': {
          if (existing !== undefined) await rm(host, { recursive: true, force: true });
          const fh = await open(host, CREATE_FILE, 0o600);
          try {
            for await (const chunk of entry) {
              let off = 0;
              while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
            }
            await fh.chown(uid, gid);
            await fh.chmod((h.mode ?? 0o644) & 0o7777);
            await fh.utimes(atime, mtime);
          } finally {
            await fh.close();
          }
          break;
        }
        case 'symlink':
          if (existing !== undefined) await rm(host, { recursive: true, force: true });
          await symlink(h.linkname ?? '', host);
          await lchown(host, uid, gid);
          await lutimes(host, atime, mtime);
          break;
        case 'link': {
          const target = cleanEntryName(h.linkname ?? '');
          if (target === null || target === '') throw refuse(h.name, 'its link target is outside the destination');
          const targetRel = resolveParentInRoot(o.destRoot, destRel === '' ? target : `${destRel}/${target}`);
          if (!inside(targetRel)) throw refuse(h.name, 'its link target is outside the destination');
          if (existing !== undefined) await rm(host, { recursive: true, force: true });
          await link(join(o.destRoot, targetRel), host);
          break;
        }
        default:
          // Devices and FIFOs: not created, as in the rootfs unpacker (no CAP_MKNOD in a build).
          break;
      }
      await drain(entry);
    }
  } catch (err) {
    failure = err;
  }
  const pipeFailure = await piped;
  if (failure === undefined && pipeFailure !== undefined) failure = pipeFailure;
  if (failure !== undefined) {
    if (failure instanceof DockerfileError) throw failure;
    throw new DockerfileError(`extracting ${o.file.split('/').pop() ?? 'archive'}: ${(failure as Error).message}`, o.site, { cause: failure });
  }
  for (const d of dirTimes.reverse()) {
    // A later entry may have put a symlink where the directory was: never set times through it.
    const st = await lstat(d.host).catch(() => undefined);
    if (st?.isDirectory() === true) await utimes(d.host, d.atime, d.mtime);
  }
}

function ownerOf(h: PaxHeader): Owner {
  const paxUid = h.pax?.['uid'];
  const paxGid = h.pax?.['gid'];
  return {
    uid: paxUid !== undefined ? Number.parseInt(paxUid, 10) : (h.uid ?? 0),
    gid: paxGid !== undefined ? Number.parseInt(paxGid, 10) : (h.gid ?? 0),
  };
}

function timesOf(h: PaxHeader): [number, number] {
  const paxMtime = h.pax?.['mtime'];
  const mtime = paxMtime !== undefined ? Number.parseFloat(paxMtime) : (h.mtime?.getTime() ?? 0) / 1000;
  return [mtime, mtime];
}

async function drain(entry: Entry): Promise<void> {
  for await (const _ of entry) {
    // discard
  }
}
