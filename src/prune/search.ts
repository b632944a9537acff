// Parameter-budget architecture search (Minitron's NAS mode, ../shared/specs/minitron.md §2):
//
//   1. sizes per axis: multiples of a divisor (plus the original size), no smaller than
//      (1 − max pruning) × the original — 40% for the width axes, 20% for depth by default
//      (ModelOpt's max_width_pruning / max_depth_pruning); widths in multiples of --round-to (64,
//      with a smaller power of two on a width too small for it: rounding.ts), heads in multiples
//      of the KV heads;
//   2. the Cartesian product of the four axes without the combinations whose hidden_size is not
//      a multiple of num_attention_heads (transformers 5 refuses them), each candidate with its
//      exact parameter count (paramCount, a tied head counted once; --params-convention);
//   3. the candidates within the budget, largest first (ties: more layers, then a wider hidden
//      size, more heads, a wider MLP), the first top_k (10);
//   4. each candidate pruned from the saved scores into a temporary folder (apply.ts: the very
//      checkpoint `kompresor prune --target` would write), loaded, and scored by its next-token
//      loss on fixed validation batches — optionally after S steps of logit distillation from
//      the original model (P1 retrained every candidate before ranking; ModelOpt does not);
//   5. ranked by that loss (lowest first); the winner's folder becomes OUT_DIR, with
//      search_report.json (every candidate) beside its prune_report.json, and report/ (charts
//      and tables, as `kompresor prune` writes them).
//
// Validation and distillation data come from a folder made by `kompresor data prepare`: its
// validation split, read in stored order, gives the same batches to every candidate; the distill
// steps read its train split from the same starting position for every candidate. Memory: the
// original model (only while its loss is measured, or for the whole search as the teacher when
// distilling, with a forward-only activation arena) plus one candidate, its gradients and AdamW
// state. Deviations from ModelOpt are in docs/pruning.md §9.
import fs from 'node:fs';
import nodePath from 'node:path';
import { KompresorError, ensure } from '../errors.ts';
import { openCheckpoint } from '../io/checkpoint.ts';
import { countIn, paramCount, type ModelConfig, type ParamsConvention } from '../io/hf_config.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { checkOutDir as checkOutFolder, makeDirs } from '../io/out_guard.ts';
import { loadModel } from '../model/load.ts';
import type { Decoder } from '../model/decoder.ts';
import type { Batch } from '../model/batch.ts';
import { Rng } from '../model/sampling.ts';
import { openPackedData } from '../data/packed_source.ts';
import type { BatchSource } from '../data/source.ts';
import { AdamW, ADAMW_DEFAULTS } from '../train/optimizer.ts';
import { optimizerStep } from '../train/trainer.ts';
import { kdObjective } from '../distill/objective.ts';
import { liveTeacher, loadTeacher } from '../distill/teacher_cache.ts';
import { checkScoresMatch, loadScores, type ImportanceScores } from './scores.ts';
import { budgetOf, makePlan, scoredShapeOf, sizesOf, withSizes, PRUNE_AXES, type AxisSizes, type DepthMode, type PruneAxis } from './plan.ts';
import { prune, type PruneReport } from './apply.ts';
import { writePruneReport } from '../report/pruning_report.ts';
import { DEFAULT_ROUND_TO, fallbackNote, parseRoundTo, widthStep } from './rounding.ts';

export const SEARCH_REPORT_FILE = 'search_report.json';
export const SEARCH_REPORT_FORMAT = 'kompresor-search-report';

/** ModelOpt's NAS defaults (max_width_pruning, max_depth_pruning, top_k). */
export const SEARCH_DEFAULTS = { maxWidthPruning: 0.4, maxDepthPruning: 0.2, topK: 10 } as const;

const fmt = (n: number) => n.toLocaleString('en-US');

// ---------------------------------------------------------------------------------------------
// the search space

/**
 * The default step of an axis. Layers: 1. Heads: num_key_value_heads (every KV group keeps the
 * same number of query heads). hidden_size and intermediate_size: --round-to (64, ModelOpt's
 * divisor), or on a width with no multiple of it within the bound, the largest power of two below
 * it that has one (rounding.ts widthStep).
 */
export function defaultDivisor(axis: PruneAxis, original: number, numKvHeads: number,
  roundTo = DEFAULT_ROUND_TO, maxPruning: number = SEARCH_DEFAULTS.maxWidthPruning): number {
  if (axis === 'num_hidden_layers') return 1;
  if (axis === 'num_attention_heads') return numKvHeads;
  return widthStep(original, (1 - maxPruning) * original, roundTo).step;
}

