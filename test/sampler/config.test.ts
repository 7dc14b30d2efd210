/** scheduler_config.json validation and sampler creation by name. */
import { describe, expect, it } from '@jest/globals';
import { ConfigError } from '../../src/errors.js';
import { COGVIDEOX_5B_SCHEDULER, parseSchedulerConfig } from '../../src/config/schedulerConfig.js';
import { createSampler, SamplerError } from '../../src/sampler/index.js';
import { fixtureJson } from '../helpers/fixtures.js';

describe('scheduler config', () => {
  it('reads every fixture config; the 5B fixture equals COGVIDEOX_5B_SCHEDULER', () => {
    for (const c of [
      'scheduler_cogvideox_ddim',
      'scheduler_cogvideox_ddim_2b',
      'scheduler_cogvideox_dpm',
      'scheduler_flow_match_euler_shift1',
      'scheduler_flow_match_euler_shift3',
    ]) {
      expect(() => parseSchedulerConfig(fixtureJson(c, 'config.json'))).not.toThrow();
    }
    expect(parseSchedulerConfig(fixtureJson('scheduler_cogvideox_ddim', 'config.json'))).toEqual(
      COGVIDEOX_5B_SCHEDULER,
    );
  });

  it('names the bad key', () => {
    expect(() => parseSchedulerConfig({ beta_schedule: 'linear' }, 'x.json')).toThrow(ConfigError);
    expect(() => parseSchedulerConfig({ beta_schedule: 'linear' }, 'x.json')).toThrow(
      /x.json: beta_schedule: .*only 'scaled_linear'/,
    );
    expect(() => parseSchedulerConfig({ timestep_spacing: 'sideways' })).toThrow(/timestep_spacing/);
    expect(() => parseSchedulerConfig({ _class_name: 'EulerDiscreteScheduler' })).toThrow(
      /_class_name: expected one of/,
    );
    expect(() =>
      parseSchedulerConfig({ _class_name: 'FlowMatchEulerDiscreteScheduler', use_dynamic_shifting: true }),
    ).toThrow(/use_dynamic_shifting/);
    expect(() => parseSchedulerConfig([])).toThrow(/expected a JSON object/);
  });
});

describe('createSampler', () => {
  it('creates each sampler by name; unknown names and wrong config families are typed errors', () => {
    expect(createSampler('ddim').name).toBe('ddim');
    expect(createSampler('dpm').name).toBe('dpm');
    expect(createSampler('flow-euler').name).toBe('flow-euler');
    expect(() => createSampler('euler-a')).toThrow(SamplerError);
    expect(() => createSampler('euler-a')).toThrow(/unknown sampler 'euler-a'; expected one of ddim, dpm, flow-euler/);
    const flow = parseSchedulerConfig(fixtureJson('scheduler_flow_match_euler_shift3', 'config.json'));
    expect(() => createSampler('ddim', flow)).toThrow(/needs a CogVideoX scheduler config/);
    expect(() => createSampler('flow-euler', COGVIDEOX_5B_SCHEDULER)).toThrow(
      /needs a FlowMatchEulerDiscreteScheduler config/,
    );
  });

  it('rejects bad step counts', () => {
    const s = createSampler('ddim');
    expect(() => s.setTimesteps(0)).toThrow(/steps must be an integer in \[1, 1000\]/);
    expect(() => s.setTimesteps(1001)).toThrow(/steps/);
    expect(() => createSampler('flow-euler').setTimesteps(2.5)).toThrow(/positive integer/);
  });
});
