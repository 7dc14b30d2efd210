/**
 * How the flow objective draws σ per clip: uniform (the default, unchanged), or logit-normal
 * (σ = sigmoid(m + n), n ~ N(0, 1), location m default 0), reproducible from (seed, step) like every
 * training draw.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { gaussianArray } from '../../src/sampler/noise.js';
import { ditObjective } from '../../src/train/ditObjective.js';
import { drawFlow } from '../../src/train/flowMatchingObjective.js';
import { StepRng } from '../../src/train/rng.js';
import { tinyTransformer } from '../helpers/tinyTransformer.js';

beforeAll(async () => {
  await selectBackend('cpu');
});
afterAll(() => shutdownBackends());

const draws = (sampling: 'uniform' | 'logit-normal', steps: number, batch = 8) =>
  Array.from({ length: steps }, (_, k) => drawFlow(new StepRng(7, k), batch, 3, 0.3, sampling).sigma).flat();

describe('σ sampling of the flow objective', () => {
  test("uniform is the step rng's uniforms, clipped to [0.001, 0.999] (what every earlier run drew)", () => {
    const want = Array.from(new StepRng(7, 3).uniforms(8), (u) => Math.min(0.999, Math.max(0.001, u)));
    expect(drawFlow(new StepRng(7, 3), 8, 3, 0.3).sigma).toEqual(want);
    expect(drawFlow(new StepRng(7, 3), 8, 3, 0.3, 'uniform').sigma).toEqual(want);
  });

  test('logit-normal: logit(σ) has mean 0 and standard deviation 1; few σ near 0 or 1', () => {
    const s = draws('logit-normal', 500); // 4,000 draws
    const logits = s.map((x) => Math.log(x / (1 - x)));
    const mean = logits.reduce((a, b) => a + b, 0) / logits.length;
    const sd = Math.sqrt(logits.reduce((a, b) => a + (b - mean) ** 2, 0) / logits.length);
    expect(Math.abs(mean)).toBeLessThan(0.06); // 4 standard errors
    expect(Math.abs(sd - 1)).toBeLessThan(0.05);
    // P(σ < 0.1) = Φ(logit 0.1 = −2.197) ≈ 0.014, against 0.1 for uniform
    const low = s.filter((x) => x < 0.1).length / s.length;
    expect(low).toBeGreaterThan(0.005);
    expect(low).toBeLessThan(0.03);
    expect(draws('uniform', 500).filter((x) => x < 0.1).length / 4000).toBeGreaterThan(0.08);
    expect(Math.min(...s) >= 0.001 && Math.max(...s) <= 0.999).toBe(true);
  });

  test('a location m shifts logit(σ) by exactly m: the same normals, more high σ', () => {
    const logit = (x: number) => Math.log(x / (1 - x));
    for (const k of [0, 7, 42]) {
      const at0 = drawFlow(new StepRng(7, k), 8, 3, 0.3, 'logit-normal');
      const at1 = drawFlow(new StepRng(7, k), 8, 3, 0.3, 'logit-normal', 1);
      expect(drawFlow(new StepRng(7, k), 8, 3, 0.3, 'logit-normal', 0)).toEqual(at0);
      at0.sigma.forEach((s, i) => {
        if (s > 0.001 && s < 0.999 && at1.sigma[i]! < 0.999) expect(logit(at1.sigma[i]!)).toBeCloseTo(logit(s) + 1, 9);
      });
      expect(at1.target).toEqual(at0.target); // the objective and target draws are untouched
    }
    const high = Array.from({ length: 500 }, (_, k) => drawFlow(new StepRng(7, k), 8, 3, 0.3, 'logit-normal', 1).sigma)
      .flat()
      .filter((x) => x > 0.8).length;
    // P(σ > 0.8) = P(n > logit 0.8 − 1 = 0.386) ≈ 0.35 at m = 1, against ≈ 0.08 at m = 0
    expect(high / 4000).toBeGreaterThan(0.3);
    expect(draws('logit-normal', 500).filter((x) => x > 0.8).length / 4000).toBeLessThan(0.12);
  });

  test('the same (seed, step) draws the same σ, objective and target', () => {
    for (const k of [0, 5, 99])
      expect(drawFlow(new StepRng(11, k), 4, 3, 0.5, 'logit-normal')).toEqual(
        drawFlow(new StepRng(11, k), 4, 3, 0.5, 'logit-normal'),
      );
    expect(drawFlow(new StepRng(11, 1), 4, 3, 0.5, 'logit-normal').sigma).not.toEqual(
      drawFlow(new StepRng(11, 2), 4, 3, 0.5, 'logit-normal').sigma,
    );
  });

  test('the DiT objective draws its σ the way it is told', () => {
    const m = tinyTransformer();
    const data = {
      size: 2,
      scenes: 2,
      latentShape: [2, 4, 4, 4] as [number, number, number, number],
      latents: (i: number) => gaussianArray(2 * 64, i),
      embeddings: (i: number) => gaussianArray(2 * 32, 50 + i),
    };
    const lowShare = (sigmaSampling: 'uniform' | 'logit-normal', sigmaLocation?: number) => {
      const objective = ditObjective(m, data, {
        batchSize: 1,
        pConditional: 0.3,
        sigmaSampling,
        ...(sigmaLocation !== undefined && { sigmaLocation }),
      });
      const sigmas = Array.from({ length: 300 }, (_, k) => {
        const step = objective(k, new StepRng(3, k));
        step.dispose?.();
        return step.info!['sigma'] as number;
      });
      return sigmas.filter((x) => x < 0.1).length / sigmas.length;
    };
    expect(lowShare('uniform')).toBeGreaterThan(0.06); // expected 0.1
    expect(lowShare('logit-normal')).toBeLessThan(0.04); // expected 0.014
    expect(lowShare('logit-normal', -2)).toBeGreaterThan(0.3); // expected P(n < −0.197) ≈ 0.42
    m.dispose();
  });
});
