import type { HealthcheckInstruction } from '../dockerfile/instructions.js';
import type { Healthcheck } from '../oci/schemas.js';
import { NO_FS, type Handler } from './handler.js';

// Stored as docker stores HealthConfig: durations in ns, zero values left out (they mean "default").
export const healthcheck: Handler<HealthcheckInstruction> = async (instr, state) => {
  const h = instr.health;
  let hc: Healthcheck;
  if (h.type === 'none') hc = { Test: ['NONE'] };
  else {
    hc = { Test: [...h.test] };
    if (h.intervalNs) hc.Interval = h.intervalNs;
    if (h.timeoutNs) hc.Timeout = h.timeoutNs;
    if (h.startPeriodNs) hc.StartPeriod = h.startPeriodNs;
    if (h.startIntervalNs) hc.StartInterval = h.startIntervalNs;
    if (h.retries) hc.Retries = h.retries;
  }
  return { state: { ...state, config: { ...state.config, Healthcheck: hc } }, createdBy: `HEALTHCHECK ${JSON.stringify(hc.Test)}`, fs: NO_FS };
};
