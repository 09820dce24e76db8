// Test fixtures for rootfs and snapshot tests: tars built in memory (they are tiny) and temp dirs.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, readlink, lstat, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { extract, pack, type Header } from 'tar-stream';
import { nativeFs } from '../../src/rootfs/native-fs.js';

export type TarEntry = Partial<Header> & Pick<Header, 'name'> & { content?: string | Buffer; pax?: Record<string, string> };

/** The bytes of a tar holding `entries` in order. */
export async function tarBytes(entries: readonly TarEntry[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of p as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const e of entries) {
    const { content, ...header } = e;
    const body = content === undefined ? Buffer.alloc(0) : Buffer.from(content);
    await new Promise<void>((resolve, reject) => {
      p.entry({ mtime: new Date(1_600_000_000_000), mode: 0o644, uid: 0, gid: 0, ...header, size: body.length }, body, (err) => (err ? reject(err) : resolve()));
    });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

export async function tarOf(entries: readonly TarEntry[]): Promise<Readable> {
  return Readable.from([await tarBytes(entries)]);
}

export interface ListedEntry {
  readonly name: string;
  readonly type: Header['type'];
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly linkname: string | null;
  readonly content: string;
  readonly pax: Record<string, string> | null;
}

/** Every entry of a tar stream, with content as text. */
export async function listTar(tar: Readable): Promise<ListedEntry[]> {
  const x = extract();
  const out: ListedEntry[] = [];
  const piping = new Promise<void>((resolve, reject) => {
    tar.on('error', reject);
    x.on('error', reject);
    x.on('finish', () => resolve());
    tar.pipe(x as unknown as NodeJS.WritableStream);
  });
  for await (const e of x as unknown as AsyncIterable<AsyncIterable<Buffer> & { header: Header }>) {
    const chunks: Buffer[] = [];
    for await (const c of e) chunks.push(c);
    const h = e.header;
    out.push({ name: h.name, type: h.type, mode: h.mode, uid: h.uid, gid: h.gid, linkname: h.linkname, content: Buffer.concat(chunks).toString(), pax: (h.pax as Record<string, string> | null) ?? null });
  }
  await piping;
  return out;
}

export async function tempDir(prefix = 'kiln-test-'): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

/** A deep listing of a directory (type, mode, owner, content or link target, mtime) to prove it untouched. */
export async function fingerprint(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const host = join(dir, rel);
    const st = await lstat(host);
    let what = '';
    if (st.isSymbolicLink()) what = `-> ${await readlink(host)}`;
    else if (st.isFile()) what = (await readFile(host)).toString('base64');
    out.push(`${rel} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.nlink} ${st.mtimeMs} ${what}`);
    if (st.isDirectory()) for (const n of (await readdir(host)).sort()) await walk(rel === '' ? n : `${rel}/${n}`);
  };
  await walk('');
  return out;
}

/** The `security.capability` bytes setcap writes for `caps` (e.g. `cap_net_raw+ep`), read through the addon. */
export function capabilityOf(caps: string): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-cap-'));
  try {
    const file = join(dir, 'f');
    writeFileSync(file, '');
    execFileSync('setcap', [caps, file]);
    const raw = nativeFs()?.lgetxattr(file, 'security.capability');
    if (raw === null || raw === undefined) throw new Error('setcap wrote no security.capability (is the addon built?)');
    return raw;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
