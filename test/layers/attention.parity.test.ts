/**
 * Parity of the attention layer (`attn1`) with the reference Mask²DiT processor
 * (fixture `mask2dit_attention_mask`: 3 scenes × (3 text, 4 video), dim 32, 2 heads × 16):
 * outputs, q/k/v, dense probabilities and the merged attention output, within the README's
 * tolerance for this case (atol 1e-5, rtol 1e-5), on cpu and wasm.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { Attention, type AttentionConfig } from '../../src/layers/attention.js';
import { WeightSource } from '../../src/layers/weightSource.js';
import { Probe } from '../../src/layers/probe.js';
import { uniformLayout } from '../../src/scene/layout.js';
import { expectClose } from '../helpers/close.js';
import { fixtureJson, get, loadFixture, toTensor } from '../helpers/fixtures.js';

afterAll(() => shutdownBackends());

const CASE = 'mask2dit_attention_mask';
const ATOL = 1e-5;
const RTOL = 1e-5;

interface FixtureConfig {
  query_dim: number;
  dim_head: number;
  heads: number;
  eps: number;
  bias: boolean;
  out_bias: boolean;
  max_text_seq_length: number;
  num_scenes: number;
  video_tokens_per_scene: number;
}

async function build(): Promise<{ attn: Attention; cfg: FixtureConfig }> {
  const cfg = fixtureJson<FixtureConfig>(CASE, 'config.json');
  const config: AttentionConfig = {
    dim: cfg.query_dim,
    heads: cfg.heads,
    headDim: cfg.dim_head,
    qkNormEps: cfg.eps,
    bias: cfg.bias,
    outBias: cfg.out_bias,
  };
  const weights = await loadFixture(CASE, 'weights.safetensors');
  const ws = WeightSource.fromTensors(
    `${CASE}/weights.safetensors`,
    new Map([...weights.keys()].map((n) => [n, toTensor(weights, n)])),
  );
  const attn = new Attention(config, ws);
  ws.finish(); // strict: every file key used, every layer key found with its shape
  return { attn, cfg };
}

describe.each(['cpu', 'wasm'] as const)('Attention parity on %s', (backend) => {
  it('outputs, q/k/v, probabilities and attention_out match the reference', async () => {
    await selectBackend(backend);
    const { attn, cfg } = await build();
    const io = await loadFixture(CASE);
    const layout = uniformLayout(cfg.num_scenes, cfg.max_text_seq_length, cfg.video_tokens_per_scene);
    const inputs = ['hidden_states', 'encoder_hidden_states', 'image_rotary_emb.cos', 'image_rotary_emb.sin'].map((n) =>
      toTensor(io, n),
    );
    const [hidden, encoderHidden, cos, sin] = inputs as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
    // without a probe, default chunk (this first call also caches the Linear transposes)
    const plain = attn.forward({ hidden, encoderHidden, layout, rope: { cos, sin } });
    const name = 'attn1';
    const probe = new Probe([`${name}.*`]);
    const before = tf.memory().numTensors;
    const out = attn.forward({
      hidden,
      encoderHidden,
      layout,
      rope: { cos, sin },
      probe: probe.at(name),
      chunkSize: 2,
    });
    expect(tf.memory().numTensors).toBe(before + 2 + 5); // two outputs, five captures: nothing leaked

    const check = async (label: string, t: tf.Tensor | undefined, ref: string) => {
      const e = get(io, ref);
      expect(t).toBeDefined();
      expect(t!.shape).toEqual(e.shape);
      expectClose(`${backend}:${label}`, await t!.data(), e.data as Float32Array, ATOL, RTOL);
    };
    await check('hidden', out.hidden, 'output.hidden_states');
    await check('encoderHidden', out.encoderHidden, 'output.encoder_hidden_states');
    await check('q', probe.get(`${name}.q`), 'query');
    await check('k', probe.get(`${name}.k`), 'key');
    await check('v', probe.get(`${name}.v`), 'value');
    await check('probs', probe.get(`${name}.probs`), 'attention_probs');
    await check('out', probe.get(`${name}.out`), 'attention_out');

    // the probe and the chunk size do not change the result
    expectClose(`${backend}:hidden (no probe)`, await plain.hidden.data(), await out.hidden.data(), 1e-6, 0);
    tf.dispose([plain.hidden, plain.encoderHidden, out.hidden, out.encoderHidden, ...inputs]);
    probe.dispose();
    attn.dispose();
  });
});

describe('Attention layer structure', () => {
  it('names its weights like the reference, registers its class and round-trips its config', async () => {
    await selectBackend('cpu');
    const config: AttentionConfig = { dim: 8, heads: 2, headDim: 4, qkNormEps: 1e-6, bias: true, outBias: true };
    const before = tf.memory().numTensors;
    const attn = new Attention(config, WeightSource.random(3).pp('transformer_blocks').pp(0).pp('attn1'));
    expect([...attn.namedWeights()].map(([n, v]) => `${n}:${v.shape.join('x')}`)).toEqual([
      'to_q.weight:8x8',
      'to_q.bias:8',
      'to_k.weight:8x8',
      'to_k.bias:8',
      'to_v.weight:8x8',
      'to_v.bias:8',
      'norm_q.weight:4',
      'norm_q.bias:4',
      'norm_k.weight:4',
      'norm_k.bias:4',
      'to_out.0.weight:8x8',
      'to_out.0.bias:8',
    ]);
    expect(attn.name).toBe('transformer_blocks.0.attn1');
    expect(attn.countParams()).toBe(4 * (64 + 8) + 4 * 4);
    expect(attn.getConfig()).toMatchObject({ ...config });
    expect(tf.serialization.getRegisteredName(Attention)).toBe('Mask2DiT>M2Attention');
    // one scene through the tfjs-layers adapter
    const [h, e] = [tf.ones([1, 3, 8]), tf.ones([1, 2, 8])];
    const ys = attn.apply([h, e]) as tf.Tensor[];
    expect(ys.map((y) => y.shape)).toEqual([
      [1, 3, 8],
      [1, 2, 8],
    ]);
    tf.dispose([h, e, ...ys]);
    attn.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects inputs that disagree with the layout', async () => {
    await selectBackend('cpu');
    const attn = new Attention(
      { dim: 8, heads: 2, headDim: 4, qkNormEps: 1e-6, bias: true, outBias: true },
      WeightSource.zeros(),
    );
    const [h, e] = [tf.zeros([1, 6, 8]), tf.zeros([1, 2, 8])];
    expect(() => attn.forward({ hidden: h, encoderHidden: e, layout: uniformLayout(2, 2, 3) })).toThrow(
      /layout has 4 text tokens/,
    );
    const rope = { cos: tf.zeros([5, 4]), sin: tf.zeros([5, 4]) }; // 5 rows for 6 video tokens
    expect(() => attn.forward({ hidden: h, encoderHidden: e, layout: uniformLayout(2, 1, 3), rope })).toThrow(
      /rope.cos/,
    );
    tf.dispose([h, e, rope.cos, rope.sin]);
    attn.dispose();
  });
});
