import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { redactedTitle } from '../../src/cli/process-title.js';

describe('redactedTitle', () => {
  it('keeps the flags and drops URL user info, query strings and --build-arg values', () => {
    expect(
      redactedTitle('executor', [
        '--context', 'https://user:s3cret@ctx.example/app.tar.gz?X-Amz-Signature=abc',
        '--context=git://tok123@github.com/org/repo.git#refs/heads/main',
        '--build-arg', 'NPM_TOKEN=npm-secret', '--build-arg=PW=pw-secret', '--build-arg', 'FROM_ENV',
        '--destination', 'registry.example/app:1', '--dockerfile', 'Dockerfile',
      ]),
    ).toBe(
      'executor --context https://***@ctx.example/app.tar.gz?*** --context=git://***@github.com/org/repo.git#refs/heads/main ' +
        '--build-arg NPM_TOKEN=*** --build-arg=PW=*** --build-arg FROM_ENV --destination registry.example/app:1 --dockerfile Dockerfile',
    );
  });

  it('is what /proc/<pid>/cmdline shows once Node sets it as process.title', async () => {
    const title = redactedTitle('executor', ['--build-arg', 'K=topsecret-value-91']);
    const child = spawn(process.execPath, ['-e', `process.title = ${JSON.stringify(title)}; process.stdout.write('set'); setTimeout(() => {}, 5000)`, '--', '--build-arg', 'K=topsecret-value-91'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.once('data', () => resolve());
        child.once('exit', (code) => reject(new Error(`node exited with ${code}`)));
      });
      const cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8');
      expect(cmdline).not.toContain('topsecret-value-91');
      expect(cmdline.replace(/\0+$/, '')).toBe(title);
    } finally {
      child.kill();
    }
  });
});
