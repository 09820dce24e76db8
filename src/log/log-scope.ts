// Where in the build a log line was written: the stage and step running then. With --log-format json
// the logger merges these fields into every record (pino's mixin), so a dashboard can group lines by
// step without parsing their text. One per build, handed down like the logger; never global.
// Stages built at the same time (--jobs) each get their own fields: `isolate` runs a stage in an async
// context of its own, so a line logged by one stage never carries another's stage or step.
// Work a step starts and does not await (a cache push, an early upload, a download) goes on while later
// steps run: `detach` gives it a copy of the fields of the step that started it, so its lines name
// that step, not whichever runs when they are written.
import { AsyncLocalStorage } from 'node:async_hooks';

export type ScopeFields = Readonly<Record<string, string | number>>;

interface Holder {
  fields: ScopeFields;
}

export class LogScope {
  readonly #root: Holder = { fields: {} };
  readonly #local = new AsyncLocalStorage<Holder>();

  get fields(): ScopeFields {
    return this.#holder().fields;
  }

  /** The fields of the step (or stage) starting now, replacing the previous ones. */
  enter(fields: ScopeFields): void {
    this.#holder().fields = fields;
  }

  leave(): void {
    this.#holder().fields = {};
  }

  /** Runs `fn` with fields of its own, starting empty: what it enters is seen only by its own lines. */
  isolate<T>(fn: () => Promise<T>): Promise<T> {
    return this.#local.run({ fields: {} }, fn);
  }

  /** Runs `fn` with `fields` of its own (a copy): `enter` elsewhere does not change what its lines carry. */
  within<T>(fields: ScopeFields, fn: () => T): T {
    return this.#local.run({ fields }, fn);
  }

  /**
   * Runs `fn`, work started now that goes on in the background, with the fields as they are now: its
   * lines keep naming the step that started it after that step has ended.
   */
  detach<T>(fn: () => T): T {
    return this.within(this.fields, fn);
  }

  #holder(): Holder {
    return this.#local.getStore() ?? this.#root;
  }
}

/** `fn` run detached (LogScope.detach) when the context has a scope, else as it is. */
export function inBackground<T>(ctx: { readonly scope?: LogScope | undefined }, fn: () => T): T {
  return ctx.scope === undefined ? fn() : ctx.scope.detach(fn);
}
