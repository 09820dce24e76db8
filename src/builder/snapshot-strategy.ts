// Chooses how a stage finds what each RUN changed: on an overlay mount (cost of the change) or by
// walking the rootfs (cost of the rootfs). `auto` takes the overlay whenever one can be mounted: in
// sandbox mode, as root, with util-linux's unshare/mount/setpriv and kiln's native addon (for the
// overlay's xattrs); anything missing falls back to the walk, with the reason in the log.
import { KilnError } from '../errors.js';
import { nativeFs } from '../rootfs/native-fs.js';
import { probeOverlay, type OverlayTools } from '../sandbox/overlay-run.js';
import type { BuildContext } from './build-deps.js';
import { findExecutable } from './find-executable.js';

/** The overlay tools when RUN should go through an overlay in `scratch`, else undefined (walk). */
export async function chooseOverlay(bctx: BuildContext, scratch: string): Promise<OverlayTools | undefined> {
  const wanted = bctx.request.snapshotStrategy;
  if (wanted === 'walk') return undefined;
  const why = await overlayUnavailable(bctx, scratch);
  if (why === undefined) return toolsOf(bctx);
  if (wanted === 'overlay') throw new KilnError('SANDBOX', `--snapshot-strategy=overlay: ${why}`);
  bctx.log.info(`Snapshots walk the rootfs: no overlay (${why})`);
  return undefined;
}

function toolsOf(bctx: BuildContext): OverlayTools | undefined {
  const find = (name: string): string | undefined => findExecutable(name, bctx.hostPath);
  const unshare = find('unshare');
  const mount = find('mount');
  const setpriv = find('setpriv');
  const sh = find('sh');
  if (unshare === undefined || mount === undefined || setpriv === undefined || sh === undefined) return undefined;
  return { unshare, mount, setpriv, sh };
}

async function overlayUnavailable(bctx: BuildContext, scratch: string): Promise<string | undefined> {
  if (bctx.request.runMode !== 'sandbox') return 'container mode runs RUN without a sandbox of its own';
  if (nativeFs() === null) return 'the native addon is not built';
  const tools = toolsOf(bctx);
  if (tools === undefined) return 'unshare, mount, setpriv or sh not found on PATH';
  try {
    return await probeOverlay(tools, scratch);
  } catch (err) {
    return (err as Error).message;
  }
}
