/**
 * SentencePiece Unigram, re-implemented from google/sentencepiece (0.2.x) so that `encode` gives the
 * ids `SentencePieceProcessor(model_file).encode(text)` gives, byte for byte.
 *
 *   text ─UTF-8→ bytes ─normalize→ "▁Hello▁world" ─Viterbi over pieces→ [▁Hello, ▁world] ─→ ids
 *
 * - The model file is a serialized `ModelProto` (protobuf, proto2). A minimal wire-format reader takes
 *   the fields that change the result: pieces (piece, score, type), trainer_spec (model_type, special
 *   pieces, byte_fallback, treat_whitespace_as_suffix), normalizer_spec (precompiled charsmap and the
 *   three whitespace flags). Every length is bounded by the bytes that remain: a lying or truncated
 *   file is an error naming the file, never a huge allocation.
 * - Normalizer (normalizer.cc): a Darts-clone double-array trie over UTF-8 bytes maps the longest
 *   matching prefix to a NUL-terminated replacement; no match copies one character. Leading spaces are
 *   dropped, runs of spaces collapse, `' '` becomes `▁`, a dummy `▁` is prepended, trailing `▁` removed.
 * - Unigram (unigram_model.cc `EncodeOptimized`): best path ending at every byte position; a piece
 *   candidate replaces the stored one only when strictly better (so ties keep the earlier candidate);
 *   a character no single piece covers becomes `<unk>` with score `min_score − 10`; consecutive
 *   unknowns merge into one `<unk>` (sentencepiece_processor.cc), or decompose into `<0xXX>` byte
 *   pieces when the model has byte fallback. Scores are float32 and summed as the C++ code does.
 */
import fs from 'node:fs';
import { Mask2DiTError } from '../errors.js';

/** A tokenizer file that cannot be used: `file` is named in the message with what was expected. */
export class TokenizerFileError extends Mask2DiTError {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super('TOKENIZER', `${file}: ${detail}`);
  }
}

// ───────────────────────────── ModelProto ─────────────────────────────

/** `ModelProto.SentencePiece.Type`. */
export const PieceType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export interface Piece {
  piece: string;
  score: number; // float32
  type: number; // PieceType
}

export interface TrainerSpec {
  modelType: number; // 1 UNIGRAM, 2 BPE, 3 WORD, 4 CHAR
  vocabSize: number;
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
  unkPiece: string;
  bosPiece: string;
  eosPiece: string;
  padPiece: string;
  unkSurface: string;
  byteFallback: boolean;
  treatWhitespaceAsSuffix: boolean;
}

export interface NormalizerSpec {
  name: string;
  precompiledCharsmap: Uint8Array;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
}

export interface ModelProto {
  pieces: Piece[];
  trainerSpec: TrainerSpec;
  normalizerSpec: NormalizerSpec;
  denormalizerSpec?: NormalizerSpec;
}

const MODEL_TYPES: Record<number, string> = { 1: 'UNIGRAM', 2: 'BPE', 3: 'WORD', 4: 'CHAR' };
const utf8 = new TextDecoder('utf-8');
const encoder = new TextEncoder();

/** A byte range `[start, end)` of the file. */
interface Span {
  start: number;
  end: number;
}

/** Protobuf wire format over `bytes[start, end)`; every read checks the bytes that remain. */
class WireReader {
  pos: number;
  constructor(
    private readonly bytes: Uint8Array,
    start: number,
    private readonly end: number,
    private readonly fail: (detail: string) => never,
  ) {
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** Unsigned varint as a number (exact below 2^53); `lo` is its low 32 bits (int32 fields). */
  varint(): { value: number; lo: number } {
    let value = 0;
    let lo = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail(`truncated: a varint runs past the end (byte ${this.pos})`);
      const b = this.bytes[this.pos++]!;
      value += (b & 0x7f) * 2 ** (7 * i);
      if (i < 5) lo |= (b & 0x7f) << (7 * i);
      if ((b & 0x80) === 0) return { value, lo: lo | 0 };
    }
    return this.fail(`malformed varint at byte ${this.pos}`);
  }

