// The state a stage carries from one instruction to the next: an immutable value; handlers return a
// new one. The image config is the part that ends up in the image; ARG values never do.
import type { EscapeChar } from '../dockerfile/instructions.js';
import type { Lookup } from '../dockerfile/expand.js';
import type { ContainerConfig } from '../oci/schemas.js';

export interface StageState {
  readonly config: ContainerConfig;
  /** ARGs declared in this stage so far and their values (undefined: declared, no value). */
  readonly args: ReadonlyMap<string, string | undefined>;
  /** MAINTAINER, recorded as the config's author. */
  readonly author: string | undefined;
  readonly escape: EscapeChar;
  /** Whether this stage set CMD itself: ENTRYPOINT resets an inherited CMD only (BuildKit's cmdSet). */
  readonly cmdSet: boolean;
}

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const DEFAULT_SHELL: readonly string[] = ['/bin/sh', '-c'];

export function envEntries(config: ContainerConfig): Array<[string, string]> {
  return (config.Env ?? []).map((kv) => {
    const i = kv.indexOf('=');
    return i < 0 ? [kv, ''] : [kv.slice(0, i), kv.slice(i + 1)];
  });
}

export function getEnv(config: ContainerConfig, name: string): string | undefined {
  return envEntries(config).find(([k]) => k === name)?.[1];
}

/** A new config with `name=value` set in Env, replacing an earlier value in place (docker keeps the order). */
export function withEnv(config: ContainerConfig, name: string, value: string): ContainerConfig {
  const env = [...(config.Env ?? [])];
  const i = env.findIndex((kv) => kv === name || kv.startsWith(`${name}=`));
  if (i >= 0) env[i] = `${name}=${value}`;
  else env.push(`${name}=${value}`);
  return { ...config, Env: env };
}

/**
 * Variables for word expansion: ENV wins over an ARG of the same name (Dockerfile reference, "Using
 * ARG variables": "Environment variables defined using the ENV instruction always override an ARG
 * instruction of the same name").
 */
export function expansionLookup(state: StageState): Lookup {
  const env = new Map(envEntries(state.config));
  return (name) => (env.has(name) ? env.get(name) : state.args.get(name));
}

/** What a RUN process sees: ENV, then the ARGs in scope that ENV does not override, then a default PATH. */
export function runEnvironment(state: StageState, extra: ReadonlyMap<string, string>): string[] {
  const out = new Map(envEntries(state.config));
  for (const [k, v] of state.args) if (!out.has(k) && v !== undefined) out.set(k, v);
  for (const [k, v] of extra) if (!out.has(k)) out.set(k, v);
  if (!out.has('PATH')) out.set('PATH', DEFAULT_PATH);
  return [...out].map(([k, v]) => `${k}=${v}`);
}

export function shellOf(state: StageState): readonly string[] {
  const s = state.config.Shell;
  return s !== undefined && s !== null && s.length > 0 ? s : DEFAULT_SHELL;
}
