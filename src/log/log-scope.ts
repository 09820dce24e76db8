// Where in the build a log line was written: the stage and step running then. With --log-format json
// the logger merges these fields into every record (pino's mixin), so a dashboard can group lines by
// step without parsing their text. One per build, handed down like the logger; never global.
export type ScopeFields = Readonly<Record<string, string | number>>;

export class LogScope {
  #fields: ScopeFields = {};

  get fields(): ScopeFields {
    return this.#fields;
  }

  /** The fields of the step (or stage) starting now, replacing the previous ones. */
  enter(fields: ScopeFields): void {
    this.#fields = fields;
  }

  leave(): void {
    this.#fields = {};
  }
}
