/**
 * The scene file of `mask2dit generate --scenes scenes.json`, validated once at the boundary.
 *
 * ```jsonc
 * {
 *   "scenes": [                       // required, at least one, in playback order
 *     {
 *       "prompt": "a red triangle …",  // string: the scene's text prompt, or
 *       "embeddings": "s1.safetensors",// string: precomputed text embeddings (path relative to this file);
 *                                      //   exactly one of prompt / embeddings
 *       "frames": 9,                   // required integer 4k+1 (the VAE compresses time 4×, plus the first frame)
 *       "caption": "slides left"       // optional string for the contact sheet (default: the prompt)
 *     }
 *   ],
 *   "width": 64, "height": 64,          // required, positive multiples of 16 (VAE 8× × patch 2)
 *   "negative_prompt": "",              // optional string
 *   "defaults": {                       // optional; command-line flags override these
 *     "steps": 50,                      //   integer >= 1
 *     "guidance": 6,                    //   number >= 0 (classifier-free guidance scale; 1 = none)
 *     "seed": 42,                       //   integer in [0, 2^32)
 *     "sampler": "ddim",                //   non-empty string (checked against the known samplers when given)
 *     "fps": 8                          //   number in (0, 240]
 *   }
 * }
 * ```
 *
 * Unknown keys are errors (a typo such as `"promt"` must not silently fall back to defaults). Every
 * problem is reported with its path, e.g. `scenes[2].frames: must be 4k+1, got 10`; all problems of
 * a file are reported together in one line, separated by `; `.
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { Mask2DiTError } from '../errors.js';

/** Width and height must be multiples of this (VAE spatial compression 8 × patch size 2). */
export const SIZE_MULTIPLE = 16;

/** A scene file that failed to read, parse or validate; `problems` lists each `path: detail`. */
export class SceneFileError extends Mask2DiTError {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super('SCENE_FILE', `${file}: ${problems.join('; ')}`);
  }
}

type Check<T> = (v: T) => string | undefined;

/** A zod schema `base` with an extra rule whose message can quote the value. */
function rule<T>(base: z.ZodType<T>, check: Check<T>) {
  return base.superRefine((v, ctx) => {
    const msg = check(v);
    if (msg !== undefined) ctx.addIssue({ code: 'custom', message: msg });
  });
}

const num = z.number();
const frames = rule(num, (n) =>
  Number.isInteger(n) && n >= 1 && (n - 1) % 4 === 0 ? undefined : `must be 4k+1, got ${n}`,
);
const size = rule(num, (n) =>
  Number.isInteger(n) && n > 0 && n % SIZE_MULTIPLE === 0
    ? undefined
    : `must be a positive multiple of ${SIZE_MULTIPLE}, got ${n}`,
);
const nonEmpty = rule(z.string(), (s) => (s.trim() === '' ? 'must not be empty' : undefined));

const SceneSchema = z
  .strictObject({
    prompt: nonEmpty.optional(),
    embeddings: nonEmpty.optional(),
    frames,
    caption: z.string().optional(),
  })
  .superRefine((s, ctx) => {
    if (s.prompt === undefined && s.embeddings === undefined)
      ctx.addIssue({ code: 'custom', message: 'needs "prompt" or "embeddings"' });
    if (s.prompt !== undefined && s.embeddings !== undefined)
      ctx.addIssue({ code: 'custom', message: 'give "prompt" or "embeddings", not both' });
  });

const DefaultsSchema = z.strictObject({
  steps: rule(num, (n) => (Number.isInteger(n) && n >= 1 ? undefined : `must be an integer >= 1, got ${n}`)).optional(),
  guidance: rule(num, (n) => (n >= 0 ? undefined : `must be >= 0, got ${n}`)).optional(),
  seed: rule(num, (n) =>
    Number.isInteger(n) && n >= 0 && n < 2 ** 32 ? undefined : `must be an integer in [0, 2^32), got ${n}`,
  ).optional(),
  sampler: nonEmpty.optional(),
  fps: rule(num, (n) => (n > 0 && n <= 240 ? undefined : `must be in (0, 240], got ${n}`)).optional(),
});

export const SceneFileSchema = z.strictObject({
  scenes: z.array(SceneSchema).min(1),
  width: size,
  height: size,
  negative_prompt: z.string().optional(),
  defaults: DefaultsSchema.optional(),
});

export type SceneFile = z.infer<typeof SceneFileSchema>;
export type Scene = SceneFile['scenes'][number];
export type SceneDefaults = NonNullable<SceneFile['defaults']>;

/** `['scenes', 2, 'frames']` → `scenes[2].frames`; the root is `(root)`. */
export function formatPath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const k of p) out += typeof k === 'number' ? `[${k}]` : out === '' ? String(k) : `.${String(k)}`;
  return out === '' ? '(root)' : out;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${JSON.stringify(v)}`;
}

function issueText(iss: z.core.$ZodIssue): string {
  switch (iss.code) {
    case 'invalid_type':
      return iss.input === undefined
        ? `required (${iss.expected})`
        : `expected ${iss.expected}, got ${describe(iss.input)}`;
    case 'unrecognized_keys':
      return `unknown key${iss.keys.length > 1 ? 's' : ''} ${iss.keys.map((k) => JSON.stringify(k)).join(', ')}`;
    case 'too_small':
      return iss.origin === 'array' ? `must list at least ${String(iss.minimum)} item(s)` : iss.message;
    default:
      return iss.message;
  }
}

export interface SceneFileOptions {
  /** Known sampler names: `defaults.sampler` must be one of them (unchecked when omitted). */
  samplers?: readonly string[];
}

/**
 * Validates a parsed scene file. `file` names it in errors; relative `embeddings` paths are resolved
 * against `baseDir` (default: the directory of `file`).
 */
export function parseSceneFile(
  raw: unknown,
  file = 'scene file',
  opts: SceneFileOptions & { baseDir?: string } = {},
): SceneFile {
  const r = SceneFileSchema.safeParse(raw, { reportInput: true });
  if (!r.success)
    throw new SceneFileError(
      file,
      r.error.issues.map((iss) => `${formatPath(iss.path)}: ${issueText(iss)}`),
    );
  const sf = r.data;
  const sampler = sf.defaults?.sampler;
  if (opts.samplers !== undefined && sampler !== undefined && !opts.samplers.includes(sampler)) {
    throw new SceneFileError(file, [
      `defaults.sampler: unknown sampler ${JSON.stringify(sampler)}, expected one of ${opts.samplers.join(', ')}`,
    ]);
  }
  const baseDir = opts.baseDir ?? path.dirname(file);
  for (const s of sf.scenes) if (s.embeddings !== undefined) s.embeddings = path.resolve(baseDir, s.embeddings);
  return sf;
}

/** Reads, parses and validates a scene file; every failure is a SceneFileError naming the file. */
export async function readSceneFile(file: string, opts: SceneFileOptions = {}): Promise<SceneFile> {
  let text: string;
  try {
    text = await fs.promises.readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SceneFileError(file, [code === 'ENOENT' ? 'no such file' : `cannot read: ${(e as Error).message}`]);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new SceneFileError(file, [`invalid JSON: ${(e as Error).message}`]);
  }
  return parseSceneFile(raw, file, opts);
}

/** The caption shown for scene i: its caption, else its prompt, else `scene <i+1>`. */
export function sceneCaption(sf: SceneFile, i: number): string {
  const s = sf.scenes[i];
  return s?.caption ?? s?.prompt ?? `scene ${i + 1}`;
}
