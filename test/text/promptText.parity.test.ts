/**
 * Text → embeddings end to end as the reference pipelines (fixture `cogvideox_encode_prompt`): the
 * SentencePiece T5Tokenizer read from the fixture's spiece.model (legacy, extra_ids 100, max length 32),
 * then the unmasked T5 call and the pipelines' layouts. The ids must equal the ids the reference
 * passed to T5 exactly, the embeddings within 1e-4/1e-4.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { parseTextEncoderConfig } from '../../src/config/textEncoderConfig.js';
import { WeightSource } from '../../src/layers/weightSource.js';
import { loadPromptTokenizer } from '../../src/text/loadTokenizer.js';
import { PromptEncoder } from '../../src/text/promptEncoder.js';
import { T5Encoder } from '../../src/text/textEncoder.js';
import { expectClose } from '../helpers/close.js';
import { fixtureJson, fixturePath, get, loadFixture, numbers, type FixtureTensor } from '../helpers/fixtures.js';

const CASE = 'cogvideox_encode_prompt';
interface Call {
  prompt?: string | string[];
  prompts?: string[];
  negative_prompt: string | null;
  num_videos_per_prompt?: number;
  batch_size?: number;
}
const calls = fixtureJson<{ calls: Record<string, Call> }>(CASE, 'meta.json').calls;
const promptsOf = (c: Call) => c.prompts ?? (typeof c.prompt === 'string' ? [c.prompt] : c.prompt!);

let io: Map<string, FixtureTensor>;
let pe: PromptEncoder;

beforeAll(async () => {
  await selectBackend('cpu');
  io = await loadFixture(CASE);
  const weights = await loadFixture(CASE, 'weights.safetensors');
  const config = parseTextEncoderConfig(
    fixtureJson<{ text_encoder: unknown }>(CASE, 'config.json').text_encoder,
  ).config;
  const ws = WeightSource.fromTensors(
    CASE,
    new Map([...weights].map(([n, t]) => [n, tf.tensor(t.data as Float32Array, t.shape)])),
  );
  const encoder = new T5Encoder(config, ws);
  ws.finish(true);
  pe = new PromptEncoder(loadPromptTokenizer(fixturePath(CASE, 'spiece.model'), { maxLength: 32 }), encoder);
});
afterAll(() => {
  pe.encoder.dispose();
  shutdownBackends();
});

describe('cogvideox_encode_prompt from text', () => {
  test('the tokenizer gives the ids the reference passed to T5, every call', () => {
    for (const [group, call] of Object.entries(calls)) {
      const prompts = promptsOf(call);
      expect(Array.from(pe.tokenizer.encodeBatch(prompts))).toEqual(numbers(io, `${group}.input_ids`));
      const nNeg = get(io, `${group}.negative_input_ids`).shape[0]!;
      expect(Array.from(pe.tokenizer.encodeBatch(Array<string>(nNeg).fill(call.negative_prompt ?? '')))).toEqual(
        numbers(io, `${group}.negative_input_ids`),
      );
    }
  });

  test('diffusers encode_prompt and the Mask²DiT contexts', async () => {
    for (const group of ['diffusers_a', 'diffusers_b']) {
      const call = calls[group]!;
      const { prompt, negative } = pe.encodePrompt(promptsOf(call), {
        ...(call.negative_prompt !== null ? { negativePrompt: call.negative_prompt } : {}),
        numVideosPerPrompt: call.num_videos_per_prompt ?? 1,
      });
      expectClose(
        `${group}.prompt_embeds`,
        await prompt.data(),
        get(io, `${group}.prompt_embeds`).data as Float32Array,
        1e-4,
        1e-4,
      );
      expectClose(
        `${group}.negative_prompt_embeds`,
        await negative!.data(),
        get(io, `${group}.negative_prompt_embeds`).data as Float32Array,
        1e-4,
        1e-4,
      );
      tf.dispose([prompt, negative!]);
    }
    for (const group of ['mask2dit_multiscene', 'mask2dit_multiscene_batch2', 'mask2dit_conditional']) {
      const call = calls[group]!;
      const ctx = pe.multiSceneContext(promptsOf(call), {
        batchSize: call.batch_size ?? 1,
        negativePrompt: call.negative_prompt ?? '',
      });
      expect(ctx.shape).toEqual(get(io, `${group}.encoder_hidden_states`).shape);
      expectClose(
        `${group}.encoder_hidden_states`,
        await ctx.data(),
        get(io, `${group}.encoder_hidden_states`).data as Float32Array,
        1e-4,
        1e-4,
      );
      ctx.dispose();
    }
  });
});
