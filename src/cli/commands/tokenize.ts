/**
 * `mask2dit tokenize --model <pipeline dir | tokenizer dir | spiece.model> [--max-length N]
 * [--untruncated] [--legacy true|false] [--json] <text...>`: the T5 token ids and pieces of each text
 * as the pipelines compute them (padded/truncated to the max length, or untruncated), plus what the
 * prompt loses: the parts that became `<unk>` and the ids truncation drops.
 */
import type { Command } from 'commander';
import { Mask2DiTError } from '../../errors.js';
import { T5Tokenizer, type PromptReport, type T5TokenizerOptions, type Tokenized } from '../../text/t5Tokenizer.js';
import { intFlag } from '../film.js';

interface TokenizeFlags {
  model: string;
  maxLength?: string;
  untruncated?: boolean;
  legacy?: string;
  json?: boolean;
}

interface TextResult extends PromptReport {
  ids: number[];
  pieces: string[];
}

function legacyFlag(v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === 'true' || v === 'false') return v === 'true';
  throw new Mask2DiTError('OPTION', `--legacy: expected true or false, got ${JSON.stringify(v)}`);
}

function renderText(r: TextResult, tok: T5Tokenizer, maxLength: number, untruncated: boolean): string {
  let n = r.ids.length;
  while (!untruncated && n > 0 && r.ids[n - 1] === tok.padId && r.pieces[n - 1] === tok.padToken) n--;
  const pads = r.ids.length - n;
  const lines = [JSON.stringify(r.text)];
  const padNote = pads > 0 ? ` + ${pads} × ${tok.padToken} (${tok.padId})` : '';
  lines.push(
    `  ids (${untruncated ? `${n}, untruncated` : `${n} of ${maxLength}`}): ${r.ids.slice(0, n).join(' ')}${padNote}`,
  );
  lines.push(`  pieces: ${r.pieces.slice(0, n).join(' ')}`);
  if (r.unknown.length > 0)
    lines.push(`  unknown (${tok.unkToken}, id ${tok.unkId}): ${r.unknown.map((u) => JSON.stringify(u)).join(', ')}`);
  if (r.truncated)
    lines.push(
      `  truncated at ${maxLength}: ${r.dropped} id${r.dropped === 1 ? '' : 's'} ${untruncated ? 'would be ' : ''}dropped: ${JSON.stringify(r.droppedText)}`,
    );
  return lines.join('\n');
}

function runTokenize(texts: string[], flags: TokenizeFlags): void {
  const legacy = legacyFlag(flags.legacy);
  const options: T5TokenizerOptions = legacy !== undefined ? { legacy } : {};
  const tok = T5Tokenizer.fromFolder(flags.model, options);
  const maxLength = intFlag(flags.maxLength, 'max-length', 1, 1_000_000) ?? tok.length;
  const untruncated = flags.untruncated === true;
  const results: TextResult[] = texts.map((text) => {
    const t: Tokenized = untruncated ? tok.tokenize(text) : tok.encodeTruncated(text, maxLength);
    return { ...tok.report(text, maxLength), ids: t.ids, pieces: t.pieces };
  });
  if (flags.json === true) {
    const doc = {
      model: flags.model,
      legacy: tok.legacy,
      maxLength,
      untruncated,
      vocabSize: tok.vocabSize,
      texts: results,
    };
    process.stdout.write(JSON.stringify(doc) + '\n');
    return;
  }
  process.stdout.write(
    `${flags.model}: T5Tokenizer (${tok.sp.vocabSize} pieces + ${tok.extraIds} extra ids, legacy=${tok.legacy}), max length ${maxLength}\n`,
  );
  for (const r of results) process.stdout.write(renderText(r, tok, maxLength, untruncated) + '\n');
}

export function register(program: Command): void {
  program
    .command('tokenize')
    .description(
      'T5 token ids and pieces of each text as the pipelines compute them, with the parts that became <unk> and what truncation drops',
    )
    .argument('<text...>', 'texts to tokenize (one argument each)')
    .requiredOption(
      '--model <path>',
      'a pipeline folder (tokenizer/spiece.model), a tokenizer folder, or a spiece.model file',
    )
    .option('--max-length <n>', 'ids per text (max_sequence_length; default 226)')
    .option(
      '--untruncated',
      'print the untruncated ids (tokenizer(text).input_ids) instead of the padded, truncated row',
    )
    .option('--legacy <bool>', 'override tokenizer_config.json "legacy" (true or false)')
    .option('--json', 'print one JSON document')
    .action(runTokenize);
}
