// The finite-weights check every tensor read from a checkpoint passes (Checkpoint.read/readRows):
// a NaN or an infinity in the weights otherwise flows silently through logits (a JSON of nulls),
// score, eval (bits_per_byte null), export (a GGUF of NaN) and generate (fuzz report D7); only
// training noticed, at its first loss. The check costs one pass over the values as they load.
// `--allow-nonfinite` (any command) turns it off, to look at a broken checkpoint on purpose.
import { KompresorError } from '../errors.ts';

let allowed = false;

/** Turns the check off (--allow-nonfinite) or back on. */
export function allowNonFinite(on: boolean): void {
  allowed = on;
}

/** Refuses `values` (tensor `name` of `file`, of `shape`) when one of them is NaN or ±Infinity. */
export function checkFinite(values: Float32Array, name: string, file: string, shape: number[], rowOffset = 0): void {
  if (allowed) return;
  let bad = -1, count = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v - v !== 0) { if (bad < 0) bad = i; count++; } // NaN - NaN and Inf - Inf are NaN
  }
  if (bad >= 0) refuse(values[bad], bad, count, values.length, name, file, shape, rowOffset);
}

/** The same check on 16-bit bit patterns (bf16, or f16 when `f16`): all exponent bits set is NaN or ±Infinity. */
export function checkFinite16(values: Uint16Array, f16: boolean, name: string, file: string, shape: number[]): void {
  if (allowed) return;
  const exp = f16 ? 0x7c00 : 0x7f80, mantissa = f16 ? 0x03ff : 0x007f;
  let bad = -1, count = 0;
  for (let i = 0; i < values.length; i++) {
    if ((values[i] & exp) === exp) { if (bad < 0) bad = i; count++; }
  }
  if (bad < 0) return;
  const h = values[bad], value = (h & mantissa) !== 0 ? NaN : (h & 0x8000 ? -Infinity : Infinity);
  refuse(value, bad, count, values.length, name, file, shape, 0);
}

function refuse(value: number, bad: number, count: number, n: number, name: string, file: string, shape: number[], rowOffset: number): never {
  const cols = shape.length > 1 ? shape.slice(1).reduce((a, b) => a * b, 1) : n;
  const at = shape.length > 1 ? `row ${rowOffset + Math.floor(bad / cols)}, column ${bad % cols}` : `index ${bad}`;
  throw new KompresorError({ code: 'safetensors_corrupt', where: `${file}: tensor "${name}"`, rule: 'weights must be finite numbers',
    found: `${value} at ${at} (${count} non-finite value${count === 1 ? '' : 's'} in the tensor)`,
    hint: 'the checkpoint is corrupt or its training diverged; use an earlier checkpoint (--allow-nonfinite loads it anyway, to inspect it)' });
}
