/**
 * `mask2dit forward text-encoder`: one T5 encoder pass, for checking against the reference.
 *
 *   mask2dit forward text-encoder --model DIR --inputs io.safetensors --out out.safetensors [--mask none|padding|inputs]
 *   mask2dit forward text-encoder --model PIPELINE_DIR --prompt "a cat" --prompt "a dog" --out out.safetensors
 *
 * Reads `input_ids` `[B, L]` (and `attention_mask` with `--mask inputs`), or tokenizes `--prompt`s with the
 * folder's tokenizer as the pipelines do (padded to max_sequence_length); writes `last_hidden_state`
 * `[B, L, d_model]` (and `input_ids` when it tokenized). Default mask `none`: the reference pipelines'
 * unmasked call; a word-tokenizer model (the shipped world model) defaults to `padding`.
 */
import type { Command } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { Mask2DiTError } from '../../errors.js';
import { openSafetensors } from '../../io/safetensors.js';
import { loadPromptTokenizer } from '../../text/loadTokenizer.js';
import { T5Encoder, type T5AttentionMask } from '../../text/textEncoder.js';
import { addOffloadOption, backendFromFlags, compareWith, offloadFromFlags, writeTensorFile } from '../common.js';

interface Opts {
  model: string;
  weights?: string;
  inputs?: string;
  prompt?: string[];
  out: string;
  mask?: string;
  maxLength?: string;
  compare?: string;
  json?: boolean;
  offload?: string;
}

const MASKS = ['none', 'padding', 'inputs'] as const;

/** An integer tensor of a safetensors file as int32 `[B, L]`. */
async function readIds(file: string, name: string): Promise<tf.Tensor> {
  const src = await openSafetensors(file);
  try {
    if (!src.has(name)) throw new Mask2DiTError('INPUT', `${file}: missing tensor "${name}" (token ids [B, L])`);
    const { dtype, shape } = src.info(name);
    if (shape.length !== 2 || !['I64', 'I32', 'I16', 'I8', 'U8'].includes(dtype))
      throw new Mask2DiTError('INPUT', `${file}: "${name}" must be an integer [B, L] tensor, got ${dtype} [${shape}]`);
    const data = await src.read(name);
    return tf.tensor(
      Int32Array.from(data instanceof BigInt64Array ? Array.from(data, Number) : (data as ArrayLike<number>)),
      shape,
      'int32',
    );
  } finally {
    await src.close();
  }
}

async function run(opts: Opts, cmd: Command): Promise<void> {
  if ((opts.inputs === undefined) === (opts.prompt === undefined))
    throw new Mask2DiTError('OPTION', 'give either --inputs FILE (input_ids) or one or more --prompt TEXT');
  const mask = opts.mask;
  if (mask !== undefined && !(MASKS as readonly string[]).includes(mask))
    throw new Mask2DiTError('OPTION', `--mask: expected one of ${MASKS.join(', ')}, got ${JSON.stringify(mask)}`);
  if (mask === 'inputs' && opts.inputs === undefined)
    throw new Mask2DiTError('OPTION', '--mask inputs reads attention_mask from --inputs');
  const backend = await backendFromFlags(cmd);
  const encoder = await T5Encoder.fromPretrained(opts.model, {
    ...(opts.weights !== undefined ? { weights: opts.weights } : {}),
    offload: offloadFromFlags(opts.offload),
  });
  const produced = new Map<string, tf.Tensor>();
  let attention: T5AttentionMask = 'none';
  try {
    let ids: tf.Tensor;
    if (opts.inputs !== undefined) {
      ids = await readIds(opts.inputs, 'input_ids');
      if (mask === 'inputs') attention = await readIds(opts.inputs, 'attention_mask');
      else if (mask === 'padding') attention = 'padding';
    } else {
      const maxLength = opts.maxLength !== undefined ? Number(opts.maxLength) : undefined;
      if (maxLength !== undefined && !(Number.isInteger(maxLength) && maxLength >= 2))
        throw new Mask2DiTError('OPTION', `--max-length: expected an integer ≥ 2, got ${opts.maxLength}`);
      const tok = loadPromptTokenizer(opts.model, maxLength !== undefined ? { maxLength } : {});
      const texts = opts.prompt!;
      ids = tf.tensor2d(tok.encodeBatch(texts), [texts.length, tok.length], 'int32');
      attention = (mask as T5AttentionMask | undefined) ?? tok.attentionMask ?? 'none';
    }
    produced.set('input_ids', ids);
    const t0 = performance.now();
    const out = encoder.forward({ ids, attentionMask: attention });
    await out.data();
    const ms = performance.now() - t0;
    produced.set('last_hidden_state', out);
    await writeTensorFile(opts.out, opts.inputs !== undefined ? new Map([['last_hidden_state', out]]) : produced, {
      backend: backend.name,
      model: opts.model,
      attention_mask: typeof attention === 'string' ? attention : 'inputs',
    });
    const rows =
      opts.compare !== undefined ? await compareWith(opts.compare, new Map([['last_hidden_state', out]])) : [];
    const report = {
      backend: backend.name,
      offload: encoder.offload,
      ms: Number(ms.toFixed(1)),
      out: opts.out,
      shape: out.shape,
      attentionMask: typeof attention === 'string' ? attention : 'inputs',
      compare: rows,
    };
    if (opts.json === true) process.stdout.write(JSON.stringify(report) + '\n');
    else {
      process.stdout.write(
        `forward text-encoder on ${backend.name}: ${ms.toFixed(1)} ms; last_hidden_state [${out.shape.join(', ')}] (attention mask: ${report.attentionMask}) → ${opts.out}\n`,
      );
      for (const r of rows)
        process.stdout.write(
          `  compared with ${opts.compare}: ${r.name} max |ours - ref| ${r.maxAbs.toExponential(2)} (max |ref| ${r.maxRef.toExponential(2)})\n`,
        );
    }
  } finally {
    tf.dispose([...produced.values()]);
    if (typeof attention !== 'string') attention.dispose();
    encoder.dispose();
  }
}

/** Add `text-encoder` to an existing `forward` command. */
export function registerTextEncoderForward(forward: Command): void {
  addOffloadOption(forward.command('text-encoder'))
    .description('the T5 text encoder: input_ids [B, L] (or --prompt texts) → last_hidden_state [B, L, d_model]')
    .requiredOption(
      '--model <dir>',
      'a T5 encoder folder (config.json + safetensors) or a pipeline folder with text_encoder/ (and tokenizer/ for --prompt)',
    )
    .option('--weights <file>', 'the weights file or index.json, when the folder holds more than one')
    .option('--inputs <file>', 'safetensors file holding input_ids [B, L] (and attention_mask for --mask inputs)')
    .option('--prompt <text>', 'a prompt to tokenize and encode (repeatable)', (v: string, prev: string[] = []) => [
      ...prev,
      v,
    ])
    .option('--max-length <n>', "with --prompt: ids per prompt (default: the tokenizer's, 226 for CogVideoX)")
    .requiredOption('--out <file>', 'safetensors file to write (atomically)')
    .option(
      '--mask <mode>',
      "none (the reference pipelines' call; default) | padding (mask pad keys) | inputs (attention_mask of --inputs)",
    )
    .option('--compare <file>', 'print the max abs difference against last_hidden_state of this file')
    .option('--json', 'print one JSON line on stdout')
    .action(run);
}
