/** Learning-rate schedule: linear warmup from 0, then cosine decay to `minLr` at `totalSteps`. */
export interface LrSchedule {
  lr: number;
  warmupSteps: number;
  totalSteps: number;
  minLr: number;
}

/** Learning rate of step `step` (0-based). */
export function learningRate(s: LrSchedule, step: number): number {
  if (step < s.warmupSteps) return (s.lr * (step + 1)) / s.warmupSteps;
  const span = Math.max(1, s.totalSteps - s.warmupSteps);
  const progress = Math.min(1, (step - s.warmupSteps) / span);
  return s.minLr + 0.5 * (s.lr - s.minLr) * (1 + Math.cos(Math.PI * progress));
}
