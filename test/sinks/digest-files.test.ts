import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256Digest } from '../../src/oci/digest.js';
import { imageNameTagWithDigest, imageNameWithDigest, writeDigestFiles } from '../../src/sinks/digest-files.js';
import { testContext } from './test-layer.js';

const digest = sha256Digest('a'.repeat(64));

describe('digest files', () => {
  let work: string;
  beforeEach(async () => {
    work = await mkdtemp(join(tmpdir(), 'kiln-digests-'));
  });
  afterEach(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('formats image-name-with-digest as kaniko: registry/repository@digest per destination', () => {
    expect(imageNameWithDigest(['gcr.io/foo/bar:123', 'bob/image', 'ubuntu'], digest)).toBe(
      `gcr.io/foo/bar@${digest}\nindex.docker.io/bob/image@${digest}\nindex.docker.io/library/ubuntu@${digest}\n`,
    );
  });

  it('formats image-name-tag-with-digest as kaniko\'s test expects: repository:tag@digest, latest by default', () => {
    // kaniko pkg/executor/push_test.go TestImageNameTagDigestFile
    expect(imageNameTagWithDigest(['gcr.io/foo/bar:123', 'bob/image'], digest)).toBe(
      `gcr.io/foo/bar:123@${digest}\nindex.docker.io/bob/image:latest@${digest}\n`,
    );
  });

  it('writes the three files, the digest file without a newline, creating missing parents', async () => {
    const req = {
      digestFile: join(work, 'a/b/digest'),
      imageNameWithDigestFile: join(work, 'name-digest'),
      imageNameTagWithDigestFile: join(work, 'c/name-tag-digest'),
      destinations: ['127.0.0.1:5000/app:v1'],
    };
    await writeDigestFiles(testContext(), digest, req);
    expect(await readFile(req.digestFile, 'utf8')).toBe(digest);
    expect(await readFile(req.imageNameWithDigestFile, 'utf8')).toBe(`127.0.0.1:5000/app@${digest}\n`);
    expect(await readFile(req.imageNameTagWithDigestFile, 'utf8')).toBe(`127.0.0.1:5000/app:v1@${digest}\n`);
    expect((await stat(join(work, 'a'))).mode & 0o777).toBe(0o700);
    expect((await stat(req.digestFile)).mode & 0o777).toBe(0o644);
    expect((await readdir(join(work, 'a/b')))).toEqual(['digest']);
  });

  it('fails with an OutputError naming the flag when the path cannot be written', async () => {
    await expect(
      writeDigestFiles(testContext(), digest, { digestFile: join(work), destinations: [] }),
    ).rejects.toMatchObject({ code: 'OUTPUT', message: expect.stringContaining('--digest-file') as unknown });
  });
});
