// Pruning plans: the sizes the pruned model will have, chosen from an explicit target
// (`--target hidden_size=..,...`) and/or a parameter budget (`--params N`), validated up front
// (before any tensor is read) with messages that restate the rule and show the values; and,
// given importance scores, which layers, hidden channels, query heads and MLP neurons each axis
// keeps (`selectChannels`). Nothing here touches tensors: apply.ts slices and writes.
//
// Axes carry HF config names (ModelOpt's SUPPORTED_HPARAMS in HF spelling). Pruning is
// homogeneous (the same sizes in every layer). num_key_value_heads and head_dim are never pruned
// (ModelOpt >= 0.41): query heads are removed evenly from every KV group. Kept channels are laid
// out in importance order (ModelOpt's argsort(desc)[:k]); an axis left at its original size
// keeps its original order, so pruning nothing changes nothing. Widths the --params policy
// chooses are rounded (rounding.ts); its budget is counted in --params-convention. See docs/pruning.md.
import { KompresorError } from '../errors.ts';
import { countIn, paramCount, PARAMS_CONVENTIONS, type ModelConfig, type ParamCount, type ParamsConvention } from '../io/hf_config.ts';
import { argsortDesc, type ImportanceScores, type ScoredShape } from './scores.ts';
import { fallbackNote, parseRoundTo, targetNotes, widthStep, type RoundedAxis } from './rounding.ts';

export const PRUNE_AXES = ['num_hidden_layers', 'hidden_size', 'num_attention_heads', 'intermediate_size'] as const;
export type PruneAxis = (typeof PRUNE_AXES)[number];
export type AxisSizes = Record<PruneAxis, number>;

/** importance: drop the layers with the lowest Block Importance wherever they are (ModelOpt);
 *  contiguous: drop the block of consecutive layers with the smallest summed BI (P2's style). */
export type DepthMode = 'importance' | 'contiguous';
export const DEPTH_MODES: readonly DepthMode[] = ['importance', 'contiguous'];

export interface PruneRequest {
  /** Sizes to reach, any subset of the axes. */
  target?: Partial<AxisSizes>;
  /** Parameter budget: an absolute count (> 1) or a fraction of the original (0 < p <= 1). */
  params?: number;
  depth?: DepthMode;
  /** Pruned widths the policy chooses are multiples of this (default 64; rounding.ts). */
  roundTo?: number;
  /** How --params counts (default 'total': every tensor; 'no-lm-head': without an untied lm_head). */
  paramsConvention?: ParamsConvention;
}

/** What rounding did to a plan, and what it cost. */
export interface PlanRounding {
  round_to: number;
  /** Each width axis the --params policy was free to shrink: the multiple its sizes were taken from. */
  steps: { axis: RoundedAxis; step: number; multiple: number; fallback: boolean }[];
  /** The policy's choice at step 1 (no rounding, no heads rule) and its count in the plan's convention; null without --params. */
  unrounded: { sizes: AxisSizes; params: number } | null;
  /** unrounded.params minus the plan's count (the parameters rounding gave up); 0 without --params. */
  cost: number;
  /** Fallbacks taken, and sizes that miss a rule (--target sizes are taken as given). */
  notes: string[];
}

export interface PrunePlan {
  architecture: string;
  before: AxisSizes;
  after: AxisSizes;
  /** Kept as they are, written explicitly into the new config.json. */
  num_key_value_heads: number;
  head_dim: number;
  depth: DepthMode;
  /** 'target' when every size came from the target, 'params' when the budget policy chose some. */
  chosen_by: 'target' | 'params';
  /** The budget in absolute parameters when --params was given, counted in params_convention. */
  params_budget: number | null;
  params_convention: ParamsConvention;
  rounding: PlanRounding;
  /** Exact counts (paramCount), known before a single tensor is sliced. */
  params: { before: ParamCount; after: ParamCount };
  /** The pruned model's normalised config. */
  config: ModelConfig;
}

/** Indices each axis keeps. heads/mlp hold one row per KEPT layer, in the new layer order. */
export interface Selection {
  layers: number[];          // kept original layer indices, ascending (renumbered 0..L'-1)
  droppedLayers: number[];
  hidden: number[];          // Hk: hidden channels, importance order
  heads: number[][];         // Qk per kept layer: original q-head indices, group-major
  mlp: number[][];           // Fk per kept layer: neurons, importance order (gate, up and down alike)
}