export interface DivisorOptions { roundTo: number; maxWidthPruning: number }
const DIVISOR_DEFAULTS: DivisorOptions = { roundTo: DEFAULT_ROUND_TO, maxWidthPruning: SEARCH_DEFAULTS.maxWidthPruning };

/** Divisors of every axis: the defaults, replaced by `over` where given (validated). */
export function divisorsFor(cfg: ModelConfig, over: Partial<AxisSizes> = {}, d: DivisorOptions = DIVISOR_DEFAULTS): AxisSizes {
  const out = {} as AxisSizes;
  for (const a of PRUNE_AXES) {
    const v = over[a];
    if (v === undefined) { out[a] = defaultDivisor(a, sizesOf(cfg)[a], cfg.numKvHeads, d.roundTo, d.maxWidthPruning); continue; }
    if (!Number.isSafeInteger(v) || v < 1) {
      throw new KompresorError({ code: 'input_invalid', where: `--divisors ${a}`, rule: 'a divisor is a positive integer', found: JSON.stringify(v) });
    }
    if (a === 'num_attention_heads' && v % cfg.numKvHeads !== 0) {
      throw new KompresorError({ code: 'input_invalid', where: '--divisors num_attention_heads',
        rule: `the heads divisor (${v}) must be a multiple of num_key_value_heads (${cfg.numKvHeads})`,
        hint: 'key/value heads are never pruned, so every KV group keeps the same number of query heads' });
    }
    out[a] = v;
  }
  return out;
}

/** The width axes whose default step fell back below --round-to, one line each. */
export function divisorNotes(cfg: ModelConfig, over: Partial<AxisSizes>, d: DivisorOptions): string[] {
  const notes: string[] = [];
  for (const a of ['hidden_size', 'intermediate_size'] as const) {
    const original = sizesOf(cfg)[a];
    const s = widthStep(original, (1 - d.maxWidthPruning) * original, d.roundTo);
    if (over[a] === undefined && s.fallback) notes.push(fallbackNote(a, original, s, d.roundTo));
  }
  return notes;
}

/** Sizes of one axis, descending: the original, then the multiples of `divisor` >= (1 − maxPruning) × original. */
export function axisChoices(original: number, divisor: number, maxPruning: number): number[] {
  const lo = (1 - maxPruning) * original;
  const out = [original];
  for (let v = Math.floor((original - 1) / divisor) * divisor; v > 0 && v >= lo - 1e-9; v -= divisor) out.push(v);
  return out;
}

export interface SpaceOptions {
  /** Absolute parameter budget. */
  budget: number;
  maxWidthPruning: number;
  maxDepthPruning: number;
  divisors: AxisSizes;
  topK: number;
  /** How the budget and each candidate are counted (default 'total'). */
  convention?: ParamsConvention;
}

export interface Candidate {
  sizes: AxisSizes;
  params: number;
}

export interface SearchSpace {
  /** Allowed sizes per axis, descending. */
  choices: Record<PruneAxis, number[]>;
  /** Size of the Cartesian product, those left out because hidden_size is not a multiple of
   *  num_attention_heads, and how many of the rest fit the budget. */
  enumerated: number;
  notDivisible: number;
  withinBudget: number;
  /** The first top_k within the budget, largest first. */
  candidates: Candidate[];
}

/** Enumerates, filters and orders the candidates; refuses a budget no candidate meets. */
export function searchSpace(cfg: ModelConfig, o: SpaceOptions): SearchSpace {
  checkRatio('--max-width-pruning', o.maxWidthPruning);
  checkRatio('--max-depth-pruning', o.maxDepthPruning);
  const original = sizesOf(cfg);
  const choices = {} as Record<PruneAxis, number[]>;
  for (const a of PRUNE_AXES) {
    choices[a] = axisChoices(original[a], o.divisors[a], a === 'num_hidden_layers' ? o.maxDepthPruning : o.maxWidthPruning);
  }
  const convention = o.convention ?? 'total';
  const count = (s: AxisSizes) => countIn(paramCount(withSizes(cfg, s)), convention);
  const fits: Candidate[] = [];
  let enumerated = 0, notDivisible = 0, smallest: Candidate | null = null;
  for (const L of choices.num_hidden_layers) {
    for (const H of choices.hidden_size) {
      for (const nH of choices.num_attention_heads) {
        for (const F of choices.intermediate_size) {
          enumerated++;
          // the original's own pair is kept even if it breaks the rule (it is the model as it is)
          if (H % nH !== 0 && !(H === original.hidden_size && nH === original.num_attention_heads)) { notDivisible++; continue; }
          const sizes = { num_hidden_layers: L, hidden_size: H, num_attention_heads: nH, intermediate_size: F };
          const params = count(sizes);
          if (params <= o.budget) fits.push({ sizes, params });
          if (smallest === null || params < smallest.params) smallest = { sizes, params };
        }
      }
    }
  }
  if (fits.length === 0) throw unreachable(cfg, o, smallest, count);
  fits.sort(byParamsDesc);
  return { choices, enumerated, notDivisible, withinBudget: fits.length, candidates: fits.slice(0, o.topK) };
}