  tag(): { field: number; wire: number } {
    const at = this.pos;
    const t = this.varint().value;
    const field = Math.floor(t / 8);
    const wire = t % 8;
    if (field === 0 || field > 536870911) this.fail(`invalid field number ${field} at byte ${at}`);
    if (wire === 3 || wire === 4 || wire > 5) this.fail(`unsupported wire type ${wire} (field ${field}) at byte ${at}`);
    return { field, wire };
  }

  /** A length-delimited field: [start, end) inside the buffer. */
  span(): Span {
    const n = this.varint().value;
    if (n > this.end - this.pos)
      this.fail(`truncated: a field of ${n} bytes at byte ${this.pos}, only ${this.end - this.pos} remain`);
    const start = this.pos;
    this.pos += n;
    return { start, end: this.pos };
  }

  fixed32(): DataView {
    if (this.end - this.pos < 4) this.fail(`truncated: a 4-byte field at byte ${this.pos}`);
    const v = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.pos, 4);
    this.pos += 4;
    return v;
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) {
      if (this.end - this.pos < 8) this.fail(`truncated: an 8-byte field at byte ${this.pos}`);
      this.pos += 8;
    } else if (wire === 2) this.span();
    else if (wire === 5) this.fixed32();
  }

  string(): string {
    const s = this.span();
    return utf8.decode(this.bytes.subarray(s.start, s.end));
  }

  /** Fails unless the field has the wire type its declaration implies (else the file is not a ModelProto). */
  expect(field: number, wire: number, want: number, what: string): void {
    if (wire !== want) this.fail(`field ${field} (${what}) has wire type ${wire}, expected ${want}`);
  }
}

function parsePiece(s: Span, bytes: Uint8Array, fail: (d: string) => never): Piece {
  const m = new WireReader(bytes, s.start, s.end, fail);
  const p: Piece = { piece: '', score: 0, type: PieceType.NORMAL };
  while (!m.done) {
    const { field, wire } = m.tag();
    if (field === 1) {
      m.expect(field, wire, 2, 'SentencePiece.piece');
      p.piece = m.string();
    } else if (field === 2) {
      m.expect(field, wire, 5, 'SentencePiece.score');
      p.score = m.fixed32().getFloat32(0, true);
    } else if (field === 3) {
      m.expect(field, wire, 0, 'SentencePiece.type');
      p.type = m.varint().lo;
    } else m.skip(wire);
  }
  return p;
}

function parseTrainerSpec(s: Span, bytes: Uint8Array, fail: (d: string) => never): TrainerSpec {
  const t: TrainerSpec = {
    modelType: 1,
    vocabSize: 8000,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    unkPiece: '<unk>',
    bosPiece: '<s>',
    eosPiece: '</s>',
    padPiece: '<pad>',
    unkSurface: ' \u2047 ',
    byteFallback: false,
    treatWhitespaceAsSuffix: false,
  };
  const ints: Record<number, 'modelType' | 'vocabSize' | 'unkId' | 'bosId' | 'eosId' | 'padId'> = {
    3: 'modelType',
    4: 'vocabSize',
    40: 'unkId',
    41: 'bosId',
    42: 'eosId',
    43: 'padId',
  };
  const strings: Record<number, 'unkPiece' | 'bosPiece' | 'eosPiece' | 'padPiece' | 'unkSurface'> = {
    44: 'unkSurface',
    45: 'unkPiece',
    46: 'bosPiece',
    47: 'eosPiece',
    48: 'padPiece',
  };
  const m = new WireReader(bytes, s.start, s.end, fail);
  while (!m.done) {
    const { field, wire } = m.tag();
    const intKey = ints[field];
    const strKey = strings[field];
    if (intKey !== undefined && wire === 0) t[intKey] = m.varint().lo;
    else if (strKey !== undefined && wire === 2) t[strKey] = m.string();
    else if (field === 35 && wire === 0) t.byteFallback = m.varint().value !== 0;
    else if (field === 24 && wire === 0) t.treatWhitespaceAsSuffix = m.varint().value !== 0;
    else m.skip(wire);
  }
  return t;
}

