/**
 * The Mask²DiT denoising transformer (official `MultiPromptCogVideoXTransformer3DModel`, attention
 * mask version 2) and, with one scene, diffusers' `CogVideoXTransformer3DModel` (2B: sin-cos
 * position embedding; 5B: 3D RoPE).
 *
 * forward: 1. time embedding (and the conditioning timestep's)  2. patch embedding
 *          3. transformer blocks under the dual mask  4. norm_final, norm_out, proj_out  5. unpatchify
 *
 * Probe names follow the reference fixtures: `time_proj.out`, `time_embedding.out`, `patch_embed.out`,
 * `block.<i>.{hidden_states,encoder_hidden_states}`, `block.<i>.norm1.*`, `block.<i>.attn1.*`,
 * `block.<i>.ff.out`, `norm_final.out`, `norm_out.out`, `proj_out.out`; with a target segment, modules
 * that the reference calls twice are named `<module>.call0` (target) and `<module>.call1` (conditioning).
 *
 * Offload (`fromPretrained(dir, { offload })`, see model/offload.ts): with 'blocks' the transformer
 * blocks stay in the checkpoint and each is built right before it runs and disposed after; patch
 * embedding, time embedding, norm_final, norm_out and proj_out stay resident. Same numbers either way.
 * An offloaded model's `namedWeights()`/`variables()` list the resident parameters only (its blocks
 * are not variables); `countParams()` and `save()` cover every parameter; training is refused.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { ShapeError } from '../errors.js';
import { checkWebGpu } from '../backend/webgpu.js';
import { checkMemoryBudget } from '../backend/memoryBudget.js';
import { transformerPeakEstimate } from './peakEstimate.js';
import { DEFAULT_CHUNK_SIZE } from '../layers/maskedAttention.js';
import { DIFFUSERS_VERSION, writeDiffusersComponent } from '../io/diffusersComponent.js';
import { readTransformerConfig, type TransformerConfig } from '../config/transformerConfig.js';
import { Container, M2Layer } from '../layers/layer.js';
import { AdaLayerNorm, segmentCondition, type SegmentCondition } from '../layers/adaLayerNorm.js';
import { attentionPlan } from '../layers/attention.js';
import { DiTBlock } from '../layers/ditBlock.js';
import { LayerNorm } from '../layers/layerNorm.js';
import { Linear } from '../layers/linear.js';
import { CogVideoXPatchEmbed } from '../layers/patchEmbed.js';
import { rope3dTables } from '../layers/rope3d.js';
import { TimestepEmbedding, timestepSinusoid } from '../layers/timestepEmbedding.js';
import { WeightSource } from '../layers/weightSource.js';
import type { Probe } from '../layers/probe.js';
import { OffloadedBlocks, OffloadError, type BlockLayout, type StoredWeights } from './offload.js';
import { loadPretrained, type OffloadOptions, type PretrainedOptions } from './pretrained.js';
import { layoutTotals, rangeLength, sceneFrameRange, type SceneLayout } from '../scene/layout.js';
import { scenePlan, type ScenePlan } from '../scene/plan.js';

export interface TransformerInputs {
  /** Noisy latents `[B, F, C, H, W]`; scene s owns latent frames `[s·F/S, (s+1)·F/S)` (`sceneFrameRange`). */
  hiddenStates: tf.Tensor;
  /** Prompt embeddings `[B, S·T, textDim]`, one block of `max_text_seq_length` rows per scene. */
  encoderHiddenStates: tf.Tensor;
  /** Diffusion timestep per batch row. */
  timestep: number[];
  /** Target segment (`clip_idx`): this scene is denoised, the others are clean conditioning. */
  clipIdx?: number;
  /** Timestep of the conditioning segments (0 in the scene-extension pipeline). Needs `clipIdx`. */
  timestepCond?: number;
  /** RoPE tables for all video tokens `[Lv, headDim]`; computed from the config when absent. */
  rope?: { cos: tf.Tensor; sin: tf.Tensor };
  /** Captures intermediates: `patch_embed.out`, `block.<i>.attn1.probs`, `norm_out.out`, … */
  probe?: Probe;
  /** Attention query chunk size (bounds the peak score block). */
  chunkSize?: number;
}

