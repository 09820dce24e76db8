// `RUN --mount=type=...,key=value,...`, after BuildKit's instructions/commands_runmount.go
// (`parseMount`, `validateMount`). The value is one CSV record (Go encoding/csv, so `"a,b"` quotes a
// comma). Values stay RAW: BuildKit expands them when RUN is dispatched. Numeric options are parsed
// here, so unlike BuildKit a `$var` in mode/uid/gid/size is rejected rather than expanded.

import type { Mount, MountSharing, MountType } from './instructions.js';

const MOUNT_TYPES: ReadonlySet<string> = new Set<MountType>(['bind', 'cache', 'tmpfs', 'secret', 'ssh']);
const SHARING: ReadonlySet<string> = new Set<MountSharing>(['shared', 'private', 'locked']);

/** One CSV record, as Go's encoding/csv reads it (no lazy quotes). */
export function parseCsvRecord(s: string, fail: (detail: string) => never): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    let field = '';
    if (s[i] === '"') {
      i++;
      for (;;) {
        if (i >= s.length) fail(`failed to parse csv mounts: extraneous or missing " in quoted-field`);
        const c = s[i] as string;
        if (c === '"') {
          if (s[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += c;
        i++;
      }
      if (i < s.length && s[i] !== ',') fail(`failed to parse csv mounts: extraneous or missing " in quoted-field`);
    } else {
      while (i < s.length && s[i] !== ',') {
        if (s[i] === '"') fail(`failed to parse csv mounts: bare " in non-quoted-field`);
        field += s[i] as string;
        i++;
      }
    }
    fields.push(field);
    if (i >= s.length) return fields;
    i++; // ','
  }
}

function parseBool(key: string, value: string, fail: (d: string) => never): boolean {
  // Go's strconv.ParseBool.
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(value)) return false;
  return fail(`invalid value for ${key}: ${value}`);
}

function parseUint(key: string, value: string, radix: 8 | 10, fail: (d: string) => never): number {
  const ok = radix === 8 ? /^[0-7]+$/.test(value) : /^[0-9]+$/.test(value);
  const n = ok ? Number.parseInt(value, radix) : Number.NaN;
  if (!Number.isSafeInteger(n) || n > 0xffffffff) fail(`invalid value ${value} for ${key}`);
  return n;
}

/** docker/go-units RAMInBytes: `64m`, `1g`, `512kb`, binary multiples. */
function parseRamBytes(value: string, fail: (d: string) => never): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp])?(?:i?b)?$/i.exec(value.trim());
  if (m === null) return fail(`invalid value for size: ${value}`);
  const unit = (m[2] ?? '').toLowerCase();
  const power = unit === '' ? 0 : 'kmgtp'.indexOf(unit) + 1;
  return Math.floor(Number.parseFloat(m[1] as string) * 1024 ** power);
}

