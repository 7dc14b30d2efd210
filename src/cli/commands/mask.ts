/**
 * `mask2dit mask --scenes 3 --text 4 --video 6 [--target k] --out mask.png [--ascii]`: the Mask²DiT
 * dual attention mask of a uniform layout as a picture (rows = queries, columns = keys, scene
 * segments labelled), and with `--target k` the conditional roles of scene extension. `--ascii`
 * prints it on stdout instead of (or besides) the PNG.
 */
import type { Command } from 'commander';
import { Mask2DiTError } from '../../errors.js';
import { renderMaskImage } from '../../io/maskImage.js';
import { writePng } from '../../io/png.js';
import { renderMaskAscii } from '../../scene/masks.js';
import { layoutTotals, uniformLayout } from '../../scene/layout.js';
import { intFlag } from '../film.js';

interface MaskFlags {
  scenes: string;
  text: string;
  video: string;
  target?: string;
  out?: string;
  ascii?: boolean;
  force?: boolean;
  json?: boolean;
}

/** Token-level ASCII up to this many tokens, else one cell per segment. */
const ASCII_TOKEN_LIMIT = 96;

async function runMask(flags: MaskFlags): Promise<void> {
  const scenes = intFlag(flags.scenes, 'scenes', 1, 1000)!;
  const text = intFlag(flags.text, 'text', 0, 1_000_000)!;
  const video = intFlag(flags.video, 'video', 1, 10_000_000)!;
  const target = intFlag(flags.target, 'target', 0, scenes - 1);
  if (flags.out === undefined && flags.ascii !== true)
    throw new Mask2DiTError('OPTION', 'give --out mask.png, --ascii, or both');
  const layout = uniformLayout(scenes, text, video);
  const targetOpt = target !== undefined ? { target } : {};
  if (flags.ascii === true) {
    const granularity = layoutTotals(layout).total <= ASCII_TOKEN_LIMIT ? 'token' : 'block';
    process.stdout.write(renderMaskAscii(layout, { granularity, ...targetOpt }) + '\n');
  }
  if (flags.out !== undefined) {
    const m = renderMaskImage(layout, targetOpt);
    await writePng(flags.out, m.image, { force: flags.force === true });
    const report = {
      out: flags.out,
      width: m.image.width,
      height: m.image.height,
      granularity: m.granularity,
      tokens: layoutTotals(layout).total,
      ...targetOpt,
    };
    if (flags.json === true) process.stdout.write(JSON.stringify(report) + '\n');
    else if (flags.ascii !== true)
      process.stdout.write(
        `wrote ${flags.out} (${report.width}×${report.height}, ${report.tokens} tokens, one cell per ${m.granularity === 'token' ? 'token' : 'segment'})\n`,
      );
  }
}

export function register(program: Command): void {
  program
    .command('mask')
    .description(
      'render the dual attention mask of S scenes (T text + V video tokens each) as a PNG or ASCII; --target k shows the conditional mask of scene extension',
    )
    .requiredOption('--scenes <n>', 'number of scenes')
    .requiredOption('--text <n>', 'text tokens per scene')
    .requiredOption('--video <n>', 'video tokens per scene')
    .option('--target <k>', 'target scene (0-based) of the conditional mask: the others are clean conditioning')
    .option('--out <file.png>', 'PNG to write')
    .option('--ascii', 'print the mask as text on stdout')
    .option('--force', 'overwrite an existing PNG')
    .option('--json', 'print what was written as one JSON document')
    .action(runMask);
}