function parseNormalizerSpec(s: Span, bytes: Uint8Array, fail: (d: string) => never): NormalizerSpec {
  const n: NormalizerSpec = {
    name: '',
    precompiledCharsmap: new Uint8Array(0),
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
  };
  const m = new WireReader(bytes, s.start, s.end, fail);
  while (!m.done) {
    const { field, wire } = m.tag();
    if (field === 1 && wire === 2) n.name = m.string();
    else if (field === 2 && wire === 2) {
      const sp = m.span();
      n.precompiledCharsmap = bytes.slice(sp.start, sp.end);
    } else if (field === 3 && wire === 0) n.addDummyPrefix = m.varint().value !== 0;
    else if (field === 4 && wire === 0) n.removeExtraWhitespaces = m.varint().value !== 0;
    else if (field === 5 && wire === 0) n.escapeWhitespaces = m.varint().value !== 0;
    else m.skip(wire);
  }
  return n;
}

/** Parse a serialized `ModelProto`; errors name `file` and say what was expected. */
export function parseModelProto(bytes: Uint8Array, file: string): ModelProto {
  const fail = (detail: string): never => {
    throw new TokenizerFileError(
      file,
      `not a SentencePiece model (expected a serialized ModelProto protobuf, as spiece.model): ${detail}`,
    );
  };
  const r = new WireReader(bytes, 0, bytes.length, fail);
  const pieces: Piece[] = [];
  let trainerSpec: TrainerSpec | undefined;
  let normalizerSpec: NormalizerSpec | undefined;
  let denormalizerSpec: NormalizerSpec | undefined;
  while (!r.done) {
    const { field, wire } = r.tag();
    if (field === 1) {
      r.expect(field, wire, 2, 'ModelProto.pieces');
      pieces.push(parsePiece(r.span(), bytes, fail));
    } else if (field === 2) {
      r.expect(field, wire, 2, 'ModelProto.trainer_spec');
      trainerSpec = parseTrainerSpec(r.span(), bytes, fail);
    } else if (field === 3) {
      r.expect(field, wire, 2, 'ModelProto.normalizer_spec');
      normalizerSpec = parseNormalizerSpec(r.span(), bytes, fail);
    } else if (field === 5) {
      r.expect(field, wire, 2, 'ModelProto.denormalizer_spec');
      denormalizerSpec = parseNormalizerSpec(r.span(), bytes, fail);
    } else r.skip(wire);
  }
  if (pieces.length === 0) fail('no pieces (field 1)');
  if (trainerSpec === undefined || normalizerSpec === undefined)
    fail(
      `no ${trainerSpec === undefined ? 'trainer_spec (field 2)' : 'normalizer_spec (field 3)'}: the file is truncated or incomplete`,
    );
  return {
    pieces,
    trainerSpec: trainerSpec!,
    normalizerSpec: normalizerSpec!,
    ...(denormalizerSpec !== undefined ? { denormalizerSpec } : {}),
  };
}

// ───────────────────────────── tries ─────────────────────────────

/** A byte trie: node → (byte → child) in one map keyed `node·256 + byte`; `value[node]` = id or −1. */
class ByteTrie {
  private readonly next = new Map<number, number>();
  private values: number[] = [-1];

  insert(key: Uint8Array, value: number): void {
    let node = 0;
    for (const b of key) {
      const k = node * 256 + b;
      let child = this.next.get(k);
      if (child === undefined) {
        child = this.values.length;
        this.values.push(-1);
        this.next.set(k, child);
      }
      node = child;
    }
    this.values[node] = value;
  }

