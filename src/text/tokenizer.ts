/**
 * A word-level tokenizer for the synthetic world's caption grammar. Its vocabulary comes from the
 * world's shared word lists (src/data/vocabulary.ts), never from the world or its captions.
 *
 * Special ids follow T5's SentencePiece vocabulary: `<pad>` 0, `</s>` 1 (end of sequence), `<unk>` 2;
 * the words come after them. A caption becomes lowercase words (punctuation dropped), then ids, then
 * `</s>`, padded with `<pad>` (or cut, keeping `</s>` last) to a fixed `length` — one block of
 * `max_text_seq_length` rows per scene, as the transformer expects.
 */
import { Mask2DiTError } from '../errors.js';
import { grammarWords, words } from '../data/vocabulary.js';

export const PAD = '<pad>';
export const EOS = '</s>';
export const UNK = '<unk>';
export const PAD_ID = 0;
export const EOS_ID = 1;
export const UNK_ID = 2;

/** The serialised form (`tokenizer.json`). */
export interface TokenizerJson {
  type: 'word';
  vocab: string[];
  length: number;
}

export class WordTokenizer {
  private readonly ids: Map<string, number>;
  /** The world model's T5 was trained with padding masked out of attention. */
  readonly attentionMask = 'padding' as const;

  /** @param vocab every token, the three specials first (`<pad>`, `</s>`, `<unk>`) */
  constructor(
    readonly vocab: readonly string[],
    readonly length: number,
  ) {
    if (vocab[PAD_ID] !== PAD || vocab[EOS_ID] !== EOS || vocab[UNK_ID] !== UNK) {
      throw new Mask2DiTError(
        'TOKENIZER',
        `vocabulary must start with ${PAD}, ${EOS}, ${UNK}; got ${vocab.slice(0, 3).join(', ')}`,
      );
    }
    if (!Number.isInteger(length) || length < 2)
      throw new Mask2DiTError('TOKENIZER', `length must be an integer ≥ 2, got ${length}`);
    this.ids = new Map(vocab.map((w, i) => [w, i]));
    if (this.ids.size !== vocab.length) throw new Mask2DiTError('TOKENIZER', 'vocabulary has duplicate entries');
  }

  /** The tokenizer of the world's grammar, `length` ids per caption (default 16). */
  static forWorld(length = 16): WordTokenizer {
    return new WordTokenizer([PAD, EOS, UNK, ...grammarWords()], length);
  }

  static fromJSON(json: unknown, file = 'tokenizer.json'): WordTokenizer {
    const j = json as Partial<TokenizerJson> | null;
    if (
      j === null ||
      typeof j !== 'object' ||
      j.type !== 'word' ||
      !Array.isArray(j.vocab) ||
      !j.vocab.every((w) => typeof w === 'string') ||
      typeof j.length !== 'number'
    ) {
      throw new Mask2DiTError('TOKENIZER', `${file}: expected {"type": "word", "vocab": string[], "length": number}`);
    }
    return new WordTokenizer(j.vocab, j.length);
  }

  toJSON(): TokenizerJson {
    return { type: 'word', vocab: [...this.vocab], length: this.length };
  }

  get vocabSize(): number {
    return this.vocab.length;
  }

  /** One caption → `length` ids: words, `</s>`, padding. Unknown words map to `<unk>`. */
  encode(text: string): Int32Array {
    const out = new Int32Array(this.length).fill(PAD_ID);
    const ids = words(text).map((w) => this.ids.get(w) ?? UNK_ID);
    const kept = ids.slice(0, this.length - 1);
    out.set(kept);
    out[kept.length] = EOS_ID;
    return out;
  }

  /** What `encode` loses of a caption: words outside the vocabulary (→ `<unk>`) and words cut to fit `length`. */
  report(text: string): {
    text: string;
    tokens: number;
    unknown: string[];
    truncated: boolean;
    dropped: number;
    droppedText: string;
  } {
    const all = words(text);
    const cut = all.slice(this.length - 1);
    return {
      text,
      tokens: all.length + 1,
      unknown: all.filter((w) => !this.ids.has(w)),
      truncated: cut.length > 0,
      dropped: cut.length,
      droppedText: cut.join(' '),
    };
  }

  /** Captions → `[N·length]` ids, row-major `[N, length]`. */
  encodeBatch(texts: readonly string[]): Int32Array {
    const out = new Int32Array(texts.length * this.length);
    texts.forEach((t, i) => out.set(this.encode(t), i * this.length));
    return out;
  }

  /** ids → words, up to the first `</s>`; padding dropped. */
  decode(ids: ArrayLike<number>): string {
    const out: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id === EOS_ID) break;
      if (id !== PAD_ID) out.push(this.vocab[id] ?? UNK);
    }
    return out.join(' ');
  }

  /** Attention mask for ids: 1 for real tokens (words and `</s>`), 0 for padding. */
  static mask(ids: Int32Array): Int32Array {
    return ids.map((id) => (id === PAD_ID ? 0 : 1));
  }
}
