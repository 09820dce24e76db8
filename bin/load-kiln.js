// Loads kiln's CLI as fast as Node 20 allows. `npm run build` makes two copies of it: dist/ (tsc, ~120
// ES modules that import node_modules/) and dist/bundle/kiln.cjs (scripts/bundle.mjs: the same code and
// its dependencies in one CommonJS file, with a V8 code cache beside it). The bundle starts ~0.15 s
// sooner: no module graph to resolve and, with the cache, little source to compile.
//
// The bundle runs through vm.Script because that is the only way Node 20 takes a code cache. It is
// used unless it is missing or older than dist/ (`tsc` was run alone after `npm run build`: dist/ then
// holds the newer code, and is what runs, as it did before there was a bundle).
//
// CommonJS, like bin/executor.js (bin/package.json): a CommonJS entry point starts ~6 ms sooner than an
// ES module, whose loader Node then never sets up.
'use strict';
// fs and path only, up front: `executor version` and `--help` are answered with them alone. The
// others are required where used; node:crypto alone costs ~20 ms of a start (OpenSSL's set-up), which
// the bundle pays anyway when it loads, but those two answers need not.
const { readFileSync, renameSync, statSync, writeFileSync } = require('node:fs');
const { dirname, join } = require('node:path');

const BUNDLE = join(__dirname, '../dist/bundle/kiln.cjs');
const DIST_MAIN = join(__dirname, '../dist/cli/main.js');

/**
 * The bundle's first line, as scripts/bundle.mjs writes it: `// kiln-bundle ` and 32 hex digits that
 * change with its content. The cache file holds the same 32 digits, the SHA-256 of what follows, then
 * V8's data (`.v8cache`) or V8's data compressed with zstd (`.v8cache.zst`, the executor image's: see
 * writeEagerCache). Both checks are ours to make: V8 checks only its version, its flags and the
 * source's length, and trusts the rest (a corrupt cache aborts node; a stale one of the same length
 * would run old code).
 */
const BUNDLE_ID_PREFIX = '// kiln-bundle ';
const BUNDLE_ID_LENGTH = 32;
const CACHE_HEADER = BUNDLE_ID_LENGTH + 32;

/**
 * The CLI entry `name` exports: `main` (the executor) or `warmerMain` (the warmer, in the same bundle:
 * a few KiB more to compile from the code cache, against a second bundle and cache to build and ship).
 * @param {'main' | 'warmerMain'} [name]
 * @returns {Promise<(argv: readonly string[], env: NodeJS.ProcessEnv) => Promise<number>>}
 */
async function loadMain(name = 'main') {
  const bundleTime = statSync(BUNDLE, { throwIfNoEntry: false })?.mtimeMs;
  const distTime = statSync(DIST_MAIN, { throwIfNoEntry: false })?.mtimeMs;
  if (bundleTime !== undefined && (distTime === undefined || distTime <= bundleTime)) {
    // `node --enable-source-maps`: Node's own loader, which reads kiln.cjs.map (stack traces then name
    // src/*.ts), and no code cache; vm.Script would ignore the map.
    return process.sourceMapsEnabled ? require(BUNDLE)[name] : (await loadBundle(BUNDLE)).exports[name];
  }
  return (await import(require('node:url').pathToFileURL(DIST_MAIN).href))[name];
}

/**
 * Runs the CLI entry `name` as the process: its resolved value is the exit code. What a top-level await
 * gave an ES module for free: if the event loop empties while it is still pending (a promise nothing
 * will settle), fail as Node would (13), never exit 0. `what` names it in that message.
 * @param {'main' | 'warmerMain'} name
 * @param {string} what
 */
function runMain(name, what) {
  if (printVersion() || printHelp(name)) return;
  let settled = false;
  process.on('exit', (code) => {
    if (!settled && code === 0) {
      process.exitCode = 13;
      process.stderr.write(`${what} never finished (the event loop emptied while it was pending)\n`);
    }
  });
  loadMain(name)
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
}

/**
 * `executor version` / `--version` alone, answered without compiling the bundle (about half of a
 * start-up): the lines src/cli/version.ts `versionText` prints, from package.json and the commit that
 * scripts/bundle.mjs wrote beside the bundle. Only when the bundle is what would run (else dist/ does
 * it, with its own commit: unknown). test/cli/version.test.ts holds both to the same text.
 */