  /** One step: the child of `node` by `byte`, or −1. */
  step(node: number, byte: number): number {
    return this.next.get(node * 256 + byte) ?? -1;
  }

  value(node: number): number {
    return this.values[node]!;
  }

  /** Length of the longest key that prefixes `bytes[start, end)`, 0 if none. */
  longestPrefix(bytes: Uint8Array, start: number, end: number): number {
    let node = 0;
    let best = 0;
    for (let i = start; i < end; i++) {
      node = this.step(node, bytes[i]!);
      if (node < 0) break;
      if (this.values[node]! >= 0) best = i - start + 1;
    }
    return best;
  }
}

/**
 * The precompiled charsmap: `[trie bytes (uint32 LE)][double-array units][NUL-separated replacements]`.
 * Units follow darts-clone: `hasLeaf = bit 8`, `value = low 31 bits`, `label = bit 31 | low byte`,
 * `offset = (unit >> 10) << (bit 9 ? 8 : 0)`.
 */
class CharsMap {
  private readonly units: Uint32Array;
  private readonly replacements: Uint8Array;
  private readonly cache = new Map<number, Uint8Array>();

  constructor(blob: Uint8Array, file: string) {
    const fail = (d: string): never => {
      throw new TokenizerFileError(file, `normalizer_spec.precompiled_charsmap is broken: ${d}`);
    };
    if (blob.length <= 4)
      fail(`${blob.length} bytes, expected a 4-byte trie size, the trie and the replacement strings`);
    const dv = new DataView(blob.buffer, blob.byteOffset, blob.length);
    const trieSize = dv.getUint32(0, true);
    if (trieSize >= blob.length) fail(`trie size ${trieSize} exceeds the blob (${blob.length} bytes)`);
    const n = Math.floor(trieSize / 4);
    if (n === 0) fail('empty trie');
    this.units = new Uint32Array(n);
    for (let i = 0; i < n; i++) this.units[i] = dv.getUint32(4 + 4 * i, true);
    this.replacements = blob.slice(4 + trieSize);
  }

  private static offset(unit: number): number {
    return ((unit >>> 10) << ((unit & 0x200) >>> 6)) >>> 0;
  }

  /** Longest rule matching a prefix of `bytes[start, end)`: its length and replacement, or undefined. */
  match(bytes: Uint8Array, start: number, end: number): { length: number; replacement: Uint8Array } | undefined {
    const units = this.units;
    let pos = CharsMap.offset(units[0]!);
    let length = 0;
    let value = -1;
    for (let i = start; i < end; i++) {
      const c = bytes[i]!;
      pos ^= c;
      if (pos >= units.length) break;
      const unit = units[pos]!;
      if ((unit & 0x800000ff) >>> 0 !== c) break;
      pos ^= CharsMap.offset(unit);
      if ((unit >>> 8) & 1 && pos < units.length) {
        length = i - start + 1;
        value = units[pos]! & 0x7fffffff;
      }
    }
    return length === 0 ? undefined : { length, replacement: this.replacement(value) };
  }

  private replacement(value: number): Uint8Array {
    let r = this.cache.get(value);
    if (r === undefined) {
      const from = Math.min(value, this.replacements.length);
      let to = this.replacements.indexOf(0, from);
      if (to < 0) to = this.replacements.length;
      r = this.replacements.subarray(from, to);
      this.cache.set(value, r);
    }
    return r;
  }
}

// ───────────────────────────── normalizer ─────────────────────────────

const SPACE = 0x20;
const SPACE_SYMBOL = encoder.encode('\u2581'); // ▁ = E2 96 81
const REPLACEMENT_CHAR = encoder.encode('\ufffd');

