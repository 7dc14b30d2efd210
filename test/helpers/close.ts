/** torch.allclose-style comparison that names the worst element instead of dumping tensors. */
export function maxViolation(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  atol: number,
  rtol: number,
): { ok: boolean; index: number; actual: number; expected: number; absErr: number } {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != expected ${expected.length}`);
  let worst = { ok: true, index: -1, actual: 0, expected: 0, absErr: 0 };
  let worstRatio = -Infinity;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const b = expected[i]!;
    const err = Math.abs(a - b);
    const bound = atol + rtol * Math.abs(b);
    const ratio = Number.isNaN(err) ? (Number.isNaN(a) && Number.isNaN(b) ? 0 : Infinity) : err / bound;
    if (ratio > worstRatio) {
      worstRatio = ratio;
      worst = { ok: ratio <= 1, index: i, actual: a, expected: b, absErr: err };
    }
  }
  return worst;
}

export function expectClose(
  name: string,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  atol: number,
  rtol = 0,
): void {
  const v = maxViolation(actual, expected, atol, rtol);
  if (!v.ok) {
    throw new Error(
      `${name}: |a-b| <= ${atol} + ${rtol}·|b| violated at index ${v.index}: actual ${v.actual}, expected ${v.expected}, abs err ${v.absErr.toExponential(3)}`,
    );
  }
}