/** The scene plan of one forward (layout, per-scene frames, target segment, chunking) and the input sizes. */
export interface ForwardPlan extends ScenePlan {
  B: number;
  F: number;
  C: number;
  H: number;
  W: number;
  scenes: number;
}

export class Mask2DiTTransformer extends M2Layer {
  static readonly className = 'M2Mask2DiTTransformer';
  readonly patchEmbed: CogVideoXPatchEmbed;
  readonly timeEmbedding: TimestepEmbedding;
  /** The resident blocks (empty when offloaded: see `offload`). */
  readonly blocks: DiTBlock[];
  readonly normFinal: LayerNorm;
  readonly normOut: AdaLayerNorm;
  readonly projOut: Linear;
  /** RoPE tables of the last input size (a sampler calls with one size every step). */
  private ropeCache: { key: string; cos: tf.Tensor; sin: tf.Tensor } | undefined;
  /** The blocks left in the checkpoint (offload mode), built one at a time. */
  private readonly offloaded: OffloadedBlocks<DiTBlock> | undefined;

  /**
   * @param store when given, the blocks are offloaded: validated against `ws` now, read from `store`
   *   per forward (the model owns the store and closes it on dispose)
   */
  constructor(
    readonly config: TransformerConfig,
    ws: WeightSource,
    store?: StoredWeights,
  ) {
    super('transformer');
    const c = config;
    const D = c.innerDim;
    this.patchEmbed = this.child('patch_embed', new CogVideoXPatchEmbed(c, ws.pp('patch_embed')));
    this.timeEmbedding = this.child(
      'time_embedding',
      new TimestepEmbedding({ inChannels: D, timeEmbedDim: c.time_embed_dim }, ws.pp('time_embedding')),
    );
    const list = this.child('transformer_blocks', new Container('transformer_blocks'));
    const blockCfg = {
      dim: D,
      heads: c.num_attention_heads,
      headDim: c.attention_head_dim,
      timeEmbedDim: c.time_embed_dim,
      normEps: c.norm_eps,
      normElementwiseAffine: c.norm_elementwise_affine,
      attentionBias: c.attention_bias,
      ffInnerDim: 4 * D,
    };
    const layout = Mask2DiTTransformer.blockLayout(c);
    if (store === undefined)
      this.blocks = Array.from({ length: c.num_layers }, (_, i) =>
        list.add(String(i), new DiTBlock(blockCfg, ws.pp(layout.prefix).pp(i))),
      );
    else {
      this.blocks = [];
      this.offloaded = new OffloadedBlocks(store, layout, (bws) => new DiTBlock(blockCfg, bws), ws);
    }
    this.normFinal = this.child(
      'norm_final',
      new LayerNorm(
        { dim: D, eps: c.norm_eps, elementwiseAffine: c.norm_elementwise_affine, bias: true },
        ws.pp('norm_final'),
      ),
    );
    this.normOut = this.child(
      'norm_out',
      new AdaLayerNorm(
        { dim: D, conditioningDim: c.time_embed_dim, eps: c.norm_eps, elementwiseAffine: c.norm_elementwise_affine },
        ws.pp('norm_out'),
      ),
    );
    const p = c.patch_size;
    this.projOut = this.child(
      'proj_out',
      new Linear({ inFeatures: D, outFeatures: p * p * c.outChannels, bias: true }, ws.pp('proj_out')),
    );
  }

  /** How the parameters split into blocks (what offload reads per use). */
  static blockLayout(c: TransformerConfig): BlockLayout {
    return { prefix: 'transformer_blocks', count: c.num_layers };
  }

  /** Where the blocks' weights live: 'none' = resident, 'blocks' = read from the checkpoint per forward. */
  get offload(): 'none' | 'blocks' {
    return this.offloaded === undefined ? 'none' : 'blocks';
  }

  /** Run `fn` on block i: the resident block, or one built from the checkpoint and disposed after. */
  private withBlock<R>(i: number, fn: (block: DiTBlock) => R): R {
    return this.offloaded === undefined ? fn(this.blocks[i]!) : this.offloaded.run(i, fn);
  }

