/**
 * transformers' (slow) `T5Tokenizer` on top of the SentencePiece model — the tokenizer CogVideoX and
 * Mask²DiT load with `T5Tokenizer.from_pretrained(model, subfolder="tokenizer")` — and the pipelines'
 * call `tokenizer(prompts, padding="max_length", max_length=L, truncation=True)`.
 *
 *   "a </s> b" ─split added tokens→ ["a ", "</s>", " b"] ─SentencePiece per segment→ [▁a, </s>, ▁b]
 *              ─ids→ [9, 1, 216] ─EOS unless last is EOS→ [9, 1, 216, 1] ─cut to L−1, EOS, pad 0→ [L]
 *
 * - Added tokens (`</s>`, `<pad>`, `<unk>`, `<extra_id_N>`, N < extra_ids) are split out of the text
 *   first, leftmost and longest first; `<extra_id_N>` (id = pieces + extra_ids − 1 − N, so
 *   `<extra_id_0>` is the LAST id) strips the whitespace on both sides (lstrip/rstrip).
 * - `legacy=true` (the default, and what the pipelines use unless tokenizer_config.json says otherwise):
 *   each text segment is a separate `sp.encode`, so each gets its own dummy `▁`.
 * - `legacy=false`: `▁` in the text becomes a space, one `▁` is prepended to the whole text, the model's
 *   dummy prefix is turned off, and a segment that starts with a space is encoded as `"<unk>" + segment`
 *   with the pieces of `"<unk>"` dropped (so no `▁` appears after a special token).
 * - Truncation keeps the first L−1 ids, then EOS is appended unless the ids already end with it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, Mask2DiTError } from '../errors.js';
import { SentencePieceModel, TokenizerFileError } from './sentencepiece.js';

const SPIECE_UNDERLINE = '\u2581';

/** A token split out of the text before SentencePiece runs (transformers' `AddedToken`). */
export interface AddedToken {
  content: string;
  id: number;
  /** Swallow the whitespace before / after it. */
  lstrip: boolean;
  rstrip: boolean;
  special: boolean;
}

export interface T5TokenizerOptions {
  /** Sentinel tokens `<extra_id_0..n-1>` after the pieces (default 100). */
  extraIds?: number;
  /** transformers' `legacy` flag (default true; see the file comment). */
  legacy?: boolean;
  /** Ids per prompt, `max_sequence_length` (default 226, CogVideoX's). */
  length?: number;
  /** `add_prefix_space` (only used with legacy=false; default true). */
  addPrefixSpace?: boolean;
  eosToken?: string;
  unkToken?: string;
  padToken?: string;
  /** `additional_special_tokens` (default: the extra ids). */
  additionalSpecialTokens?: string[];
  /** Added tokens from `tokenizer_config.json` → `added_tokens_decoder` (override the defaults by id). */
  addedTokens?: AddedToken[];
  /** `model_max_length` of tokenizer_config.json (informational: the pipelines pass `length`). */
  modelMaxLength?: number;
}

/** A prompt's untruncated tokenization (EOS included): `tokenizer(text).input_ids` and its tokens. */
export interface Tokenized {
  ids: number[];
  pieces: string[];
}

/** What a prompt lost: the parts that became `<unk>` and what truncation to `length` cut. */
export interface PromptReport {
  text: string;
  /** Untruncated ids including EOS. */
  tokens: number;
  /** Text of every `<unk>` token (normalized; consecutive unknown characters are one entry). */
  unknown: string[];
  truncated: boolean;
  /** Prompt ids cut by truncation (diffusers warns with these). */
  dropped: number;
  droppedText: string;
}

/** Python's `str.isspace()` characters (what `lstrip()`/`rstrip()` remove). */
// eslint-disable-next-line no-control-regex -- \x1c-\x1f are whitespace to Python
const PY_SPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;
const lstrip = (s: string) => {
  let i = 0;
  while (i < s.length && PY_SPACE.test(s[i]!)) i++;
  return s.slice(i);
};
const rstrip = (s: string) => {
  let i = s.length;
  while (i > 0 && PY_SPACE.test(s[i - 1]!)) i--;
  return s.slice(0, i);
};

