// Parsing of CLI values shared by several commands, with errors that name the flag.
import fs from 'node:fs';
import nodePath from 'node:path';
import { Option } from 'commander';
import { KompresorError } from '../errors.ts';
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
    throw new KompresorError({ code: 'input_invalid', where: flag, rule: `${flag} takes ${kind} in [${min}, ${max}]`, found: JSON.stringify(text) });
  }
  return v;
}

/** Refuses an output path whose folder is missing or that names a folder, before any work is done. */
/**
 * --weights-dtype: how a model that only runs forward holds its weights. 'auto' keeps a bf16/f16
 * checkpoint in 16 bits (half the memory of float32, widened inside the GEMM); 'f32' widens at load,
 * for exactness checks against the float32 path.
 */
export function weightsDtypeOption(flag = '--weights-dtype', what = 'the model'): Option {
  return new Option(`${flag} <dtype>`, `how ${what} holds its weights: auto (as the checkpoint stores them: bf16/f16 stay 16-bit), f32, bf16 or f16`)
    .choices([...WEIGHTS_OPTIONS]).default('auto');
}

export function checkOutPath(path: string, flag = '--out'): void {
  const dir = nodePath.dirname(nodePath.resolve(path));
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new KompresorError({ code: 'file_not_found', where: `${flag} ${path}`, rule: 'the output folder must exist',
      expected: `a folder at ${dir}`, found: fs.existsSync(dir) ? 'a file' : 'no such folder', hint: 'create the folder first' });
  }
  if (fs.existsSync(path) && fs.statSync(path).isDirectory()) {
    throw new KompresorError({ code: 'input_invalid', where: `${flag} ${path}`, rule: 'the output must be a file name',
      found: 'a folder', hint: 'name a file inside it' });
  }
}