  /** Check input shapes against the config and build the forward's scene plan (once per forward). */
  plan(inputs: TransformerInputs): ForwardPlan {
    const c = this.config;
    const x = inputs.hiddenStates;
    if (x.rank !== 5) throw new ShapeError('hidden_states', `expected [B, F, C, H, W], got [${x.shape}]`);
    const [B, F, C, H, W] = x.shape as [number, number, number, number, number];
    const e = inputs.encoderHiddenStates;
    if (e.rank !== 3 || e.shape[0] !== B || e.shape[2] !== c.text_embed_dim) {
      throw new ShapeError(
        'encoder_hidden_states',
        `expected [${B}, S·${c.max_text_seq_length}, ${c.text_embed_dim}], got [${e.shape}]`,
      );
    }
    if (C !== c.in_channels)
      throw new ShapeError('hidden_states', `expected ${c.in_channels} channels (config in_channels), got ${C}`);
    const p = c.patch_size;
    if (H % p !== 0 || W % p !== 0)
      throw new ShapeError('hidden_states', `height ${H} and width ${W} must be multiples of patch_size ${p}`);
    if (inputs.timestep.length !== B)
      throw new ShapeError('timestep', `expected ${B} values (one per batch row), got ${inputs.timestep.length}`);
    const Lt = e.shape[1]!;
    let scenes = 1;
    if (c.multiScene) {
      if (Lt % c.max_text_seq_length !== 0)
        throw new ShapeError(
          'encoder_hidden_states',
          `text length ${Lt} is not a multiple of max_text_seq_length ${c.max_text_seq_length}`,
        );
      scenes = Lt / c.max_text_seq_length;
    }
    if (F % scenes !== 0)
      throw new ShapeError('hidden_states', `${F} latent frames cannot be split evenly into ${scenes} scenes`);
    if (
      inputs.clipIdx !== undefined &&
      !(Number.isInteger(inputs.clipIdx) && inputs.clipIdx >= 0 && inputs.clipIdx < scenes)
    ) {
      throw new ShapeError('clip_idx', `expected an integer scene index in [0, ${scenes}), got ${inputs.clipIdx}`);
    }
    const tokensPerFrame = (H / p) * (W / p);
    const video = Array.from({ length: scenes }, (_, s) => rangeLength(sceneFrameRange(F, scenes, s)) * tokensPerFrame);
    const layout: SceneLayout = { text: Array(scenes).fill(Lt / scenes), video };
    const opts = {
      frames: F,
      ...(inputs.clipIdx !== undefined ? { target: inputs.clipIdx } : {}),
      ...(inputs.chunkSize !== undefined ? { chunkSize: inputs.chunkSize } : {}),
    };
    return { B, F, C, H, W, scenes, ...scenePlan(layout, opts) };
  }

  /** RoPE tables for F latent frames of H×W latents (all scenes, time positions continuous). */
  ropeFor(F: number, H: number, W: number): { cos: tf.Tensor; sin: tf.Tensor } {
    const c = this.config;
    const p = c.patch_size;
    return rope3dTables({
      headDim: c.attention_head_dim,
      frames: F,
      gridH: H / p,
      gridW: W / p,
      baseH: c.sample_height / p,
      baseW: c.sample_width / p,
    });
  }

  /** `ropeFor`, built once per input size and kept until the size changes or the model is disposed. */
  cachedRope(F: number, H: number, W: number): { cos: tf.Tensor; sin: tf.Tensor } {
    const key = `${F},${H},${W}`;
    if (this.ropeCache?.key !== key) {
      this.releaseRope();
      const t = this.ropeFor(F, H, W);
      this.ropeCache = { key, cos: tf.keep(t.cos), sin: tf.keep(t.sin) };
    }
    return this.ropeCache;
  }

  private releaseRope(): void {
    this.ropeCache?.cos.dispose();
    this.ropeCache?.sin.dispose();
    this.ropeCache = undefined;
  }

  protected override releaseCaches(): void {
    this.releaseRope();
  }

