/**
 * Prompt encoding as the reference pipelines do it (fixture `cogvideox_encode_prompt`): diffusers'
 * `CogVideoXPipeline.encode_prompt` (num_videos_per_prompt, default/explicit negative prompt) and the
 * Mask²DiT multi-scene layouts (batch 1 and 2, the scene-extension pipeline), embeddings within the
 * README's 1e-4/1e-4. Here the tokenizer is replaced by the fixture's own ids (the text → ids step has
 * its own exact-parity tests); `promptText.parity.test.ts` runs text → embeddings end to end.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { parseTextEncoderConfig } from '../../src/config/textEncoderConfig.js';
import { WeightSource } from '../../src/layers/weightSource.js';
import { PromptEncoder, type PromptTokenizer } from '../../src/text/promptEncoder.js';
import { T5Encoder } from '../../src/text/textEncoder.js';
import { expectClose } from '../helpers/close.js';
import { fixtureJson, get, loadFixture, numbers, type FixtureTensor } from '../helpers/fixtures.js';

const CASE = 'cogvideox_encode_prompt';
interface Calls {
  calls: Record<
    string,
    {
      prompt?: string | string[];
      prompts?: string[];
      negative_prompt: string | null;
      num_videos_per_prompt?: number;
      batch_size?: number;
    }
  >;
}
const meta = fixtureJson<Calls>(CASE, 'meta.json');
const L = 32;

let io: Map<string, FixtureTensor>;
let encoder: T5Encoder;

/** A tokenizer that answers with the ids the reference pipeline passed to T5 for each text (learned from the fixture). */
class RecordedTokenizer implements PromptTokenizer {
  readonly length = L;
  readonly vocabSize = 2100;
  readonly rows = new Map<string, number[]>();
  learn(texts: readonly string[], ids: number[]): void {
    texts.forEach((t, i) => {
      const row = ids.slice(i * L, (i + 1) * L);
      const known = this.rows.get(t);
      if (known !== undefined && known.join() !== row.join())
        throw new Error(`fixture gives two id rows for ${JSON.stringify(t)}`);
      this.rows.set(t, row);
    });
  }
  encodeBatch(texts: readonly string[]): Int32Array {
    return Int32Array.from(
      texts.flatMap(
        (t) =>
          this.rows.get(t) ??
          (() => {
            throw new Error(`no recorded ids for ${JSON.stringify(t)}`);
          })(),
      ),
    );
  }
}
const tok = new RecordedTokenizer();

beforeAll(async () => {
  await selectBackend('cpu');
  io = await loadFixture(CASE);
  const weights = await loadFixture(CASE, 'weights.safetensors');
  const config = parseTextEncoderConfig(
    fixtureJson<{ text_encoder: unknown }>(CASE, 'config.json').text_encoder,
  ).config;
  const tensors = new Map([...weights].map(([n, t]) => [n, tf.tensor(t.data as Float32Array, t.shape)]));
  const ws = WeightSource.fromTensors(CASE, tensors);
  encoder = new T5Encoder(config, ws);
  ws.finish(true);
  for (const [group, call] of Object.entries(meta.calls)) {
    const prompts = call.prompts ?? (typeof call.prompt === 'string' ? [call.prompt] : call.prompt!);
    tok.learn(prompts, numbers(io, `${group}.input_ids`));
    const negIds = numbers(io, `${group}.negative_input_ids`);
    tok.learn(Array<string>(negIds.length / L).fill(call.negative_prompt ?? ''), negIds);
  }
});
afterAll(() => {
  encoder.dispose();
  shutdownBackends();
});

async function expectTensor(name: string, actual: tf.Tensor): Promise<void> {
  const want = get(io, name);
  expect(actual.shape).toEqual(want.shape);
  expectClose(name, await actual.data(), want.data as Float32Array, 1e-4, 1e-4);
  actual.dispose();
}

describe('diffusers CogVideoXPipeline.encode_prompt', () => {
  for (const group of ['diffusers_a', 'diffusers_b']) {
    test(group, async () => {
      const call = meta.calls[group]!;
      const pe = new PromptEncoder(tok, encoder);
      const { prompt, negative } = pe.encodePrompt(call.prompt!, {
        ...(call.negative_prompt !== null ? { negativePrompt: call.negative_prompt } : {}),
        numVideosPerPrompt: call.num_videos_per_prompt ?? 1,
      });
      await expectTensor(`${group}.prompt_embeds`, prompt);
      await expectTensor(`${group}.negative_prompt_embeds`, negative!);
    });
  }

  test('the unmasked T5 call is the reference: masking padding changes the embeddings', async () => {
    const call = meta.calls['diffusers_a']!;
    const masked = new PromptEncoder(
      { ...tok, length: L, vocabSize: tok.vocabSize, encodeBatch: (t) => tok.encodeBatch(t), attentionMask: 'padding' },
      encoder,
    );
    const { prompt } = masked.encodePrompt(call.prompt!, { guidance: false });
    const want = get(io, 'diffusers_a.prompt_embeds').data as Float32Array;
    const got = (await prompt.data()) as Float32Array;
    prompt.dispose();
    let worst = 0;
    got.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - want[i]!))));
    expect(worst).toBeGreaterThan(1e-2);
  });
});

describe('Mask²DiT multi-scene context', () => {
  for (const group of ['mask2dit_multiscene', 'mask2dit_multiscene_batch2', 'mask2dit_conditional']) {
    test(group, async () => {
      const call = meta.calls[group]!;
      const ctx = new PromptEncoder(tok, encoder).multiSceneContext(call.prompts!, {
        batchSize: call.batch_size ?? 1,
        negativePrompt: call.negative_prompt ?? '',
      });
      await expectTensor(`${group}.encoder_hidden_states`, ctx);
    });
  }

  test('without guidance the context is the positive rows only', async () => {
    const call = meta.calls['mask2dit_multiscene']!;
    const ctx = new PromptEncoder(tok, encoder).multiSceneContext(call.prompts!, { guidance: false });
    const full = get(io, 'mask2dit_multiscene.encoder_hidden_states');
    expect(ctx.shape).toEqual([1, 3 * L, 8]);
    expectClose('positive rows', await ctx.data(), (full.data as Float32Array).subarray(3 * L * 8), 1e-4, 1e-4);
    ctx.dispose();
  });

  test('bad layouts are ShapeErrors and leak nothing', () => {
    const pe = new PromptEncoder(tok, encoder);
    const before = tf.memory().numTensors;
    expect(() => pe.multiSceneContext(['a', 'b', 'c'], { batchSize: 2 })).toThrow(/batch_size 2/);
    expect(() => pe.multiSceneContext([])).toThrow(/prompt/);
    expect(tf.memory().numTensors).toBe(before);
  });
});
