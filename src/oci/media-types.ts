export const MediaType = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OciLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerLayerZstd: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
  DockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  DockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  DockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

export type ManifestFamily = 'oci' | 'docker';

export function isIndexMediaType(mt: string): boolean {
  return mt === MediaType.OciIndex || mt === MediaType.DockerManifestList;
}

export function isImageManifestMediaType(mt: string): boolean {
  return mt === MediaType.OciManifest || mt === MediaType.DockerManifest;
}

export function isSchema1MediaType(mt: string): boolean {
  return mt === MediaType.DockerSchema1 || mt === MediaType.DockerSchema1Signed;
}

export type LayerCompression = 'gzip' | 'zstd' | 'none';

export function layerCompression(mt: string): LayerCompression {
  if (mt.endsWith('+zstd') || mt.endsWith('.zstd')) return 'zstd';
  if (mt.endsWith('+gzip') || mt.endsWith('.gzip')) return 'gzip';
  return 'none';
}

/** The layer media type for a compression within a manifest family. */
export function layerMediaType(family: ManifestFamily, compression: LayerCompression): string {
  switch (compression) {
    case 'gzip':
      return family === 'docker' ? MediaType.DockerLayerGzip : MediaType.OciLayerGzip;
    case 'zstd':
      return family === 'docker' ? MediaType.DockerLayerZstd : MediaType.OciLayerZstd;
    case 'none':
      return MediaType.OciLayer;
  }
}

export function manifestMediaType(family: ManifestFamily): string {
  return family === 'docker' ? MediaType.DockerManifest : MediaType.OciManifest;
}

export function configMediaType(family: ManifestFamily): string {
  return family === 'docker' ? MediaType.DockerConfig : MediaType.OciConfig;
}

export function manifestFamily(manifestMediaType: string): ManifestFamily {
  return manifestMediaType === MediaType.DockerManifest || manifestMediaType === MediaType.DockerManifestList
    ? 'docker'
    : 'oci';
}
