// Bad input ends with one `error building image: ...` line naming the cause (a destination refused
// before the build: kaniko's push-check line instead), a non-zero exit, and nothing pushed under the tag.
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startRegistry, type RunningRegistry } from '../support/registry.js';
import { executor, failureLines, PUSH_CHECK_HEADLINE, tagExists, writeContext } from '../support/executor.js';

function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('error building image: '));
}

describe('failures', () => {
  const registry = inject('registry');
  const images = inject('images');
  const dirs: string[] = [];
  const build = async (dockerfile: string, dest: string, extra: string[] = []) => {
    const ctx = await writeContext({ Dockerfile: dockerfile, 'f.txt': 'f\n' });
    dirs.push(ctx);
    return executor(['--context', ctx, '--destination', dest, '--insecure', '--insecure-pull', ...extra]);
  };
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('an unknown instruction names the Dockerfile line', async () => {
    const dest = `${registry}/e2e/err-unknown:1`;
    const r = await build(`FROM ${images.busybox}\nRUN true\nFROBNICATE now\n`, dest);
    expect(r.code).toBe(1);
    expect(errorLines(r.stderr)).toEqual(['error building image: Dockerfile:3 FROBNICATE now: unknown instruction: FROBNICATE']);
    expect(await tagExists(dest)).toBe(false);
  });

  it('a Dockerfile without FROM is refused', async () => {
    const r = await build('RUN echo hi\n', `${registry}/e2e/err-nofrom:1`);
    expect(r.code).toBe(1);
    const [line] = errorLines(r.stderr);
    expect(line).toMatch(/^error building image: Dockerfile:1 RUN echo hi: .*FROM/);
  });

  it('a missing base image names the reference and the FROM line', async () => {
    const dest = `${registry}/e2e/err-nobase:1`;
    const r = await build(`FROM ${registry}/does/not-exist:7\nRUN true\n`, dest);
    expect(r.code).toBe(1);
    const lines = errorLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`Dockerfile:1 FROM ${registry}/does/not-exist:7`);
    expect(lines[0]).toMatch(/MANIFEST_UNKNOWN|not found/i);
    expect(await tagExists(dest)).toBe(false);
  });

  it('a failing RUN exits with the command\'s own exit code and pushes nothing', async () => {
    const dest = `${registry}/e2e/err-run:1`;
    const r = await build(`FROM ${images.busybox}\nCOPY f.txt /\nRUN exit 7\n`, dest);
    expect(r.code).toBe(7);
    expect(errorLines(r.stderr)).toEqual(['error building image: Dockerfile:3 RUN exit 7: failed to execute command: exit status 7']);
    expect(await tagExists(dest)).toBe(false);
  });

  it('an unreachable registry is named in one line', async () => {
    const r = await build(`FROM ${images.busybox}\nRUN true\n`, '127.0.0.1:1/e2e/x:1');
    expect(r.code).toBe(1);
    const lines = failureLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`${PUSH_CHECK_HEADLINE}: checking push permission for "127.0.0.1:1/e2e/x:1": `);
    expect(lines[0]).toMatch(/ECONNREFUSED/);
  });

  describe('a refused push', () => {
    let guarded: RunningRegistry;
    beforeAll(async () => {
      guarded = await startRegistry({ auth: { kind: 'htpasswd', users: { alice: 'correct-horse' } } });
    });
    afterAll(async () => guarded.stop());

    it('fails with the registry\'s 401, and the tag does not exist', async () => {
      const dest = `${guarded.host}/e2e/refused:1`;
      const r = await build(`FROM ${images.busybox}\nRUN echo hi > /x\n`, dest);
      expect(r.code).toBe(1);
      const lines = failureLines(r.stderr);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`${PUSH_CHECK_HEADLINE}: checking push permission for "${dest}": `);
      expect(lines[0]).toMatch(/401|UNAUTHORIZED/);
    });
  });

  it('a bad flag value is a usage error', async () => {
    const r = await executor(['--context', '.', '--destination', 'UPPER/Case:1']);
    expect(r.code).toBe(1);
    expect(errorLines(r.stderr)[0]).toMatch(/invalid reference "UPPER\/Case:1"/);
  });

  it('no destination without --no-push is refused before building', async () => {
    const r = await executor(['--context', '.']);
    expect(r.code).toBe(1);
    expect(errorLines(r.stderr)).toEqual(['error building image: you must provide --destination, or use --no-push']);
  });
});
