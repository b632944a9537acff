// The options every trainer shares (train, distill, later sft/dpo/grpo): the budget, the batch
// geometry, AdamW and its schedule, and the eval/save cadence. They are validated once here and
// stored whole in each checkpoint's state.json, so a resumed run uses exactly the same ones.
import { KompresorError } from '../errors.ts';
import { OPTIM_STATES, type OptimState } from './moments.ts';
import { FREEZABLE_PARTS, type FreezablePart } from '../model/freeze.ts';

export interface TrainOptions {
  /** Budget: optimizer steps, or tokens (rounded up to whole steps). Exactly one is set. */
  steps?: number;
  tokens?: number;
  /** Rows per micro-batch (B), tokens per row (T), micro-batches per optimizer step. */
  microBatch: number;
  seqLen: number;
  gradAccum: number;
  /** Peak learning rate, floor of the cosine decay, linear warmup steps. */
  lr: number;
  minLr: number;
  warmup: number;
  /** Decoupled weight decay (not applied to norms and biases) and global-norm clipping (0 = off). */
  weightDecay: number;
  clip: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Checkpoint every N steps (0 = only when the run ends or is stopped). */
  saveEvery: number;
  /** Validation every N steps, plus at step 0 and at the end (0 = those two only); needs an EvalSource. */
  evalEvery: number;
  /** Validation batches per evaluation (each microBatch x seqLen). */
  evalBatches: number;
  /** How many checkpoints to keep (the newest; at least 1). */
  keepCheckpoints: number;
  seed: number;
  /**
   * Memory of the training state (docs/training.md, "Memory"): AdamW moments as f32, bf16 or
   * int8 (--optim-state); parts kept frozen, comma-separated from FREEZABLE_PARTS (--freeze; ''
   * = none); activations recomputed per layer in backward (--recompute). Absent = f32, '', false
   * (states written before these options existed).
   */
  optimState?: OptimState;
  freeze?: string;
  recompute?: boolean;
}

/** The memory options of a run, with their defaults filled in. */
export function memoryOptions(o: TrainOptions): { optimState: OptimState; freeze: FreezablePart[]; recompute: boolean } {
  return { optimState: o.optimState ?? 'f32', freeze: (o.freeze ?? '').split(',').filter(Boolean) as FreezablePart[], recompute: o.recompute ?? false };
}

export const TRAIN_DEFAULTS: Omit<TrainOptions, 'steps' | 'tokens'> = {
  microBatch: 8, seqLen: 512, gradAccum: 1,
  lr: 3e-4, minLr: 3e-5, warmup: 100,
  weightDecay: 0.1, clip: 1.0, beta1: 0.9, beta2: 0.95, eps: 1e-8,
  saveEvery: 500, evalEvery: 500, evalBatches: 16, keepCheckpoints: 1, seed: 0,
  optimState: 'f32', freeze: '', recompute: false,
};

/** Tokens one optimizer step consumes (padding included). */
export function tokensPerStep(o: TrainOptions): number {
  return o.microBatch * o.seqLen * o.gradAccum;
}

/** The step budget: `steps`, or `tokens` rounded up to whole steps. */
export function totalSteps(o: TrainOptions): number {
  return o.steps ?? Math.ceil(o.tokens! / tokensPerStep(o));
}

/**
 * Checks every option; the error names the flag the CLI uses for it. Returns the options with
 * the memory options filled in and --freeze in its normal form (sorted, no repeats).
 */
