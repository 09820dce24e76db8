// --dry-run: the plan with resolved bases, nothing run or pushed, and the errors a build would hit first.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { executor, manifestDigest, tagExists, writeContext } from '../support/executor.js';
import { startRegistry, type RunningRegistry } from '../support/registry.js';

describe('--dry-run', () => {
  const registry = inject('registry');
  const images = inject('images');
  let ctx: string;
  let authReg: RunningRegistry;
  beforeAll(async () => {
    ctx = await writeContext({
      Dockerfile: `FROM ${images.busybox} AS build\nRUN echo ran-build\nFROM build AS unused\nRUN echo ran-unused\nFROM ${images.busybox}\nCOPY --from=build /etc/passwd /p\nCOPY --from=${images.busyboxDocker} /bin/sh /sh\nRUN echo ran-final\n`,
      'bad/Dockerfile': `FROM ${images.busybox}\nFROBNICATE now\n`,
      'unknown/Dockerfile': `FROM ${images.busybox}\nRUN echo x\nFROM ${registry}/test/no-such-image:1\nRUN echo y\n`,
    });
    authReg = await startRegistry({ auth: { kind: 'htpasswd', users: { kiln: 'dry-run-secret' } } });
  });
  afterAll(async () => {
    await rm(ctx, { recursive: true, force: true });
    await authReg.stop();
  });

  it('prints the plan with each base resolved, runs and pushes nothing', async () => {
    const tag = `${registry}/test/dry-run:${process.pid}`;
    const r = await executor(['--context', ctx, '-d', tag, '--insecure', '--insecure-pull', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    const digest = await manifestDigest(images.busybox);
    expect(r.stdout).toContain('Stages that run, in order:\n  [0] build: FROM');
    expect(r.stdout).toContain(`        base: ${digest} (linux/amd64)`);
    expect(r.stdout).toContain('        line 6: copies from stage build');
    expect(r.stdout).toMatch(/line 7: copies from image \S+ \(sha256:[0-9a-f]{64}\)/);
    expect(r.stdout).toContain('Skipped (the target does not need them): unused');
    expect(r.stdout).toContain(`Destination: ${tag} (push permission: ok)`);
    expect(r.stdout + r.stderr).not.toContain('ran-');
    expect(r.stderr).not.toContain('Build summary');
    expect(await tagExists(tag)).toBe(false);

    const j = await executor(['--context', ctx, '--no-push', '--insecure-pull', '--dry-run', '--log-format', 'json']);
    expect(j.code).toBe(0);
    const plan = JSON.parse(j.stdout) as { runs: string[]; skipped: string[]; images: { image: string; digest: string; platform: string }[]; stages: { stage: string; from: unknown[] }[] };
    expect(plan.runs).toEqual(['build', 'stage-2']);
    expect(plan.skipped).toEqual(['unused']);
    expect(plan.images).toContainEqual({ image: images.busybox, digest, platform: 'linux/amd64', source: 'registry' });
    expect(plan.stages.find((s) => s.stage === 'stage-2')?.from).toHaveLength(2);
  });

  it('fails as the build would before its first RUN: bad Dockerfile, missing stage, unknown image, no push permission, a bad --ssh', async () => {
    const bad = await executor(['--context', join(ctx, 'bad'), '--no-push', '--dry-run']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error building image: Dockerfile:2 /m);
    const target = await executor(['--context', ctx, '--no-push', '--insecure-pull', '--dry-run', '--target', 'nope']);
    expect(target.code).toBe(1);
    expect(target.stderr).toContain('target stage "nope" could not be found');
    const unknown = await executor(['--context', join(ctx, 'unknown'), '--no-push', '--insecure-pull', '--dry-run']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/error building image: Dockerfile:3 FROM \S+no-such-image:1: base image .*MANIFEST_UNKNOWN/);
    expect(unknown.stdout).toBe('');
    const denied = await executor(['--context', ctx, '-d', `${authReg.host}/test/x:1`, '--insecure', '--insecure-pull', '--dry-run']);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/^error checking push permissions -- make sure you entered the correct tag name, and that you are authenticated correctly, and try again: checking push permission for "\S+\/test\/x:1": .*401/m);
    // The build checks --ssh before any stage: so does the dry run.
    const ssh = await executor(['--context', ctx, '--no-push', '--insecure-pull', '--dry-run', '--ssh', 'default=/nonexistent/key']);
    expect(ssh.code).toBe(1);
    expect(ssh.stderr).toMatch(/error building image: --ssh default=\/nonexistent\/key: cannot use \/nonexistent\/key: /);
    expect(ssh.stdout).toBe('');
  });
});
