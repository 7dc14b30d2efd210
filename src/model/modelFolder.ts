/**
 * The diffusers-style pipeline folder this project ships and loads:
 *
 *   model_index.json                      {"_class_name": "Mask2DiTPipeline", "<component>": [library, class], …}
 *   transformer/config.json               Mask2DiTTransformer (reference keys)
 *   transformer/diffusion_pytorch_model.safetensors
 *   vae/config.json                       AutoencoderKLCogVideoX
 *   vae/diffusion_pytorch_model.safetensors   (PyTorch kernel layout)
 *   text_encoder/config.json              T5 encoder (Hugging Face keys)
 *   text_encoder/model.safetensors
 *   tokenizer/tokenizer.json              {"type": "word", "vocab": […], "length": 16}
 *   scheduler/scheduler_config.json       FlowMatchEulerDiscreteScheduler | CogVideoXDDIMScheduler | CogVideoXDPMScheduler
 *
 * A real CogVideoX / Mask²DiT folder loads too: sharded bf16 transformer and text_encoder
 * (`*.safetensors.index.json`; blocks offloaded when they do not fit), `tokenizer/spiece.model` (+
 * tokenizer_config.json) read by the SentencePiece T5Tokenizer, padded to the transformer's
 * `max_text_seq_length`. A folder without a usable tokenizer or text encoder still loads (a note says
 * so): its scenes then take precomputed `embeddings` files.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { isFlowMatchConfig, readSchedulerConfig, type SchedulerConfig } from '../config/schedulerConfig.js';
import { ConfigError, Mask2DiTError } from '../errors.js';
import { OutputExistsError, registerCleanup, replaceFolder, writeFileAtomic } from '../io/atomic.js';
import { DIFFUSERS_VERSION } from '../io/diffusersComponent.js';
import type { SamplerName } from '../sampler/sampler.js';
import { T5Encoder } from '../text/textEncoder.js';
import { loadPromptTokenizer, type AnyTokenizer } from '../text/loadTokenizer.js';
import { TokenizerFileError } from '../text/sentencepiece.js';
import { WordTokenizer } from '../text/tokenizer.js';
import { VERSION } from '../version.js';
import type { OffloadDecision, OffloadMode } from './offload.js';
import { Mask2DiTTransformer } from './transformer.js';
import { CogVideoXVAE } from './vae.js';

/** The default model's folder inside the package (what `--model` defaults to). */
export const DEFAULT_MODEL_NAME = 'weights/mask2dit-world';
/** Its absolute path: two levels above this module (src/model/ or dist/model/). */
export const DEFAULT_MODEL_DIR = fileURLToPath(new URL(`../../${DEFAULT_MODEL_NAME}`, import.meta.url));

export const PIPELINE_CLASS = 'Mask2DiTPipeline';
/** `_class_name`s of model_index.json this project can run. */
export const SUPPORTED_PIPELINES = [
  PIPELINE_CLASS,
  'CogVideoXPipeline',
  'MultiPromptCogVideoXFunPipeline',
  'CondtionalMultiPromptCogVideoXFunPipeline',
] as const;

/** A pipeline folder that is missing a part or holds one this project does not support. */
export class ModelFolderError extends Mask2DiTError {
  constructor(
    readonly dir: string,
    detail: string,
  ) {
    super('MODEL_FOLDER', `${dir}: ${detail}`);
  }
}

export interface ModelParts {
  transformer: Mask2DiTTransformer;
  vae: CogVideoXVAE;
  textEncoder?: T5Encoder;
  /** The world's word tokenizer or a SentencePiece T5Tokenizer (real CogVideoX / Mask²DiT folders). */
  tokenizer?: AnyTokenizer;
  schedulerConfig: SchedulerConfig;
  /** The sampler that implements `schedulerConfig`. */
  samplerName: SamplerName;
}

