import { describe, expect, it } from 'vitest';
import { MediaType } from '../../src/oci/media-types.js';
import { validateImage } from '../../src/oci/validate.js';
import { scratchImage } from '../../src/sources/scratch.js';

describe('scratchImage', () => {
  it('is a valid Docker schema 2 image with no layers for the target platform', async () => {
    const img = scratchImage({ os: 'linux', architecture: 'arm', variant: 'v7' });
    await validateImage(img);
    expect(await img.mediaType()).toBe(MediaType.DockerManifest);
    const m = await img.manifest();
    expect(m.layers).toEqual([]);
    expect(m.config.mediaType).toBe(MediaType.DockerConfig);
    const cfg = await img.configFile();
    expect(cfg).toMatchObject({ os: 'linux', architecture: 'arm', variant: 'v7', rootfs: { type: 'layers', diff_ids: [] } });
    expect(cfg.config.Env).toBeUndefined();
  });
});
