/**
 * The sampler's `scheduler_config.json`, with the reference (diffusers) keys verbatim, validated once
 * at the boundary. Two families:
 *
 * - `CogVideoXDDIMScheduler` / `CogVideoXDPMScheduler` (one key set; defaults = the reference class
 *   defaults, which are NOT the CogVideoX checkpoint values: use `COGVIDEOX_5B_SCHEDULER` for those);
 * - `FlowMatchEulerDiscreteScheduler` (diffusers 0.30.3 keys; later keys accepted at their defaults).
 *
 * Keys the reference accepts but this port does not implement are accepted at their reference default
 * and rejected otherwise, naming the key.
 */
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { readJsonFile, validateConfig } from './configFile.js';

export const COGVIDEOX_SCHEDULER_CLASSES = ['CogVideoXDDIMScheduler', 'CogVideoXDPMScheduler'] as const;

export const CogVideoXSchedulerConfigSchema = z
  .object({
    _class_name: z.enum(COGVIDEOX_SCHEDULER_CLASSES).default('CogVideoXDDIMScheduler'),
    num_train_timesteps: z.number().int().positive().default(1000),
    beta_start: z.number().positive().default(0.00085),
    beta_end: z.number().positive().default(0.012),
    beta_schedule: z.string().default('scaled_linear'),
    trained_betas: z.null().default(null),
    /** Accepted for compatibility: the CogVideoX step never clips (neither does the reference). */
    clip_sample: z.boolean().default(true),
    clip_sample_range: z.number().default(1.0),
    set_alpha_to_one: z.boolean().default(true),
    steps_offset: z.number().int().min(0).default(0),
    prediction_type: z.enum(['epsilon', 'sample', 'v_prediction']).default('epsilon'),
    sample_max_value: z.number().default(1.0),
    timestep_spacing: z.enum(['linspace', 'leading', 'trailing']).default('leading'),
    rescale_betas_zero_snr: z.boolean().default(false),
    snr_shift_scale: z.number().positive().default(3.0),
  })
  .superRefine((c, ctx) => {
    if (c.beta_schedule !== 'scaled_linear') {
      ctx.addIssue({
        code: 'custom',
        path: ['beta_schedule'],
        message: `only 'scaled_linear' (every CogVideoX checkpoint) is supported, got '${c.beta_schedule}'`,
      });
    }
    if (c.beta_end <= c.beta_start)
      ctx.addIssue({
        code: 'custom',
        path: ['beta_end'],
        message: `must exceed beta_start ${c.beta_start}, got ${c.beta_end}`,
      });
  });

export type CogVideoXSchedulerConfig = z.infer<typeof CogVideoXSchedulerConfigSchema>;

export const FlowMatchSchedulerConfigSchema = z.object({
  _class_name: z.literal('FlowMatchEulerDiscreteScheduler').default('FlowMatchEulerDiscreteScheduler'),
  num_train_timesteps: z.number().int().positive().default(1000),
  shift: z.number().positive().default(1.0),
  use_dynamic_shifting: z.literal(false).default(false),
  base_shift: z.number().default(0.5),
  max_shift: z.number().default(1.15),
  base_image_seq_len: z.number().int().default(256),
  max_image_seq_len: z.number().int().default(4096),
  // later diffusers releases: accepted only at their defaults
  invert_sigmas: z.literal(false).default(false),
  shift_terminal: z.null().default(null),
  use_karras_sigmas: z.literal(false).default(false),
  use_exponential_sigmas: z.literal(false).default(false),
  use_beta_sigmas: z.literal(false).default(false),
  time_shift_type: z.literal('exponential').default('exponential'),
  // re-noise each step with fresh ε around x̂₀ (src/sampler/flowMatchEuler.ts)
  stochastic_sampling: z.boolean().default(false),
  // mask2dit extension: what the model predicts — the velocity ε − x₀ (every reference flow model) or
  // the clean sample x₀ (then v = (x_σ − x̂₀)/σ; easier for small models, which must otherwise copy the
  // input's noise through the network exactly)
  prediction_type: z.enum(['flow_prediction', 'sample']).default('flow_prediction'),
});

export type FlowMatchSchedulerConfig = z.infer<typeof FlowMatchSchedulerConfigSchema>;

export type SchedulerConfig = CogVideoXSchedulerConfig | FlowMatchSchedulerConfig;

/** The scheduler config of every CogVideoX-5B checkpoint (and of Mask²DiT, fine-tuned from it). */
export const COGVIDEOX_5B_SCHEDULER: CogVideoXSchedulerConfig = {
  _class_name: 'CogVideoXDDIMScheduler',
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  trained_betas: null,
  clip_sample: false,
  clip_sample_range: 1.0,
  set_alpha_to_one: true,
  steps_offset: 0,
  prediction_type: 'v_prediction',
  sample_max_value: 1.0,
  timestep_spacing: 'trailing',
  rescale_betas_zero_snr: true,
  snr_shift_scale: 1.0,
};

const KNOWN_IGNORED = new Set(['_diffusers_version', '_name_or_path', '_note']);

function validate<S extends z.ZodType<object>>(schema: S, keys: string[], raw: unknown, file: string): z.infer<S> {
  return validateConfig(schema, keys, raw, file, 'scheduler', KNOWN_IGNORED).data;
}

/** Validate a parsed `scheduler_config.json`; the family is chosen by `_class_name` (default: CogVideoX DDIM). */
export function parseSchedulerConfig(raw: unknown, file = 'scheduler_config.json'): SchedulerConfig {
  const cls = raw !== null && typeof raw === 'object' ? (raw as Record<string, unknown>)['_class_name'] : undefined;
  if (cls === 'FlowMatchEulerDiscreteScheduler') {
    return validate(FlowMatchSchedulerConfigSchema, Object.keys(FlowMatchSchedulerConfigSchema.shape), raw, file);
  }
  if (cls !== undefined && !(COGVIDEOX_SCHEDULER_CLASSES as readonly unknown[]).includes(cls)) {
    throw new ConfigError(
      file,
      '_class_name',
      `expected one of ${[...COGVIDEOX_SCHEDULER_CLASSES, 'FlowMatchEulerDiscreteScheduler'].join(', ')}, got ${JSON.stringify(cls)}`,
    );
  }
  return validate(CogVideoXSchedulerConfigSchema, Object.keys(CogVideoXSchedulerConfigSchema.shape), raw, file);
}

export function isFlowMatchConfig(c: SchedulerConfig): c is FlowMatchSchedulerConfig {
  return c._class_name === 'FlowMatchEulerDiscreteScheduler';
}

/** Read and validate a `scheduler_config.json` (a pipeline folder's `scheduler/scheduler_config.json`). */
export function readSchedulerConfig(file: string): SchedulerConfig {
  return parseSchedulerConfig(readJsonFile(file), file);
}