function printVersion() {
  const args = process.argv.slice(2);
  if (args.length !== 1 || (args[0] !== 'version' && args[0] !== '--version')) return false;
  const bundleTime = statSync(BUNDLE, { throwIfNoEntry: false })?.mtimeMs;
  const distTime = statSync(DIST_MAIN, { throwIfNoEntry: false })?.mtimeMs;
  if (bundleTime === undefined || (distTime !== undefined && distTime > bundleTime)) return false;
  let commit;
  let version;
  try {
    commit = readFileSync(join(dirname(BUNDLE), 'commit.txt'), 'utf8').trim() || 'unknown';
    const pkg = JSON.parse(readFileSync(join(__dirname, '../package.json'), 'utf8'));
    version = typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return false;
  }
  process.stdout.write(`Kaniko version : v${version}\nkiln v${version} (commit ${commit}) on Node.js ${process.version}\n`);
  return true;
}

/** The file beside the bundle that holds `--help`'s text for the CLI entry `name` (scripts/bundle.mjs). */
function helpFile(name) {
  return join(dirname(BUNDLE), name === 'warmerMain' ? 'help-warmer.txt' : 'help-executor.txt');
}

/**
 * `--help` (or `-h`) alone, answered from the text scripts/bundle.mjs had the bundle print (~0.1 s of
 * loading saved). Only when stdout is no terminal: commander wraps the text to a terminal's width, and
 * the file holds what it prints otherwise (80 columns). Only when the bundle is what would run, as for
 * the version. test/cli/help.test.ts holds the file to the bundle's own answer.
 */
function printHelp(name) {
  const args = process.argv.slice(2);
  if (args.length !== 1 || (args[0] !== '--help' && args[0] !== '-h') || process.stdout.isTTY) return false;
  const bundleTime = statSync(BUNDLE, { throwIfNoEntry: false })?.mtimeMs;
  const distTime = statSync(DIST_MAIN, { throwIfNoEntry: false })?.mtimeMs;
  if (bundleTime === undefined || (distTime !== undefined && distTime > bundleTime)) return false;
  let text;
  try {
    text = readFileSync(helpFile(name), 'utf8');
  } catch {
    return false;
  }
  if (text === '') return false;
  process.stdout.write(text);
  return true;
}

/**
 * Compiles and runs the bundle as Node's CommonJS loader would (the same wrapper, so stack traces keep
 * its line numbers), with its code cache when one matches; an `import()` left in it works as in a file
 * Node loaded itself.
 */
function runBundle(file, { cache = true } = {}) {
  const source = readSource(file);
  return compileAndRun(file, source, cache ? matchingCache(file, source) : undefined);
}

/**
 * runBundle for the CLI: the image's compressed cache is unpacked on the thread pool while this
 * thread checks its SHA-256 (loading node:crypto, which the bundle needs anyway): ~5 ms sooner.
 */
async function loadBundle(file) {
  const source = readSource(file);
  const id = bundleId(source);
  const zlib = require('node:zlib');
  const cache = id !== undefined && typeof zlib.zstdDecompress === 'function' ? cacheFile(`${file}.v8cache.zst`, id) : undefined;
  if (cache === undefined) return compileAndRun(file, source, id === undefined ? undefined : plainCache(file, id));
  const unpacking = new Promise((resolve) => {
    zlib.zstdDecompress(cache.subarray(CACHE_HEADER), { chunkSize: UNPACKED_CHUNK }, (err, data) => resolve(err ? undefined : data));
  });
  const whole = intact(cache);
  const data = await unpacking;
  return compileAndRun(file, source, whole && data !== undefined ? data : plainCache(file, id));
}

function readSource(file) {
  const bytes = readFileSync(file);
  // scripts/bundle.mjs writes ASCII only: latin1 is then the same text, ~15 times faster to decode.
  return require('node:buffer').isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
}

