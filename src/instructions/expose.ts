import type { ExposeInstruction } from '../dockerfile/instructions.js';
import { DockerfileError } from '../errors.js';
import { expandList } from './expand-in-stage.js';
import { NO_FS, type Handler, type InstructionSite } from './handler.js';

/** `80`, `80/udp`, `8000-8002/tcp` -> `80/tcp`, ... as docker's nat.ParsePortSpecs stores them. */
export function parsePortSpec(spec: string, site: InstructionSite): string[] {
  const [range = '', proto = 'tcp', extra] = spec.split('/');
  const m = /^(\d+)(?:-(\d+))?$/.exec(range);
  const protocol = proto.toLowerCase();
  if (extra !== undefined || m === null || !['tcp', 'udp', 'sctp'].includes(protocol)) {
    throw new DockerfileError(`invalid containerPort: ${spec}`, site);
  }
  const start = Number(m[1]);
  const end = m[2] === undefined ? start : Number(m[2]);
  if (start < 1 || end > 65535 || end < start) throw new DockerfileError(`invalid port range: ${spec}`, site);
  const out: string[] = [];
  for (let p = start; p <= end; p++) out.push(`${p}/${protocol}`);
  return out;
}

export const expose: Handler<ExposeInstruction> = async (instr, state, e) => {
  const ports: Record<string, Record<string, unknown>> = { ...(state.config.ExposedPorts ?? {}) };
  const added: string[] = [];
  for (const raw of instr.ports) {
    for (const word of expandList(raw, state, e)) {
      for (const p of parsePortSpec(word, e.site)) {
        ports[p] = {};
        added.push(p);
      }
    }
  }
  return { state: { ...state, config: { ...state.config, ExposedPorts: ports } }, createdBy: `EXPOSE ${added.join(' ')}`, fs: NO_FS };
};
