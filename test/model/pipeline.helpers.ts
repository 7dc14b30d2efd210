/** Shared by the pipeline tests: the tiny transformer of a pipeline fixture, and a transformer spy. */
import * as tf from '@tensorflow/tfjs-core';
import { parseTransformerConfig } from '../../src/config/transformerConfig.js';
import { parseSchedulerConfig, type SchedulerConfig } from '../../src/config/schedulerConfig.js';
import { parseVaeConfig } from '../../src/config/vaeConfig.js';
import { CogVideoXVAE } from '../../src/model/vae.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { WeightSource } from '../../src/layers/weightSource.js';
import { Mask2DiTTransformer, type TransformerInputs } from '../../src/model/transformer.js';
import { readTensors } from '../../src/model/pretrained.js';
import { fixtureJson, fixturePath } from '../helpers/fixtures.js';

interface PipelineConfig {
  transformer: unknown;
  vae: Record<string, unknown>;
  scheduler: unknown;
}

/** The `transformer.*` weights of a pipeline fixture as a Mask2DiTTransformer. */
export async function loadPipelineTransformer(
  caseName: string,
): Promise<{ transformer: Mask2DiTTransformer; scheduler: SchedulerConfig; vaeConfig: Record<string, unknown> }> {
  const cfg = fixtureJson<PipelineConfig>(caseName, 'config.json');
  const { config } = parseTransformerConfig(cfg.transformer, `${caseName}/config.json#transformer`);
  const src = await openSafetensors(fixturePath(caseName, 'weights.safetensors'));
  const all = await readTensors(src);
  await src.close();
  const mine = new Map<string, tf.Tensor>();
  for (const [k, t] of all) {
    if (k.startsWith('transformer.')) mine.set(k.slice('transformer.'.length), t);
    else t.dispose();
  }
  const ws = WeightSource.fromTensors(`${caseName}/weights.safetensors#transformer`, mine);
  const transformer = new Mask2DiTTransformer(config, ws);
  ws.finish(true);
  return {
    transformer,
    scheduler: parseSchedulerConfig(cfg.scheduler, `${caseName}/config.json#scheduler`),
    vaeConfig: cfg.vae,
  };
}

/** The `vae.*` weights of a pipeline fixture as a CogVideoXVAE. */
export async function loadPipelineVae(caseName: string): Promise<CogVideoXVAE> {
  const cfg = fixtureJson<PipelineConfig>(caseName, 'config.json');
  const { config } = parseVaeConfig(cfg.vae, `${caseName}/config.json#vae`);
  const src = await openSafetensors(fixturePath(caseName, 'weights.safetensors'));
  const all = await readTensors(src);
  await src.close();
  const mine = new Map<string, tf.Tensor>();
  for (const [k, t] of all) {
    if (k.startsWith('vae.')) mine.set(k.slice('vae.'.length), t);
    else t.dispose();
  }
  const ws = WeightSource.fromTensors(`${caseName}/weights.safetensors#vae`, mine);
  const vae = new CogVideoXVAE(config, ws);
  ws.finish(true);
  return vae;
}

export interface RecordedCall {
  timestep: number[];
  clipIdx: number | undefined;
  timestepCond: number | undefined;
  batch: number;
  hiddenStates: Float32Array;
  encoderHiddenStates: Float32Array;
  output: Float32Array;
}

/**
 * Wrap `transformer.forward` (the real math runs) and record each call's arguments and output.
 * Returns the record list and a function that restores the original method.
 */
export function spyTransformer(transformer: Mask2DiTTransformer): { calls: RecordedCall[]; restore: () => void } {
  const calls: RecordedCall[] = [];
  const original = transformer.forward;
  transformer.forward = function (this: Mask2DiTTransformer, inputs: TransformerInputs): tf.Tensor {
    const out = original.call(this, inputs);
    calls.push({
      timestep: [...inputs.timestep],
      clipIdx: inputs.clipIdx,
      timestepCond: inputs.timestepCond,
      batch: inputs.hiddenStates.shape[0]!,
      hiddenStates: (inputs.hiddenStates.dataSync() as Float32Array).slice(),
      encoderHiddenStates: (inputs.encoderHiddenStates.dataSync() as Float32Array).slice(),
      output: (out.dataSync() as Float32Array).slice(),
    });
    return out;
  };
  return { calls, restore: () => void (transformer.forward = original) };
}
