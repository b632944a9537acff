// Pruned widths users can run. A hidden_size or intermediate_size that `prune --params` or
// `search` chooses is a multiple of --round-to (64 by default, the divisor of ModelOpt's search
// space): quantized GGUF types pack a row in blocks of 32 or 256 values (llama.cpp falls back to
// f16 on a row that does not divide) and GEMM tiles and SIMD widths are powers of two. A pruned
// hidden_size is also a multiple of num_attention_heads: transformers 5 refuses a Llama, Mistral
// or Qwen2 config otherwise, even with an explicit head_dim.
//
// On a width too small to have a multiple of --round-to within its pruning bound (hidden 64 with a
// 40% bound, say), the step falls back to the largest power of two below --round-to that leaves a
// pruned size, and the plan or search says so. Sizes given with --target are taken as given;
// targetNotes() names those that miss either rule. Nothing here reads tensors.
import { KompresorError } from '../errors.ts';

export const DEFAULT_ROUND_TO = 64;

/** The axes rounded to --round-to (head counts follow num_key_value_heads instead). */
export const ROUNDED_AXES = ['hidden_size', 'intermediate_size'] as const;
export type RoundedAxis = (typeof ROUNDED_AXES)[number];

export interface WidthStep {
  /** --round-to, or the power of two below it that the fallback took. */
  step: number;
  /** What a pruned size is a multiple of: lcm(step, also), e.g. lcm(step, heads) for hidden_size. */
  multiple: number;
  /** true when --round-to left no pruned size within the bound and a smaller step was taken. */
  fallback: boolean;
}

/** The --round-to value: a positive integer (1 turns rounding off). */
export function parseRoundTo(text: string | number | undefined, flag = '--round-to'): number {
  if (text === undefined) return DEFAULT_ROUND_TO;
  const v = typeof text === 'number' ? text : /^\s*\d+\s*$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(v) || v < 1) {
    throw new KompresorError({ code: 'input_invalid', where: flag, rule: 'pruned widths are rounded to a multiple of a positive integer',
      expected: `e.g. ${DEFAULT_ROUND_TO} (the default), 32, or 1 for no rounding`, found: JSON.stringify(text) });
  }
  return v;
}

export function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

export function lcm(a: number, b: number): number {
  return (a / gcd(a, b)) * b;
}

/** The largest multiple of m below `original` and at least `lo`, or null when there is none. */
export function prunedMultiple(original: number, lo: number, m: number): number | null {
  const v = Math.floor((original - 1) / m) * m;
  return v > 0 && v >= lo - 1e-9 ? v : null;
}

/**
 * The step of one width axis whose pruned sizes must lie in [lo, original): --round-to when some
 * multiple of lcm(roundTo, also) lies there, else the largest power of two below --round-to for
 * which one does (fallback). When none does, --round-to (the axis cannot shrink).
 */
export function widthStep(original: number, lo: number, roundTo: number, also = 1): WidthStep {
  const steps = [roundTo];
  let p = 1;
  while (p * 2 < roundTo) p *= 2;
  for (; p >= 1; p /= 2) if (p < roundTo) steps.push(p);
  for (const step of steps) {
    const multiple = lcm(step, also);
    if (prunedMultiple(original, lo, multiple) !== null) return { step, multiple, fallback: step !== roundTo };
  }
  return { step: roundTo, multiple: lcm(roundTo, also), fallback: false };
}

/** One line saying that an axis fell back to a smaller step, and why. */
export function fallbackNote(axis: RoundedAxis, original: number, s: WidthStep, roundTo: number, heads?: number): string {
  const withHeads = (step: number) => (heads !== undefined && lcm(step, heads) !== step ? ` (lcm of ${step} and the ${heads} heads: ${lcm(step, heads)})` : '');
  return `${axis} ${original}: no multiple of ${roundTo}${withHeads(roundTo)} lies within the pruning bound, `
    + `so its pruned sizes are multiples of ${s.step}${withHeads(s.step)} instead`;
}

/** The sizes of a plan that miss a rule: pruned widths in `given` (the --target axes) not multiples
 *  of --round-to, and a changed hidden_size or head count with hidden_size not a multiple of the heads. */
export function targetNotes(before: Record<string, number>, after: Record<string, number>, roundTo: number, given: readonly string[]): string[] {
  const notes: string[] = [];
  for (const a of ROUNDED_AXES) {
    if (given.includes(a) && after[a] < before[a] && after[a] % roundTo !== 0) {
      notes.push(`${a} ${after[a]} is not a multiple of ${roundTo} (--round-to): taken as given; `
        + `GEMMs run on ragged tiles and quantized GGUF rows may fall back to f16`);
    }
  }
  const h = after.hidden_size, nH = after.num_attention_heads;
  const changed = h !== before.hidden_size || nH !== before.num_attention_heads;
  if (changed && h % nH !== 0) {
    notes.push(`hidden_size ${h} is not a multiple of num_attention_heads ${nH}: transformers 5 will not load this config `
      + `(Llama, Mistral, Qwen2), even with its explicit head_dim`);
  }
  return notes;
}