export interface LoadedModel extends ModelParts {
  dir: string;
  /** `_class_name` of model_index.json. */
  pipelineClass: string;
  /** Parts that are absent or unusable, and offloaded components, each one sentence (e.g. no word tokenizer). */
  notes: string[];
  /** Where the transformer's and the text encoder's block weights live (`offload` of the load), and a sentence per offloaded one. */
  offload: { transformer: 'none' | 'blocks'; textEncoder?: 'none' | 'blocks'; notes: string[] };
  dispose(): void;
}

/** model_index.json as written here: `[library, class]` per component, `[null, null]` when absent. */
export type ModelIndex = Record<string, unknown> & { _class_name: string };

/** The sampler that implements a scheduler config. */
export function samplerForScheduler(c: SchedulerConfig): SamplerName {
  if (isFlowMatchConfig(c)) return 'flow-euler';
  return c._class_name === 'CogVideoXDPMScheduler' ? 'dpm' : 'ddim';
}

function readJson(file: string, what: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(
      file,
      '(file)',
      `cannot read ${what}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(file, '(file)', `not valid JSON: ${(e as Error).message}`);
  }
}

/** Reads and checks `dir/model_index.json`. */
export function readModelIndex(dir: string): ModelIndex {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new ModelFolderError(dir, 'no such model folder');
  const file = path.join(dir, 'model_index.json');
  if (!fs.existsSync(file)) {
    throw new ModelFolderError(
      dir,
      'not a pipeline folder: model_index.json is missing (expected model_index.json, transformer/, vae/, scheduler/ and optionally text_encoder/, tokenizer/)',
    );
  }
  const raw = readJson(file, 'model_index.json');
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new ConfigError(file, '(root)', 'expected a JSON object');
  const cls = (raw as Record<string, unknown>)['_class_name'];
  if (typeof cls !== 'string' || !(SUPPORTED_PIPELINES as readonly string[]).includes(cls)) {
    throw new ConfigError(
      file,
      '_class_name',
      `unsupported pipeline ${JSON.stringify(cls)}; this project runs ${SUPPORTED_PIPELINES.join(' and ')} folders`,
    );
  }
  return raw as ModelIndex;
}

function requireComponent(dir: string, name: string, file: string, what: string): string {
  const sub = path.join(dir, name);
  if (!fs.existsSync(path.join(sub, file))) throw new ModelFolderError(dir, `missing ${name}/${file} (${what})`);
  return sub;
}

/**
 * The prompt tokenizer of `dir/tokenizer` — the world's word tokenizer (`tokenizer.json`, `{"type": "word"}`)
 * or SentencePiece T5 (`spiece.model` + `tokenizer_config.json`, padded to `maxLength`) — or a note saying why
 * there is none (scenes may bring embeddings files instead). A `spiece.model` that cannot be read is an error.
 */
function loadTokenizer(dir: string, maxLength: number): { tokenizer?: AnyTokenizer; note?: string } {
  const tdir = path.join(dir, 'tokenizer');
  const noPrompts =
    'prompts cannot be encoded with this model, so give every scene an "embeddings" file (precomputed prompt embeddings) in the scene file instead of a "prompt"';
  if (!fs.existsSync(tdir))
    return {
      note: `${dir}: no tokenizer (expected tokenizer/spiece.model, or tokenizer/tokenizer.json of this project's word tokenizer); ${noPrompts}`,
    };
  if (fs.existsSync(path.join(tdir, 'spiece.model'))) return { tokenizer: loadPromptTokenizer(dir, { maxLength }) };
  try {
    return { tokenizer: loadPromptTokenizer(dir, { maxLength }) };
  } catch (e) {
    if (e instanceof TokenizerFileError) return { note: `${e.message}; ${noPrompts}` };
    throw e;
  }
}

function checkTextFits(
  dir: string,
  transformer: Mask2DiTTransformer,
  encoder: T5Encoder,
  tokenizer: AnyTokenizer,
): void {
  const c = transformer.config;
  const tcfg = path.join(dir, 'transformer', 'config.json');
  if (encoder.config.d_model !== c.text_embed_dim) {
    throw new ConfigError(
      tcfg,
      'text_embed_dim',
      `the text encoder's d_model is ${encoder.config.d_model} (text_encoder/config.json), the transformer expects ${c.text_embed_dim}`,
    );
  }
  if (tokenizer.length !== c.max_text_seq_length) {
    throw new ConfigError(
      tcfg,
      'max_text_seq_length',
      `the tokenizer pads to ${tokenizer.length} tokens (tokenizer/), the transformer expects ${c.max_text_seq_length}`,
    );
  }
  if (tokenizer.vocabSize > encoder.config.vocab_size) {
    throw new ConfigError(
      path.join(dir, 'text_encoder', 'config.json'),
      'vocab_size',
      `the tokenizer has ${tokenizer.vocabSize} tokens, the encoder's table only ${encoder.config.vocab_size}`,
    );
  }
}

export interface LoadOptions {
  /** Load the tokenizer and text encoder (default true); false for runs that only use embeddings files. */
  text?: boolean;
  /**
   * The transformer's and the text encoder's block weights: 'auto' (default) resident when they fit
   * the backend's budget, else read from the checkpoint one block at a time; 'none'; 'blocks'.
   * An offloaded component adds a sentence to `notes`.
   */
  offload?: OffloadMode;
}

/**
 * Load every part of a pipeline folder. Typed errors name the folder and the missing or unsupported
 * part; a missing or foreign tokenizer is not an error (see `notes`), since scenes may bring
 * precomputed embeddings instead of prompts.
 */
export async function loadModelFolder(dir: string, options: LoadOptions = {}): Promise<LoadedModel> {
  const index = readModelIndex(dir);
  const tDir = requireComponent(dir, 'transformer', 'config.json', 'the denoising transformer');
  const vDir = requireComponent(dir, 'vae', 'config.json', 'the video autoencoder');
  const sDir = requireComponent(dir, 'scheduler', 'scheduler_config.json', 'the sampler configuration');
  const schedulerConfig = readSchedulerConfig(path.join(sDir, 'scheduler_config.json'));
  const notes: string[] = [];
  const offloadNotes: string[] = [];
  const owned: { dispose(): unknown }[] = [];
  const offload = {
    offload: options.offload ?? 'auto',
    onDecision: (d: OffloadDecision) => d.mode === 'blocks' && offloadNotes.push(d.note),
  };
  try {
    const transformer = await Mask2DiTTransformer.fromPretrained(tDir, offload);
    owned.push(transformer);
    const vae = await CogVideoXVAE.fromPretrained(vDir);
    owned.push(vae);
    const parts: ModelParts = { transformer, vae, schedulerConfig, samplerName: samplerForScheduler(schedulerConfig) };
    if (options.text ?? true) {
      const { tokenizer, note } = loadTokenizer(dir, transformer.config.max_text_seq_length);
      if (note !== undefined) notes.push(note);
      const hasEncoder = fs.existsSync(path.join(dir, 'text_encoder', 'config.json'));
      if (tokenizer !== undefined && !hasEncoder)
        notes.push(
          `${dir}: no text encoder (text_encoder/config.json); give every scene an "embeddings" file instead of a "prompt"`,
        );
      if (tokenizer !== undefined && hasEncoder) {
        const textEncoder = await T5Encoder.fromPretrained(path.join(dir, 'text_encoder'), offload);
        owned.push(textEncoder);
        checkTextFits(dir, transformer, textEncoder, tokenizer);
        parts.textEncoder = textEncoder;
        parts.tokenizer = tokenizer;
      }
    }
    notes.push(...offloadNotes);
    const where = {
      transformer: transformer.offload,
      ...(parts.textEncoder !== undefined ? { textEncoder: parts.textEncoder.offload } : {}),
      notes: offloadNotes,
    };
    return {
      ...parts,
      dir,
      pipelineClass: index._class_name,
      notes,
      offload: where,
      dispose: () => owned.forEach((m) => m.dispose()),
    };
  } catch (e) {
    owned.forEach((m) => m.dispose());
    throw e;
  }
}

/** The model_index.json of `parts`. */
export function modelIndexFor(parts: ModelParts): ModelIndex {
  const tcls = parts.transformer.config._class_name;
  return {
    _class_name: PIPELINE_CLASS,
    _diffusers_version: DIFFUSERS_VERSION,
    _mask2dit_ts_version: VERSION,
    scheduler: ['diffusers', parts.schedulerConfig._class_name],
    text_encoder: parts.textEncoder !== undefined ? ['transformers', 'T5EncoderModel'] : [null, null],
    tokenizer:
      parts.tokenizer === undefined
        ? [null, null]
        : parts.tokenizer instanceof WordTokenizer
          ? ['mask2dit', 'WordTokenizer']
          : ['transformers', 'T5Tokenizer'],
    transformer: [tcls === 'MultiPromptCogVideoXTransformer3DModel' ? 'videox_fun' : 'diffusers', tcls],
    vae: ['diffusers', 'AutoencoderKLCogVideoX'],
  };
}

export interface SaveOptions {
  /** Replace an existing folder (default false: OutputExistsError). */
  force?: boolean;
  /** Extra text files written at the top of the folder (e.g. `{ 'README.md': … }`). */
  files?: Record<string, string>;
}

const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;

/**
 * Write a pipeline folder in the reference layouts. The whole folder is built under a temporary
 * sibling name and renamed into place, so `dir` is either the old folder or the complete new one;
 * an interrupt removes the temporary folder.
 */
export async function saveModelFolder(dir: string, parts: ModelParts, options: SaveOptions = {}): Promise<void> {
  const target = path.resolve(dir);
  const exists = fs.existsSync(target);
  if (exists && options.force !== true) throw new OutputExistsError(dir);
  const parent = path.dirname(target);
  if (!fs.existsSync(parent)) throw new Mask2DiTError('IO', `${dir}: directory ${parent} does not exist`);
  const tmp = path.join(parent, `.${path.basename(target)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  const unregister = registerCleanup(() => fs.rmSync(tmp, { recursive: true, force: true }));
  try {
    fs.mkdirSync(tmp);
    await parts.transformer.save(path.join(tmp, 'transformer'));
    await parts.vae.save(path.join(tmp, 'vae'));
    if (parts.textEncoder !== undefined) await parts.textEncoder.save(path.join(tmp, 'text_encoder'));
    if (parts.tokenizer !== undefined) {
      if (!(parts.tokenizer instanceof WordTokenizer))
        throw new ModelFolderError(
          dir,
          'saving a SentencePiece tokenizer is not supported: copy tokenizer/ from the folder it came from',
        );
      fs.mkdirSync(path.join(tmp, 'tokenizer'));
      await writeFileAtomic(path.join(tmp, 'tokenizer', 'tokenizer.json'), json(parts.tokenizer.toJSON()));
    }
    fs.mkdirSync(path.join(tmp, 'scheduler'));
    // a velocity-predicting flow model's config stays exactly diffusers' (`prediction_type` is our extension)
    const { prediction_type: prediction, ...standard } = parts.schedulerConfig as SchedulerConfig & {
      prediction_type?: string;
    };
    const scheduler =
      isFlowMatchConfig(parts.schedulerConfig) && prediction === 'flow_prediction' ? standard : parts.schedulerConfig;
    await writeFileAtomic(
      path.join(tmp, 'scheduler', 'scheduler_config.json'),
      json({ _diffusers_version: DIFFUSERS_VERSION, ...scheduler }),
    );
    for (const [name, text] of Object.entries(options.files ?? {})) await writeFileAtomic(path.join(tmp, name), text);
    await writeFileAtomic(path.join(tmp, 'model_index.json'), json(modelIndexFor(parts)));
    replaceFolder(tmp, target);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
    unregister();
  }
}
