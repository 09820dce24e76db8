#!/usr/bin/env node
// kaniko's `warmer`: fills the base-image cache the executor reads with --cache-dir. CommonJS, and the
// same bundle as bin/executor.js (see load-kiln.js).
'use strict';
const { loadMain } = require('./load-kiln.js');

// As bin/executor.js: an event loop that empties while the warmer is pending is a failure, never 0.
let settled = false;
process.on('exit', (code) => {
  if (!settled && code === 0) {
    process.exitCode = 13;
    process.stderr.write('warmer: it never finished (the event loop emptied while it was pending)\n');
  }
});

loadMain('warmerMain')
  .then((main) => main(process.argv, process.env))
  .then(
    (code) => {
      settled = true;
      process.exitCode = code;
    },
    (err) => {
      settled = true;
      throw err;
    },
  );
