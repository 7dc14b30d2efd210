/** The CLI's progress printer: modes, phase lines, step lines with step time and ETA. */
import { describe, expect, test } from '@jest/globals';
import { Progress, progressMode } from '../../src/cli/progress.js';

function sink(isTTY: boolean) {
  const chunks: string[] = [];
  const stream = { isTTY, write: (s: string) => chunks.push(s) > 0 } as unknown as NodeJS.WriteStream;
  return { stream, text: () => chunks.join('') };
}

describe('Progress', () => {
  test('mode: quiet wins; a TTY redraws; otherwise silent unless --progress', () => {
    expect(progressMode({ quiet: true }, sink(true).stream)).toBe('off');
    expect(progressMode({}, sink(true).stream)).toBe('tty');
    expect(progressMode({}, sink(false).stream)).toBe('off');
    expect(progressMode({ progress: true }, sink(false).stream)).toBe('plain');
  });

  test('plain: one line per phase and per step, with ms/step and ETA', () => {
    const s = sink(false);
    const p = new Progress('plain', s.stream);
    p.phase('load', 'model');
    p.startSteps();
    p.step(0, 3);
    p.step(1, 3);
    p.step(2, 3);
    p.phase('decode');
    const lines = s.text().trimEnd().split('\n');
    expect(lines).toHaveLength(5);
    expect(lines[0]).toMatch(/^\[\s*\d+\.\d s\] load: model$/);
    expect(lines[1]).toMatch(/^ {2}step 1\/3 {2}\d+ ms\/step {2}ETA \d+\.\d s$/);
    expect(lines[3]).toMatch(/step 3\/3 .* ETA 0\.0 s$/);
    expect(lines[4]).toMatch(/\] decode$/);
  });

  test('tty: steps redraw one line (carriage return), closed by a newline at the end; off prints nothing', () => {
    const s = sink(true);
    const p = new Progress('tty', s.stream);
    p.startSteps();
    p.step(0, 2);
    p.step(1, 2);
    expect(s.text().split('\r')).toHaveLength(3);
    expect(s.text().endsWith('\n')).toBe(true);
    expect(s.text().split('\n')).toHaveLength(2);
    const off = sink(true);
    const q = new Progress('off', off.stream);
    q.phase('load');
    q.step(0, 1);
    expect(off.text()).toBe('');
  });
});
