// kaniko's --force-build-metadata: every instruction gets a layer, an empty tar (only the two zero
// blocks that end an archive) where it changed no file, as kaniko's snapshotter writes one then.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { LayerFileCodec } from '../blob/compression.js';
import { writeLayerFile } from '../blob/layer-file.js';
import type { Layer } from '../oci/image.js';

export async function emptyLayer(workDir: string, name: string, codec: LayerFileCodec): Promise<Layer> {
  const dir = join(workDir, 'layers');
  await mkdir(dir, { recursive: true });
  return writeLayerFile(Readable.from([Buffer.alloc(1024)]), join(dir, name), { codec });
}