  /**
   * The model prediction `[B, F, C_out, H, W]` (v-prediction for CogVideoX checkpoints).
   * @throws MemoryBudgetError before running when the estimated peak does not fit the backend
   *   (the wasm heap, a WebGPU binding); WebGpuDeviceError when earlier GPU work failed.
   */
  forward(inputs: TransformerInputs): tf.Tensor {
    const plan = this.plan(inputs);
    const c = this.config;
    const { B, F, H, W, layout, target } = plan;
    const { probe } = inputs;
    checkWebGpu();
    checkMemoryBudget('transformer forward', this.peakEstimate(plan));
    const rope = c.use_rotary_positional_embeddings ? (inputs.rope ?? this.cachedRope(F, H, W)) : undefined;
    return tf.tidy(() => {
      // 1. time embedding
      const sfx = target !== undefined ? '.call0' : '';
      const tProj = timestepSinusoid(inputs.timestep, c.innerDim, c.flip_sin_to_cos, c.freq_shift); // [B, D]
      probe?.capture(`time_proj${sfx}.out`, tProj);
      const temb = this.timeEmbedding.forward(tProj); // [B, E]
      probe?.capture(`time_embedding${sfx}.out`, temb);
      let segment: SegmentCondition | undefined;
      if (target !== undefined) {
        const tcProj = timestepSinusoid([inputs.timestepCond ?? 0], c.innerDim, c.flip_sin_to_cos, c.freq_shift); // [1, D]
        probe?.capture('time_proj.call1.out', tcProj);
        const tembCond = this.timeEmbedding.forward(tcProj); // [1, E]
        probe?.capture('time_embedding.call1.out', tembCond);
        segment = segmentCondition(layout, target.scene, tembCond);
      }

      // 2. patch embedding: [B, Lt + Lv, D], text first
      const tokens = this.patchEmbed.forward({ latents: inputs.hiddenStates, text: inputs.encoderHiddenStates });
      probe?.capture('patch_embed.out', tokens);
      const Lt = inputs.encoderHiddenStates.shape[1]!;
      let e = tf.slice(tokens, [0, 0, 0], [-1, Lt, -1]); // [B, Lt, D]
      let h = tf.slice(tokens, [0, Lt, 0], [-1, -1, -1]); // [B, Lv, D]

      // 3. blocks
      for (let i = 0; i < c.num_layers; i++) {
        const o = this.withBlock(i, (block) =>
          block.forward({
            hidden: h,
            encoderHidden: e,
            temb,
            ...attentionPlan(plan),
            ...(rope !== undefined ? { rope } : {}),
            ...(segment !== undefined ? { cond: segment } : {}),
            probe: probe?.at(`block.${i}`),
          }),
        );
        h = o.hidden;
        e = o.encoderHidden;
      }

      // 4. output norms and projection
      if (c.use_rotary_positional_embeddings) {
        const n = this.normFinal.forward(tf.concat([e, h], 1)); // [B, Lt + Lv, D]
        probe?.capture('norm_final.out', n);
        h = tf.slice(n, [0, Lt, 0], [-1, -1, -1]);
      } else {
        h = this.normFinal.forward(h);
        probe?.capture('norm_final.out', h);
      }
      h = this.normOut.forward({
        hidden: h,
        temb,
        ...(segment !== undefined ? { cond: segment } : {}),
        probe: probe?.at('norm_out'),
      });
      h = this.projOut.forward(h); // [B, Lv, p·p·C_out]
      probe?.capture('proj_out.out', h);

      // 5. unpatchify: features are ordered (channel, row-in-patch, col-in-patch); two 4-D transposes
      //    (tfjs-webgpu has no kernels above rank 6, and its rank-5/6 shaders are fragile)
      const p = c.patch_size;
      const Co = c.outChannels;
      const [hp, wp] = [H / p, W / p];
      const x = tf.reshape(h, [B * F * hp, wp, Co * p, p]); // [B·F·h, w, C·pr, pc]
      const y = tf.transpose(x, [0, 2, 1, 3]); // [B·F·h, C·pr, w, pc]
      const z = tf.transpose(tf.reshape(y, [B * F, hp, Co, p * W]), [0, 2, 1, 3]); // [B·F, C, h, pr·w·pc]
      return tf.reshape(z, [B, F, Co, H, W]);
    });
  }

