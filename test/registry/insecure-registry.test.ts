// --insecure-registry for a registry that is neither loopback nor in a private range (kiln, like
// go-containerregistry, tries plain HTTP for those by itself): a docker-registry on 203.0.113.5 (a
// documentation address, given to loopback in a network namespace of the test's own) speaking plain
// HTTP. Without the flag kiln insists on HTTPS and fails naming the registry; with it, push and pull work.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXECUTOR, failureLines } from '../support/executor.js';

const run = promisify(execFile);
const HOST = '203.0.113.5:5000';

describe('--insecure-registry for a non-local registry', () => {
  let dir: string;
  const out: Record<string, string> = {};

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-netns-'));
    await writeFile(join(dir, 'registry.yml'), ['version: 0.1', 'log:', '  level: error', 'storage:', '  filesystem:', `    rootdirectory: ${dir}/data`, 'http:', `  addr: ${HOST}`, ''].join('\n'));
    for (const name of ['one', 'two']) {
      await run('mkdir', ['-p', join(dir, name)]);
    }
    await writeFile(join(dir, 'one/Dockerfile'), 'FROM scratch\nCOPY hello.txt /\n');
    await writeFile(join(dir, 'one/hello.txt'), 'hello\n');
    await writeFile(join(dir, 'two/Dockerfile'), `FROM ${HOST}/t/one:1\nCOPY more.txt /\n`);
    await writeFile(join(dir, 'two/more.txt'), 'more\n');
    const exe = (name: string, ctx: string, dest: string, flags: string) =>
      `DOCKER_CONFIG=${dir} ${process.execPath} ${EXECUTOR} --context ${join(dir, ctx)} --destination ${dest} ${flags} >${dir}/${name}.out 2>&1; echo $? >${dir}/${name}.code`;
    // Everything that talks to the registry runs inside the namespace; results land in files.
    const script = [
      'set -e',
      'ip link set lo up',
      'ip addr add 203.0.113.5/32 dev lo',
      `docker-registry serve ${dir}/registry.yml >${dir}/registry.log 2>&1 &`,
      'reg=$!',
      'trap "kill $reg" EXIT',
      `for i in $(seq 100); do curl -fsS http://${HOST}/v2/ >/dev/null 2>&1 && break; sleep 0.1; done`,
      'set +e',
      exe('strict', 'one', `${HOST}/t/one:1`, ''),
      exe('push', 'one', `${HOST}/t/one:1`, `--insecure-registry ${HOST}`),
      exe('pull', 'two', `${HOST}/t/two:1`, `--insecure-registry ${HOST}`),
      `skopeo inspect --tls-verify=false docker://${HOST}/t/two:1 >${dir}/inspect.json 2>&1; echo $? >${dir}/inspect.code`,
    ].join('\n');
    await run('unshare', ['--net', 'bash', '-c', script], { timeout: 60_000 });
    for (const f of ['strict', 'push', 'pull', 'inspect']) {
      out[`${f}.code`] = (await readFile(join(dir, `${f}.code`), 'utf8')).trim();
      out[f] = await readFile(join(dir, f === 'inspect' ? 'inspect.json' : `${f}.out`), 'utf8');
    }
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('without the flag: HTTPS only, and a one-line error naming the registry', () => {
    expect(out['strict.code']).toBe('1');
    expect(failureLines(out['strict'] ?? '')).toEqual([expect.stringContaining('203.0.113.5:5000')]);
    expect(out['strict']).not.toMatch(/http:\/\/203\.0\.113\.5/);
  });

  it('with the flag: pushes over plain HTTP', () => {
    expect(failureLines(out['push'] ?? '')).toEqual([]);
    expect(out['push.code']).toBe('0');
    expect(out['push']).toContain(`Pushed ${HOST}/t/one@sha256:`);
  });

  it('with the flag: pulls a base from it and pushes the result, which skopeo reads', () => {
    expect(out['pull.code']).toBe('0');
    expect(out['inspect.code']).toBe('0');
    expect((JSON.parse(out['inspect'] ?? '{}') as { Layers: string[] }).Layers).toHaveLength(2);
  });
});