/** The --params policy: axes shrunk in this order, each by at most ModelOpt's default NAS limit. */
export const PARAMS_POLICY: readonly { axis: PruneAxis; minFraction: number }[] = [
  { axis: 'num_hidden_layers', minFraction: 0.8 },   // max_depth_pruning 0.2
  { axis: 'intermediate_size', minFraction: 0.6 },   // max_width_pruning 0.4
  { axis: 'hidden_size', minFraction: 0.6 },
];
export const PARAMS_POLICY_TEXT = 'the --params policy drops at most 20% of the layers, then shrinks intermediate_size '
  + 'by at most 40%, then hidden_size by at most 40%, and never prunes attention heads';

// ---------------------------------------------------------------------------------------------
// sizes and errors

export function sizesOf(c: ModelConfig): AxisSizes {
  return { num_hidden_layers: c.numLayers, hidden_size: c.hiddenSize, num_attention_heads: c.numHeads, intermediate_size: c.intermediateSize };
}

export function withSizes(c: ModelConfig, s: AxisSizes): ModelConfig {
  return { ...c, numLayers: s.num_hidden_layers, hiddenSize: s.hidden_size, numHeads: s.num_attention_heads, intermediateSize: s.intermediate_size };
}

/** The shape a scores file must have been computed for (see scores.ts checkScoresMatch). */
export function scoredShapeOf(c: ModelConfig): ScoredShape {
  return {
    architecture: c.architecture, hidden_size: c.hiddenSize, num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads, num_key_value_heads: c.numKvHeads, head_dim: c.headDim,
    intermediate_size: c.intermediateSize, vocab_size: c.vocabSize, tie_word_embeddings: c.tieWordEmbeddings,
  };
}

function planError(where: string, rule: string, o: { expected?: string; found?: string; hint?: string } = {}): KompresorError {
  return new KompresorError({ code: 'invalid_prune_plan', where, rule, ...o });
}

const fmt = (n: number) => n.toLocaleString('en-US');

// ---------------------------------------------------------------------------------------------
// parsing the CLI values

/** "num_hidden_layers=40,intermediate_size=11264" -> {num_hidden_layers: 40, intermediate_size: 11264}. */
export function parseTarget(text: string, flag = '--target'): Partial<AxisSizes> {
  const out: Record<string, number> = {};
  const entries = text.split(',').map((e) => e.trim()).filter((e) => e.length > 0);
  if (entries.length === 0) {
    throw planError(flag, 'give at least one axis=size pair', { expected: '"num_hidden_layers=40,intermediate_size=11264"', found: JSON.stringify(text) });
  }
  for (const e of entries) {
    const m = /^([A-Za-z_]+)\s*=\s*(\S+)$/.exec(e);
    if (!m) throw planError(flag, 'each entry is axis=size', { expected: `axes ${PRUNE_AXES.join(', ')}`, found: JSON.stringify(e) });
    const [, key, value] = m;
    checkAxisName(key, `${flag} ${key}`);
    if (key in out) throw planError(`${flag} ${key}`, 'each axis may be given once', { found: `${key} twice` });
    // decimal digits only: Number() would accept "1e3", "0x10" or "12.0"
    out[key] = /^\d+$/.test(value) ? Number(value) : NaN;
    if (!Number.isSafeInteger(out[key])) throw planError(`${flag} ${key}`, `${key} must be a positive integer`, { found: JSON.stringify(value) });
  }
  return out as Partial<AxisSizes>;
}

/** "0.67" -> 0.67 (a fraction of the original), "7350000000" or "7.35e9" -> an absolute count. */
export function parseParams(text: string, flag = '--params'): number {
  const v = text.trim() === '' ? NaN : Number(text);
  if (!Number.isFinite(v) || v <= 0) {
    throw planError(flag, '--params takes a parameter count (> 1) or a fraction of the original in (0, 1]', { found: JSON.stringify(text) });
  }
  return v;
}

export function parseParamsConvention(text: string | undefined, flag = '--params-convention'): ParamsConvention {
  const v = text ?? 'total';
  if (!(PARAMS_CONVENTIONS as readonly string[]).includes(v)) {
    throw planError(flag, 'a parameter count is the total or the total without the untied lm_head', {
      expected: PARAMS_CONVENTIONS.join(' or '), found: JSON.stringify(v),
      hint: 'no-lm-head counts as the seed does (Bielik-11B 11.04B -> 7.35B); the two agree on tied models' });
  }
  return v as ParamsConvention;
}

