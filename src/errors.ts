/**
 * Typed errors. Every error the library throws on bad input is one of these: it names the file or
 * field and says what was expected, so the CLI can print one line and exit non-zero.
 */

/** Base class: `code` is a stable machine-readable tag. */
export class Mask2DiTError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export type SafetensorsErrorCode =
  | 'IO'
  | 'HEADER_TOO_SMALL'
  | 'HEADER_TOO_LARGE'
  | 'INVALID_HEADER_LENGTH'
  | 'INVALID_HEADER_UTF8'
  | 'INVALID_HEADER_JSON'
  | 'HEADER_NOT_OBJECT'
  | 'DUPLICATE_NAME'
  | 'INVALID_METADATA'
  | 'INVALID_ENTRY'
  | 'UNKNOWN_DTYPE'
  | 'INVALID_SHAPE'
  | 'INVALID_OFFSETS'
  | 'TENSOR_INVALID_INFO'
  | 'MISALIGNED_SLICE'
  | 'METADATA_INCOMPLETE_BUFFER'
  | 'TRUNCATED'
  | 'TENSOR_NOT_FOUND'
  | 'INVALID_INDEX'
  | 'MISSING_SHARD'
  | 'NO_CHECKPOINT'
  | 'INVALID_TENSOR_DATA';

/** Bad safetensors input: `file` is the offending file, `code` which rule it broke. */
export class SafetensorsError extends Mask2DiTError {
  constructor(
    override readonly code: SafetensorsErrorCode,
    readonly file: string,
    detail: string,
  ) {
    super(code, `${file}: ${detail} [${code}]`);
  }
}

/** A backend that cannot be selected or initialised, with what to do about it. */
export class BackendError extends Mask2DiTError {
  constructor(
    readonly backend: string,
    detail: string,
  ) {
    super('BACKEND', `backend '${backend}': ${detail}`);
  }
}

/** A configuration value that failed validation: `field` is a dotted path, `file` where it came from. */
export class ConfigError extends Mask2DiTError {
  constructor(
    readonly file: string,
    readonly field: string,
    detail: string,
  ) {
    super('CONFIG', `${file}: ${field}: ${detail}`);
  }
}

/** A tensor of the wrong rank or shape, named. */
export class ShapeError extends Mask2DiTError {
  constructor(
    readonly tensor: string,
    detail: string,
  ) {
    super('SHAPE', `${tensor}: ${detail}`);
  }
}
