/**
 * The training loop shared by every model here: seeded steps, AdamW with warmup + cosine learning
 * rate, global-norm gradient clipping, EMA of the weights, atomic checkpoints with optimizer state and
 * an exact `resume` (step k draws from (seed, k) only, so a resumed run repeats the uninterrupted one).
 *
 *   const t = new Trainer('dit', { transformer }, objective, options);
 *   await t.run(1000, { onStep: (r) => ... });   await t.save('ckpt.safetensors');
 */
import fs from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { Mask2DiTError } from '../errors.js';
import type { M2Layer } from '../layers/layer.js';
import { AdamW, clipByGlobalNorm } from './adamw.js';
import { assignFrom, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { Ema } from './ema.js';
import { StepRng } from './rng.js';
import { learningRate } from './schedule.js';

export interface TrainOptions {
  lr: number;
  warmupSteps: number;
  /** Steps of the cosine schedule (the run may stop earlier or be resumed up to it). */
  totalSteps: number;
  minLr: number;
  weightDecay: number;
  /** Max global gradient norm (Infinity: no clipping). */
  clipNorm: number;
  emaDecay: number;
  seed: number;
}

export const TRAIN_DEFAULTS: TrainOptions = {
  lr: 3e-4,
  warmupSteps: 50,
  totalSteps: 1000,
  minLr: 3e-5,
  weightDecay: 0.01,
  clipNorm: 1,
  emaDecay: 0.999,
  seed: 0,
};

/** One step's loss closure: `loss()` is run under `tf.variableGrads`. */
export interface StepObjective {
  loss: () => tf.Scalar;
  /** Facts about the step for the log (e.g. objective: 'joint' | 'conditional'). */
  info?: Record<string, number | string>;
  /** Frees the step's batch tensors after the update. */
  dispose?: () => void;
}

export type Objective = (step: number, rng: StepRng) => StepObjective;

export interface StepRecord {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  ms: number;
  [k: string]: number | string;
}

export class Trainer {
  /** Completed steps. */
  step = 0;
  readonly params: Map<string, tf.Variable>;
  private readonly opt: AdamW;
  private readonly ema: Ema;
  /** `<module>.<name>` of the frozen parameters. */
  private readonly frozen: Set<string>;
  /** The parameters that get gradients (all but the frozen ones). */
  private readonly trained: tf.Variable[];

  constructor(
    readonly kind: string,
    readonly modules: Record<string, M2Layer>,
    readonly objective: Objective,
    readonly options: TrainOptions,
    /** Configs stored in checkpoints (JSON strings by module). */
    readonly configs: Record<string, string> = {},
    /** Parameters (`<module>.<name>`) kept fixed: no gradient, no update; they are still checkpointed. */
    frozen: (ref: string) => boolean = () => false,
  ) {
    this.params = new Map();
    for (const [m, layer] of Object.entries(modules)) {
      layer.setTrainable(true);
      for (const [n, v] of layer.variables()) this.params.set(`${m}.${n}`, v);
    }
    this.frozen = new Set([...this.params.keys()].filter(frozen));
    this.trained = [...this.params].filter(([ref]) => !this.frozen.has(ref)).map(([, v]) => v);
    if (this.trained.length === 0) throw new Mask2DiTError('OPTION', `${kind}: every parameter is frozen`);
    this.opt = new AdamW(this.params, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: options.weightDecay });
    this.ema = new Ema(this.params, options.emaDecay);
  }

  /** Run steps until `untilStep` completed steps (or the signal aborts between steps). */
  async run(
    untilStep: number,
    hooks: { onStep?: (r: StepRecord) => void | Promise<void>; signal?: AbortSignal; log?: string } = {},
  ): Promise<StepRecord[]> {
    const records: StepRecord[] = [];
    const byVarName = new Map([...this.params].map(([ref, v]) => [v.name, ref]));
    while (this.step < untilStep) {
      // a macrotask turn before each step: the awaits of a step resolve as microtasks, so without it a
      // SIGINT/SIGTERM handler (and with it the abort signal) would only run at the next file write
      await new Promise<void>((r) => setImmediate(r));
      if (hooks.signal?.aborted === true) break;
      const t0 = performance.now();
      const rng = new StepRng(this.options.seed, this.step);
      const s = this.objective(this.step, rng);
      const { value, grads } = tf.variableGrads(s.loss, this.trained);
      const loss = (await value.data())[0]!;
      value.dispose();
      if (!Number.isFinite(loss)) {
        tf.dispose(Object.values(grads));
        s.dispose?.();
        throw new Mask2DiTError(
          'TRAIN_DIVERGED',
          `${this.kind}: loss is ${loss} at step ${this.step}; lower the learning rate (now ${this.options.lr}) or check the data`,
        );
      }
      const named = new Map(Object.entries(grads).map(([vn, g]) => [byVarName.get(vn)!, g]));
      const gradNorm = clipByGlobalNorm(named, this.options.clipNorm);
      const lr = learningRate(this.options, this.step);
      this.opt.step(named, lr);
      this.ema.update(this.opt.t, this.frozen);
      tf.dispose([...named.values()]);
      s.dispose?.();
      this.invalidate();
      const r: StepRecord = { step: this.step, loss, lr, gradNorm, ms: performance.now() - t0, ...(s.info ?? {}) };
      this.step++;
      records.push(r);
      if (hooks.log !== undefined) fs.appendFileSync(hooks.log, JSON.stringify(r) + '\n');
      await hooks.onStep?.(r);
    }
    return records;
  }

  private invalidate(): void {
    for (const m of Object.values(this.modules)) m.invalidateCaches();
  }

  /** Write weights, EMA and optimizer state (atomically). */
  async save(file: string): Promise<void> {
    const t = new Map<string, tf.Tensor>();
    for (const [n, v] of this.params) t.set(n, v);
    for (const [n, v] of this.ema.shadow) t.set(`ema.${n}`, v);
    for (const [n, v] of this.opt.state()) t.set(`optim.${n}`, v);
    await saveCheckpoint(file, t, {
      kind: this.kind,
      step: this.step,
      optimizerT: this.opt.t,
      seed: this.options.seed,
      configs: { ...this.configs, trainer: JSON.stringify(this.options) },
    });
  }

  /** Continue from a checkpoint of the same modules; refuses a mismatch before any step runs. */
  async resume(file: string): Promise<void> {
    const { tensors, meta } = await loadCheckpoint(file);
    try {
      if (meta.kind !== this.kind)
        throw new Mask2DiTError('CHECKPOINT', `${file}: a ${meta.kind || 'unknown'} checkpoint, expected ${this.kind}`);
      for (const [k, v] of Object.entries(this.configs)) {
        if (meta.configs[k] !== undefined && meta.configs[k] !== v)
          throw new Mask2DiTError('CHECKPOINT', `${file}: the ${k} config differs from the model being trained`);
      }
      // a config the checkpoint has and this run lacks (e.g. an objective with options resumed without them)
      for (const k of Object.keys(meta.configs)) {
        if (k !== 'trainer' && this.configs[k] === undefined)
          throw new Mask2DiTError(
            'CHECKPOINT',
            `${file}: was trained with the ${k} config ${meta.configs[k]}, which this run does not have`,
          );
      }
      assignFrom(tensors, '', this.params, file);
      assignFrom(tensors, 'ema.', this.ema.shadow, file);
      const state = new Map([...tensors].filter(([n]) => n.startsWith('optim.')).map(([n, t]) => [n.slice(6), t]));
      this.opt.loadState(state, meta.optimizerT, file);
      this.step = meta.step;
      this.invalidate();
    } finally {
      tf.dispose([...tensors.values()]);
    }
  }

  /** The EMA weights by `<module>.<name>` (what gets shipped). */
  emaWeights(): Map<string, tf.Variable> {
    return this.ema.shadow;
  }

  /** Copy the EMA weights into the live modules (e.g. before sampling or export). */
  applyEma(): void {
    for (const [n, v] of this.params) v.assign(this.ema.shadow.get(n)!);
    this.invalidate();
  }

  /** Free the optimizer and EMA state; modules go back to inference mode (they are not disposed). */
  dispose(): void {
    this.opt.dispose();
    this.ema.dispose();
    for (const m of Object.values(this.modules)) m.setTrainable(false);
  }
}