/** Params descending; ties: more layers, then wider hidden, more heads, wider MLP (deterministic). */
function byParamsDesc(a: Candidate, b: Candidate): number {
  if (a.params !== b.params) return b.params - a.params;
  for (const ax of PRUNE_AXES) if (a.sizes[ax] !== b.sizes[ax]) return b.sizes[ax] - a.sizes[ax];
  return 0;
}

function checkRatio(flag: string, v: number): void {
  if (!(Number.isFinite(v) && v >= 0 && v < 1)) {
    throw new KompresorError({ code: 'input_invalid', where: flag, rule: `${flag} is the largest share of an axis that may be pruned, in [0, 1)`, found: String(v) });
  }
}

function unreachable(cfg: ModelConfig, o: SpaceOptions, smallest: Candidate | null, count: (s: AxisSizes) => number): KompresorError {
  const floor = smallest?.sizes ?? sizesOf(cfg);
  return new KompresorError({
    code: 'invalid_prune_plan', where: '--params',
    rule: `the search prunes at most ${pct(o.maxWidthPruning)} of each width axis and ${pct(o.maxDepthPruning)} of the layers`,
    expected: `at most ${fmt(o.budget)} parameters${o.convention === 'no-lm-head' ? ' (without the lm_head)' : ''}`,
    found: `the smallest candidate has ${fmt(count(floor))} (${PRUNE_AXES.map((a) => `${a}=${floor[a]}`).join(',')}; the original has ${fmt(count(sizesOf(cfg)))})`,
    hint: 'raise --params, or allow more pruning with --max-width-pruning / --max-depth-pruning',
  });
}

const pct = (x: number) => `${Math.round(x * 1000) / 10}%`;

// ---------------------------------------------------------------------------------------------
// scoring a candidate

/** Mean next-token loss over every valid target of the batches (token-weighted), and the target count. */
export function validationLoss(model: Decoder, batches: readonly Batch[]): { loss: number; tokens: number } {
  let sum = 0, tokens = 0;
  for (const b of batches) {
    const r = model.headLoss(model.forward(b), b, false);
    sum += r.loss * r.count;
    tokens += r.count;
  }
  model.releaseActivations();
  return { loss: tokens > 0 ? sum / tokens : NaN, tokens };
}

export interface DistillSettings {
  steps: number;
  /** Peak learning rate; cosine to lr/10 over the steps, no warmup. */
  lr: number;
  microBatch: number;
  seqLen: number;
  seed: number;
}

/**
 * S optimizer steps of logit distillation on the student with the trainer's optimizerStep and the
 * distill command's Objective (src/distill/objective.ts: forward KL(P_teacher || P_student), T = 1,
 * no LM loss; spec §3); AdamW with the trainer's defaults but the learning rate, cosine to lr/10.
 * Returns the KD loss of each step; stops at a non-finite one (that update is not applied).
 */
export function distillSteps(student: Decoder, teacher: Decoder, source: BatchSource, d: DistillSettings): { kd: number[]; diverged: boolean } {
  const opt = new AdamW(student.layout, { ...ADAMW_DEFAULTS, lr: d.lr });
  const objective = kdObjective(liveTeacher(teacher)), rng = new Rng(d.seed), kd: number[] = [];
  const o = { microBatch: d.microBatch, seqLen: d.seqLen, gradAccum: 1, lr: d.lr, minLr: d.lr / 10, warmup: 0 };
  for (let s = 0; s < d.steps; s++) {
    const r = optimizerStep(student, opt, source, objective, o, s, d.steps, rng);
    if (r.diverged) return { kd, diverged: true };
    kd.push(r.loss);
  }
  student.grads = null;   // the gradient arena is not needed for evaluation
  student.dw = null;
  return { kd, diverged: false };
}

