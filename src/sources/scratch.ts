// `FROM scratch`: kaniko starts from go-containerregistry's `empty.Image`, a Docker schema 2 image
// with no layers. Its os/architecture/variant come from the target platform here, so the built
// image's config says what it runs on. Env stays unset: the build applies kaniko's default
// PATH (constants.ScratchEnvVars) to any base whose Env is unset, scratch included.
import { assembleImage } from '../oci/assemble.js';
import type { Image } from '../oci/image.js';
import type { ConfigFile, Platform } from '../oci/schemas.js';

export function scratchImage(platform: Platform): Image {
  const config: ConfigFile = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant !== undefined ? { variant: platform.variant } : {}),
    ...(platform['os.version'] !== undefined ? { 'os.version': platform['os.version'] } : {}),
    config: {},
    rootfs: { type: 'layers', diff_ids: [] },
  };
  return assembleImage({ family: 'docker', config, layers: [] });
}
