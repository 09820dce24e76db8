// The step fields of JSON lines written by background work: work a step starts and does not await
// keeps naming that step (LogScope.detach), and so do a transfer's events and progress lines.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { inBackground, LogScope } from '../../src/log/log-scope.js';
import { createLogger, SecretMask } from '../../src/log/logger.js';
import { Transfers } from '../../src/log/transfers.js';

function jsonLogger(scope: LogScope): { log: ReturnType<typeof createLogger>; lines: () => Record<string, unknown>[] } {
  const out: string[] = [];
  const log = createLogger({ verbosity: 'info', format: 'json', timestamps: false, mask: new SecretMask(), out: { write: (s: string) => out.push(s) }, scope });
  return { log, lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('LogScope', () => {
  it('work started without detach sees the step running when it logs; detached work the step that started it', async () => {
    const scope = new LogScope();
    const { log, lines } = jsonLogger(scope);
    scope.enter({ stage: 'build', step: 1 });
    const attached = (async () => {
      await sleep(5);
      log.info('attached');
    })();
    const detached = inBackground({ scope }, async () => {
      await sleep(5);
      log.info('detached');
    });
    scope.enter({ stage: 'build', step: 2 });
    await Promise.all([attached, detached]);
    expect(lines().find((l) => l['msg'] === 'attached')).toMatchObject({ step: 2 });
    expect(lines().find((l) => l['msg'] === 'detached')).toMatchObject({ stage: 'build', step: 1 });
    // The caller's fields are its own still.
    expect(scope.fields).toEqual({ stage: 'build', step: 2 });
  });

  it('what detached work enters stays its own', async () => {
    const scope = new LogScope();
    scope.enter({ step: 1 });
    await scope.detach(async () => {
      scope.enter({ step: 9 });
      await sleep(1);
    });
    expect(scope.fields).toEqual({ step: 1 });
  });

  it("a transfer's watchers run with the fields it started with, whoever ends it", () => {
    const scope = new LogScope();
    const { log, lines } = jsonLogger(scope);
    const transfers = new Transfers(Date.now, scope);
    transfers.watch({ ended: (t) => log.info(`ended ${t.label}`) });
    scope.enter({ stage: 'build', step: 1, line: 2 });
    const t = transfers.start({ kind: 'upload', label: 'blob' });
    scope.enter({ stage: 'build', step: 2, line: 3 });
    t.end({ bytes: 10 });
    const started = transfers.live();
    expect(started).toEqual([]);
    expect(lines().find((l) => l['msg'] === 'ended blob')).toMatchObject({ stage: 'build', step: 1, line: 2 });
    // A progress line written by a timer later goes through inScopeOf the same way.
    const u = transfers.start({ kind: 'download', label: 'layer' });
    scope.leave();
    const live = transfers.live()[0];
    if (live === undefined) throw new Error('no live transfer');
    transfers.inScopeOf(live, () => log.info('progress of layer'));
    u.end();
    expect(lines().find((l) => l['msg'] === 'progress of layer')).toMatchObject({ stage: 'build', step: 2, line: 3 });
    expect(transfers.totals('upload')).toEqual({ bytes: 10, count: 1 });
  });
});