export class T5Tokenizer {
  readonly length: number;
  readonly legacy: boolean;
  readonly extraIds: number;
  readonly addPrefixSpace: boolean;
  readonly modelMaxLength: number | undefined;
  /** The reference pipelines call T5 without an attention mask: padding takes part. */
  readonly attentionMask = 'none' as const;
  readonly eosToken: string;
  readonly unkToken: string;
  readonly padToken: string;
  readonly eosId: number;
  readonly padId: number;
  readonly unkId: number;
  private readonly added = new Map<string, AddedToken>();
  private readonly addedById = new Map<number, AddedToken>();
  private readonly specialTokens: Set<string>;
  private readonly firstChars = new Set<string>();
  /** The model SentencePiece runs with (legacy=false: without the dummy prefix). */
  private readonly spm: SentencePieceModel;
  private unkLength: number | undefined;

  constructor(
    readonly sp: SentencePieceModel,
    options: T5TokenizerOptions = {},
  ) {
    const extraIds = options.extraIds ?? 100;
    const length = options.length ?? 226;
    if (!Number.isInteger(extraIds) || extraIds < 0)
      throw new Mask2DiTError('TOKENIZER', `extra_ids must be an integer ≥ 0, got ${extraIds}`);
    if (!Number.isInteger(length) || length < 1)
      throw new Mask2DiTError('TOKENIZER', `length (max_sequence_length) must be an integer ≥ 1, got ${length}`);
    this.extraIds = extraIds;
    this.length = length;
    this.legacy = options.legacy ?? true;
    this.addPrefixSpace = options.addPrefixSpace ?? true;
    this.modelMaxLength = options.modelMaxLength;
    this.eosToken = options.eosToken ?? '</s>';
    this.unkToken = options.unkToken ?? '<unk>';
    this.padToken = options.padToken ?? '<pad>';
    this.spm = this.legacy ? sp : sp.withNormalizer({ addDummyPrefix: false });

    const extra = Array.from({ length: extraIds }, (_, i) => `<extra_id_${i}>`);
    const additional = options.additionalSpecialTokens ?? extra;
    const extraGiven = additional.filter((t) => t.includes('<extra_id_')).length;
    if (options.additionalSpecialTokens !== undefined && extraIds > 0 && extraGiven > 0 && extraGiven !== extraIds) {
      throw new Mask2DiTError(
        'TOKENIZER',
        `additional_special_tokens name ${extraGiven} <extra_id_N> tokens, extra_ids says ${extraIds}`,
      );
    }
    const sentinels = extraGiven > 0 ? extra : [];
    const allAdditional = extraGiven > 0 ? additional : [...additional, ...extra];
    // T5Tokenizer.__init__: <extra_id_i> = pieces − 1 + extra_ids − i, lstrip and rstrip
    sentinels.forEach((content, i) =>
      this.addToken({ content, id: sp.vocabSize - 1 + extraIds - i, lstrip: true, rstrip: true, special: true }),
    );
    for (const t of options.addedTokens ?? []) this.addToken(t);
    // special tokens not yet added: their vocabulary id, or a new id at the end
    let next = Math.max(sp.vocabSize + extraIds, ...[...this.addedById.keys()].map((id) => id + 1));
    for (const content of [this.eosToken, this.unkToken, this.padToken, ...allAdditional]) {
      if (this.added.has(content)) continue;
      const id = sp.hasPiece(content) ? sp.pieceToId(content) : next++;
      this.addToken({ content, id, lstrip: false, rstrip: false, special: true });
    }
    this.specialTokens = new Set([this.eosToken, this.unkToken, this.padToken, ...allAdditional]);
    this.eosId = this.tokenToId(this.eosToken);
    this.padId = this.tokenToId(this.padToken);
    this.unkId = this.tokenToId(this.unkToken);
  }

