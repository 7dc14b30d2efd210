/**
 * Parity of the patch embedding with the reference (`patch_embed.out`, atol 1e-4 / rtol 1e-4) on the
 * 2B (sin-cos table), 5B (RoPE, no table) and Mask²DiT multi-scene fixtures, on cpu and wasm; the 2B
 * table itself (`patch_embed.pos_embedding`, atol 1e-5). Then the pieces that no fixture covers, each
 * against an independent computation: the patch matMul against tf.conv2d, CogVideoX 1.5 temporal
 * patching against explicit loops, PyTorch's linear resize weights, the Mask²DiT table resize, the
 * learned table and the diffusers rules for sizing the table. Plus structure: names, countParams,
 * config round trip, registration, no tensor leak.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { ConfigError, ShapeError } from '../../src/errors.js';
import {
  CogVideoXPatchEmbed,
  linearResizeMatrix,
  sincosPosEmbed3d,
  type PatchEmbedConfig,
} from '../../src/layers/patchEmbed.js';
import { WeightSource } from '../../src/layers/weightSource.js';
import { expectClose } from '../helpers/close.js';
import { fixtureJson, get, loadFixture, toTensor, type FixtureTensor } from '../helpers/fixtures.js';

afterAll(() => shutdownBackends());

const CASES = [
  'transformer_2b_single',
  'transformer_5b_rope_single',
  'mask2dit_multiscene',
  'mask2dit_conditional',
] as const;
const ATOL = 1e-4;
const RTOL = 1e-4;
const TABLE_ATOL = 1e-5;

/** The weights whose names start with `prefix.`, renamed without it. */
function withPrefix(weights: Map<string, FixtureTensor>, prefix: string): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const [name, t] of weights) {
    if (name.startsWith(`${prefix}.`))
      out.set(name.slice(prefix.length + 1), tf.tensor(t.data as Float32Array, t.shape, 'float32'));
  }
  return out;
}

async function buildFromFixture(
  caseName: string,
): Promise<{ embed: CogVideoXPatchEmbed; cfg: PatchEmbedConfig; expectedParams: number }> {
  const cfg = fixtureJson<PatchEmbedConfig>(caseName, 'config.json');
  const weights = await loadFixture(caseName, 'weights.safetensors');
  const own = withPrefix(weights, 'patch_embed');
  const expectedParams = [...own.values()].reduce((n, t) => n + t.size, 0);
  const ws = WeightSource.fromTensors(`${caseName}/weights.safetensors[patch_embed.*]`, own);
  const embed = new CogVideoXPatchEmbed(cfg, ws);
  ws.finish(); // strict: every patch_embed.* key used with its shape
  return { embed, cfg, expectedParams };
}

describe.each(['cpu', 'wasm'] as const)('CogVideoXPatchEmbed parity on %s', (backend) => {
  it.each(CASES)('%s: patch_embed.out matches the reference', async (caseName) => {
    await selectBackend(backend);
    const { embed, expectedParams } = await buildFromFixture(caseName);
    expect(embed.countParams()).toBe(expectedParams);
    const io = await loadFixture(caseName);
    const latents = toTensor(io, 'hidden_states');
    const text = toTensor(io, 'encoder_hidden_states');
    const ref = get(io, 'patch_embed.out');
    const out = embed.forward({ latents, text });
    expect(out.shape).toEqual(ref.shape);
    expectClose(`${backend}:${caseName}:patch_embed.out`, await out.data(), ref.data as Float32Array, ATOL, RTOL);

    // repeated forwards (the position table is cached after the first) leak nothing and agree
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) embed.forward({ latents, text }).dispose();
    expect(tf.memory().numTensors).toBe(before);
    const applied = embed.apply([latents, text]) as tf.Tensor;
    expectClose(`${backend}:${caseName}:apply`, await applied.data(), await out.data(), 0, 0);
    tf.dispose([latents, text, out, applied]);
    embed.dispose();
  });

  it('transformer_2b_single: the 3D sin-cos table matches patch_embed.pos_embedding', async () => {
    await selectBackend(backend);
    const caseName = 'transformer_2b_single';
    const { embed, cfg } = await buildFromFixture(caseName);
    const io = await loadFixture(caseName);
    const ref = get(io, 'patch_embed.pos_embedding'); // [1, 8 + 72, 32]
    const [, , , H, W] = get(io, 'hidden_states').shape as [number, number, number, number, number];
    const F = get(io, 'hidden_states').shape[1]!;
    const table = embed.positionalEmbedding(cfg.max_text_seq_length!, F, H, W)!;
    expect(table.shape).toEqual(ref.shape);
    expectClose(`${backend}:pos_embedding`, await table.data(), ref.data as Float32Array, TABLE_ATOL, 0);
    // the free function gives the video rows
    const D = cfg.num_attention_heads * cfg.attention_head_dim;
    const rows = sincosPosEmbed3d(
      D,
      H / cfg.patch_size,
      W / cfg.patch_size,
      F,
      cfg.spatial_interpolation_scale,
      cfg.temporal_interpolation_scale,
    );
    expectClose(
      'sincosPosEmbed3d',
      rows,
      (ref.data as Float32Array).subarray(cfg.max_text_seq_length! * D),
      TABLE_ATOL,
      0,
    );
    table.dispose();
    embed.dispose();
  });
});