export function parseDepth(text: string | undefined, flag = '--depth'): DepthMode {
  const v = text ?? 'importance';
  if (!(DEPTH_MODES as readonly string[]).includes(v)) {
    throw planError(flag, 'the depth mode must be importance or contiguous', { expected: DEPTH_MODES.join(' or '), found: JSON.stringify(v) });
  }
  return v as DepthMode;
}

function checkAxisName(key: string, where: string): asserts key is PruneAxis {
  if ((PRUNE_AXES as readonly string[]).includes(key)) return;
  if (key === 'num_key_value_heads') {
    throw planError(where, 'num_key_value_heads is never pruned: every key/value head is kept and query heads are pruned evenly within the KV groups',
      { hint: 'set num_attention_heads to a multiple of num_key_value_heads instead' });
  }
  if (key === 'head_dim') {
    throw planError(where, 'head_dim is never pruned: a kept head keeps all of its channels',
      { hint: 'prune num_attention_heads or hidden_size; the new config.json states head_dim explicitly' });
  }
  throw planError(where, `the prunable axes are ${PRUNE_AXES.join(', ')}`, { found: JSON.stringify(key) });
}

// ---------------------------------------------------------------------------------------------
// the plan

/** Validates a request against the model's config and fixes every size and both param counts. */
export function makePlan(cfg: ModelConfig, req: PruneRequest): PrunePlan {
  const before = sizesOf(cfg);
  const depth = parseDepth(req.depth);
  const target = req.target ?? {};
  if (Object.keys(target).length === 0 && req.params === undefined) {
    throw planError('prune', 'a plan needs sizes: --target axis=size,... and/or --params N',
      { hint: 'e.g. --target num_hidden_layers=40,intermediate_size=11264 or --params 0.67' });
  }
  checkTarget(cfg, target);
  const convention = parseParamsConvention(req.paramsConvention);
  const roundTo = parseRoundTo(req.roundTo);
  let after: AxisSizes = { ...before, ...target };
  let budget: number | null = null;
  const rounding: PlanRounding = { round_to: roundTo, steps: [], unrounded: null, cost: 0, notes: [] };
  if (req.params !== undefined) {
    budget = budgetOf(req.params, countIn(paramCount(cfg), convention));
    const fixed = Object.keys(target) as PruneAxis[];
    const steps = policySteps(cfg, after, fixed, roundTo);
    after = solveForParams(cfg, after, fixed, budget, convention, steps);
    rounding.steps = ROUNDED.filter((a) => !fixed.includes(a)).map((a) => ({ axis: a, ...steps[a] }));
    rounding.notes = rounding.steps.filter((s) => s.fallback && after[s.axis] < before[s.axis]).map((s) =>
      fallbackNote(s.axis, before[s.axis], s, roundTo, s.axis === 'hidden_size' ? after.num_attention_heads : undefined));
    rounding.unrounded = unroundedChoice(cfg, { ...before, ...target }, fixed, budget, convention);
    if (rounding.unrounded) rounding.cost = rounding.unrounded.params - countIn(paramCount(withSizes(cfg, after)), convention);
  }
  rounding.notes.push(...targetNotes(before, after, roundTo, Object.keys(target)));
  const config = withSizes(cfg, after);
  return {
    architecture: cfg.architecture, before, after, num_key_value_heads: cfg.numKvHeads, head_dim: cfg.headDim, depth,
    chosen_by: req.params === undefined ? 'target' : 'params', params_budget: budget, params_convention: convention, rounding,
    params: { before: paramCount(cfg), after: paramCount(config) }, config,
  };
}

function checkTarget(cfg: ModelConfig, target: Partial<AxisSizes>): void {
  const before = sizesOf(cfg);
  for (const [key, v] of Object.entries(target)) {
    const where = `--target ${key}`;
    checkAxisName(key, where);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      throw planError(where, `${key} must be a positive integer`, { found: JSON.stringify(v) });
    }
    if (v > before[key]) {
      throw planError(where, `${key} (${v}) must be at most the original ${key} (${before[key]})`, { hint: 'pruning only removes' });
    }
  }
  const h = target.num_attention_heads, kv = cfg.numKvHeads;
  if (h !== undefined && h % kv !== 0) {
    const choices = Array.from({ length: cfg.numHeads / kv }, (_, i) => (i + 1) * kv);
    const shown = choices.length > 12 ? [...choices.slice(0, 6), '...', ...choices.slice(-3)] : choices;
    throw planError('--target num_attention_heads', `num_attention_heads (${h}) must be a multiple of num_key_value_heads (${kv})`, {
      expected: `one of ${shown.join(', ')}`,
      hint: 'key/value heads are never pruned, so every KV group keeps the same number of query heads',
    });
  }
}