  private addToken(t: AddedToken): void {
    const old = this.addedById.get(t.id);
    if (old !== undefined) this.added.delete(old.content);
    this.added.set(t.content, t);
    this.addedById.set(t.id, t);
    if (t.content.length > 0) this.firstChars.add(t.content[0]!);
  }

  /** The tokenizer of a pipeline folder (`tokenizer/`), a tokenizer folder, or a `spiece.model` file. */
  static fromFolder(dir: string, options: T5TokenizerOptions = {}): T5Tokenizer {
    return loadT5Tokenizer(dir, options);
  }

  /** `len(tokenizer)`: pieces + extra ids (+ any added token beyond them). */
  get vocabSize(): number {
    return Math.max(this.sp.vocabSize + this.extraIds, ...[...this.addedById.keys()].map((id) => id + 1));
  }

  /** Token → id: added tokens first, then the SentencePiece vocabulary (unknown → `<unk>`). */
  tokenToId(token: string): number {
    return this.added.get(token)?.id ?? this.sp.pieceToId(token);
  }

  /** Id → token: added tokens first, then the SentencePiece piece. */
  idToToken(id: number): string {
    return this.addedById.get(id)?.content ?? this.sp.idToPiece(id);
  }

  /** Split out the added tokens, leftmost and longest first; empty parts dropped (transformers' `Trie.split`). */
  private splitAdded(text: string): string[] {
    const parts: string[] = [];
    let start = 0;
    for (let i = 0; i < text.length;) {
      let best = '';
      if (this.firstChars.has(text[i]!)) {
        for (const content of this.added.keys())
          if (content.length > best.length && text.startsWith(content, i)) best = content;
      }
      if (best === '') {
        i++;
        continue;
      }
      if (i > start) parts.push(text.slice(start, i));
      parts.push(best);
      i += best.length;
      start = i;
    }
    if (start < text.length) parts.push(text.slice(start));
    return parts;
  }

  /** transformers `PreTrainedTokenizer.tokenize` with T5's `tokenize` / `_tokenize`. */
  tokenizeToPieces(text: string): string[] {
    let t = text;
    if (!this.legacy && t.length > 0) {
      t = t.replaceAll(SPIECE_UNDERLINE, ' ');
      if (this.addPrefixSpace) t = SPIECE_UNDERLINE + t;
    }
    const parts = this.splitAdded(t);
    parts.forEach((part, i) => {
      const tok = this.added.get(part);
      if (tok === undefined) return;
      if (tok.rstrip && i + 1 < parts.length && parts[i + 1] !== '') parts[i + 1] = lstrip(parts[i + 1]!);
      if (tok.lstrip && i > 0 && parts[i - 1] !== '') parts[i - 1] = rstrip(parts[i - 1]!);
    });
    const tokens: string[] = [];
    for (const part of parts) {
      if (part === '') continue;
      if (this.added.has(part)) tokens.push(part);
      else tokens.push(...this.segmentPieces(part));
    }
    if (
      !this.legacy &&
      text.length > 0 &&
      tokens.length > 1 &&
      tokens[0] === SPIECE_UNDERLINE &&
      this.specialTokens.has(tokens[1]!)
    )
      tokens.shift();
    return tokens;
  }

  /** T5Tokenizer `_tokenize`: one text segment → SentencePiece pieces. */
  private segmentPieces(segment: string): string[] {
    if (this.legacy || !(segment.startsWith(SPIECE_UNDERLINE) || segment.startsWith(' ')))
      return this.spm.encodePieces(segment).map((p) => p.piece);
    this.unkLength ??= this.spm.encodePieces(this.unkToken).length;
    const pieces = this.spm.encodePieces(this.unkToken + segment).map((p) => p.piece);
    return pieces.length >= this.unkLength ? pieces.slice(this.unkLength) : pieces;
  }

  /** Ids of the text without EOS (`convert_tokens_to_ids(tokenize(text))`). */
  private contentIds(text: string): { ids: number[]; pieces: string[] } {
    const pieces = this.tokenizeToPieces(text);
    return { ids: pieces.map((p) => this.tokenToId(p)), pieces };
  }

