#!/usr/bin/env node
// kaniko's `executor`. CommonJS (bin/package.json): see load-kiln.js for how it finds the CLI.
'use strict';
const { loadMain } = require('./load-kiln.js');

// What a top-level await gave an ES module for free: if the event loop empties while the build is
// still pending (a promise nothing will settle), fail as Node would (13), never exit 0.
let settled = false;
process.on('exit', (code) => {
  if (!settled && code === 0) {
    process.exitCode = 13;
    process.stderr.write('executor: the build never finished (the event loop emptied while it was pending)\n');
  }
});

loadMain()
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
