/**
 * `mask2dit forward vae-decode|vae-encode --model DIR --inputs io.safetensors --out out.safetensors`:
 * one VAE pass on tensors stored under the fixtures' names, for checking against the reference.
 *
 * - `vae-decode` reads `z` `[B, latent_channels, F, h, w]` (already divided by scaling_factor) and
 *   writes `sample` `[B, out_channels, 4(F−1)+1, 8h, 8w]` (not clamped).
 * - `vae-encode` reads `x` `[B, in_channels, F, H, W]` in [-1, 1] and writes `moments`,
 *   `latent_dist.mean`, `latent_dist.logvar` and `latent_dist.std`.
 */
import type { Command } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../backend/index.js';
import { ConfigError } from '../../errors.js';
import { openSafetensors, writeSafetensors, type TensorToWrite } from '../../io/safetensors.js';
import { CogVideoXVAE, FRAME_BATCHINGS, type FrameBatching } from '../../model/vae.js';

interface VaeOptions {
  model: string;
  inputs: string;
  out: string;
  weights?: string;
  batching?: string;
  json?: boolean;
}

/** The float tensor `name` of a safetensors file as a float32 tf tensor. */
async function readInput(file: string, name: string): Promise<tf.Tensor> {
  const src = await openSafetensors(file);
  try {
    const info = src.info(name);
    const data = await src.read(name);
    const f32 = data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
    return tf.tensor(f32, info.shape, 'float32');
  } finally {
    await src.close();
  }
}

async function asF32(t: tf.Tensor): Promise<TensorToWrite> {
  return { dtype: 'F32', shape: [...t.shape], data: (await t.data()) as Float32Array };
}

async function withModel(
  opts: VaeOptions,
  cmd: Command,
  run: (vae: CogVideoXVAE) => Promise<Record<string, tf.Tensor>>,
): Promise<void> {
  const global = cmd.optsWithGlobals<{ backend?: string; threads?: string }>();
  const info = await selectBackend(
    global.backend,
    global.threads !== undefined ? { threads: Number(global.threads) } : {},
  );
  const vae = await CogVideoXVAE.fromPretrained(
    opts.model,
    opts.weights !== undefined ? { weights: opts.weights } : {},
  );
  const t0 = performance.now();
  try {
    const outputs = await run(vae);
    const seconds = (performance.now() - t0) / 1000;
    const tensors: Record<string, TensorToWrite> = {};
    for (const [name, t] of Object.entries(outputs)) tensors[name] = await asF32(t);
    tf.dispose(Object.values(outputs));
    await writeSafetensors(opts.out, tensors, { format: 'pt' });
    const report = {
      out: opts.out,
      backend: info.name,
      device: info.device,
      seconds: Number(seconds.toFixed(3)),
      tensors: Object.fromEntries(Object.entries(tensors).map(([n, t]) => [n, t.shape])),
    };
    process.stdout.write(
      opts.json === true
        ? JSON.stringify(report) + '\n'
        : `wrote ${Object.entries(report.tensors)
            .map(([n, s]) => `${n} [${s.join(', ')}]`)
            .join(', ')} to ${opts.out} (${info.name}, ${report.seconds} s)\n`,
    );
  } finally {
    vae.dispose();
  }
}

function parseBatching(value: string | undefined): FrameBatching {
  const b = value ?? 'mask2dit';
  if (!(FRAME_BATCHINGS as readonly string[]).includes(b))
    throw new ConfigError('--batching', 'batching', `expected one of ${FRAME_BATCHINGS.join(', ')}, got ${b}`);
  return b as FrameBatching;
}

function common(c: Command): Command {
  return c
    .requiredOption(
      '--model <dir>',
      'diffusers VAE folder (config.json + safetensors), or a pipeline folder holding vae/',
    )
    .requiredOption('--inputs <file>', 'safetensors file holding the input tensor')
    .requiredOption('--out <file>', 'safetensors file to write (atomically)')
    .option('--weights <file>', 'checkpoint to load instead of the one in --model')
    .option('--json', 'print one JSON line on stdout');
}

/** Add `vae-decode` and `vae-encode` to an existing `forward` command. */
export function registerVaeForward(forward: Command): void {
  common(
    forward
      .command('vae-decode')
      .description('decode latents `z` [B, C, F, h, w] to `sample` [B, 3, 4(F-1)+1, 8h, 8w]'),
  )
    .option(
      '--batching <mode>',
      `latent frames per decoder call: ${FRAME_BATCHINGS.join(' | ')} (default mask2dit: frame 0, then pairs)`,
    )
    .action(async (opts: VaeOptions, cmd: Command) => {
      const batching = parseBatching(opts.batching);
      await withModel(opts, cmd, async (vae) => {
        const z = await readInput(opts.inputs, 'z');
        const sample = vae.decode(z, { batching });
        z.dispose();
        return { sample };
      });
    });

  common(
    forward
      .command('vae-encode')
      .description('encode a video `x` [B, 3, F, H, W] to `moments` and the posterior `latent_dist.{mean,logvar,std}`'),
  ).action(async (opts: VaeOptions, cmd: Command) => {
    await withModel(opts, cmd, async (vae) => {
      const x = await readInput(opts.inputs, 'x');
      const post = vae.encode(x);
      x.dispose();
      return {
        moments: post.moments,
        'latent_dist.mean': post.mean,
        'latent_dist.logvar': post.logvar,
        'latent_dist.std': post.std,
      };
    });
  });
}
