// What the lazily loaded cloud modules (aws.ts, gcp.ts, azure.ts) take and give. A leaf with types
// only: those modules are bundled apart from the CLI (scripts/bundle.mjs), so they import no class of
// the CLI's (an `instanceof` across two bundles never holds); errors come back through `fail`.
import type { Readable } from 'node:stream';

/** Makes the error the caller throws: `detail` is one line and names no secret. */
export type Fail = (detail: string, cause: unknown) => Error;

export interface CloudCall {
  /** The environment the SDK's settings come from (kiln's own; the SDKs also read process.env). */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly signal: AbortSignal;
  readonly fail: Fail;
  /** Registers a secret the call came across, so that no log line can show it. */
  readonly secret: (value: string | undefined) => void;
}

/** An object being downloaded: its bytes, as they arrive. */
export interface CloudObject {
  readonly body: Readable;
}

/** A registry login a cloud gave: a user and password, or an OAuth2 refresh token. */
export type CloudRegistryLogin =
  | { readonly kind: 'basic'; readonly username: string; readonly password: string }
  | { readonly kind: 'identity-token'; readonly token: string };