/** Rank of each row (1 = best): lowest loss first, NaN last, ties to the earlier (larger) candidate. */
export function rankByLoss(losses: readonly number[]): number[] {
  const key = (i: number) => (Number.isNaN(losses[i]) ? Infinity : losses[i]);
  const order = losses.map((_, i) => i).sort((a, b) => (key(a) - key(b)) || (a - b));
  const rank = new Array<number>(losses.length);
  order.forEach((i, r) => { rank[i] = r + 1; });
  return rank;
}

// ---------------------------------------------------------------------------------------------
// the search

export interface SearchOptions {
  modelDir: string;
  scoresPath: string;
  /** --params: an absolute count (> 1) or a fraction of the original (0 < p <= 1). */
  params: number;
  /** A folder made by `kompresor data prepare` (validation split; train split for distillation). */
  dataDir: string;
  outDir: string;
  topK: number;
  maxWidthPruning: number;
  maxDepthPruning: number;
  /** Divisors replacing the defaults (defaultDivisor) on the axes given. */
  divisors?: Partial<AxisSizes>;
  /** Pruned widths are multiples of this by default (64; a smaller power of two on a tiny width). */
  roundTo?: number;
  /** How --params and every candidate are counted (default 'total'). */
  paramsConvention?: ParamsConvention;
  depth: DepthMode;
  /** Validation tokens (rounded up to whole batches of microBatch x seqLen; fewer if the split is smaller). */
  valTokens: number;
  seqLen: number;
  microBatch: number;
  distillSteps: number;
  distillLr: number;
  seed: number;
  /** false: no OUT_DIR/report/ (the charts and tables `kompresor prune` writes); default true. */
  report?: boolean;
  /** Once the candidates are known, before the first is pruned. */
  onStart?: (space: SearchSpace, budget: number, divisors: AxisSizes) => void;
  /** After each candidate: candidates done, their total, the row just measured. */
  onCandidate?: (done: number, total: number, row: CandidateRow) => void;
}

export interface CandidateRow {
  /** 1-based, in candidate order (parameters descending). */
  candidate: number;
  sizes: AxisSizes;
  params: number;
  /** Share of the original parameter count. */
  fraction: number;
  loss_pruned: number;
  /** After the distill steps; null without them. */
  loss_distilled: number | null;
  /** KD loss of each distill step (training batches). */
  distill_kd: number[];
  distill_diverged: boolean;
  /** 1 = the winner; filled in after every candidate is measured. */
  rank: number;
  seconds: number;
}

export interface SearchReport {
  format: typeof SEARCH_REPORT_FORMAT;
  version: 1;
  architecture: string;
  depth: DepthMode;
  budget: number;
  /** How budget, original.params and every candidate's params are counted. */
  params_convention: ParamsConvention;
  original: { sizes: AxisSizes; params: number; loss: number };
  bounds: { max_width_pruning: number; max_depth_pruning: number };
  divisors: AxisSizes;
  /** --round-to; the fallbacks taken; the budget the largest candidate leaves unused (what the grid costs). */
  rounding: { round_to: number; notes: string[]; budget_unused: number };
  choices: Record<PruneAxis, number[]>;
  enumerated: number;
  /** Combinations left out because hidden_size is not a multiple of num_attention_heads. */
  not_divisible: number;
  within_budget: number;
  top_k: number;
  validation: { data: string; micro_batch: number; seq_len: number; batches: number; tokens: number };
  distill: { steps: number; lr: number; min_lr: number; micro_batch: number; seq_len: number; objective: string } | null;
  ranked_by: 'loss_pruned' | 'loss_distilled';
  candidates: CandidateRow[];
  /** The winner's candidate number; its checkpoint (as pruned, before any distill step) is OUT_DIR. */
  winner: number;
  files: string[];
  seconds: number;
}

