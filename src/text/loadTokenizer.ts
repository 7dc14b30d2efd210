/**
 * The prompt tokenizer of a folder: this project's word tokenizer (`tokenizer/tokenizer.json` with
 * `{"type": "word"}`, the shipped world model) or a SentencePiece T5 tokenizer (`tokenizer/spiece.model`
 * + `tokenizer_config.json`, real CogVideoX / Mask²DiT folders). Accepts a pipeline folder, a tokenizer
 * folder or a `spiece.model` file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import type { PromptTokenizer } from './promptEncoder.js';
import { T5Tokenizer, tokenizerDir } from './t5Tokenizer.js';
import { WordTokenizer } from './tokenizer.js';

export type AnyTokenizer = WordTokenizer | T5Tokenizer;

/** The word tokenizer's JSON, if `dir/tokenizer.json` is one; undefined otherwise. */
function wordTokenizerJson(dir: string): unknown {
  const file = path.join(dir, 'tokenizer.json');
  if (!fs.existsSync(file) || fs.existsSync(path.join(dir, 'spiece.model'))) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConfigError(file, '(file)', `not valid JSON: ${(e as Error).message}`);
  }
  return (raw as { type?: unknown } | null)?.type === 'word' ? raw : undefined;
}

/**
 * @param maxLength ids per prompt for a T5 tokenizer (the pipeline's `max_sequence_length`, i.e. the
 *   transformer's `max_text_seq_length`; default 226). A word tokenizer keeps its own `length`.
 */
export function loadPromptTokenizer(p: string, options: { maxLength?: number } = {}): AnyTokenizer & PromptTokenizer {
  const isDir = fs.existsSync(p) && fs.statSync(p).isDirectory();
  if (isDir) {
    const dir = tokenizerDir(p);
    const word = wordTokenizerJson(dir);
    if (word !== undefined) return WordTokenizer.fromJSON(word, path.join(dir, 'tokenizer.json'));
  }
  return T5Tokenizer.fromFolder(p, options.maxLength !== undefined ? { length: options.maxLength } : {});
}
