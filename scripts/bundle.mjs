// The executor's fast-start copy of the CLI (the second half of `npm run build`, after tsc):
//
//   dist/bundle/kiln.cjs          dist/cli/main.js as tsc emitted it, and everything it imports from
//                                 dist/ and node_modules/, in one CommonJS file (esbuild)
//   dist/bundle/kiln.cjs.map      its source map, through dist/'s maps back to src/*.ts: read only by
//                                 `node --enable-source-maps bin/executor.js` (stack traces name src/*.ts)
//   dist/bundle/kiln.cjs.v8cache  V8's code cache for it, made by running the bundle with this node
//   dist/bundle/kiln-aws.cjs      dist/cloud/aws.js and the AWS SDK; kiln-gcp.cjs and kiln-azure.cjs the
//                                 same for Google's and Microsoft's: required by src/cloud/load.ts only
//                                 when a build uses that cloud, so that the SDKs (several MB) cost the
//                                 builds that use none of them nothing at start-up. No code cache: they
//                                 are compiled when used (tens of ms against the download they serve).
//                                 Minified: they are most of kiln's share of the image otherwise.
//
// bin/load-kiln.js loads it. Why CommonJS: Node 20 gives a code cache to vm.Script only, never to an
// ES module. Why one file: resolving and loading ~150 modules costs more than compiling them.
//
//   node scripts/bundle.mjs        (after tsc -p tsconfig.json)
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, formatMessagesSync } from 'esbuild';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const loader = join(repo, 'bin/load-kiln.js');
const { BUNDLE, BUNDLE_ID_LENGTH, BUNDLE_ID_PREFIX, helpFile } = createRequire(import.meta.url)(loader);
const entry = join(repo, 'dist/cli/main.js');

// src/rootfs/native-fs.ts finds the addon at ADDON from its own import.meta.url, which in the bundle is
// the bundle's URL: that holds while the bundle sits two directories below the repository (dist/bundle/,
// as dist/rootfs/ does), here and in the executor image.
const ADDON = '../../build/Release/kiln_native.node';
if (relative(repo, dirname(BUNDLE)).split('/').length !== 2) throw new Error(`${BUNDLE} must be two levels below ${repo}: see ADDON`);

if (!existsSync(entry)) {
  console.error(`bundle: ${relative(repo, entry)} is missing: run tsc -p tsconfig.json first`);
  process.exit(1);
}

