import { InvalidReferenceError } from '../errors.js';
import { isDigest, type Digest } from './digest.js';

export const DOCKER_HUB_REGISTRY = 'index.docker.io';

/** A parsed image reference: `registry/repository[:tag][@digest]`, with Docker Hub's defaults applied. */
export interface Reference {
  readonly registry: string;
  readonly repository: string;
  readonly tag: string | undefined;
  readonly digest: Digest | undefined;
  /** The text as the user wrote it, for messages. */
  readonly original: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const REGISTRY = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$/;

/** Parses a reference; with `defaultTag` the tag `latest` is assumed when neither tag nor digest is given. */
export function parseReference(input: string, opts: { defaultTag?: boolean } = {}): Reference {
  const fail = (why: string): never => {
    throw new InvalidReferenceError(`invalid reference ${JSON.stringify(input)}: ${why}`);
  };
  const s = input.trim();
  if (s === '') fail('empty');
  let rest = s;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) fail(`bad digest ${JSON.stringify(d)}`);
    digest = d as Digest;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) fail(`bad tag ${JSON.stringify(tag)}`);
  }
  const parts = rest.split('/');
  let registry = DOCKER_HUB_REGISTRY;
  const first = parts[0] ?? '';
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['))) {
    if (!REGISTRY.test(first)) fail(`bad registry ${JSON.stringify(first)}`);
    registry = first;
    parts.shift();
  }
  if (registry === 'docker.io' || registry === 'registry-1.docker.io') registry = DOCKER_HUB_REGISTRY;
  if (parts.length === 0 || parts.some((p) => !COMPONENT.test(p))) fail('repository must be lowercase letters, digits and separators');
  if (registry === DOCKER_HUB_REGISTRY && parts.length === 1) parts.unshift('library');
  const repository = parts.join('/');
  if (repository.length > 255) fail('repository name too long');
  if (tag === undefined && digest === undefined && opts.defaultTag !== false) tag = 'latest';
  return { registry, repository, tag, digest, original: input };
}

/** `registry/repository:tag` or `registry/repository@digest` (digest wins): what the registry is asked for. */
export function referenceIdentifier(ref: Reference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}

export function formatReference(ref: Reference): string {
  const base = `${ref.registry}/${ref.repository}`;
  if (ref.digest !== undefined) return ref.tag === undefined ? `${base}@${ref.digest}` : `${base}:${ref.tag}@${ref.digest}`;
  return `${base}:${ref.tag ?? 'latest'}`;
}

/** `registry/repository` (kaniko's "name" for digest files: repo@sha256:...). */
export function repositoryName(ref: Reference): string {
  return `${ref.registry}/${ref.repository}`;
}

export function withDigest(ref: Reference, digest: Digest): Reference {
  return { ...ref, digest };
}
