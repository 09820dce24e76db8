// The read-only interfaces every source produces and every sink consumes (after go-containerregistry).
// Accessors are async because they may be lazy or remote; a Layer's byte accessors reopen the bytes
// on every call, so a sink can read a layer twice and a retry can start over.
import type { Readable } from 'node:stream';
import type { Digest } from './digest.js';
import type { ConfigFile, Descriptor, ImageIndex, Manifest } from './schemas.js';

/** Where a blob is known to live already, so a push to the same registry can mount it instead of uploading. */
export interface BlobOrigin {
  readonly registry: string;
  readonly repository: string;
}

export interface Layer {
  /** Digest of the compressed blob: what the manifest names. */
  digest(): Promise<Digest>;
  /** Digest of the uncompressed tar: what the config's rootfs.diff_ids names. */
  diffId(): Promise<Digest>;
  /** Size of the compressed blob in bytes. */
  size(): Promise<number>;
  mediaType(): Promise<string>;
  /** A fresh stream of the compressed blob on each call. */
  compressed(): Promise<Readable>;
  /** A fresh stream of the uncompressed tar on each call. */
  uncompressed(): Promise<Readable>;
  /** Set when the blob is known to exist in a registry repository. */
  readonly origin?: BlobOrigin | undefined;
}

export interface Image {
  mediaType(): Promise<string>;
  /** The manifest exactly as its bytes are digested. */
  rawManifest(): Promise<Uint8Array>;
  manifest(): Promise<Manifest>;
  digest(): Promise<Digest>;
  /** The config blob exactly as its bytes are digested. */
  rawConfig(): Promise<Uint8Array>;
  configFile(): Promise<ConfigFile>;
  configName(): Promise<Digest>;
  layers(): Promise<readonly Layer[]>;
}

/** A multi-platform image: an OCI index or a Docker manifest list. */
export interface ImageIndexHandle {
  mediaType(): Promise<string>;
  rawManifest(): Promise<Uint8Array>;
  indexManifest(): Promise<ImageIndex>;
  digest(): Promise<Digest>;
  image(desc: Descriptor): Promise<Image>;
}

/** Caches an async thunk so a lazy accessor computes its result once. */
export function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => {
    p ??= fn();
    return p;
  };
}