function compileAndRun(file, source, cachedData) {
  const vm = require('node:vm');
  const importModuleDynamically = vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER;
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) { ${source}\n})`, {
    filename: file,
    cachedData,
    ...(importModuleDynamically !== undefined ? { importModuleDynamically } : {}),
  });
  const module = { exports: {} };
  script.runInThisContext()(module.exports, require('node:module').createRequire(file), module, file, dirname(file));
  return { exports: module.exports, script };
}

function bundleId(source) {
  return source.startsWith(BUNDLE_ID_PREFIX) ? source.slice(BUNDLE_ID_PREFIX.length, BUNDLE_ID_PREFIX.length + BUNDLE_ID_LENGTH) : undefined;
}

/**
 * V8's data for the bundle, from `.v8cache.zst` where this node has zstd (Node 22.15 and later: the
 * executor image's), else from `.v8cache`; undefined when neither matches the bundle.
 */
function matchingCache(file, source) {
  const id = bundleId(source);
  if (id === undefined) return undefined;
  const zlib = require('node:zlib');
  if (typeof zlib.zstdDecompressSync === 'function') {
    const cache = cacheFile(`${file}.v8cache.zst`, id);
    if (cache !== undefined && intact(cache)) {
      try {
        return zlib.zstdDecompressSync(cache.subarray(CACHE_HEADER), { chunkSize: UNPACKED_CHUNK });
      } catch {
        // Unreadable: as if there were none.
      }
    }
  }
  return plainCache(file, id);
}

/** V8's data from `.v8cache` (the top-level cache `npm run build` makes), if it matches bundle `id`. */
function plainCache(file, id) {
  const cache = cacheFile(`${file}.v8cache`, id);
  return cache !== undefined && intact(cache) ? cache.subarray(CACHE_HEADER) : undefined;
}

/** One output chunk larger than the unpacked cache (2.6 MB): the default 16 KiB ones take ~40% longer. */
const UNPACKED_CHUNK = 8 << 20;

/** The cache file `path`, header included, if it is one for the bundle whose id is `id`. */
function cacheFile(path, id) {
  let cache;
  try {
    cache = readFileSync(path);
  } catch {
    return undefined;
  }
  return cache.length > CACHE_HEADER && cache.toString('latin1', 0, BUNDLE_ID_LENGTH) === id ? cache : undefined;
}

/** Whether what follows a cache file's header has the SHA-256 the header holds. */
function intact(cache) {
  return require('node:crypto').createHash('sha256').update(cache.subarray(CACHE_HEADER)).digest().equals(cache.subarray(BUNDLE_ID_LENGTH, CACHE_HEADER));
}

/** Writes `data` after the bundle's header to `path`, replacing the file whole. */
function writeCacheFile(file, path, data) {
  const id = bundleId(readFileSync(file, 'latin1'));
  if (id === undefined) throw new Error(`${file} does not start with ${BUNDLE_ID_PREFIX}`);
  writeFileSync(`${path}.tmp`, Buffer.concat([Buffer.from(id, 'latin1'), require('node:crypto').createHash('sha256').update(data).digest(), data]));
  renameSync(`${path}.tmp`, path);
}

/**
 * Saves the code cache of a script `runBundle` ran (scripts/bundle.mjs: what the bundle's top level
 * compiles; every other function is compiled when first called).
 */
function writeCache(file, script) {
  writeCacheFile(file, `${file}.v8cache`, script.createCachedData());
}

/**
 * The executor image's cache (scripts/make-executor-root.sh): every function of the bundle compiled
 * (V8's --no-lazy while it compiles), so that a build compiles none of the ~900 it runs: ~20-30 ms
 * less a small build in the container. Which functions a cache made after a real build holds depends on
 * timing, and the image must come out the same every time (--reproducible); this one holds all of
 * them whatever ran. It is 2.6 MB, 0.90 MB with zstd (-19), which keeps the image under its 120 MB;
 * unpacking it takes ~5 ms. --lazy again before V8 serializes: it hashes the flags as they are then,
 * and the image's node runs with none. Needs zstd in node:zlib (the image's Node 24).
 */
function writeEagerCache(file) {
  const v8 = require('node:v8');
  const zlib = require('node:zlib');
  if (typeof zlib.zstdCompressSync !== 'function') throw new Error(`node ${process.version} has no zstd in node:zlib`);
  v8.setFlagsFromString('--no-lazy');
  let script;
  try {
    script = runBundle(file, { cache: false }).script;
  } finally {
    v8.setFlagsFromString('--lazy');
  }
  const data = zlib.zstdCompressSync(script.createCachedData(), { params: { [zlib.constants.ZSTD_c_compressionLevel]: 19 } });
  writeCacheFile(file, `${file}.v8cache.zst`, data);
}

module.exports = { BUNDLE, BUNDLE_ID_PREFIX, BUNDLE_ID_LENGTH, helpFile, loadBundle, loadMain, runBundle, runMain, writeCache, writeEagerCache };
