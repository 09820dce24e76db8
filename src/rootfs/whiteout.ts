// The AUFS whiteout convention the OCI image spec adopted: how a layer says "delete this".

/** `.wh.NAME` in a directory deletes NAME from the layers below. */
export const WHITEOUT_PREFIX = '.wh.';
/** `.wh..wh..opq` in a directory hides everything the layers below put in it. */
export const OPAQUE_WHITEOUT = '.wh..wh..opq';

export function whiteoutName(name: string): string {
  return `${WHITEOUT_PREFIX}${name}`;
}