/** Runs the whole search; refuses everything it can before the first candidate is pruned. */
export async function search(o: SearchOptions): Promise<SearchReport> {
  const t0 = performance.now();
  const ck = openCheckpoint(o.modelDir);
  const cfg = ck.config;
  const scores = loadScores(o.scoresPath);
  checkScoresMatch(scores, scoredShapeOf(cfg), o.scoresPath);
  checkOutDir(ck.dir, o.outDir, [o.scoresPath, o.dataDir]);
  checkShape(cfg, o);
  const convention = o.paramsConvention ?? 'total', roundTo = parseRoundTo(o.roundTo);
  const total = countIn(paramCount(cfg), convention);
  const budget = budgetOf(o.params, total);
  const dOpts = { roundTo, maxWidthPruning: o.maxWidthPruning };
  const divisors = divisorsFor(cfg, o.divisors, dOpts);
  const space = searchSpace(cfg, { budget, maxWidthPruning: o.maxWidthPruning, maxDepthPruning: o.maxDepthPruning, divisors, topK: o.topK, convention });
  const planOf = (c: Candidate) => makePlan(cfg, { target: c.sizes, depth: o.depth, roundTo, paramsConvention: convention });
  for (const c of space.candidates) planOf(c);  // every plan valid up front

  const data = openPackedData(o.dataDir, { seed: o.seed, modelVocabSize: cfg.vocabSize });
  let work: string | null = null;
  try {
    o.onStart?.(space, budget, divisors);
    // candidates are written beside OUT_DIR, so the winner's folder becomes OUT_DIR by a rename
    const parent = nodePath.dirname(nodePath.resolve(o.outDir));
    makeDirs(parent);
    work = fs.mkdtempSync(nodePath.join(parent, `.${nodePath.basename(o.outDir)}.search-`));
    const valid = data.val.batches(o.microBatch, o.seqLen, Math.max(1, Math.ceil(o.valTokens / (o.microBatch * o.seqLen))));
    const trainStart = data.train.state();
    const { originalLoss, teacher } = measureOriginal(o, valid);
    const ctx: Ctx = { o, scores, cfg, valid, teacher, train: data.train, trainStart, total, planOf };
    const rows: CandidateRow[] = [];
    let best: { key: number; dir: string; candidate: number; pruned: PruneReport } | null = null;
    for (const [i, c] of space.candidates.entries()) {
      const dir = nodePath.join(work, `candidate-${i + 1}`);
      const { row, pruned } = await measureCandidate(ctx, i + 1, c, dir);
      rows.push(row);
      const key = rankKey(row);
      if (best === null || key < best.key) {
        if (best) fs.rmSync(best.dir, { recursive: true, force: true });
        best = { key, dir, candidate: i + 1, pruned };
      } else {
        fs.rmSync(dir, { recursive: true, force: true });
      }
      o.onCandidate?.(i + 1, space.candidates.length, row);
    }
    const ranks = rankByLoss(rows.map(rankKey));
    rows.forEach((r, i) => { r.rank = ranks[i]; });
    ensure(best !== null && ranks[best.candidate - 1] === 1, 'search', () => 'the kept folder must be the rank-1 candidate');
    if (o.report !== false) {
      writePruneReport(nodePath.join(best.dir, 'report'), scores, best.pruned, {
        title: `Pruning ${nodePath.basename(nodePath.resolve(o.modelDir))}: the search winner (candidate ${best.candidate} of ${rows.length})`,
        links: [{ label: 'search_report.json', href: `../${SEARCH_REPORT_FILE}` }, { label: 'prune_report.json', href: '../prune_report.json' },
          { label: 'config.json', href: '../config.json' }],
      });
    }
    const files = moveWinner(best.dir, o.outDir);
    const report: SearchReport = {
      format: SEARCH_REPORT_FORMAT, version: 1, architecture: cfg.architecture, depth: o.depth, budget, params_convention: convention,
      original: { sizes: sizesOf(cfg), params: total, loss: originalLoss.loss },
      bounds: { max_width_pruning: o.maxWidthPruning, max_depth_pruning: o.maxDepthPruning },
      divisors, rounding: { round_to: roundTo, notes: divisorNotes(cfg, o.divisors ?? {}, dOpts), budget_unused: budget - space.candidates[0].params },
      choices: space.choices, enumerated: space.enumerated, not_divisible: space.notDivisible, within_budget: space.withinBudget, top_k: o.topK,
      validation: { data: o.dataDir, micro_batch: o.microBatch, seq_len: o.seqLen, batches: valid.length, tokens: originalLoss.tokens },
      distill: o.distillSteps > 0
        ? { steps: o.distillSteps, lr: o.distillLr, min_lr: o.distillLr / 10, micro_batch: o.microBatch, seq_len: o.seqLen, objective: 'forward KL(teacher || student), T = 1, no LM loss' }
        : null,
      ranked_by: o.distillSteps > 0 ? 'loss_distilled' : 'loss_pruned',
      candidates: rows, winner: best.candidate, files: [...files, SEARCH_REPORT_FILE], seconds: 0,
    };
    report.seconds = (performance.now() - t0) / 1000;
    writeFileAtomic(nodePath.join(o.outDir, SEARCH_REPORT_FILE), JSON.stringify(report, null, 2) + '\n');
    return report;
  } finally {
    data.close();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  }
}

