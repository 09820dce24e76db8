#!/usr/bin/env node
// kaniko's `warmer`: fills the base-image cache the executor reads with --cache-dir. CommonJS, and the
// same bundle as bin/executor.js (see load-kiln.js).
'use strict';
require('./load-kiln.js').runMain('warmerMain', 'warmer: it');
