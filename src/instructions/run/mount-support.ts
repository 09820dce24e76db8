// What RUN --mount (and ADD <git URL>) needs from the build, apart from the handler contract, so that
// handler.ts can name it without importing RUN's machinery (which itself uses the contract).
import type { SecretMask } from '../../log/logger.js';
import type { SecretSource } from './secret-source.js';

export interface RunMountSupport {
  /** Root of the persistent `type=cache` directories (`--mount-cache-dir`). */
  readonly cacheDir: string;
  /** A directory of the build's work dir for per-RUN mount sources (secret files, rw copies). */
  readonly scratchDir: string;
  /** `--secret` sources by id. */
  readonly secrets: ReadonlyMap<string, SecretSource>;
  /** `--ssh` agent sockets by id. */
  readonly sshAgents: ReadonlyMap<string, string>;
  /** Secret values are added here before use, so no log line can print them. */
  readonly mask: SecretMask;
}
