#!/usr/bin/env node
// kaniko's `executor`. CommonJS (bin/package.json): see load-kiln.js for how it finds the CLI.
'use strict';
require('./load-kiln.js').runMain('main', 'executor: the build');