/** UTF-8 length of the character at `bytes[i]` as sentencepiece's `OneCharLen` (a stray byte counts 1). */
function oneCharLen(lead: number): number {
  return lead < 0xc0 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
}

/** Length of a valid UTF-8 character at `i`, or 0 when malformed. */
function validCharLen(bytes: Uint8Array, i: number, end: number): number {
  const b = bytes[i]!;
  if (b < 0x80) return 1;
  const n = b >= 0xc2 && b < 0xe0 ? 2 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xf0 && b < 0xf5 ? 4 : 0;
  if (n === 0 || i + n > end) return 0;
  for (let k = 1; k < n; k++) if ((bytes[i + k]! & 0xc0) !== 0x80) return 0;
  const b1 = bytes[i + 1]!;
  if (
    (b === 0xe0 && b1 < 0xa0) ||
    (b === 0xed && b1 >= 0xa0) ||
    (b === 0xf0 && b1 < 0x90) ||
    (b === 0xf4 && b1 >= 0x90)
  )
    return 0;
  return n;
}

function endsWith(out: number[], tail: Uint8Array): boolean {
  if (out.length < tail.length) return false;
  for (let k = 0; k < tail.length; k++) if (out[out.length - tail.length + k] !== tail[k]) return false;
  return true;
}

export class Normalizer {
  private readonly charsMap: CharsMap | undefined;

  constructor(
    readonly spec: NormalizerSpec,
    private readonly treatWhitespaceAsSuffix: boolean,
    private readonly userDefined: ByteTrie | undefined,
    file: string,
  ) {
    this.charsMap = spec.precompiledCharsmap.length > 0 ? new CharsMap(spec.precompiledCharsmap, file) : undefined;
  }

  /** The normalized form of the character(s) at `input[i]` and how many input bytes they take. */
  private prefix(input: Uint8Array, i: number, end: number): { out: Uint8Array; consumed: number } {
    const user = this.userDefined?.longestPrefix(input, i, end) ?? 0;
    if (user > 0) return { out: input.subarray(i, i + user), consumed: user };
    const rule = this.charsMap?.match(input, i, end);
    if (rule !== undefined) return { out: rule.replacement, consumed: rule.length };
    const n = validCharLen(input, i, end);
    return n === 0 ? { out: REPLACEMENT_CHAR, consumed: 1 } : { out: input.subarray(i, i + n), consumed: n };
  }

  /** UTF-8 in → normalized UTF-8 out (normalizer.cc `Normalize`). */
  normalize(input: Uint8Array): Uint8Array {
    const { addDummyPrefix, removeExtraWhitespaces, escapeWhitespaces } = this.spec;
    const end = input.length;
    let i = 0;
    if (removeExtraWhitespaces) {
      // leading whitespace: characters that normalize to exactly " "
      for (;;) {
        if (i >= end) break;
        const p = this.prefix(input, i, end);
        if (p.out.length !== 1 || p.out[0] !== SPACE) break;
        i += p.consumed;
      }
    }
    if (i >= end) return new Uint8Array(0);

    const out: number[] = [];
    const addWs = () => (escapeWhitespaces ? out.push(...SPACE_SYMBOL) : out.push(SPACE));
    if (!this.treatWhitespaceAsSuffix && addDummyPrefix) addWs();

    let isPrevSpace = removeExtraWhitespaces;
    while (i < end) {
      const p = this.prefix(input, i, end);
      let s = 0;
      if (isPrevSpace) while (s < p.out.length && p.out[s] === SPACE) s++; // collapse runs of spaces
      if (s < p.out.length) {
        for (let k = s; k < p.out.length; k++) {
          const b = p.out[k]!;
          if (escapeWhitespaces && b === SPACE) out.push(...SPACE_SYMBOL);
          else out.push(b);
        }
        isPrevSpace = p.out[p.out.length - 1] === SPACE;
      }
      i += p.consumed;
      if (!removeExtraWhitespaces) isPrevSpace = false;
    }

    if (removeExtraWhitespaces) {
      const space = escapeWhitespaces ? SPACE_SYMBOL : Uint8Array.of(SPACE);
      while (endsWith(out, space)) out.length -= space.length;
    }
    if (this.treatWhitespaceAsSuffix && addDummyPrefix) addWs();
    return Uint8Array.from(out);
  }
}