interface Ctx {
  o: SearchOptions;
  scores: ImportanceScores;
  cfg: ModelConfig;
  valid: Batch[];
  teacher: Decoder | null;
  train: BatchSource;
  trainStart: ReturnType<BatchSource['state']>;
  total: number;
  planOf: (c: Candidate) => ReturnType<typeof makePlan>;
}

/**
 * The original model's validation loss; the model itself is kept only as the distillation teacher.
 * Loaded as a teacher (forward-only activation arena: one layer's buffers).
 */
function measureOriginal(o: SearchOptions, valid: Batch[]): { originalLoss: { loss: number; tokens: number }; teacher: Decoder | null } {
  const model = loadTeacher(o.modelDir);
  return { originalLoss: validationLoss(model, valid), teacher: o.distillSteps > 0 ? model : null };
}

/** Prunes one candidate into `dir`, loads it, measures it (and distils it briefly, then measures again). */
async function measureCandidate(ctx: Ctx, n: number, c: Candidate, dir: string): Promise<{ row: CandidateRow; pruned: PruneReport }> {
  const t0 = performance.now();
  const { o } = ctx;
  const pruned = prune(o.modelDir, ctx.planOf(c), ctx.scores, dir, { scoresPath: o.scoresPath });
  const { model } = await loadModel(dir);
  const before = validationLoss(model, ctx.valid).loss;
  let distilled: number | null = null, kd: number[] = [], diverged = false;
  if (ctx.teacher) {
    ctx.train.restore(ctx.trainStart);   // every candidate sees the same training batches
    ({ kd, diverged } = distillSteps(model, ctx.teacher, ctx.train, { steps: o.distillSteps, lr: o.distillLr, microBatch: o.microBatch, seqLen: o.seqLen, seed: o.seed }));
    distilled = validationLoss(model, ctx.valid).loss;
  }
  const row: CandidateRow = {
    candidate: n, sizes: c.sizes, params: c.params, fraction: c.params / ctx.total, loss_pruned: before, loss_distilled: distilled,
    distill_kd: kd, distill_diverged: diverged, rank: 0, seconds: (performance.now() - t0) / 1000,
  };
  return { row, pruned };
}

function rankKey(r: CandidateRow): number {
  const v = r.loss_distilled ?? r.loss_pruned;
  return Number.isNaN(v) ? Infinity : v;
}

// ---------------------------------------------------------------------------------------------
// folders

/** OUT_DIR must be new or an empty folder, and on no input (the shared output guard). */
function checkOutDir(modelDir: string, outDir: string, inputs: string[]): void {
  checkOutFolder(outDir, '--out', [modelDir, ...inputs], { mustBeEmpty: true });
}

function checkShape(cfg: ModelConfig, o: SearchOptions): void {
  const int = (flag: string, v: number, min: number) => {
    if (!Number.isSafeInteger(v) || v < min) throw new KompresorError({ code: 'input_invalid', where: flag, rule: `${flag} takes an integer >= ${min}`, found: String(v) });
  };
  int('--top-k', o.topK, 1);
  int('--seq-len', o.seqLen, 2);
  int('--micro-batch', o.microBatch, 1);
  int('--val-tokens', o.valTokens, 1);
  int('--distill-steps', o.distillSteps, 0);
  if (o.seqLen > cfg.maxPositionEmbeddings) {
    throw new KompresorError({ code: 'input_invalid', where: '--seq-len', rule: 'validation rows must fit the model\'s context',
      expected: `at most max_position_embeddings = ${cfg.maxPositionEmbeddings}`, found: String(o.seqLen) });
  }
  if (!(o.distillLr > 0 && Number.isFinite(o.distillLr))) {
    throw new KompresorError({ code: 'input_invalid', where: '--distill-lr', rule: '--distill-lr takes a number > 0', found: String(o.distillLr) });
  }
}

/** Moves the winner's folder to OUT_DIR (a rename: the work folder sits beside it). */
function moveWinner(dir: string, outDir: string): string[] {
  const out = nodePath.resolve(outDir);
  if (fs.existsSync(out)) fs.rmdirSync(out);   // checked empty up front
  fs.renameSync(dir, out);
  return fs.readdirSync(out).sort();
}
