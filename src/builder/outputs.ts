// Where the built image goes: the registry first (so a refused push writes nothing else), then the
// local outputs, then the digest files, which name what was produced.
import { RegistryError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import type { Image } from '../oci/image.js';
import { pushImage } from '../sinks/registry-sink.js';
import { writeDigestFiles } from '../sinks/digest-files.js';
import { writeOciLayout } from '../sinks/layout-sink.js';
import { tarballRepoTag, writeDockerTarball } from '../sinks/tarball-sink.js';
import type { BuildContext } from './build-deps.js';

export async function writeOutputs(bctx: BuildContext, image: Image): Promise<Digest> {
  const o = bctx.request.outputs;
  let digest = await image.digest();
  const written = o.destinations.map((d) => d.original);
  if (!o.noPush) {
    // Layers uploaded while they were written: the push's HEAD of each then finds it in place.
    const startedAt = bctx.transfers?.now() ?? Date.now();
    await bctx.earlyUploads?.settle();
    const cache = bctx.layerCache;
    digest = await pushImage(bctx.pushClient, image, o.destinations, bctx, {
      ignoreImmutableTagErrors: bctx.request.registry.pushIgnoreImmutableTagErrors,
      // Layers the build just stored in the layer cache: mounted from there, not uploaded twice.
      ...(cache !== undefined ? { mountSource: (d: string) => cache.mountSource(d) } : {}),
    }).catch((err: unknown) => {
      // kaniko's words; without them a registry gone mid-push says only `unable to reach registry ...`.
      if (!(err instanceof RegistryError) || written.some((w) => err.message.includes(w))) throw err;
      throw err.within(`failed to push to destination ${written.join(', ')}`);
    });
    bctx.report.pushed(written, digest, startedAt);
  } else {
    bctx.log.info('Skipping push to container registry due to --no-push flag');
  }
  if (o.tarPath !== undefined) {
    await writeDockerTarball(image, o.tarPath, written.map(tarballRepoTag), { ctx: bctx });
    bctx.log.info(`Wrote image to tarball ${o.tarPath}`);
  }
  if (o.ociLayoutPath !== undefined) {
    await writeOciLayout(image, o.ociLayoutPath, { ctx: bctx });
    bctx.log.info(`Wrote image to OCI layout ${o.ociLayoutPath}`);
  }
  await writeDigestFiles(bctx, digest, {
    digestFile: o.digestFile,
    imageNameWithDigestFile: o.imageNameWithDigestFile,
    imageNameTagWithDigestFile: o.imageNameTagWithDigestFile,
    destinations: written,
  });
  return digest;
}