export function validateTrainOptions(o: TrainOptions): TrainOptions {
  const bad = (flag: string, rule: string, found: unknown) =>
    new KompresorError({ code: 'input_invalid', where: flag, rule, found: JSON.stringify(found) });
  if ((o.steps === undefined) === (o.tokens === undefined)) {
    throw bad('--steps/--tokens', 'give exactly one budget: --steps or --tokens', { steps: o.steps, tokens: o.tokens });
  }
  const ints: [keyof TrainOptions, string, number][] = [
    ['steps', '--steps', 1], ['tokens', '--tokens', 1], ['microBatch', '--micro-batch', 1], ['seqLen', '--seq-len', 2],
    ['gradAccum', '--grad-accum', 1], ['warmup', '--warmup', 0], ['saveEvery', '--save-every', 0],
    ['evalEvery', '--eval-every', 0], ['evalBatches', '--eval-batches', 1], ['keepCheckpoints', '--keep-checkpoints', 1],
    ['seed', '--seed', 0],
  ];
  for (const [key, flag, min] of ints) {
    const v = o[key];
    if (v === undefined && (key === 'steps' || key === 'tokens')) continue;
    if (!Number.isSafeInteger(v) || (v as number) < min) throw bad(flag, `${flag} takes an integer >= ${min}`, v);
  }
  const reals: [keyof TrainOptions, string, number, number][] = [
    ['lr', '--lr', 0, Infinity], ['minLr', '--min-lr', 0, Infinity], ['weightDecay', '--weight-decay', 0, Infinity],
    ['clip', '--clip', 0, Infinity], ['beta1', 'beta1', 0, 1], ['beta2', 'beta2', 0, 1], ['eps', 'eps', 0, Infinity],
  ];
  for (const [key, flag, min, max] of reals) {
    const v = o[key] as number;
    if (!Number.isFinite(v) || v < min || v > max || (key === 'lr' && v === 0)) throw bad(flag, `${flag} takes a number in ${key === 'lr' ? '(' : '['}${min}, ${max}]`, v);
  }
  if (o.minLr > o.lr) throw bad('--min-lr', '--min-lr must not exceed --lr', { lr: o.lr, minLr: o.minLr });
  if (o.warmup > totalSteps(o)) {
    throw new KompresorError({ code: 'input_invalid', where: '--warmup', rule: 'the warmup must fit in the step budget', expected: `at most ${totalSteps(o)} steps`,
      found: `${o.warmup}`, hint: 'give a smaller --warmup (the default is 100 steps)' });
  }
  return { ...o, ...validateMemoryOptions(o) };
}

/** The memory options checked (the CLI checks them as it parses, before any work). */
export function validateMemoryOptions(o: TrainOptions): Required<Pick<TrainOptions, 'optimState' | 'freeze' | 'recompute'>> {
  const m = memoryOptions(o);
  if (!OPTIM_STATES.includes(m.optimState)) {
    throw new KompresorError({ code: 'input_invalid', where: '--optim-state', rule: 'the AdamW moments are stored as f32, bf16 or int8',
      expected: OPTIM_STATES.join(' | '), found: JSON.stringify(o.optimState) });
  }
  const bad = m.freeze.filter((p) => !FREEZABLE_PARTS.includes(p));
  if (bad.length > 0) {
    throw new KompresorError({ code: 'input_invalid', where: '--freeze', rule: '--freeze takes a comma-separated list of parts',
      expected: FREEZABLE_PARTS.join(', '), found: JSON.stringify(o.freeze), hint: 'e.g. --freeze embeddings,lm_head' });
  }
  if (typeof m.recompute !== 'boolean') {
    throw new KompresorError({ code: 'input_invalid', where: '--recompute', rule: 'recompute is on or off', found: JSON.stringify(o.recompute) });
  }
  return { optimState: m.optimState, freeze: [...new Set(m.freeze)].sort().join(','), recompute: m.recompute };
}

/**
 * The first option whose value differs (for refusing a resume with changed options); absent
 * memory options count as their defaults, and recompute is left out: it changes memory and
 * time, never a number of the run.
 */
export function firstDifference(a: TrainOptions, b: TrainOptions): string | null {
  const fill = (o: TrainOptions): TrainOptions => ({ ...o, optimState: o.optimState ?? 'f32', freeze: o.freeze ?? '', recompute: false });
  const [x, y] = [fill(a), fill(b)];
  const keys = new Set([...Object.keys(x), ...Object.keys(y)]) as Set<keyof TrainOptions>;
  for (const k of [...keys].sort()) if (x[k] !== y[k]) return `${k}: ${JSON.stringify(y[k])} -> ${JSON.stringify(x[k])}`;
  return null;
}
