/**
 * `mask2dit forward <component>`: one unit-level forward from tensors in a safetensors file, written
 * to another, under the reference fixtures' tensor names. Runs any checkpoint on any inputs without
 * writing code; with `--compare` it prints the max abs difference against reference tensors.
 *
 *   mask2dit forward transformer --model DIR --inputs io.safetensors --out out.safetensors [--capture NAMES]
 */
import type { Command } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { Mask2DiTError } from '../../errors.js';
import { Mask2DiTTransformer } from '../../model/transformer.js';
import { Probe } from '../../layers/probe.js';
import type { OffloadDecision } from '../../model/offload.js';
import {
  addOffloadOption,
  backendFromFlags,
  compareWith,
  offloadFromFlags,
  readTensorFile,
  writeTensorFile,
} from '../common.js';

interface TransformerOpts {
  model: string;
  weights?: string;
  inputs: string;
  out: string;
  capture?: string;
  heads?: string;
  scene?: string;
  compare?: string;
  chunk?: string;
  offload?: string;
  json?: boolean;
}

const ints = (s: string, what: string) =>
  s.split(',').map((v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0)
      throw new Mask2DiTError('OPTION', `${what}: expected non-negative integers, got "${s}"`);
    return n;
  });

/** `--capture` → a Probe: comma-separated names, `prefix*` globs, or `all`. */
function probeFor(opts: TransformerOpts): Probe | undefined {
  if (opts.capture === undefined) return undefined;
  const names = opts.capture
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const selection = {
    ...(opts.heads !== undefined ? { heads: ints(opts.heads, '--heads') } : {}),
    ...(opts.scene !== undefined ? { scene: ints(opts.scene, '--scene')[0]! } : {}),
  };
  return new Probe(names.includes('all') ? () => true : names, selection);
}

async function runTransformer(opts: TransformerOpts, cmd: Command): Promise<void> {
  const offload = offloadFromFlags(opts.offload);
  const backend = await backendFromFlags(cmd);
  let decision: OffloadDecision | undefined;
  const model = await Mask2DiTTransformer.fromPretrained(opts.model, {
    ...(opts.weights !== undefined ? { weights: opts.weights } : {}),
    offload,
    onDecision: (d) => (decision = d),
  });
  const { floats, ints: intInputs } = await readTensorFile(opts.inputs);
  const need = (name: string, what: string) => {
    const t = floats.get(name);
    if (t === undefined) throw new Mask2DiTError('INPUT', `${opts.inputs}: missing tensor "${name}" (${what})`);
    return t;
  };
  const intOr = (name: string): number[] | undefined =>
    intInputs.get(name) ?? (floats.has(name) ? Array.from(floats.get(name)!.dataSync()) : undefined);
  const probe = probeFor(opts);
  const produced = new Map<string, tf.Tensor>();
  try {
    const hiddenStates = need('hidden_states', 'noisy latents [B, F, C, H, W]');
    const encoderHiddenStates = need('encoder_hidden_states', 'prompt embeddings [B, S·T, text_embed_dim]');
    const timestep = intOr('timestep');
    if (timestep === undefined)
      throw new Mask2DiTError('INPUT', `${opts.inputs}: missing tensor "timestep" (one value per batch row)`);
    const clip = intOr('clip_idx');
    const tc = intOr('timestep_conditioning');
    const cos = floats.get('image_rotary_emb.cos');
    const sin = floats.get('image_rotary_emb.sin');
    const t0 = performance.now();
    const sample = model.forward({
      hiddenStates,
      encoderHiddenStates,
      timestep,
      ...(clip !== undefined ? { clipIdx: clip[0]!, timestepCond: tc?.[0] ?? 0 } : {}),
      ...(cos !== undefined && sin !== undefined ? { rope: { cos, sin } } : {}),
      ...(probe !== undefined ? { probe } : {}),
      ...(opts.chunk !== undefined ? { chunkSize: ints(opts.chunk, '--chunk')[0]! } : {}),
    });
    await sample.data();
    const ms = performance.now() - t0;
    produced.set('sample', sample);
    for (const [k, v] of probe?.captured ?? []) produced.set(k, v);
    await writeTensorFile(opts.out, produced, { backend: backend.name, model: opts.model });
    const rows = opts.compare !== undefined ? await compareWith(opts.compare, produced) : [];
    const report = {
      backend: backend.name,
      offload: model.offload,
      ms: Number(ms.toFixed(1)),
      out: opts.out,
      tensors: [...produced].map(([n, t]) => ({ name: n, shape: t.shape })),
      compare: rows,
    };
    if (opts.json === true) process.stdout.write(JSON.stringify(report) + '\n');
    else {
      if (decision?.mode === 'blocks') process.stdout.write(`${decision.note}\n`);
      process.stdout.write(
        `forward transformer on ${backend.name}: ${ms.toFixed(1)} ms; wrote ${produced.size} tensors to ${opts.out}\n`,
      );
      for (const { name, shape } of report.tensors)
        process.stdout.write(`  ${name.padEnd(44)} [${shape.join(', ')}]\n`);
      if (rows.length > 0) {
        process.stdout.write(`compared with ${opts.compare} (max |ours - ref| / max |ref|):\n`);
        for (const r of rows)
          process.stdout.write(`  ${r.name.padEnd(44)} ${r.maxAbs.toExponential(2)} / ${r.maxRef.toExponential(2)}\n`);
      }
    }
  } finally {
    tf.dispose([...floats.values(), produced.get('sample') ?? []].flat());
    probe?.dispose();
    model.dispose();
  }
}

export function register(program: Command): Command {
  const forward = program
    .command('forward')
    .description('run one component on tensors from a safetensors file (fixture tensor names) and write its outputs');
  const transformer = forward
    .command('transformer')
    .description(
      'the denoising transformer: hidden_states, encoder_hidden_states, timestep [, clip_idx, timestep_conditioning, image_rotary_emb.cos/.sin] → sample',
    )
    .requiredOption(
      '--model <dir>',
      'model folder: config.json + (sharded) safetensors, or a pipeline folder with transformer/',
    )
    .option('--weights <file>', 'the weights file or index.json, when the folder holds more than one')
    .requiredOption('--inputs <file>', 'safetensors file with the input tensors')
    .requiredOption('--out <file>', 'safetensors file to write: sample and the captured intermediates')
    .option(
      '--capture <names>',
      'intermediates to capture, comma-separated: block.0.hidden_states, block.1.*, block.0.attn1.probs, or all',
    )
    .option('--heads <list>', 'attention probabilities: only these heads (e.g. 0,3)')
    .option('--scene <k>', 'attention probabilities: only the query rows of scene k')
    .option('--chunk <n>', 'attention query chunk size')
    .option('--compare <file>', 'print the max abs difference against same-named tensors of this file')
    .option('--json', 'print one JSON document on stdout');
  addOffloadOption(transformer).action(runTransformer);
  return forward;
}
