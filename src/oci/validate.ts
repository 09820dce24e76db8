// The one validator every image from any source, sink or mutation can be checked with.
import { KilnError } from '../errors.js';
import { digestOfBytes } from './digest.js';
import type { Image } from './image.js';
import { isImageManifestMediaType } from './media-types.js';

/** Checks the internal consistency of an image; throws a KilnError naming the first fault. */
export async function validateImage(img: Image, what = 'image'): Promise<void> {
  const fail = (why: string): never => {
    throw new KilnError('INVALID_DOCUMENT', `${what}: ${why}`);
  };
  const mt = await img.mediaType();
  if (!isImageManifestMediaType(mt)) fail(`unexpected manifest media type ${mt}`);
  const raw = await img.rawManifest();
  if (digestOfBytes(raw) !== (await img.digest())) fail('manifest digest does not match its bytes');
  const m = await img.manifest();
  const rawCfg = await img.rawConfig();
  if (digestOfBytes(rawCfg) !== m.config.digest) fail('config digest does not match the manifest');
  if (rawCfg.byteLength !== m.config.size) fail('config size does not match the manifest');
  const cfg = await img.configFile();
  const layers = await img.layers();
  if (layers.length !== m.layers.length) fail('layer count differs between image and manifest');
  if (cfg.rootfs.diff_ids.length !== m.layers.length) {
    fail(`manifest has ${m.layers.length} layers but config has ${cfg.rootfs.diff_ids.length} diff_ids`);
  }
  for (const [i, l] of layers.entries()) {
    const d = m.layers[i];
    if (d === undefined || d.digest !== (await l.digest())) fail(`layer ${i} digest differs from the manifest`);
    if (cfg.rootfs.diff_ids[i] !== (await l.diffId())) fail(`layer ${i} diffID differs from the config`);
  }
  const nonEmpty = (cfg.history ?? []).filter((h) => h.empty_layer !== true).length;
  if (cfg.history !== undefined && cfg.history.length > 0 && nonEmpty !== m.layers.length) {
    fail(`history has ${nonEmpty} non-empty entries for ${m.layers.length} layers`);
  }
}
