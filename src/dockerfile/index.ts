// The Dockerfile frontend's public surface. PURE: no fs, no network, no process.
export type * from './instructions.js';
export { parseDockerfile } from './parse.js';
export {
  expandWord,
  expandWords,
  expandWithUsage,
  expansionOf,
  lookupIn,
  type Expansion,
  type ExpandResult,
  type ExpandSite,
  type Lookup,
} from './expand.js';
export {
  planBuild,
  platformArgs,
  printablePlan,
  stageArgValue,
  stageLabel,
  type BuildPlan,
  type FromSource,
  type NameValue,
  type PlanOptions,
  type PrintablePlan,
  type StageBase,
  type StagePlan,
  type StageReference,
} from './plan.js';
