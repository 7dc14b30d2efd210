/**
 * Parity of the T5 encoder with transformers' `T5EncoderModel` (test/fixtures/t5_encoder_tiny): the
 * unmasked call the pipelines make (`last_hidden_state`), the masked one (`last_hidden_state.masked`),
 * the relative position buckets (exact) and the intermediates; resident and with its blocks offloaded
 * (same numbers, bit for bit), on cpu and wasm. Tolerances: test/fixtures/README.md (1e-4/1e-4).
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { bucketTable, T5Encoder } from '../../src/text/textEncoder.js';
import { readTextEncoderConfig } from '../../src/config/textEncoderConfig.js';
import { expectClose } from '../helpers/close.js';
import { fixturePath, get, loadFixture, numbers } from '../helpers/fixtures.js';

const CASE = 't5_encoder_tiny';
const load = (offload: 'none' | 'blocks') =>
  T5Encoder.fromPretrained(fixturePath(CASE), { weights: fixturePath(CASE, 'weights.safetensors'), offload });

afterAll(() => shutdownBackends());

it('relative_position_bucket matches exactly', async () => {
  const io = await loadFixture(CASE);
  const c = readTextEncoderConfig(fixturePath(CASE, 'config.json')).config;
  const ref = get(io, 'relative_position_bucket');
  const L = ref.shape[0]!;
  expect(Array.from(bucketTable(L, c.relative_attention_num_buckets, c.relative_attention_max_distance))).toEqual(
    numbers(io, 'relative_position_bucket'),
  );
});

describe.each(['cpu', 'wasm'] as const)('T5 encoder parity on %s', (backend) => {
  const ids = async () => {
    const io = await loadFixture(CASE);
    const t = get(io, 'input_ids');
    return {
      io,
      ids: tf.tensor2d(Int32Array.from(t.data), t.shape as [number, number], 'int32'),
      mask: tf.tensor2d(Int32Array.from(get(io, 'attention_mask').data), t.shape as [number, number], 'int32'),
    };
  };

  it('resident: intermediates, last_hidden_state (unmasked) and last_hidden_state.masked', async () => {
    await selectBackend(backend);
    const { io, ids: x, mask } = await ids();
    const model = await load('none');
    expect(model.offload).toBe('none');
    const [B, L] = x.shape as [number, number];
    const D = model.config.d_model;
    const emb = model.shared.forward(x);
    expectClose('embed_tokens.out', await emb.data(), get(io, 'embed_tokens.out').data as Float32Array, 1e-4, 1e-4);
    const bias = model.blocks[0]!.attention.positionBias(L); // [1, H, L, L]
    const biasB = tf.tile(bias, [B, 1, 1, 1]);
    expectClose(
      'position_bias',
      await biasB.data(),
      get(io, 'block.0.layer.0.SelfAttention.position_bias').data as Float32Array,
      1e-4,
      1e-4,
    );
    let h = emb;
    for (const [i, block] of model.blocks.entries()) {
      const next = block.forward(h, bias);
      expectClose(
        `block.${i}.hidden_states`,
        await next.data(),
        get(io, `block.${i}.hidden_states`).data as Float32Array,
        1e-4,
        1e-4,
      );
      h.dispose();
      h = next;
    }
    const out = model.forward({ ids: x });
    expect(out.shape).toEqual([B, L, D]);
    expectClose('last_hidden_state', await out.data(), get(io, 'last_hidden_state').data as Float32Array, 1e-4, 1e-4);
    expectClose(
      'final_layer_norm.out',
      await out.data(),
      get(io, 'final_layer_norm.out').data as Float32Array,
      1e-4,
      1e-4,
    );
    const masked = model.forward({ ids: x, attentionMask: mask });
    expectClose(
      'last_hidden_state.masked',
      await masked.data(),
      get(io, 'last_hidden_state.masked').data as Float32Array,
      1e-4,
      1e-4,
    );
    tf.dispose([x, mask, h, bias, biasB, out, masked]);
    model.dispose();
  });

  it('offloaded blocks and table: the same numbers as resident, bit for bit, without leaking', async () => {
    await selectBackend(backend);
    const { io, ids: x, mask } = await ids();
    const resident = await load('none');
    const [a, am] = [resident.forward({ ids: x }), resident.forward({ ids: x, attentionMask: mask })];
    const params = resident.countParams();
    resident.dispose();

    const before = tf.memory();
    const model = await load('blocks');
    expect(model.offload).toBe('blocks');
    expect(model.blocks).toEqual([]);
    // resident part: the final norm and the relative position table only
    const kept = model.config.d_model + model.config.relative_attention_num_buckets * model.config.num_heads;
    expect(tf.memory().numBytes - before.numBytes).toBe(4 * kept);
    expect([...model.namedWeights()].map(([n]) => n).sort()).toEqual([
      'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight',
      'encoder.final_layer_norm.weight',
    ]);
    expect(model.countParams()).toBe(params);

    const b = model.forward({ ids: x });
    const bm = model.forward({ ids: x, attentionMask: mask });
    expect(Array.from(await b.data())).toEqual(Array.from(await a.data()));
    expect(Array.from(await bm.data())).toEqual(Array.from(await am.data()));
    expectClose(
      'offload last_hidden_state',
      await b.data(),
      get(io, 'last_hidden_state').data as Float32Array,
      1e-4,
      1e-4,
    );
    expectClose(
      'offload last_hidden_state.masked',
      await bm.data(),
      get(io, 'last_hidden_state.masked').data as Float32Array,
      1e-4,
      1e-4,
    );

    const live = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) model.forward({ ids: x }).dispose();
    expect(tf.memory().numTensors).toBe(live);
    expect(() => model.setTrainable(true)).toThrow(/offloaded/);
    model.dispose();
    tf.dispose([b, bm]);
    expect(tf.memory().numTensors).toBe(before.numTensors);
    tf.dispose([x, mask, a, am]);
  });
});