  /** `_add_eos_if_not_present`. */
  private withEos(ids: number[], pieces: string[]): Tokenized {
    if (ids.length > 0 && ids[ids.length - 1] === this.eosId) return { ids, pieces };
    return { ids: [...ids, this.eosId], pieces: [...pieces, this.eosToken] };
  }

  /** `tokenizer(text).input_ids` (no truncation, no padding; EOS appended unless already last) and its tokens. */
  tokenize(text: string): Tokenized {
    const { ids, pieces } = this.contentIds(text);
    return this.withEos(ids, pieces);
  }

  /** `tokenizer(text, padding="max_length", max_length, truncation=True)`: exactly `maxLength` ids and the tokens kept. */
  encodeTruncated(text: string, maxLength = this.length): Tokenized {
    const c = this.contentIds(text);
    const keep = c.ids.length + 1 > maxLength ? Math.max(0, maxLength - 1) : c.ids.length;
    const t = this.withEos(c.ids.slice(0, keep), c.pieces.slice(0, keep));
    const pad = Math.max(0, maxLength - t.ids.length);
    return {
      ids: [...t.ids, ...Array<number>(pad).fill(this.padId)],
      pieces: [...t.pieces, ...Array<string>(pad).fill(this.padToken)],
    };
  }

  /** One prompt → `length` ids: prompt ids (first `length − 1` at most), EOS, padding. */
  encode(text: string): Int32Array {
    return Int32Array.from(this.encodeTruncated(text).ids);
  }

  /** Prompts → `[N·length]` ids, row-major `[N, length]`. */
  encodeBatch(texts: readonly string[]): Int32Array {
    const out = new Int32Array(texts.length * this.length);
    texts.forEach((t, i) => out.set(this.encode(t), i * this.length));
    return out;
  }

  /** Ids → text (`tokenizer.decode(ids, skip_special_tokens)`; default skips `</s>`, `<pad>`, sentinels…). */
  decode(ids: ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    const skip = options.skipSpecialTokens ?? true;
    const tokens: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const token = this.idToToken(ids[i]!);
      if (!(skip && this.specialTokens.has(token))) tokens.push(token);
    }
    if (tokens.length === 0) return '';
    if (tokens[0]!.startsWith(SPIECE_UNDERLINE) && this.addPrefixSpace) tokens[0] = tokens[0]!.slice(1);
    let out = '';
    let run: string[] = [];
    let prevSpecial = false;
    for (const token of tokens) {
      if (this.specialTokens.has(token)) {
        if (!prevSpecial) out += ' ';
        out += this.sp.decodePieces(run) + token;
        prevSpecial = true;
        run = [];
      } else {
        run.push(token);
        prevSpecial = false;
      }
    }
    return (out + this.sp.decodePieces(run)).trim();
  }

  /** What the pipeline's call loses of a prompt: `<unk>` parts, and what truncation to `maxLength` cuts. */
  report(text: string, maxLength = this.length): PromptReport {
    const c = this.contentIds(text);
    const full = this.withEos(c.ids, c.pieces);
    const unknown = c.pieces.filter((_, i) => c.ids[i] === this.unkId);
    const keep = c.ids.length + 1 > maxLength ? Math.max(0, maxLength - 1) : c.ids.length;
    const cut = c.ids.slice(keep);
    return {
      text,
      tokens: full.ids.length,
      unknown,
      truncated: cut.length > 0,
      dropped: cut.length,
      droppedText: this.decode(cut),
    };
  }
}

// ───────────────────────────── loading ─────────────────────────────

