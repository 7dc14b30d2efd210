/**
 * Samplers by name: `'ddim'` (CogVideoX DDIM, the Mask²DiT release), `'dpm'` (CogVideoX DPM) and
 * `'flow-euler'` (flow-matching Euler). DDIM and DPM take a CogVideoX scheduler config (default: the
 * CogVideoX-5B `scheduler_config.json`), flow-euler a FlowMatchEulerDiscreteScheduler config (default:
 * the reference class defaults, shift 1).
 */
import {
  COGVIDEOX_5B_SCHEDULER,
  FlowMatchSchedulerConfigSchema,
  isFlowMatchConfig,
  type CogVideoXSchedulerConfig,
  type FlowMatchSchedulerConfig,
  type SchedulerConfig,
} from '../config/schedulerConfig.js';
import { Mask2DiTError } from '../errors.js';
import { CogVideoXDDIMSampler, type CogVideoXSamplerOptions } from './cogvideoxDdim.js';
import { CogVideoXDPMSampler } from './cogvideoxDpm.js';
import { FlowMatchEulerSampler, type FlowMatchEulerOptions } from './flowMatchEuler.js';
import { SAMPLER_NAMES, type Sampler, type SamplerName } from './sampler.js';

export * from './sampler.js';
export {
  CogVideoXDDIMSampler,
  CogVideoXSamplerBase,
  cogvideoxAlphasCumprod,
  cogvideoxTimesteps,
  type CogVideoXSamplerOptions,
  type PrevTimestepRule,
} from './cogvideoxDdim.js';
export { CogVideoXDPMSampler } from './cogvideoxDpm.js';
export { FlowMatchEulerSampler, type FlowMatchEulerOptions } from './flowMatchEuler.js';
export {
  combineGuidance,
  combineBatchedGuidance,
  guidanceScaleAt,
  usesGuidance,
  type DynamicCfg,
  type GuidanceSchedule,
} from './guidance.js';
export { gaussianArray, gaussianNoise, philox4x32, STREAM } from './noise.js';

/** A sampler name that is not one of `SAMPLER_NAMES`, or a config of the wrong family. */
export class SamplerError extends Mask2DiTError {
  constructor(detail: string) {
    super('SAMPLER', detail);
  }
}

export type SamplerOptions = CogVideoXSamplerOptions & FlowMatchEulerOptions;

export function isSamplerName(name: string): name is SamplerName {
  return (SAMPLER_NAMES as readonly string[]).includes(name);
}

/** Create a sampler by name, configured from a validated scheduler config (see `parseSchedulerConfig`). */
export function createSampler(name: string, config?: SchedulerConfig, options: SamplerOptions = {}): Sampler {
  if (!isSamplerName(name))
    throw new SamplerError(`unknown sampler '${name}'; expected one of ${SAMPLER_NAMES.join(', ')}`);
  if (name === 'flow-euler') {
    if (config !== undefined && !isFlowMatchConfig(config))
      throw new SamplerError(
        `sampler 'flow-euler' needs a FlowMatchEulerDiscreteScheduler config, got ${config._class_name}`,
      );
    const c: FlowMatchSchedulerConfig = config ?? FlowMatchSchedulerConfigSchema.parse({});
    return new FlowMatchEulerSampler(c, options.schedule !== undefined ? { schedule: options.schedule } : {});
  }
  if (config !== undefined && isFlowMatchConfig(config))
    throw new SamplerError(`sampler '${name}' needs a CogVideoX scheduler config, got ${config._class_name}`);
  const c: CogVideoXSchedulerConfig = config ?? COGVIDEOX_5B_SCHEDULER;
  const o = options.prevTimestep !== undefined ? { prevTimestep: options.prevTimestep } : {};
  return name === 'ddim' ? new CogVideoXDDIMSampler(c, o) : new CogVideoXDPMSampler(c, o);
}
