// Errors are data: a code, where it happened, the rule, what was expected and what was found,
// and a hint saying what to do. `message` renders them as one sentence, so the CLI prints one line.
// Invariant failures inside the toolkit itself use code 'impl_error' and are tagged [ImplError].

export type ErrorCode =
  | 'file_not_found' | 'io_error'
  | 'safetensors_corrupt' | 'safetensors_dtype' | 'safetensors_shape'
  | 'checkpoint_missing_tensor' | 'checkpoint_extra_tensor' | 'checkpoint_index'
  | 'config_invalid' | 'config_unsupported'
  | 'tokenizer_invalid' | 'chat_template'
  | 'input_invalid' | 'ids_out_of_vocab'
  | 'shape_mismatch' | 'native_unavailable'
  | 'training_diverged'
  | 'invalid_prune_plan'
  | 'impl_error';

export interface ErrorFields {
  code: ErrorCode;
  /** The place: a file, a tensor name, a config key, a CLI flag. */
  where: string;
  /** The rule that was broken, stated positively ("the header length must fit inside the file"). */
  rule: string;
  expected?: string;
  found?: string;
  /** What the user can do about it. */
  hint?: string;
}

export class KompresorError extends Error {
  readonly code: ErrorCode;
  readonly where: string;
  readonly rule: string;
  readonly expected?: string;
  readonly found?: string;
  readonly hint?: string;

  constructor(f: ErrorFields) {
    super(renderError(f));
    this.name = 'KompresorError';
    this.code = f.code;
    this.where = f.where;
    this.rule = f.rule;
    this.expected = f.expected;
    this.found = f.found;
    this.hint = f.hint;
  }
}

/** "<where>: <rule>; expected <e>, found <f>. <hint>" — one line, no trailing whitespace. */
export function renderError(f: ErrorFields): string {
  const tag = f.code === 'impl_error' ? '[ImplError] ' : '';
  let s = `${tag}${f.where}: ${f.rule}`;
  if (f.expected !== undefined || f.found !== undefined) {
    const parts = [];
    if (f.expected !== undefined) parts.push(`expected ${f.expected}`);
    if (f.found !== undefined) parts.push(`found ${f.found}`);
    s += `; ${parts.join(', ')}`;
  }
  s += '.';
  if (f.hint) s += ` Hint: ${f.hint}`;
  // one line, and no control bytes from input files (an ESC sequence in a JSONL line cleared and
  // recoloured the terminal; NULs of a binary file spread over lines): shown as \xNN
  return s.replace(/\s*\n\s*/g, ' ').replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`).replace(/\t/g, ' ');
}

/** Throws an [ImplError] when an internal invariant does not hold. Message built lazily. */
export function ensure(cond: unknown, where: string, rule: () => string): asserts cond {
  if (!cond) throw new KompresorError({ code: 'impl_error', where, rule: rule() });
}