function readJson(file: string): Record<string, unknown> | undefined {
  if (!fs.existsSync(file)) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConfigError(file, '(file)', `not valid JSON (${(e as Error).message})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new ConfigError(file, '(file)', 'expected a JSON object');
  return v as Record<string, unknown>;
}

/** A token given as a string or as an `AddedToken` object `{content, …}`. */
function tokenContent(file: string, field: string, v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string')
    return (v as { content: string }).content;
  throw new ConfigError(file, field, `expected a string or {"content": string}, got ${JSON.stringify(v)}`);
}

function optionalType<T>(
  file: string,
  cfg: Record<string, unknown>,
  key: string,
  ok: (v: unknown) => boolean,
  want: string,
): T | undefined {
  const v = cfg[key];
  if (v === undefined || v === null) return undefined;
  if (!ok(v)) throw new ConfigError(file, key, `expected ${want}, got ${JSON.stringify(v)}`);
  return v as T;
}

function addedTokensDecoder(file: string, v: unknown): AddedToken[] {
  if (v === undefined || v === null) return [];
  if (typeof v !== 'object' || Array.isArray(v))
    throw new ConfigError(file, 'added_tokens_decoder', 'expected an object {id: {content, lstrip, rstrip, …}}');
  return Object.entries(v as Record<string, unknown>).map(([key, t]) => {
    const id = Number(key);
    const o = t as Record<string, unknown> | null;
    if (!Number.isInteger(id) || id < 0 || o === null || typeof o !== 'object' || typeof o['content'] !== 'string') {
      throw new ConfigError(
        file,
        `added_tokens_decoder.${key}`,
        'expected a non-negative integer key and {"content": string, …}',
      );
    }
    return {
      content: o['content'],
      id,
      lstrip: o['lstrip'] === true,
      rstrip: o['rstrip'] === true,
      special: o['special'] === true,
    };
  });
}

const tokenList = (f: string, v: unknown): string[] => {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new ConfigError(f, 'additional_special_tokens', 'expected a list');
  return v.map((t, i) => tokenContent(f, `additional_special_tokens.${i}`, t)!);
};

/**
 * Added tokens of a folder saved in the old format (no `added_tokens_decoder`), as transformers reads
 * them: `added_tokens.json` ({content: id}, no stripping), then `tokenizer.json`'s `added_tokens`.
 */
function legacyAddedTokens(dir: string, specials: string[]): AddedToken[] {
  const byId = new Map<number, AddedToken>();
  const addedFile = path.join(dir, 'added_tokens.json');
  for (const [content, id] of Object.entries(readJson(addedFile) ?? {})) {
    if (!Number.isInteger(id) || (id as number) < 0)
      throw new ConfigError(addedFile, content, `expected a non-negative integer id, got ${JSON.stringify(id)}`);
    byId.set(id as number, {
      content,
      id: id as number,
      lstrip: false,
      rstrip: false,
      special: specials.includes(content),
    });
  }
  const fastFile = path.join(dir, 'tokenizer.json');
  const fast = readJson(fastFile)?.['added_tokens'];
  if (Array.isArray(fast)) {
    for (const t of fast as Record<string, unknown>[]) {
      const id = t?.['id'];
      if (!Number.isInteger(id) || typeof t['content'] !== 'string')
        throw new ConfigError(fastFile, 'added_tokens', 'expected [{"id": integer, "content": string, …}]');
      byId.set(id as number, {
        content: t['content'],
        id: id as number,
        lstrip: t['lstrip'] === true,
        rstrip: t['rstrip'] === true,
        special: t['special'] === true,
      });
    }
  }
  return [...byId.values()];
}

/**
 * tokenizer_config.json → options, as `from_pretrained` reads a folder: with `added_tokens_decoder`
 * the config alone; without it (older saves) special_tokens_map.json overrides the special tokens and
 * added_tokens.json / tokenizer.json give the added tokens.
 */
function configOptions(dir: string): T5TokenizerOptions {
  const file = path.join(dir, 'tokenizer_config.json');
  const cfg = readJson(file) ?? {};
  const cls = cfg['tokenizer_class'];
  if (cls !== undefined && cls !== 'T5Tokenizer' && cls !== 'T5TokenizerFast')
    throw new ConfigError(file, 'tokenizer_class', `${JSON.stringify(cls)} is not supported (expected T5Tokenizer)`);
  const isBool = (v: unknown) => typeof v === 'boolean';
  const isCount = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;
  const out: T5TokenizerOptions = {};
  const legacy = optionalType<boolean>(file, cfg, 'legacy', isBool, 'true, false or null');
  const extraIds = optionalType<number>(file, cfg, 'extra_ids', isCount, 'an integer ≥ 0');
  const addPrefixSpace = optionalType<boolean>(file, cfg, 'add_prefix_space', isBool, 'true or false');
  const maxLen = optionalType<number>(
    file,
    cfg,
    'model_max_length',
    (v) => typeof v === 'number' && v > 0,
    'a positive number',
  );
  if (legacy !== undefined) out.legacy = legacy;
  if (extraIds !== undefined) out.extraIds = extraIds;
  if (addPrefixSpace !== undefined) out.addPrefixSpace = addPrefixSpace;
  if (maxLen !== undefined) out.modelMaxLength = maxLen;

  const savedDecoder = cfg['added_tokens_decoder'] !== undefined && cfg['added_tokens_decoder'] !== null;
  const mapFile = path.join(dir, 'special_tokens_map.json');
  const map = savedDecoder ? {} : (readJson(mapFile) ?? {});
  const pick = (key: 'eos_token' | 'unk_token' | 'pad_token') =>
    tokenContent(mapFile, key, map[key]) ?? tokenContent(file, key, cfg[key]);
  const [eos, unk, pad] = [pick('eos_token'), pick('unk_token'), pick('pad_token')];
  if (eos !== undefined) out.eosToken = eos;
  if (unk !== undefined) out.unkToken = unk;
  if (pad !== undefined) out.padToken = pad;
  const additional = tokenList(file, cfg['additional_special_tokens']);
  for (const t of tokenList(mapFile, map['additional_special_tokens'])) if (!additional.includes(t)) additional.push(t);
  if (additional.length > 0) out.additionalSpecialTokens = additional;

  const specials = [eos ?? '</s>', unk ?? '<unk>', pad ?? '<pad>', ...additional];
  const added = savedDecoder ? addedTokensDecoder(file, cfg['added_tokens_decoder']) : legacyAddedTokens(dir, specials);
  if (added.length > 0) out.addedTokens = added;
  return out;
}

/** `tokenizer.json` of this project's word tokenizer (`{"type": "word"}`)? */
function isWordTokenizerJson(file: string): boolean {
  try {
    return (JSON.parse(fs.readFileSync(file, 'utf8')) as { type?: unknown } | null)?.type === 'word';
  } catch {
    return false;
  }
}

/** The folder that holds `spiece.model`: `p/tokenizer` of a pipeline folder, else `p`. */
export function tokenizerDir(p: string): string {
  const sub = path.join(p, 'tokenizer');
  return fs.existsSync(sub) && fs.statSync(sub).isDirectory() ? sub : p;
}

function loadT5Tokenizer(p: string, options: T5TokenizerOptions): T5Tokenizer {
  if (!fs.existsSync(p))
    throw new TokenizerFileError(
      p,
      'no such file or folder (expected a pipeline folder with tokenizer/spiece.model, a tokenizer folder, or a spiece.model file)',
    );
  if (fs.statSync(p).isFile()) return new T5Tokenizer(SentencePieceModel.fromFile(p), options);
  const dir = tokenizerDir(p);
  const model = path.join(dir, 'spiece.model');
  if (!fs.existsSync(model)) {
    const json = path.join(dir, 'tokenizer.json');
    if (fs.existsSync(json)) {
      throw new TokenizerFileError(
        json,
        isWordTokenizerJson(json)
          ? `this is the project's word tokenizer ({"type": "word"}), not a T5 tokenizer; T5Tokenizer needs ${model}`
          : `a fast-tokenizer-only folder: T5Tokenizer needs ${model} (the SentencePiece model); the tokenizer.json format is not supported`,
      );
    }
    throw new TokenizerFileError(model, 'missing: expected the SentencePiece model of the T5 tokenizer (spiece.model)');
  }
  return new T5Tokenizer(SentencePieceModel.fromFile(model), { ...configOptions(dir), ...options });
}
