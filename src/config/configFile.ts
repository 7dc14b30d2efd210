/**
 * The shared boundary of every `config.json`: read the file, parse JSON, validate with a zod schema,
 * report unknown keys. Errors are `ConfigError(file, field, detail)` naming the first bad field and
 * listing all problems.
 */
import fs from 'node:fs';
import type { z } from 'zod';
import { ConfigError } from '../errors.js';
import { log } from '../log.js';

/** A config file's JSON, or a ConfigError saying why it cannot be read. */
export function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, '(file)', `cannot read: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(file, '(file)', `not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Validate `raw` against `schema`. Keys neither in `known` nor in `ignored` are logged (as `what`
 * config keys) and returned; they never fail validation.
 */
export function validateConfig<S extends z.ZodType>(
  schema: S,
  known: Iterable<string>,
  raw: unknown,
  file: string,
  what: string,
  ignored: Iterable<string> = [],
): { data: z.infer<S>; unknownKeys: string[] } {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new ConfigError(file, '(root)', 'expected a JSON object');
  const skip = new Set([...known, ...ignored]);
  const unknownKeys = Object.keys(raw).filter((k) => !skip.has(k));
  if (unknownKeys.length > 0) log.warn(`${file}: ignoring unknown ${what} config keys: ${unknownKeys.join(', ')}`);
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.length > 0 ? issue.path.join('.') : '(root)';
    throw new ConfigError(
      file,
      field,
      parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; '),
    );
  }
  return { data: parsed.data as z.infer<S>, unknownKeys };
}