/** What `executor version` names: $KILN_COMMIT (the executor image's build passes it in), else this tree's HEAD. */
function commit() {
  if (process.env['KILN_COMMIT']) return process.env['KILN_COMMIT'];
  try {
    return execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

// The cloud modules stay out of the main bundle: src/cloud/load.ts requires their own bundles instead.
const CLOUD = ['aws', 'gcp', 'azure'];
const cloudExternal = {
  name: 'cloud-external',
  setup(b) {
    b.onResolve({ filter: /^\.\/(aws|gcp|azure)\.js$/ }, (args) => (args.importer.endsWith(`${join('cloud', 'load.js')}`) ? { path: args.path, external: true } : undefined));
  },
};

// Code the bundle would carry and never run, left out: a third of it, and of the executor image's
// code cache (every function compiled: bin/load-kiln.js writeEagerCache), whose size counts against
// the image's.
// - zod's error messages in 40 languages other than English (~300 KB): zod's classic and core entry
//   points re-export every locale as a namespace (`z.locales`), so no bundler can drop them; kiln uses
//   none (zod's default, English, is set from locales/en.js directly). The stub keeps `locales.en`.
// - web-streams-polyfill (~125 KB): fetch-blob (node-fetch's) requires it only where globalThis has no
//   ReadableStream, which every Node kiln runs on has (18 and later).
const ZOD_LOCALES = join(repo, 'node_modules/zod/v4/locales');
const POLYFILL = /^web-streams-polyfill(\/|$)/;
const unusedCode = {
  name: 'unused-code',
  setup(b) {
    b.onResolve({ filter: /\/locales\/index\.js$/ }, (args) =>
      resolve(args.resolveDir, args.path) === join(ZOD_LOCALES, 'index.js') ? { path: join(ZOD_LOCALES, 'index.js'), namespace: 'zod-locales-en' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'zod-locales-en' }, () => ({
      contents: `export { default as en } from ${JSON.stringify(join(ZOD_LOCALES, 'en.js'))};\n`,
      resolveDir: ZOD_LOCALES,
      loader: 'js',
    }));
    b.onResolve({ filter: POLYFILL }, (args) => ({ path: args.path, namespace: 'no-polyfill' }));
    b.onLoad({ filter: /.*/, namespace: 'no-polyfill' }, (args) => ({
      contents: `throw new Error(${JSON.stringify(`${args.path} is not in kiln's bundle: this Node has no ReadableStream`)});\n`,
      loader: 'js',
    }));
  },
};

const placeholder = '0'.repeat(BUNDLE_ID_LENGTH);
const bakedCommit = commit();
const result = await build({
  absWorkingDir: repo,
  entryPoints: [entry],
  outfile: BUNDLE,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // Whitespace only: names stay as written, so a stack trace still says which function; its line and
  // column are the bundle's (the map beside it, or the same commit's build, gives the source line).
  // 0.53 MB less in the image, whose size is a target, and ~6 ms less CPU a small build (the ~900
  // functions it compiles lazily are parsed from less text).
  sourcemap: 'linked',
  minifyWhitespace: true,
  // import.meta does not exist in CommonJS: give its users (native-fs.ts and sandbox/isolated-run.ts,
  // which find build/Release from it) the bundle's own URL.
  define: { 'import.meta.url': '__kilnBundleUrl', __KILN_COMMIT__: JSON.stringify(bakedCommit), __KILN_BUNDLED__: 'true' },
  plugins: [cloudExternal, unusedCode],
  metafile: true,
  // 'use strict' before any statement, or it is no directive (dist/ is ES modules, always strict).
  banner: { js: `${BUNDLE_ID_PREFIX}${placeholder}\n'use strict';\nconst __kilnBundleUrl = require('node:url').pathToFileURL(__filename).href;` },
  write: false,
  logLevel: 'silent',
});
if (result.warnings.length > 0 || result.errors.length > 0) {
  console.error(formatMessagesSync([...result.errors, ...result.warnings], { kind: 'warning' }).join('\n'));
  console.error('bundle: esbuild warned; fix the cause (the bundle must behave as dist/ does)');
  process.exit(1);
}

// The stubs above took: zod's locales are still where they were, and only en.js went in (a stub's
// own input is named with its namespace).
const inputs = Object.keys(result.metafile.inputs);
if (!existsSync(join(ZOD_LOCALES, 'en.js')) || !inputs.some((f) => f.endsWith('zod/v4/locales/en.js'))) throw new Error(`bundle: ${join(ZOD_LOCALES, 'en.js')} is not in the bundle: zod moved its locales; update unusedCode`);
const leftIn = inputs.filter((f) => !/^[a-z-]+:/.test(f) && ((f.includes('node_modules/zod/v4/locales/') && !f.endsWith('/en.js')) || f.includes('node_modules/web-streams-polyfill/')));
if (leftIn.length > 0) throw new Error(`bundle: ${leftIn[0]} is in the bundle: unusedCode no longer keeps it out`);
const js = result.outputFiles.find((f) => f.path === BUNDLE);
if (/\b(S3Client|BlobServiceClient|GoogleAuth)\b/.test(js?.text ?? '')) throw new Error('a cloud SDK is in the main bundle: it must load only from its own (src/cloud/load.ts)');
const map = result.outputFiles.find((f) => f.path === `${BUNDLE}.map`);
if (js === undefined || map === undefined) throw new Error('esbuild wrote no bundle or no map');
let text = js.text;
if (!text.startsWith(`${BUNDLE_ID_PREFIX}${placeholder}\n`)) throw new Error('the bundle does not start with its banner');
if (!text.includes(ADDON)) {
  throw new Error(`the bundle no longer names ${ADDON}: native-fs.ts changed how it finds the addon; make sure it resolves from ${relative(repo, BUNDLE)}`);
}
// ASCII only, so that bin/load-kiln.js can decode it as latin1 (~0.5 ms) rather than UTF-8 (~9 ms for
// 1.7 MB). esbuild already escapes every non-ASCII character in strings, regular expressions and names
// (its default `charset: 'ascii'`), so what is left is in comments: one `?` per UTF-16 unit keeps
// every column, and with them the source map.
text = text.replace(/[^\x00-\x7f]/g, '?');
// A content hash, the same length as the placeholder, so the map's offsets still hold.
const id = createHash('sha256').update(text).digest('hex').slice(0, BUNDLE_ID_LENGTH);
text = text.replace(placeholder, id);

// Each file replaced whole, so that an executor starting meanwhile reads the old one or the new one.
function replaceFile(path, data) {
  writeFileSync(`${path}.tmp`, data);
  renameSync(`${path}.tmp`, path);
}
mkdirSync(dirname(BUNDLE), { recursive: true });
rmSync(`${BUNDLE}.v8cache`, { force: true });
rmSync(`${BUNDLE}.v8cache.zst`, { force: true });
for (const name of ['main', 'warmerMain']) rmSync(helpFile(name), { force: true });
replaceFile(`${BUNDLE}.map`, map.contents);
replaceFile(BUNDLE, text);
// The same commit beside the bundle, for bin/load-kiln.js's `executor version` (answered without it).
replaceFile(join(dirname(BUNDLE), 'commit.txt'), bakedCommit);

for (const name of CLOUD) {
  const out = join(dirname(BUNDLE), `kiln-${name}.cjs`);
  const r = await build({
    absWorkingDir: repo,
    entryPoints: [join(repo, `dist/cloud/${name}.js`)],
    outfile: out,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    // Minified (identifiers too), unlike the main bundle: ~45% smaller in the image, and their stack
    // traces are the SDKs' internals, which the source map beside each still maps back.
    minify: true,
    sourcemap: 'linked',
    define: { 'import.meta.url': '__kilnBundleUrl' },
    banner: { js: `'use strict';\nconst __kilnBundleUrl = require('node:url').pathToFileURL(__filename).href;` },
    write: false,
    logLevel: 'silent',
  });
  if (r.warnings.length > 0 || r.errors.length > 0) {
    console.error(formatMessagesSync([...r.errors, ...r.warnings], { kind: 'warning' }).join('\n'));
    console.error(`bundle: esbuild warned on kiln-${name}.cjs; fix the cause`);
    process.exit(1);
  }
  const code = r.outputFiles.find((f) => f.path === out);
  const codeMap = r.outputFiles.find((f) => f.path === `${out}.map`);
  if (code === undefined || codeMap === undefined) throw new Error(`esbuild wrote no kiln-${name}.cjs`);
  replaceFile(`${out}.map`, codeMap.contents);
  replaceFile(out, code.contents);
  console.error(`bundle: ${relative(repo, out)} (${Math.round(code.contents.length / 1024)} KiB)`);
}

// The code cache: run the bundle's top level (its modules' initialisation: no build, no I/O) in a
// fresh node, so that the cache holds what every run compiles. A node of another version, or started
// with other V8 flags, rejects it and compiles the bundle as if there were none: hence no NODE_OPTIONS
// here, as the executor runs without any.
const env = { ...process.env };
delete env['NODE_OPTIONS'];
execFileSync(process.execPath, ['-e', `const k = require(${JSON.stringify(loader)}); k.writeCache(k.BUNDLE, k.runBundle(k.BUNDLE).script);`], {
  stdio: 'inherit',
  env,
});
// `--help`'s text, as the bundle prints it to a pipe (no terminal: commander's 80 columns), for
// bin/load-kiln.js to answer `--help` without loading the bundle. Written after the bundle, so that a
// failure here leaves no file and `--help` goes through the bundle as before.
for (const name of ['main', 'warmerMain']) {
  const program = name === 'main' ? 'executor' : 'warmer';
  const help = execFileSync(
    process.execPath,
    ['-e', `require(${JSON.stringify(loader)}).loadMain(${JSON.stringify(name)}).then((m) => m(['node', ${JSON.stringify(program)}, '--help'], process.env)).then((c) => { process.exitCode = c; })`],
    { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  if (!help.includes('--help')) throw new Error(`bundle: ${program} --help printed no help`);
  replaceFile(helpFile(name), help);
}
console.error(`bundle: ${relative(repo, BUNDLE)} (${Math.round(text.length / 1024)} KiB), its code cache and --help texts`);
