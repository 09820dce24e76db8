// What the whole build shares: dependencies built once by the CLI, and the clients and paths derived
// from the request. Passed down explicitly; nothing global.
import type { Writable } from 'node:stream';
import type { IgnoreList } from '../rootfs/ignore-list.js';
import type { SecretMask } from '../log/logger.js';
import type { RunContext } from '../log/run-context.js';
import type { RegistryClient } from '../registry/client.js';
import type { ContainerIsolation } from '../sandbox/container-sandbox.js';
import type { BuildReport } from './build-report.js';
import type { EarlyUploads } from './early-uploads.js';
import type { LayerCache } from './layer-cache.js';
import type { BuildRequest } from './build-request.js';
import type { RootfsArea } from './rootfs-area.js';

export interface BuildDeps extends RunContext {
  /** The host PATH, to find helper programs (bwrap). */
  readonly hostPath: string | undefined;
  readonly mask: SecretMask;
  readonly stdout: Writable;
  readonly stderr: Writable;
}

export interface BuildContext extends BuildDeps {
  readonly request: BuildRequest;
  readonly pullClient: RegistryClient;
  readonly pushClient: RegistryClient;
  readonly ignore: IgnoreList;
  /** Absolute path of the bwrap binary (sandbox mode). */
  readonly bwrap: string | undefined;
  /** Where stage filesystems live (sandbox mode): the work dir, or a tmpfs under it. */
  readonly area: RootfsArea;
  /** `--ssh`: the agent socket behind each id (kiln's own agent for key files). */
  readonly sshAgents: ReadonlyMap<string, string>;
  /** `--cache`: the registry layer cache, else undefined. */
  readonly layerCache: LayerCache | undefined;
  /** Large layers of output stages uploaded to the first destination while they are written, when the build pushes (early-uploads.ts). */
  readonly earlyUploads?: EarlyUploads | undefined;
  /** Container mode: how RUN is isolated, decided by a probe at the first RUN and shared by every stage (run-isolation.ts). */
  readonly runIsolation: () => Promise<ContainerIsolation>;
  /** Steps, times, layers and cache outcomes as they happen: the JSON events and the summary. */
  readonly report: BuildReport;
}
