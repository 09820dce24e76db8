// One handler per Dockerfile command; the compiler checks every kind has one.
import { add } from './add/add.js';
import { arg } from './arg.js';
import { cmd } from './cmd.js';
import { copy } from './copy/copy.js';
import { entrypoint } from './entrypoint.js';
import { env } from './env.js';
import { expose } from './expose.js';
import type { HandlerTable } from './handler.js';
import { healthcheck } from './healthcheck.js';
import { label } from './label.js';
import { maintainer } from './maintainer.js';
import { onbuild } from './onbuild.js';
import { run } from './run/run.js';
import { shell } from './shell.js';
import { stopsignal } from './stopsignal.js';
import { user } from './user.js';
import { volume } from './volume.js';
import { workdir } from './workdir.js';

export const HANDLERS: HandlerTable = {
  add,
  arg,
  cmd,
  copy,
  entrypoint,
  env,
  expose,
  healthcheck,
  label,
  maintainer,
  onbuild,
  run,
  shell,
  stopsignal,
  user,
  volume,
  workdir,
};
