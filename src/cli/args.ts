// Parsing of CLI values shared by several commands, with errors that name the flag.
import { Option } from 'commander';
import { KompresorError } from '../errors.ts';
import { checkOutFile } from '../io/out_guard.ts';
import { WEIGHTS_OPTIONS } from '../model/load.ts';

/** "1,2,3;4,5,6" -> [[1,2,3],[4,5,6]] */
export function parseIds(text: string, flag = '--ids'): number[][] {
  const rows = text.split(';').map((r) => r.trim()).filter((r) => r.length > 0);
  if (rows.length === 0) {
    throw new KompresorError({ code: 'input_invalid', where: flag, rule: 'give at least one row of token ids', expected: '"1,2,3;4,5,6"', found: JSON.stringify(text) });
  }
  return rows.map((r, b) => r.split(',').map((s, t) => {
    // decimal digits only: Number() would read "" as 0 and accept "0x1f", "1e3" or " "
    const v = /^[+-]?\d+$/.test(s.trim()) ? Number(s.trim()) : NaN;
    if (!Number.isSafeInteger(v)) {
      throw new KompresorError({ code: 'input_invalid', where: `${flag} row ${b} position ${t}`, rule: 'token ids are integers', found: JSON.stringify(s.trim()) });
    }
    return v;
  }));
}

export function parseNumber(text: string, flag: string, { min = -Infinity, max = Infinity, integer = false } = {}): number {
  const v = text.trim() === '' ? NaN : Number(text); // Number('') would be 0
  if (!Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
    const kind = integer ? 'an integer' : 'a number';
    // the same words as the trainers' options: "an integer >= 0", not "in [0, Infinity]"
    const range = min === -Infinity && max === Infinity ? '' : max === Infinity ? ` >= ${min}` : min === -Infinity ? ` <= ${max}` : ` in [${min}, ${max}]`;
    throw new KompresorError({ code: 'input_invalid', where: flag, rule: `${flag} takes ${kind}${range}`, found: JSON.stringify(text) });
  }
  return v;
}

/**
 * --weights-dtype: how a model that only runs forward holds its weights. 'auto' keeps a bf16/f16
 * checkpoint in 16 bits (half the memory of float32, widened inside the GEMM); 'f32' widens at load,
 * for exactness checks against the float32 path.
 */
export function weightsDtypeOption(flag = '--weights-dtype', what = 'the model'): Option {
  return new Option(`${flag} <dtype>`, `how ${what} holds its weights: auto (as the checkpoint stores them: bf16/f16 stay 16-bit), f32, bf16 or f16`)
    .choices([...WEIGHTS_OPTIONS]).default('auto');
}

/** The output-file guard (src/io/out_guard.ts): folder exists, not a folder, not on an input, not under /proc. */
export function checkOutPath(path: string, flag = '--out', inputs: string[] = []): void {
  checkOutFile(path, flag, inputs);
}
