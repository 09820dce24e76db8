// docs/log-events.md as a zod schema: what every line of `--log-format json` may hold. Written from
// the document, not from kiln's code, so a change to either that the other does not follow fails.
import { z } from 'zod';

const digest = z.string().regex(/^sha256:[0-9a-f]{64}$/);
const count = z.number().int().nonnegative();

/** Fields every line has, and the step fields a line written during a stage or step carries. */
const base = {
  level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']),
  levelNumber: z.number().int(),
  time: z.string().datetime(),
  msg: z.string(),
  stage: z.string().min(1).optional(),
  stage_index: count.optional(),
  step: z.number().int().positive().optional(),
  instruction: z.string().min(1).optional(),
  line: z.number().int().positive().optional(),
};

const stepFields = { stage: z.string().min(1), stage_index: count, step: z.number().int().positive(), instruction: z.string().min(1), line: z.number().int().positive() };

const stepSummary = z.strictObject({
  step: z.number().int().positive(),
  line: z.number().int().positive(),
  instruction: z.string(),
  duration_ms: count,
  layer: z.strictObject({ digest, size: count }).nullable(),
  cache: z.enum(['hit', 'miss']).nullable(),
  status: z.enum(['ok', 'failed']),
  exit_code: z.number().int().optional(),
});

export const summarySchema = z.strictObject({
  status: z.enum(['success', 'failure']),
  error: z.string().optional(),
  exit_code: z.number().int(),
  duration_ms: count,
  digest: digest.optional(),
  stages: z.array(
    z.strictObject({
      stage: z.string(),
      index: count,
      base: z.string(),
      base_digest: digest.optional(),
      duration_ms: count,
      steps: z.array(stepSummary),
    }),
  ),
  skipped: z.array(z.string()),
  pulled: z.strictObject({ bytes: count, layers: count }),
  pushed: z.strictObject({ bytes: count, blobs: count, duration_ms: count, destinations: z.array(z.string()) }),
  slowest: z.array(z.strictObject({ stage: z.string(), step: z.number().int().positive(), line: z.number().int().positive(), instruction: z.string(), duration_ms: count })),
});

const event = <N extends string, S extends z.ZodRawShape>(name: N, shape: S) => z.strictObject({ ...base, event: z.literal(name), ...shape });

export const eventSchema = z.discriminatedUnion('event', [
  event('build-start', { dockerfile: z.string(), context: z.string(), target: z.string().optional(), platform: z.string() }),
  event('pull', { image: z.string(), digest, platform: z.string(), duration_ms: count }),
  event('download', { digest, size: count, duration_ms: count }),
  event('stage-start', { stage: z.string(), stage_index: count, base: z.string(), digest: digest.optional() }),
  event('stage-end', { stage: z.string(), stage_index: count, duration_ms: count }),
  event('step-start', stepFields),
  event('cache-hit', { ...stepFields, digest: digest.optional() }),
  event('cache-miss', stepFields),
  event('layer', { ...stepFields, digest, size: count }),
  event('step-end', {
    ...stepFields,
    duration_ms: count,
    status: z.enum(['ok', 'failed']),
    exit_code: z.number().int().optional(),
    digest: digest.optional(),
    size: count.optional(),
    cache: z.enum(['hit', 'miss']).optional(),
  }),
  event('upload', { digest: digest.optional(), size: count, duration_ms: count }),
  event('push', { destinations: z.array(z.string()).min(1), digest, duration_ms: count }),
  event('progress', {
    transfer: z.enum(['download', 'upload', 'snapshot']),
    label: z.string(),
    digest: digest.optional(),
    bytes: count,
    total: count.optional(),
    bytes_per_second: count,
    duration_ms: count,
  }),
  event('summary', { summary: summarySchema }),
  event('build-end', { status: z.enum(['success', 'failure']), duration_ms: count, digest: digest.optional(), exit_code: z.number().int() }),
]);

/** A line without `event`: a log message (kaniko's lines), with the step fields where they apply. */
export const messageSchema = z.object(base).passthrough();

export type LogEvent = z.infer<typeof eventSchema>;

/** Every line of a `--log-format json` stderr, parsed and checked: events strictly, messages loosely. */
export function parseLogLines(stderr: string): { events: LogEvent[]; messages: z.infer<typeof messageSchema>[] } {
  const events: LogEvent[] = [];
  const messages: z.infer<typeof messageSchema>[] = [];
  for (const line of stderr.split('\n')) {
    if (line.trim() === '' || line.startsWith('error building image: ')) continue;
    const rec = JSON.parse(line) as Record<string, unknown>;
    if ('event' in rec) events.push(eventSchema.parse(rec));
    else messages.push(messageSchema.parse(rec));
  }
  return { events, messages };
}
