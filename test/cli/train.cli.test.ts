/** `mask2dit train vae → prepare → dit` end to end on a tiny config, resume, and refusals before any step runs. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, test } from '@jest/globals';
import { loadLatentGroups } from '../../src/train/latentData.js';
import { runCli } from '../helpers/cli.js';

/** The `__metadata__` of a safetensors file (header only). */
function checkpointMetadata(file: string): Record<string, string> {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  return (JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as { __metadata__: Record<string, string> }).__metadata__;
}

const run = fs.mkdtempSync(path.join(os.tmpdir(), 'm2d-train-cli-'));
afterAll(() => fs.rmSync(run, { recursive: true, force: true }));
const lines = (f: string) =>
  fs
    .readFileSync(f, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { step: number; loss: number });

describe('mask2dit train', () => {
  test('vae: trains, checkpoints, refuses to clobber, resumes exactly', () => {
    // the shipped recipe's VAE options: 2× time compression, character pixels weighted
    const base = [
      '--backend',
      'wasm',
      'train',
      'vae',
      '--run',
      run,
      '--widths',
      '4,4,4,4',
      '--temporal-compression',
      '2',
      '--fg-weight',
      '10',
      '--checkpoint-every',
      '2',
      '--quiet',
      '--seed',
      '3',
    ];
    const a = runCli([...base, '--steps', '4'], { timeoutMs: 300_000 });
    expect(a.stderr).toBe('');
    expect(a.code).toBe(0);
    const dir = path.join(run, 'vae');
    expect(fs.readdirSync(dir).sort()).toEqual(['checkpoint.safetensors', 'config.json', 'loss.jsonl', 'loss.png']);
    const full = lines(path.join(dir, 'loss.jsonl'));
    expect(full.map((r) => r.step)).toEqual([0, 1, 2, 3]);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'))).toMatchObject({
      temporal_compression_ratio: 2,
      block_out_channels: [4, 4, 4, 4],
    });

    const again = runCli([...base, '--steps', '4']);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/checkpoint\.safetensors exists: pass --resume/);

    // start over, stop after step 2 (same 4-step schedule), resume to 4: the uninterrupted run's losses
    expect(runCli([...base, '--steps', '4', '--force', '--until', '2'], { timeoutMs: 300_000 }).code).toBe(0);
    expect(lines(path.join(dir, 'loss.jsonl'))).toHaveLength(2);
    expect(runCli([...base, '--steps', '4', '--resume'], { timeoutMs: 300_000 }).code).toBe(0);
    expect(lines(path.join(dir, 'loss.jsonl')).map((r) => r.loss)).toEqual(full.map((r) => r.loss));
  }, 600_000);

  test('prepare → dit: a latent dataset, then joint DiT + text-encoder training; mismatches refused', async () => {
    const p = runCli(['--backend', 'wasm', 'train', 'prepare', '--run', run, '--clips', '3'], { timeoutMs: 300_000 });
    expect(p.code).toBe(0);
    expect(p.stderr).toMatch(/scaling_factor [\d.]+/);
    const latents = path.join(run, 'latents.safetensors');
    const groups = (await loadLatentGroups(latents)).groups;
    expect(groups.length).toBeGreaterThan(0);
    for (const g of groups)
      expect(g.foreground?.length).toBe(g.count * g.latentShape[0] * g.latentShape[2] * g.latentShape[3]); // where the character is
    // prepare again: the calibration undoes the scaling_factor the first run wrote (it was recalibrated to ~1 before)
    const vaeCfg = path.join(run, 'vae', 'config.json');
    const scaling = () => (JSON.parse(fs.readFileSync(vaeCfg, 'utf8')) as { scaling_factor: number }).scaling_factor;
    const first = scaling();
    expect(
      runCli(['--backend', 'wasm', 'train', 'prepare', '--run', run, '--clips', '3'], { timeoutMs: 300_000 }).code,
    ).toBe(0);
    expect(scaling()).toBeCloseTo(first, 4);
    // a chain rerun resumes its finished VAE stage after prepare calibrated scaling_factor: nothing to do, no refusal
    const vaeAgain = runCli(
      [
        '--backend',
        'wasm',
        'train',
        'vae',
        '--run',
        run,
        '--widths',
        '4,4,4,4',
        '--temporal-compression',
        '2',
        '--fg-weight',
        '10',
        '--quiet',
        '--seed',
        '3',
        '--steps',
        '4',
        '--resume',
      ],
      { timeoutMs: 300_000 },
    );
    expect(vaeAgain.stderr).toBe('');
    expect(vaeAgain.code).toBe(0);
    expect(lines(path.join(run, 'vae', 'loss.jsonl'))).toHaveLength(4);
    const dit = [
      '--backend',
      'wasm',
      'train',
      'dit',
      '--run',
      run,
      '--layers',
      '1',
      '--heads',
      '2',
      '--head-dim',
      '16',
      '--text-layers',
      '1',
      '--patch-size',
      '4',
      '--batch',
      '1',
      '--fg-weight',
      '10',
      '--quiet',
      '--checkpoint-every',
      '2',
    ];
    const d = runCli([...dit, '--steps', '2'], { timeoutMs: 300_000 });
    expect(d.stderr).toBe('');
    expect(d.code).toBe(0);
    expect(lines(path.join(run, 'dit', 'loss.jsonl'))).toHaveLength(2);
    const cfgT = JSON.parse(fs.readFileSync(path.join(run, 'dit', 'transformer.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(cfgT).toMatchObject({ temporal_compression_ratio: 2, sample_frames: 9, patch_size: 4 }); // the run's VAE decides the ratio
    // resume with a different architecture: refused before any step runs
    const cfg = path.join(run, 'dit', 'transformer.json');
    const raw = JSON.parse(fs.readFileSync(cfg, 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(cfg, JSON.stringify({ ...raw, num_layers: 2 }));
    const bad = runCli([...dit, '--steps', '3', '--resume'], { timeoutMs: 300_000 });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/transformer config differs|does not match/);
    expect(lines(path.join(run, 'dit', 'loss.jsonl'))).toHaveLength(2);
    // export the run as a pipeline folder and generate with it
    fs.writeFileSync(cfg, JSON.stringify(raw));
    const model = path.join(run, 'model');
    const ex = runCli(['--backend', 'wasm', 'train', 'export', '--run', run, '--out', model], { timeoutMs: 300_000 });
    expect(ex.code).toBe(0);
    const card = fs.readFileSync(path.join(model, 'README.md'), 'utf8');
    expect(card).toMatch(/2 steps jointly with the text encoder/);
    expect(card).toMatch(/8× space \/ 2× time/); // the run's VAE, not CogVideoX's defaults
    expect(card).toMatch(/3D RoPE, patch 4,/);
    expect(card).toMatch(
      /final loss \(flow-matching \(velocity\) loss, σ uniform, character latent pixels weighted 10×; mean of last 50\) [\d.]+ \|/,
    );
    expect(card).toMatch(/\| scheduler\/ \| FlowMatchEulerDiscreteScheduler, shift 1 \|/);
    expect(
      JSON.parse(fs.readFileSync(path.join(model, 'scheduler', 'scheduler_config.json'), 'utf8')),
    ).not.toHaveProperty('prediction_type'); // the default: diffusers' own keys only
    const film = path.join(run, 'film.mp4');
    const g = runCli(
      [
        '--backend',
        'wasm',
        'generate',
        '--model',
        model,
        '--scenes',
        'examples/three-scenes.json',
        '--out',
        film,
        '--steps',
        '1',
        '--quiet',
      ],
      { timeoutMs: 300_000 },
    );
    expect(g.stderr).toBe('');
    expect(g.code).toBe(0);
    expect(fs.existsSync(film)).toBe(true);
    // the benchmark's shipped-model rows take the model's own VAE factors (2× time compression here)
    const b = runCli(
      ['--backend', 'wasm', 'bench', '--quick', '--only', 'step,demo', '--reps', '1', '--model', model, '--json'],
      { timeoutMs: 300_000 },
    );
    expect(b.code).toBe(0);
    const rows = JSON.parse(b.stdout) as {
      component: string;
      config: string;
      msPerCall: number | null;
      skipped: string | null;
    }[];
    const shipped = rows.filter((r) => r.component === 'demo' || r.config.startsWith('shipped'));
    expect(shipped).toHaveLength(2);
    for (const r of shipped) expect(r.skipped === null && r.msPerCall! > 0).toBe(true);
    // 9 frames at 2× → 5 latent frames of 8×8 latents in 4×4 patches: 20 video tokens a scene (4× time would give 12)
    expect(shipped.find((r) => r.component === 'step')!.config).toMatch(/3 scene × \(16 \+ 20\)/);
    // 2B-style positions (a sin-cos table instead of RoPE); unknown kinds are refused
    const sc = path.join(run, 'sincos');
    fs.mkdirSync(sc);
    fs.cpSync(path.join(run, 'vae'), path.join(sc, 'vae'), { recursive: true });
    fs.copyFileSync(latents, path.join(sc, 'latents.safetensors'));
    const scArgs = [...dit.map((a) => (a === run ? sc : a)), '--steps', '1'];
    expect(runCli([...scArgs, '--positions', 'alibi']).stderr).toMatch(
      /--positions: expected rope or sincos, got "alibi"/,
    );
    expect(runCli([...scArgs, '--prediction', 'eps']).stderr).toMatch(
      /--prediction: expected flow or sample, got "eps"/,
    );
    expect(runCli([...scArgs, '--sigma-sampling', 'beta']).stderr).toMatch(
      /--sigma-sampling: expected uniform or logit-normal, got "beta"/,
    );
    expect(runCli([...scArgs, '--sigma-location', '1']).stderr).toMatch(
      /--sigma-location: only with --sigma-sampling logit-normal/,
    );
    expect(runCli([...scArgs, '--sigma-sampling', 'logit-normal', '--sigma-location', 'high']).stderr).toMatch(
      /--sigma-location: expected a number, got "high"/,
    );
    expect(runCli([...scArgs, '--temporal-weight', '-1']).stderr).toMatch(
      /--temporal-weight: expected a non-negative number, got "-1"/,
    );
    // … trained to predict x₀ (σ logit-normal): the scheduler config the export will write says so
    expect(
      runCli(
        [
          ...scArgs,
          '--positions',
          'sincos',
          '--prediction',
          'sample',
          '--sigma-sampling',
          'logit-normal',
          '--sigma-location',
          '0.5',
          '--fg-sigma-max',
          '0.5',
          '--temporal-weight',
          '3',
        ],
        {
          timeoutMs: 300_000,
        },
      ).code,
    ).toBe(0);
    expect(JSON.parse(checkpointMetadata(path.join(sc, 'dit', 'checkpoint.safetensors'))['config.objective']!)).toEqual(
      {
        foregroundWeight: 10,
        foregroundSigmaMax: 0.5,
        prediction: 'sample',
        sigmaSampling: 'logit-normal',
        sigmaLocation: 0.5,
        temporalWeight: 3,
      },
    );
    expect(JSON.parse(fs.readFileSync(path.join(sc, 'dit', 'transformer.json'), 'utf8'))).toMatchObject({
      use_rotary_positional_embeddings: false,
    });
    expect(JSON.parse(fs.readFileSync(path.join(sc, 'dit', 'scheduler.json'), 'utf8'))).toMatchObject({
      _class_name: 'FlowMatchEulerDiscreteScheduler',
      prediction_type: 'sample',
    });
    const scModel = path.join(sc, 'model');
    expect(
      runCli(['--backend', 'wasm', 'train', 'export', '--run', sc, '--out', scModel, '--stochastic-sampling'], {
        timeoutMs: 300_000,
      }).code,
    ).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(scModel, 'scheduler', 'scheduler_config.json'), 'utf8'))).toMatchObject(
      { prediction_type: 'sample', stochastic_sampling: true },
    );
    const scCard = fs.readFileSync(path.join(scModel, 'README.md'), 'utf8');
    expect(scCard).toMatch(/3D sin-cos positions, patch 4,/);
    expect(scCard).toMatch(
      /final loss \(x₀-prediction loss, σ logit-normal \(location 0\.5\), character latent pixels weighted 10× \(faded out towards σ 0\.5\), plus 3× the error of the predicted motion \(frame differences of x̂₀\); mean of last 50\)/,
    );
    expect(scCard).toMatch(
      /prediction_type sample \(the model predicts x₀\), stochastic sampling \(fresh noise each step\) \|/,
    );
    const scFilm = runCli(
      [
        '--backend',
        'wasm',
        'generate',
        '--model',
        scModel,
        '--scenes',
        'examples/three-scenes.json',
        '--out',
        path.join(sc, 'film.mp4'),
        '--steps',
        '2',
        '--quiet',
      ],
      { timeoutMs: 300_000 },
    );
    expect(scFilm.stderr).toBe('');
    expect(scFilm.code).toBe(0);
    // fine-tuning an exported pipeline (`train dit --init`) starts from its configs and weights: with
    // --steps 0 the run holds the pipeline as it is, so exporting it gives the same tensors back
    const ft = path.join(run, 'finetune');
    fs.mkdirSync(ft);
    fs.cpSync(path.join(run, 'vae'), path.join(ft, 'vae'), { recursive: true });
    fs.copyFileSync(latents, path.join(ft, 'latents.safetensors'));
    const ftArgs = [...dit.map((a) => (a === run ? ft : a)), '--steps', '0', '--layers', '3'];
    expect(runCli([...ftArgs, '--init', scModel]).stderr).toMatch(
      /scheduler_config\.json: the pipeline predicts sample, but this stage would train it to predict flow_prediction/,
    );
    const f = runCli([...ftArgs, '--init', model], { timeoutMs: 300_000 });
    expect(f.stderr).toBe('');
    expect(f.code).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(ft, 'dit', 'transformer.json'), 'utf8'))).toMatchObject({
      num_layers: 1, // the pipeline's architecture, not --layers
    });
    const ftModel = path.join(ft, 'model');
    expect(
      runCli(['--backend', 'wasm', 'train', 'export', '--run', ft, '--out', ftModel], { timeoutMs: 300_000 }).code,
    ).toBe(0);
    const tensorBytes = (file: string) => {
      const buf = fs.readFileSync(file);
      return buf.subarray(8 + Number(buf.readBigUInt64LE(0)));
    };
    for (const f of ['transformer/diffusion_pytorch_model.safetensors', 'text_encoder/model.safetensors'])
      expect(tensorBytes(path.join(ftModel, f)).equals(tensorBytes(path.join(model, f)))).toBe(true);
    const ftCard = fs.readFileSync(path.join(ftModel, 'README.md'), 'utf8');
    expect(ftCard).toMatch(
      /fine-tuned from model: 0 steps jointly with the text encoder, 0\.00 h; final loss \(.*\) – \|/,
    );
    // … and carries the table of the model it started from (2 DiT steps there)
    expect(ftCard).toMatch(
      /## Fine-tuned from model\n[^]*\| transformer\/ \|[^|]*\|[^|]*\| 2 steps jointly with the text encoder/,
    );
    // the VAE retrained after prepare: its latents are stale, dit and export refuse until prepare runs again
    const stale = path.join(run, 'stale');
    fs.mkdirSync(stale);
    fs.cpSync(path.join(run, 'vae'), path.join(stale, 'vae'), { recursive: true });
    fs.copyFileSync(latents, path.join(stale, 'latents.safetensors'));
    const staleVae = runCli(
      [
        '--backend',
        'wasm',
        'train',
        'vae',
        '--run',
        stale,
        '--widths',
        '4,4,4,4',
        '--temporal-compression',
        '2',
        '--quiet',
        '--steps',
        '4',
        '--until',
        '2',
        '--force',
      ],
      { timeoutMs: 300_000 },
    );
    expect(staleVae.code).toBe(0);
    const staleDit = [...dit.map((a) => (a === run ? stale : a)), '--steps', '1'];
    const refused = runCli(staleDit);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(
      /latents\.safetensors was encoded by the VAE at step 4, but .*checkpoint\.safetensors is now at step 2: run `train prepare` again/,
    );
    expect(fs.existsSync(path.join(stale, 'dit', 'checkpoint.safetensors'))).toBe(false);
    expect(
      runCli(['--backend', 'wasm', 'train', 'prepare', '--run', stale, '--clips', '3'], { timeoutMs: 300_000 }).code,
    ).toBe(0);
    expect(runCli(staleDit, { timeoutMs: 300_000 }).code).toBe(0);
    // no latent dataset: a clear message
    const none = runCli(['--backend', 'wasm', 'train', 'dit', '--run', path.join(run, 'nothing'), '--steps', '1']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/latents\.safetensors/);
  }, 600_000);

  test('SIGTERM (or Ctrl-C) mid-stage: the checkpoint is saved at the last finished step, exit 143 (128 + SIGTERM), --resume continues', async () => {
    const dir = fs.mkdtempSync(path.join(run, 'term-'));
    const args = [
      '--import',
      'tsx',
      path.resolve('src/cli/main.ts'),
      '--backend',
      'wasm',
      'train',
      'vae',
      '--run',
      dir,
      '--widths',
      '4,4,4,4',
      '--steps',
      '1000',
      '--checkpoint-every',
      '1000',
    ];
    const child = spawn(process.execPath, args, { env: { ...process.env, MASK2DIT_LOG: 'warn' } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const log = path.join(dir, 'vae', 'loss.jsonl');
    const t0 = Date.now();
    while (!(fs.existsSync(log) && lines(log).length >= 2)) {
      if (Date.now() - t0 > 120_000) throw new Error(`no training step within 120 s: ${stderr}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    child.kill('SIGTERM');
    expect(await exited).toBe(143);
    const m = /interrupted: checkpoint saved at step (\d+)/.exec(stderr);
    expect(m).not.toBeNull();
    const saved = Number(m![1]);
    expect(saved).toBeGreaterThanOrEqual(2);
    expect(saved).toBeLessThan(1000);
    expect(lines(log)).toHaveLength(saved);
    const r = runCli(
      [
        '--backend',
        'wasm',
        'train',
        'vae',
        '--run',
        dir,
        '--widths',
        '4,4,4,4',
        '--steps',
        '1000',
        '--until',
        String(saved + 1),
        '--checkpoint-every',
        '1000',
        '--resume',
        '--quiet',
      ],
      { timeoutMs: 300_000 },
    );
    expect(r.code).toBe(0);
    expect(lines(log).map((l) => l.step)).toEqual(Array.from({ length: saved + 1 }, (_, k) => k));
  }, 600_000);
});