/** Parses one `--mount` value. */
export function parseMount(value: string, fail: (detail: string) => never): Mount {
  let type: MountType = 'bind';
  let from: string | undefined;
  let source: string | undefined;
  let target: string | undefined;
  let id: string | undefined;
  let env: string | undefined;
  let sharing: MountSharing | undefined;
  let readOnly: boolean | undefined; // undefined: the type's default ("roAuto")
  let required = false;
  let size: number | undefined;
  let mode: number | undefined;
  let uid: number | undefined;
  let gid: number | undefined;

  for (const field of parseCsvRecord(value, fail)) {
    const eq = field.indexOf('=');
    const key = (eq >= 0 ? field.slice(0, eq) : field).toLowerCase();
    const v = eq >= 0 ? field.slice(eq + 1) : undefined;
    if (v === undefined) {
      switch (key) {
        case 'readonly':
        case 'ro':
          readOnly = true;
          continue;
        case 'readwrite':
        case 'rw':
          readOnly = false;
          continue;
        case 'required':
          if (type !== 'secret' && type !== 'ssh') fail(`unexpected key '${key}' for mount type '${type}'`);
          required = true;
          continue;
        default:
          fail(`invalid field '${field}' must be a key=value pair`);
      }
    }
    const val = v as string;
    switch (key) {
      case 'type': {
        const t = val.toLowerCase();
        if (!MOUNT_TYPES.has(t)) fail(`unsupported mount type "${val}"`);
        type = t as MountType;
        break;
      }
      case 'from':
        // BuildKit: "'from' doesn't support variable expansion, define alias stage instead".
        if (/\$./.test(val)) fail(`'from' doesn't support variable expansion, define alias stage instead`);
        from = val;
        break;
      case 'source':
      case 'src':
        source = val;
        break;
      case 'target':
      case 'dst':
      case 'destination':
        target = val;
        break;
      case 'readonly':
      case 'ro':
        readOnly = parseBool(key, val, fail);
        break;
      case 'readwrite':
      case 'rw':
        readOnly = !parseBool(key, val, fail);
        break;
      case 'required':
        if (type !== 'secret' && type !== 'ssh') fail(`unexpected key '${key}' for mount type '${type}'`);
        required = parseBool(key, val, fail);
        break;
      case 'size':
        if (type !== 'tmpfs') fail(`unexpected key '${key}' for mount type '${type}'`);
        size = parseRamBytes(val, fail);
        break;
      case 'id':
        id = val;
        break;
      case 'env':
        if (type !== 'secret') fail(`unexpected key '${key}' for mount type '${type}'`);
        env = val;
        break;
      case 'sharing': {
        const s = val.toLowerCase();
        if (!SHARING.has(s)) fail(`unsupported sharing value "${val}"`);
        sharing = s as MountSharing;
        break;
      }
      case 'mode':
        mode = parseUint('mode', val, 8, fail);
        break;
      case 'uid':
        uid = parseUint('uid', val, 10, fail);
        break;
      case 'gid':
        gid = parseUint('gid', val, 10, fail);
        break;
      default:
        fail(`unexpected key '${key}' in '${field}'`);
    }
  }

  const fileInfoAllowed = type === 'secret' || type === 'ssh' || type === 'cache';
  if (!fileInfoAllowed) {
    if (mode !== undefined) fail(`mode not allowed for "${type}" type mounts`);
    if (uid !== undefined) fail(`uid not allowed for "${type}" type mounts`);
    if (gid !== undefined) fail(`gid not allowed for "${type}" type mounts`);
  }
  if (sharing !== undefined && type !== 'cache') fail(`invalid cache sharing set for ${type} mount`);
  const fileInfo = { ...(mode === undefined ? {} : { mode }), ...(uid === undefined ? {} : { uid }), ...(gid === undefined ? {} : { gid }) };
  const opt = <K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } =>
    (v === undefined ? {} : { [k]: v }) as { [P in K]?: V };

  switch (type) {
    case 'bind':
      if (target === undefined || target === '') fail('mount type=bind requires a target');
      return { type, target, ...opt('source', source), ...opt('from', from), readOnly: readOnly ?? true };
    case 'cache':
      if (target === undefined || target === '') fail('mount type=cache requires a target');
      return {
        type,
        target,
        ...opt('id', id),
        sharing: sharing ?? 'shared',
        ...opt('source', source),
        ...opt('from', from),
        readOnly: readOnly ?? false,
        ...fileInfo,
      };
    case 'tmpfs':
      if (target === undefined || target === '') fail('mount type=tmpfs requires a target');
      if (from !== undefined) fail('tmpfs mount should not have a from');
      return { type, target, ...opt('size', size) };
    case 'secret': {
      if (from !== undefined) fail('secret mount should not have a from');
      if (source !== undefined && id !== undefined) fail("both source and id can't be set");
      const secretId = id ?? source; // `source` is an alias of `id` for secrets
      if (secretId === undefined && target === undefined && env === undefined) {
        fail('invalid secret mount. one of source, target required');
      }
      return { type, ...opt('id', secretId), ...opt('target', target), ...opt('env', env), required, ...fileInfo };
    }
    case 'ssh':
      if (from !== undefined) fail('ssh mount should not have a from');
      return { type, ...opt('id', id ?? source), ...opt('target', target), required, ...fileInfo };
  }
}