// ───────────────────────────── the model ─────────────────────────────

/** One piece of an encoding: its text (normalized; a merged `<unk>` holds the unknown characters) and id. */
export interface EncodedPiece {
  piece: string;
  id: number;
}

const UNK_PENALTY = 10;
const FLT_MIN = 1.1754943508222875e-38;

export class SentencePieceModel {
  readonly pieces: readonly Piece[];
  readonly trainerSpec: TrainerSpec;
  readonly normalizer: Normalizer;
  private readonly denormalizer: Normalizer | undefined;
  /** Id of the UNKNOWN piece. */
  readonly unkId: number;
  private readonly minScore: number;
  private readonly maxScore: number;
  private readonly trie = new ByteTrie();
  private readonly normal = new Map<string, number>(); // NORMAL, USER_DEFINED, UNUSED
  private readonly reserved = new Map<string, number>(); // UNKNOWN, CONTROL, BYTE

  constructor(
    readonly proto: ModelProto,
    readonly file = 'spiece.model',
  ) {
    const { pieces, trainerSpec } = proto;
    if (trainerSpec.modelType !== 1) {
      throw new TokenizerFileError(
        file,
        `trainer_spec.model_type is ${MODEL_TYPES[trainerSpec.modelType] ?? trainerSpec.modelType}; only Unigram (UNIGRAM, the T5 tokenizer's type) is supported`,
      );
    }
    this.pieces = pieces;
    this.trainerSpec = trainerSpec;
    let unk = -1;
    let minScore = Number.MAX_VALUE;
    let maxScore = FLT_MIN;
    const userDefined = new ByteTrie();
    let hasUserDefined = false;
    pieces.forEach((p, id) => {
      if (p.piece === '') throw new TokenizerFileError(file, `piece ${id} is empty`);
      if (p.type < 1 || p.type > 6)
        throw new TokenizerFileError(file, `piece ${id} (${JSON.stringify(p.piece)}) has unknown type ${p.type}`);
      const isNormal = p.type === PieceType.NORMAL || p.type === PieceType.USER_DEFINED || p.type === PieceType.UNUSED;
      const map = isNormal ? this.normal : this.reserved;
      if (map.has(p.piece))
        throw new TokenizerFileError(
          file,
          `piece ${JSON.stringify(p.piece)} is defined twice (ids ${map.get(p.piece)} and ${id})`,
        );
      map.set(p.piece, id);
      if (isNormal) this.trie.insert(encoder.encode(p.piece), id);
      if (p.type === PieceType.USER_DEFINED) {
        userDefined.insert(encoder.encode(p.piece), id);
        hasUserDefined = true;
      }
      if (p.type === PieceType.UNKNOWN) {
        if (unk >= 0) throw new TokenizerFileError(file, `two unknown pieces (ids ${unk} and ${id})`);
        unk = id;
      }
      if (p.type === PieceType.BYTE && !trainerSpec.byteFallback)
        throw new TokenizerFileError(file, `byte piece ${id} in a model without byte_fallback`);
      if (p.type === PieceType.NORMAL) {
        minScore = Math.min(minScore, p.score);
        maxScore = Math.max(maxScore, p.score);
      }
    });
    if (unk < 0) throw new TokenizerFileError(file, 'no unknown piece (type UNKNOWN, e.g. <unk>)');
    if (this.normal.size === 0) throw new TokenizerFileError(file, 'no normal pieces');
    this.unkId = unk;
    this.minScore = minScore;
    this.maxScore = maxScore;
    this.normalizer = new Normalizer(
      proto.normalizerSpec,
      trainerSpec.treatWhitespaceAsSuffix,
      hasUserDefined ? userDefined : undefined,
      file,
    );
    this.denormalizer =
      proto.denormalizerSpec !== undefined && proto.denormalizerSpec.precompiledCharsmap.length > 0
        ? new Normalizer(proto.denormalizerSpec, false, undefined, file)
        : undefined;
  }