/** --params as an absolute count: a fraction (0 < p <= 1) of `total`, or a whole count at most `total`. */
export function budgetOf(p: number, total: number): number {
  if (!Number.isFinite(p) || p <= 0) {
    throw planError('--params', '--params takes a parameter count (> 1) or a fraction of the original in (0, 1]', { found: String(p) });
  }
  if (p <= 1) return Math.floor(p * total);
  if (!Number.isInteger(p)) {
    throw planError('--params', 'a parameter count above 1 must be a whole number (fractions of the original are at most 1)', { found: String(p) });
  }
  if (p > total) {
    throw planError('--params', `--params (${fmt(p)}) must be at most the original parameter count (${fmt(total)})`, { hint: 'pruning only removes' });
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// the --params policy (Bielik-Minitron: depth first, then the MLP; hidden size last)

const ROUNDED: readonly RoundedAxis[] = ['hidden_size', 'intermediate_size'];

/** The multiple each axis steps by: layers 1; hidden_size and intermediate_size by their WidthStep
 *  (hidden_size also a multiple of the heads, which the policy never prunes). */
type Steps = Record<PruneAxis, { step: number; multiple: number; fallback: boolean }>;

function policySteps(cfg: ModelConfig, start: AxisSizes, fixed: PruneAxis[], roundTo: number): Steps {
  const original = sizesOf(cfg), one = { step: 1, multiple: 1, fallback: false };
  const out: Steps = { num_hidden_layers: one, num_attention_heads: one, hidden_size: one, intermediate_size: one };
  for (const p of PARAMS_POLICY) {
    if (p.axis === 'num_hidden_layers' || fixed.includes(p.axis)) continue;
    const heads = p.axis === 'hidden_size' ? start.num_attention_heads : 1;
    out[p.axis] = widthStep(original[p.axis], Math.ceil(original[p.axis] * p.minFraction), roundTo, heads);
  }
  return out;
}

/** The policy's choice without rounding (every axis at step 1), for the rounding cost; null if it finds none. */
function unroundedChoice(cfg: ModelConfig, start: AxisSizes, fixed: PruneAxis[], budget: number, convention: ParamsConvention): { sizes: AxisSizes; params: number } | null {
  const one = { step: 1, multiple: 1, fallback: false };
  const steps: Steps = { num_hidden_layers: one, num_attention_heads: one, hidden_size: one, intermediate_size: one };
  const free = PARAMS_POLICY.filter((p) => !fixed.includes(p.axis));
  const count = (s: AxisSizes) => countIn(paramCount(withSizes(cfg, s)), convention);
  const sizes = solveFrom(start, free, sizesOf(cfg), count, budget, steps);
  return sizes ? { sizes, params: count(sizes) } : null;
}

/**
 * Sizes meeting the budget: axes fixed by the target stay; the free axes of PARAMS_POLICY shrink
 * in order. Depth stops within one layer of the budget (a layer is a coarse step) and the next
 * axis takes the remainder; a width axis takes the largest size under the budget, or its floor
 * when that is not enough, and then whatever the later axes leave of the budget. Widths step by
 * their multiple (policySteps). Refuses a budget the policy cannot reach.
 */
function solveForParams(cfg: ModelConfig, start: AxisSizes, fixed: PruneAxis[], budget: number, convention: ParamsConvention, steps: Steps): AxisSizes {
  const count = (s: AxisSizes) => countIn(paramCount(withSizes(cfg, s)), convention);
  const free = PARAMS_POLICY.filter((p) => !fixed.includes(p.axis));
  const solved = solveFrom(start, free, sizesOf(cfg), count, budget, steps);
  if (solved) return solved;
  const floor = { ...start };
  for (const p of free) floor[p.axis] = Math.min(...gridOf(sizesOf(cfg)[p.axis], start[p.axis], p.minFraction, steps[p.axis].multiple));
  throw planError('--params', PARAMS_POLICY_TEXT, {
    expected: `at most ${fmt(budget)} parameters${convention === 'no-lm-head' ? ' (without the lm_head)' : ''}`,
    found: `at least ${fmt(count(floor))} (${PRUNE_AXES.map((a) => `${a}=${floor[a]}`).join(',')})`,
    hint: 'give the sizes with --target (alone, or together with --params to fix some axes)',
  });
}

function solveFrom(s: AxisSizes, free: readonly { axis: PruneAxis; minFraction: number }[], original: AxisSizes,
  count: (s: AxisSizes) => number, budget: number, steps: Steps): AxisSizes | null {
  if (count(s) <= budget) return s;
  if (free.length === 0) return null;
  const [{ axis, minFraction }, ...rest] = free;
  const vals = gridOf(original[axis], s[axis], minFraction, steps[axis].multiple);     // descending
  const at = (v: number): AxisSizes => ({ ...s, [axis]: v });
  const fits = vals.find((v) => count(at(v)) <= budget);
  if (rest.length === 0) return fits === undefined ? null : at(fits);
  if (axis !== 'num_hidden_layers') {
    if (fits !== undefined) return at(fits);
    const r = solveFrom(at(vals[vals.length - 1]), rest, original, count, budget, steps);
    // the later axis moves in coarse steps (hidden 896 -> 672 on Qwen2.5-0.5B's 14 heads) and
    // may undershoot the budget: this axis takes back what it leaves (the floor always fits)
    return r && { ...r, [axis]: vals.find((v) => count({ ...r, [axis]: v }) <= budget)! };
  }
  // depth: the fewest layers still at or above the budget, then one layer more at a time
  let i = vals.length - 1;
  while (i > 0 && count(at(vals[i])) < budget) i--;
  for (; i < vals.length; i++) {
    const r = solveFrom(at(vals[i]), rest, original, count, budget, steps);
    if (r) return r;
  }
  return null;
}

/** Candidate sizes of one axis, descending: `current`, then the multiples of `step` down to the floor. */
function gridOf(original: number, current: number, minFraction: number, step: number): number[] {
  const lo = Math.max(step, Math.ceil(Math.ceil(original * minFraction) / step) * step);
  const vals = [current];
  for (let v = Math.floor((current - 1) / step) * step; v >= lo; v -= step) vals.push(v);
  return vals;
}

// ---------------------------------------------------------------------------------------------
// selection: which indices each axis keeps

/** Applies the plan's sizes to the scores (checked by the caller with checkScoresMatch). */
export function selectChannels(plan: PrunePlan, s: ImportanceScores): Selection {
  const a = plan.after;
  const layers = selectLayers(s.layers, a.num_hidden_layers, plan.depth);
  const kept = new Set(layers);
  return {
    layers,
    droppedLayers: s.layers.map((_, l) => l).filter((l) => !kept.has(l)),
    hidden: keepTop(s.hidden, a.hidden_size),
    heads: layers.map((l) => selectHeads(s.heads[l], plan.num_key_value_heads, a.num_attention_heads)),
    mlp: layers.map((l) => keepTop(s.mlp[l], a.intermediate_size)),
  };
}

/** The k best indices in importance order; every index in original order when k is all of them. */
export function keepTop(scores: readonly number[], k: number): number[] {
  if (k === scores.length) return scores.map((_, i) => i);
  return argsortDesc(scores).slice(0, k);
}

/**
 * Query heads to keep: the top nH'/nKV of every KV group, ranked within the group, groups in their
 * original order. Group g's heads must stay in slots g*hpg'.. so that HF's GQA mapping (query
 * head h reads KV head h // (nH/nKV)) still pairs them with KV head g.
 */
export function selectHeads(scores: readonly number[], numKvHeads: number, keepHeads: number): number[] {
  const hpg = scores.length / numKvHeads, keep = keepHeads / numKvHeads;
  const out: number[] = [];
  for (let g = 0; g < numKvHeads; g++) {
    const group = scores.slice(g * hpg, (g + 1) * hpg);
    out.push(...keepTop(group, keep).map((i) => g * hpg + i));
  }
  return out;
}

/** Kept layers, ascending. importance: the top-k by BI (ties keep the earlier layer);
 *  contiguous: all but the block of L-k layers with the smallest summed BI (the earliest on ties). */
export function selectLayers(bi: readonly number[], keep: number, mode: DepthMode): number[] {
  const L = bi.length, drop = L - keep;
  if (drop === 0) return bi.map((_, l) => l);
  if (mode === 'importance') return argsortDesc(bi).slice(0, keep).sort((x, y) => x - y);
  let best = 0, bestSum = Infinity;
  for (let s0 = 0; s0 + drop <= L; s0++) {
    let sum = 0;
    for (let l = s0; l < s0 + drop; l++) sum += bi[l];
    if (sum < bestSum) { best = s0; bestSum = sum; }
  }
  return bi.map((_, l) => l).filter((l) => l < best || l >= best + drop);
}
