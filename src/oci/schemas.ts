// zod schemas for the OCI image spec's JSON documents (and Docker schema 2, their twin).
// Foreign JSON is validated here where it enters; unknown fields are kept (loose objects)
// so that a config we re-emit loses nothing.
import { z } from 'zod';
import { isDigest, type Digest } from './digest.js';

export const digestSchema = z
  .string()
  .refine(isDigest, { message: 'not a valid digest' })
  .transform((s) => s as Digest);

export const platformSchema = z.looseObject({
  architecture: z.string(),
  os: z.string(),
  'os.version': z.string().optional(),
  'os.features': z.array(z.string()).optional(),
  variant: z.string().optional(),
  features: z.array(z.string()).optional(),
});
export type Platform = z.infer<typeof platformSchema>;

export const descriptorSchema = z.looseObject({
  mediaType: z.string(),
  digest: digestSchema,
  size: z.number().int().nonnegative(),
  urls: z.array(z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  platform: platformSchema.optional(),
  artifactType: z.string().optional(),
});
export type Descriptor = z.infer<typeof descriptorSchema>;

export const manifestSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type Manifest = z.infer<typeof manifestSchema>;

export const indexSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(descriptorSchema),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type ImageIndex = z.infer<typeof indexSchema>;

const emptyObjectMap = z.record(z.string(), z.looseObject({})).nullish();

export const healthcheckSchema = z.looseObject({
  Test: z.array(z.string()).nullish(),
  Interval: z.number().optional(),
  Timeout: z.number().optional(),
  StartPeriod: z.number().optional(),
  StartInterval: z.number().optional(),
  Retries: z.number().optional(),
});
export type Healthcheck = z.infer<typeof healthcheckSchema>;

/** The `config` member of an image config: what a container starts with. */
export const containerConfigSchema = z.looseObject({
  Hostname: z.string().optional(),
  Domainname: z.string().optional(),
  User: z.string().optional(),
  ExposedPorts: emptyObjectMap,
  Env: z.array(z.string()).nullish(),
  Entrypoint: z.array(z.string()).nullish(),
  Cmd: z.array(z.string()).nullish(),
  Volumes: emptyObjectMap,
  WorkingDir: z.string().optional(),
  Labels: z.record(z.string(), z.string()).nullish(),
  StopSignal: z.string().optional(),
  Healthcheck: healthcheckSchema.optional(),
  Shell: z.array(z.string()).nullish(),
  OnBuild: z.array(z.string()).nullish(),
  ArgsEscaped: z.boolean().optional(),
});
export type ContainerConfig = z.infer<typeof containerConfigSchema>;

export const historySchema = z.looseObject({
  created: z.string().optional(),
  created_by: z.string().optional(),
  author: z.string().optional(),
  comment: z.string().optional(),
  empty_layer: z.boolean().optional(),
});
export type History = z.infer<typeof historySchema>;

export const configFileSchema = z.looseObject({
  architecture: z.string(),
  os: z.string(),
  'os.version': z.string().optional(),
  variant: z.string().optional(),
  created: z.string().optional(),
  author: z.string().optional(),
  config: containerConfigSchema.optional().default({}),
  rootfs: z.looseObject({
    type: z.literal('layers'),
    diff_ids: z.array(digestSchema),
  }),
  history: z.array(historySchema).optional(),
});
export type ConfigFile = z.infer<typeof configFileSchema>;

/** The envelope enough to tell what a manifest document is before parsing it fully. */
export const mediaTypeProbeSchema = z.looseObject({
  schemaVersion: z.number().optional(),
  mediaType: z.string().optional(),
  manifests: z.array(z.unknown()).optional(),
  layers: z.array(z.unknown()).optional(),
  config: z.unknown().optional(),
});