  static fromBytes(bytes: Uint8Array, file = 'spiece.model'): SentencePieceModel {
    return new SentencePieceModel(parseModelProto(bytes, file), file);
  }

  static fromFile(file: string): SentencePieceModel {
    let bytes: Uint8Array;
    try {
      bytes = fs.readFileSync(file);
    } catch (e) {
      throw new TokenizerFileError(
        file,
        `cannot read the SentencePiece model (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      );
    }
    return SentencePieceModel.fromBytes(bytes, file);
  }

  /** The same model with other normalizer flags (T5Tokenizer `legacy=False` turns off the dummy prefix). */
  withNormalizer(changes: Partial<NormalizerSpec>): SentencePieceModel {
    return new SentencePieceModel(
      { ...this.proto, normalizerSpec: { ...this.proto.normalizerSpec, ...changes } },
      this.file,
    );
  }

  get vocabSize(): number {
    return this.pieces.length;
  }

  idToPiece(id: number): string {
    const p = this.pieces[id];
    if (p === undefined)
      throw new Mask2DiTError('TOKENIZER', `id ${id} is outside the vocabulary [0, ${this.pieces.length})`);
    return p.piece;
  }

  /** sentencepiece `PieceToId`: special pieces first, then normal ones; anything else is `<unk>`. */
  pieceToId(piece: string): number {
    return this.reserved.get(piece) ?? this.normal.get(piece) ?? this.unkId;
  }

  /** Whether `piece` is in the vocabulary (any type). */
  hasPiece(piece: string): boolean {
    return this.reserved.has(piece) || this.normal.has(piece);
  }

  isControl(id: number): boolean {
    return this.pieces[id]?.type === PieceType.CONTROL;
  }

  isUnknown(id: number): boolean {
    return this.pieces[id]?.type === PieceType.UNKNOWN;
  }

  /** Text → ids, as `SentencePieceProcessor.encode(text)`. */
  encode(text: string): number[] {
    return this.encodePieces(text).map((p) => p.id);
  }

  /** Text → pieces and ids, as `encode(text, out_type=str)` / `encode(text)`. */
  encodePieces(text: string): EncodedPiece[] {
    const normalized = this.normalizer.normalize(encoder.encode(text));
    return this.mergeUnknown(normalized, this.viterbi(normalized));
  }

  /**
   * Best segmentation of `s` (unigram_model.cc `EncodeOptimized`): `best[e]` = best path ending at
   * byte e. Returns the segment boundaries `[start₀, end₀, id₀, start₁, …]`.
   */
  private viterbi(s: Uint8Array): number[] {
    const size = s.length;
    if (size === 0) return [];
    const unkScore = Math.fround(this.minScore - UNK_PENALTY);
    const score = new Float64Array(size + 1); // float32 values
    const from = new Int32Array(size + 1).fill(-1);
    const id = new Int32Array(size + 1).fill(-1);
    for (let start = 0, mblen = 0; start < size; start += mblen) {
      const here = score[start]!;
      mblen = Math.min(oneCharLen(s[start]!), size - start);
      let hasSingle = false;
      let node = 0;
      for (let end = start + 1; end <= size; end++) {
        node = this.trie.step(node, s[end - 1]!);
        if (node < 0) break;
        const v = this.trie.value(node);
        if (v < 0) continue;
        const p = this.pieces[v]!;
        if (p.type === PieceType.UNUSED) continue;
        const length = end - start;
        // C++: `auto score = user ? length*max_score - 0.1 : score` is a double; the sum is compared in double
        const pieceScore = p.type === PieceType.USER_DEFINED ? Math.fround(length * this.maxScore) - 0.1 : p.score;
        const candidate = pieceScore + here;
        if (from[end] === -1 || candidate > score[end]!) {
          score[end] = Math.fround(candidate);
          from[end] = start;
          id[end] = v;
        }
        if (length === mblen) hasSingle = true;
      }
      if (!hasSingle) {
        const end = start + mblen;
        const candidate = Math.fround(unkScore + here);
        if (from[end] === -1 || candidate > score[end]!) {
          score[end] = candidate;
          from[end] = start;
          id[end] = this.unkId;
        }
      }
    }
    const out: number[] = [];
    for (let end = size; end > 0; end = from[end]!) {
      if (from[end]! < 0) throw new Mask2DiTError('TOKENIZER', `${this.file}: no segmentation reaches byte ${end}`);
      out.push(id[end]!, end, from[end]!);
    }
    return out.reverse();
  }

  /** Consecutive unknowns → one `<unk>` piece; with byte fallback, unknowns → `<0xXX>` pieces. */
  private mergeUnknown(s: Uint8Array, segments: number[]): EncodedPiece[] {
    const out: EncodedPiece[] = [];
    let prevUnk = false;
    let unkStart = 0;
    for (let k = 0; k < segments.length; k += 3) {
      const [start, end, id] = [segments[k]!, segments[k + 1]!, segments[k + 2]!];
      const isUnk = this.isUnknown(id);
      if (isUnk && this.trainerSpec.byteFallback) {
        for (let b = start; b < end; b++) {
          const piece = `<0x${s[b]!.toString(16).toUpperCase().padStart(2, '0')}>`;
          out.push({ piece, id: this.pieceToId(piece) });
        }
      } else if (isUnk && prevUnk) {
        out[out.length - 1]!.piece = utf8.decode(s.subarray(unkStart, end));
      } else {
        if (isUnk) unkStart = start;
        out.push({ piece: utf8.decode(s.subarray(start, end)), id });
      }
      prevUnk = isUnk;
    }
    return out;
  }

  /** Ids → text (sentencepiece `Decode`): `▁` → space, the first space dropped, controls invisible. */
  decode(ids: readonly number[]): string {
    return this.decodePieces(ids.map((id) => this.idToPiece(id)));
  }

  decodePieces(pieces: readonly string[]): string {
    const { addDummyPrefix, removeExtraWhitespaces } = this.proto.normalizerSpec;
    let text = '';
    let bytes: number[] = [];
    let isBosWs = true;
    let bosWsSeen = false;
    const flushBytes = () => {
      if (bytes.length > 0) text += utf8.decode(Uint8Array.from(bytes));
      bytes = [];
    };
    for (const piece of pieces) {
      const id = this.pieceToId(piece);
      const type = this.pieces[id]!.type;
      if (type === PieceType.BYTE) {
        bytes.push(parseInt(piece.slice(3, 5), 16));
        continue;
      }
      flushBytes();
      if (bosWsSeen || text.length > 0) isBosWs = false;
      bosWsSeen = false;
      if (type === PieceType.CONTROL) continue;
      if (type === PieceType.UNKNOWN) {
        text += piece === this.pieces[id]!.piece ? this.trainerSpec.unkSurface : piece;
        continue;
      }
      let p = piece;
      if (isBosWs && (addDummyPrefix || removeExtraWhitespaces) && p.startsWith('\u2581')) {
        p = p.slice(1);
        bosWsSeen = !removeExtraWhitespaces;
      }
      text += p.replaceAll('\u2581', ' ');
    }
    flushBytes();
    return this.denormalizer !== undefined ? utf8.decode(this.denormalizer.normalize(encoder.encode(text))) : text;
  }
}