  /** Estimated peak bytes of one forward over `plan` (see `transformerPeakEstimate`), plus the running block when offloaded. */
  peakEstimate(plan: ForwardPlan) {
    const c = this.config;
    const { textTotal: Lt, videoTotal: Lv } = layoutTotals(plan.layout);
    const chunkSize = plan.chunkSize ?? DEFAULT_CHUNK_SIZE;
    const est = transformerPeakEstimate({
      B: plan.B,
      Lt,
      Lv,
      dim: c.innerDim,
      heads: c.num_attention_heads,
      ffInner: 4 * c.innerDim,
      chunkSize,
      layout: plan.layout,
    });
    if (this.offloaded === undefined) return est;
    // the running block's weights, built as separate tensors, and on wasm XNNPACK's packed copy of each matMul operand
    const block = this.offloaded.largestBlockBytes() * (tf.getBackend() === 'wasm' ? 2 : 1);
    const withBlock = { ...est, totalBytes: est.totalBytes + block } as typeof est & { heapBytes?: number };
    if (withBlock.heapBytes !== undefined) withBlock.heapBytes += block;
    return withBlock;
  }

  /** Every parameter, offloaded blocks included. */
  override countParams(): number {
    return super.countParams() + (this.offloaded?.paramCount() ?? 0);
  }

  /** Training needs every weight as a variable: refused for an offloaded model. */
  override setTrainable(trainable: boolean): void {
    if (trainable && this.offloaded !== undefined)
      throw new OffloadError(
        'transformer',
        "its blocks are offloaded (read from the checkpoint per forward), so it cannot be trained; load it with offload: 'none'",
      );
    super.setTrainable(trainable);
  }

  override dispose(): { refCountAfterDispose: number; numDisposedVariables: number } {
    this.offloaded?.close();
    return super.dispose();
  }

  /** tfjs-layers adapter: `apply([hidden_states, encoder_hidden_states, timestep])`. */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const [hs, ehs, t] = inputs as tf.Tensor[];
    return this.forward({ hiddenStates: hs!, encoderHiddenStates: ehs!, timestep: Array.from(t!.dataSync()) });
  }

  override computeOutputShape(s: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const [B, F, , H, W] = (s as tfl.Shape[])[0]!;
    return [B ?? null, F ?? null, this.config.outChannels, H ?? null, W ?? null];
  }

  /** The reference `config.json` content of this model (derived values dropped). */
  configJson(): Record<string, unknown> {
    const { innerDim: _i, outChannels: _o, multiScene: _m, ...json } = this.config;
    return json;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...(this.configJson() as tf.serialization.ConfigDict) };
  }

  /**
   * Write the reference layout: `dir/config.json` + `dir/diffusion_pytorch_model.safetensors` (F32,
   * reference names; `namedWeights` gives every parameter in the reference layout, offloaded blocks
   * are read from the checkpoint one tensor at a time). `fromPretrained(dir)` reads it back bit for
   * bit. Refuses existing files unless `force`.
   */
  async save(dir: string, options: { force?: boolean } = {}): Promise<void> {
    await writeDiffusersComponent(dir, {
      config: { _diffusers_version: DIFFUSERS_VERSION, ...this.configJson() },
      tensors: this.referenceTensors(),
      force: options.force ?? false,
    });
  }

  /** Every parameter as a reference-layout tensor: the variables, then the offloaded blocks' (each disposed when the next is taken). */
  private *referenceTensors(): Generator<[string, tf.Tensor]> {
    for (const [name, v] of this.namedWeights()) yield [name, v.read()];
    if (this.offloaded !== undefined) yield* this.offloaded.tensors();
  }

  /**
   * Load a diffusers-layout folder: `dir/config.json` + (sharded) safetensors, or a pipeline folder
   * holding `transformer/`. Missing, unexpected and wrongly shaped parameters are reported together.
   * `options.weights` names a weights file or index explicitly (default: the one in the folder);
   * `strict: false` tolerates unexpected keys; `offload` ('auto' default, 'none', 'blocks') decides
   * whether the blocks stay in the checkpoint (see model/offload.ts).
   * @throws MemoryBudgetError before reading when the model cannot fit even offloaded
   */
  static async fromPretrained(
    dir: string,
    options: PretrainedOptions & OffloadOptions = {},
  ): Promise<Mask2DiTTransformer> {
    return loadPretrained(
      dir,
      'transformer',
      'a diffusers transformer',
      (f) => readTransformerConfig(f).config,
      (c, ws, store) => new Mask2DiTTransformer(c, ws, store),
      {
        ...options,
        blocks: (c) => Mask2DiTTransformer.blockLayout(c),
      },
    );
  }
}
tf.serialization.registerClass(Mask2DiTTransformer, 'Mask2DiT');