/** Tiny config for the unit tests (2B style unless overridden). */
const tiny = (over: Partial<PatchEmbedConfig> = {}): PatchEmbedConfig => ({
  num_attention_heads: 2,
  attention_head_dim: 8,
  in_channels: 3,
  text_embed_dim: 5,
  patch_size: 2,
  sample_height: 4,
  sample_width: 6,
  sample_frames: 5, // 2 latent frames
  temporal_compression_ratio: 4,
  max_text_seq_length: 3,
  ...over,
});

describe('patch projection', () => {
  it('patchify + matMul equals a stride-p conv (tf.conv2d) with the reference weight layout', async () => {
    await selectBackend('cpu');
    const cfg = tiny({ use_rotary_positional_embeddings: true });
    const embed = new CogVideoXPatchEmbed(cfg, WeightSource.random(3));
    const [B, F, C, H, W] = [2, 3, 3, 4, 6];
    const latents = tf.randomNormal([B, F, C, H, W], 0, 1, 'float32', 1);
    const text = tf.randomNormal([B, 3, 5], 0, 1, 'float32', 2);
    const out = embed.forward({ latents, text });
    const expected = tf.tidy(() => {
      const w = embed.weightByName('proj.weight')!; // [D, C, p, p]
      const b = embed.weightByName('proj.bias')!;
      const x = tf.transpose(tf.reshape(latents, [B * F, C, H, W]), [0, 2, 3, 1]) as tf.Tensor4D; // NHWC
      const filter = tf.transpose(w, [2, 3, 1, 0]) as tf.Tensor4D; // [p, p, C, D]
      const y = tf.add(tf.conv2d(x, filter, 2, 'valid'), b); // [B·F, h, w, D]
      const video = tf.reshape(y, [B, F * 2 * 3, 16]);
      const textOut = tf.add(
        tf.matMul(tf.reshape(text, [-1, 5]), embed.weightByName('text_proj.weight')!, false, true),
        embed.weightByName('text_proj.bias')!,
      );
      return tf.concat([tf.reshape(textOut, [B, 3, 16]), video], 1);
    });
    expect(out.shape).toEqual([B, 3 + F * 6, 16]);
    expectClose('conv', await out.data(), await expected.data(), 1e-5, 1e-5);
    tf.dispose([latents, text, out, expected]);
    embed.dispose();
  });

  it('patch_bias: false drops proj.bias', async () => {
    await selectBackend('cpu');
    const embed = new CogVideoXPatchEmbed(
      tiny({ use_rotary_positional_embeddings: true, patch_bias: false }),
      WeightSource.random(1),
    );
    expect([...embed.namedWeights()].map(([n]) => n)).toEqual(['proj.weight', 'text_proj.weight', 'text_proj.bias']);
    embed.dispose();
  });

  it('CogVideoX 1.5 (patch_size_t): patches span p_t frames, flattened (channel, frame, row, col), Linear proj with bias', async () => {
    await selectBackend('cpu');
    const cfg = tiny({ use_rotary_positional_embeddings: true, patch_size_t: 2, patch_bias: false });
    const embed = new CogVideoXPatchEmbed(cfg, WeightSource.random(4));
    expect([...embed.namedWeights()].map(([n, v]) => `${n}:${v.shape.join('x')}`)).toEqual([
      'proj.weight:16x24',
      'proj.bias:16',
      'text_proj.weight:16x5',
      'text_proj.bias:16',
    ]);
    const [B, F, C, H, W, p, pt, D] = [2, 4, 3, 4, 6, 2, 2, 16];
    const latents = tf.randomNormal([B, F, C, H, W], 0, 1, 'float32', 8);
    const text = tf.zeros([B, 3, 5]);
    const out = await embed.forward({ latents, text }).data();
    const x = await latents.data();
    const wt = await embed.weightByName('proj.weight')!.data();
    const bias = await embed.weightByName('proj.bias')!.data();
    const [h, w] = [H / p, W / p];
    const tokens = (F / pt) * h * w;
    const textRow = await embed.weightByName('text_proj.bias')!.data(); // text is zero: rows = bias
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < 3; i++)
        for (let d = 0; d < D; d++) expect(out[(b * (3 + tokens) + i) * D + d]).toBeCloseTo(textRow[d]!, 6);
      for (let ft = 0; ft < F / pt; ft++) {
        for (let r = 0; r < h; r++) {
          for (let c = 0; c < w; c++) {
            const token = 3 + (ft * h + r) * w + c;
            for (let d = 0; d < D; d++) {
              let acc = bias[d]!;
              let k = 0;
              for (let ch = 0; ch < C; ch++)
                for (let dt = 0; dt < pt; dt++)
                  for (let dr = 0; dr < p; dr++)
                    for (let dc = 0; dc < p; dc++, k++) {
                      const xi = (((b * F + ft * pt + dt) * C + ch) * H + r * p + dr) * W + c * p + dc;
                      acc += x[xi]! * wt[d * C * pt * p * p + k]!;
                    }
              expect(Math.abs(out[(b * (3 + tokens) + token) * D + d]! - acc)).toBeLessThan(1e-5);
            }
          }
        }
      }
    }
    const odd = tf.zeros([1, 3, C, H, W]);
    expect(() => embed.forward({ latents: odd, text: tf.zeros([1, 3, 5]) })).toThrow(/patch_size_t/);
    tf.dispose([latents, text, odd]);
    embed.dispose();
    expect(() => new CogVideoXPatchEmbed(tiny({ patch_size_t: 2 }), WeightSource.zeros())).toThrow(ConfigError);
  });
});

describe('position table sizing', () => {
  it('linearResizeMatrix has PyTorch linear (align_corners=False) weights', () => {
    // F.interpolate(tensor([0., 1., 2.]), size=6, mode='linear') == [0, .25, .75, 1.25, 1.75, 2]
    const up = linearResizeMatrix(3, 6);
    const y = [0, 1, 2, 3, 4, 5].map((o) => up[o * 3 + 1]! * 1 + up[o * 3 + 2]! * 2);
    expectClose('up', y, [0, 0.25, 0.75, 1.25, 1.75, 2], 1e-7, 0);
    // size=2 from 4 values [0, 1, 2, 3] == [0.5, 2.5]; identity at the same size
    const down = linearResizeMatrix(4, 2);
    expectClose(
      'down',
      [0, 1].map((o) => [0, 1, 2, 3].reduce((s, v, i) => s + v * down[o * 4 + i]!, 0)),
      [0.5, 2.5],
      1e-7,
      0,
    );
    expect(Array.from(linearResizeMatrix(3, 3))).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 1]);
    for (const [i, o] of [
      [5, 13],
      [13, 5],
      [7, 7],
    ] as const) {
      const m = linearResizeMatrix(i, o);
      for (let r = 0; r < o; r++) expect(m.subarray(r * i, (r + 1) * i).reduce((s, v) => s + v, 0)).toBeCloseTo(1, 6);
    }
  });

  it('diffusers: the table always matches the input grid (rebuilt off the sample size) and needs max_text_seq_length text tokens', async () => {
    await selectBackend('cpu');
    const cfg = tiny();
    const embed = new CogVideoXPatchEmbed(cfg, WeightSource.random(2));
    expect([...embed.namedWeights()].some(([n]) => n === 'pos_embedding')).toBe(false); // non-persistent
    for (const [F, H, W] of [
      [2, 4, 6], // the sample size
      [3, 8, 4], // another size: rebuilt
    ] as const) {
      const t = embed.positionalEmbedding(3, F, H, W)!;
      const data = await t.data();
      expect(t.shape).toEqual([1, 3 + F * (H / 2) * (W / 2), 16]);
      expect(Array.from(data.subarray(0, 3 * 16)).every((v) => v === 0)).toBe(true);
      expectClose('rebuilt', data.subarray(3 * 16), sincosPosEmbed3d(16, H / 2, W / 2, F, 1.875, 1), 0, 0);
      t.dispose();
    }
    const [latents, text] = [tf.zeros([1, 2, 3, 4, 6]), tf.zeros([1, 4, 5])];
    expect(() => embed.forward({ latents, text })).toThrow(ShapeError);
    expect(() => embed.forward({ latents, text })).toThrow(/max_text_seq_length = 3/);
    tf.dispose([latents, text]);
    embed.dispose();
  });

  it('Mask²DiT (MultiPrompt class): at the sample size the table equals diffusers; with S scenes it is the trilinear resize to S·T0 frames', async () => {
    await selectBackend('cpu');
    const embed = new CogVideoXPatchEmbed(
      tiny({ _class_name: 'MultiPromptCogVideoXTransformer3DModel' }),
      WeightSource.zeros(),
    );
    const base = sincosPosEmbed3d(16, 2, 3, 2, 1.875, 1); // T0 = 2 frames of 2×3
    const same = embed.positionalEmbedding(3, 2, 4, 6)!;
    expectClose('identity', (await same.data()).subarray(3 * 16), base, 0, 0);
    // 2 scenes (6 text tokens): T1 = 4 frames, take F = 3 of them; spatial 2×3 → 3×3 (H = 6, W = 6)
    const t = embed.positionalEmbedding(6, 3, 6, 6)!;
    expect(t.shape).toEqual([1, 6 + 3 * 3 * 3, 16]);
    const data = await t.data();
    expect(Array.from(data.subarray(0, 6 * 16)).every((v) => v === 0)).toBe(true);
    // independent trilinear: out[f, r, c] = Σ wt(f, i)·wh(r, j)·ww(c, k)·base[i, j, k]
    const wT = (o: number) => torchLinear(2, 4, o);
    const wH = (o: number) => torchLinear(2, 3, o);
    const wW = (o: number) => torchLinear(3, 3, o);
    const expected = new Float32Array(3 * 9 * 16);
    for (let f = 0; f < 3; f++)
      for (let r = 0; r < 3; r++)
        for (let c = 0; c < 3; c++)
          for (let d = 0; d < 16; d++) {
            let acc = 0;
            for (const [i, a] of wT(f))
              for (const [j, b] of wH(r))
                for (const [k, g] of wW(c)) acc += a * b * g * base[((i * 2 + j) * 3 + k) * 16 + d]!;
            expected[((f * 3 + r) * 3 + c) * 16 + d] = acc;
          }
    expectClose('trilinear', data.subarray(6 * 16), expected, 1e-6, 0);
    expect(() => embed.positionalEmbedding(3, 3, 4, 6)).toThrow(/2 frames for 3 text tokens/);
    tf.dispose([same, t]);
    embed.dispose();
  });

  it('learned table (pos_embedding): loaded under its reference name, added to text and video rows; diffusers swaps in sin-cos for another frame count', async () => {
    await selectBackend('cpu');
    const cfg = tiny({ use_rotary_positional_embeddings: true, use_learned_positional_embeddings: true });
    const embed = new CogVideoXPatchEmbed(cfg, WeightSource.random(9));
    const pe = embed.weightByName('pos_embedding')!;
    expect(pe.shape).toEqual([1, 3 + 2 * 2 * 3, 16]);
    expect(embed.countParams()).toBe(16 * 12 + 16 + 16 * 5 + 16 + pe.size);
    const [latents, text] = [tf.zeros([1, 2, 3, 4, 6]), tf.zeros([1, 3, 5])];
    const plain = new CogVideoXPatchEmbed({ ...cfg, use_learned_positional_embeddings: false }, WeightSource.zeros());
    // zero inputs: output = biases + table
    const out = embed.forward({ latents, text });
    const expected = tf.tidy(() => {
      const biases = tf.concat(
        [
          tf.tile(tf.reshape(embed.weightByName('text_proj.bias')!, [1, 16]), [3, 1]),
          tf.tile(tf.reshape(embed.weightByName('proj.bias')!, [1, 16]), [12, 1]),
        ],
        0,
      );
      return tf.add(tf.expandDims(biases, 0), pe);
    });
    expectClose('learned', await out.data(), await expected.data(), 1e-6, 0);
    const swapped = embed.positionalEmbedding(3, 3, 4, 6)!; // 3 frames: not the sample's 2
    expectClose('swapped', (await swapped.data()).subarray(3 * 16), sincosPosEmbed3d(16, 2, 3, 3, 1.875, 1), 0, 0);
    expect(() => embed.positionalEmbedding(3, 2, 6, 6)).toThrow(/sample size/);
    expect(plain.positionalEmbedding(3, 2, 4, 6)).toBeUndefined(); // RoPE model: no table
    tf.dispose([latents, text, out, expected, swapped]);
    embed.dispose();
    plain.dispose();
  });
});

/** PyTorch linear-resize taps for output index o: [[inputIndex, weight], …]. */
function torchLinear(inSize: number, outSize: number, o: number): [number, number][] {
  const src = Math.max((inSize / outSize) * (o + 0.5) - 0.5, 0);
  const i0 = Math.floor(src);
  const l = src - i0;
  return [
    [i0, 1 - l],
    [Math.min(i0 + 1, inSize - 1), l],
  ];
}

describe('CogVideoXPatchEmbed layer', () => {
  it('names, registration, config round trip, output shape, input checks, dispose', async () => {
    await selectBackend('cpu');
    const before = tf.memory().numTensors;
    const embed = new CogVideoXPatchEmbed(tiny(), WeightSource.random(5).pp('patch_embed'));
    expect(embed.name).toBe('patch_embed');
    expect([...embed.namedWeights()].map(([n, v]) => `${n}:${v.shape.join('x')}`)).toEqual([
      'proj.weight:16x3x2x2',
      'proj.bias:16',
      'text_proj.weight:16x5',
      'text_proj.bias:16',
    ]);
    expect(embed.countParams()).toBe(16 * 12 + 16 + 16 * 5 + 16);
    expect(tf.serialization.getRegisteredName(CogVideoXPatchEmbed)).toBe('Mask2DiT>M2CogVideoXPatchEmbed');
    const cfg = embed.getConfig();
    expect(cfg).toMatchObject({
      _class_name: 'CogVideoXTransformer3DModel',
      patch_size_t: null,
      patch_bias: true,
      use_positional_embeddings: true,
      use_learned_positional_embeddings: false,
      sample_frames: 5,
    });
    const again = new CogVideoXPatchEmbed(cfg as unknown as PatchEmbedConfig, WeightSource.zeros().pp('patch_embed'));
    expect(again.getConfig()).toEqual(cfg);
    expect(
      embed.computeOutputShape([
        [2, 3, 3, 4, 6],
        [2, 3, 5],
      ]),
    ).toEqual([2, 3 + 18, 16]);
    const bad = tf.zeros([1, 2, 4, 4, 6]);
    const text = tf.zeros([1, 3, 5]);
    expect(() => embed.forward({ latents: bad, text })).toThrow(/expected 3 channels/);
    const odd = tf.zeros([1, 2, 3, 5, 6]);
    expect(() => embed.forward({ latents: odd, text })).toThrow(/multiples of patch_size/);
    const good = tf.zeros([1, 2, 3, 4, 6]);
    const text2 = tf.zeros([2, 3, 5]);
    expect(() => embed.forward({ latents: good, text: text2 })).toThrow(/encoder_hidden_states/);
    const out = embed.forward({ latents: good, text }); // creates the cached transposes and table
    expect(tf.memory().numTensors).toBe(before + 4 + 4 + 5 + 1 + 2); // weights of both layers, 5 inputs, output, the patch conv's transpose + table (text_proj, a Linear, holds one copy)
    const { numDisposedVariables } = embed.dispose();
    expect(numDisposedVariables).toBe(4);
    again.dispose();
    tf.dispose([bad, text, odd, good, text2, out]);
    // every tensor the layers made (weights, cached transposes and tables) is gone
    expect(tf.memory().numTensors).toBe(before);
  });
});
