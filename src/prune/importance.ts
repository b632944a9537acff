// Importance statistics (../shared/specs/minitron.md §1), gathered by a Probe during forward passes
// over the calibration rows, and turned into the scores file of ./scores.ts.
//
// Choices, so the numbers can be recomputed by hand:
//   - A sequence is one calibration row (seqLen tokens), even when it packs several documents:
//     ModelOpt's calibration sequences are packed rows too, and the "batch = L2" aggregation is
//     over the rows it feeds the model (batch size 1, so one row at a time).
//   - The mean over a sequence counts only its valid tokens: a row holds valid[b] real tokens
//     followed by padding, and padding never enters a statistic (padding changes no score).
//   - Per channel c of each observed activation x (N, W), for every row b with n = valid[b] > 0:
//         m[c] = (1/n) Σ_{t<n} |x[b,t,c]|      A[c] += m[c]²          (float64 throughout)
//   - Alongside, per channel c of the same four activations (the inputs of q|k|v, o_proj,
//     gate|up and down_proj), the mean square over every valid token: ms[c] = Σ x[t,c]² / tokens.
//     Export uses it to weight quantization error (docs/gguf.md §quantization); pruning does not.
//   - Block Importance per layer l, for every row b:
//         BI[l] += 1 − (1/n) Σ_{t<n} cos(resid_in[b,t], resid_out[b,t])
//     with cos = a·y / max(‖a‖‖y‖, 1e-8) (torch's cosine_similarity eps), in float64.
//   - Optional 'loss' metric: the mean LM loss (over all valid targets) with layer l's output set
//     to its input, minus the full model's. Layers below l are shared with the full pass, so the
//     skipped passes run from l upward only (L(L−1)/2 extra layer passes, plus L lm_head passes).
import type { ModelConfig } from '../io/hf_config.ts';
import type { Decoder, Probe, ProbeName } from '../model/decoder.ts';
import type { Batch } from '../model/batch.ts';
import { allocateActivations, layerSlice, type Activations } from '../model/activations.ts';
import { BASELINE_BYTES } from '../model/stream_forward.ts';
import { kernels as K } from '../tensor/ops.ts';
import { ensure } from '../errors.ts';
import { calibrationBatch, type CalibrationSet } from './calibration.ts';
import { SCORES_FORMAT, SCORES_VERSION, type CalibrationInfo, type ImportanceScores, type InputMeanSquares, type ScoredShape } from './scores.ts';

export type LayerMetric = 'bi' | 'loss';

export const SCORE_PROBES: readonly ProbeName[] =
  ['resid_in', 'resid_out', 'input_layernorm', 'post_attention_layernorm', 'attn_pre_o', 'mlp_act'];

// ---------------------------------------------------------------------------------------------
// the accumulator

export class Importance implements Probe {
  readonly names: ReadonlySet<ProbeName> = new Set(SCORE_PROBES);
  readonly cfg: ModelConfig;
  /** A[c] per layer for the input_layernorm, post_attention_layernorm, o_proj input and down_proj input. */
  readonly ln1: Float64Array[];   // [L][C]
  readonly ln2: Float64Array[];   // [L][C]
  readonly att: Float64Array[];   // [L][nH*hd]
  readonly act: Float64Array[];   // [L][F]
  /** Σ x² per channel of the same four activations, over every valid token (see sq()). */
  readonly sq1: Float64Array[];   // [L][C]
  readonly sq2: Float64Array[];   // [L][C]
  readonly sqAtt: Float64Array[]; // [L][nH*hd]
  readonly sqAct: Float64Array[]; // [L][F]
  /** Valid tokens seen (the denominator of the mean squares). */
  tokens = 0;
  /** Block Importance, summed over sequences. */
  readonly bi: Float64Array;      // [L]
  private valid: Int32Array | null = null;
  private residIn = new Float32Array(0);  // (N, C) copy of the layer input, for BI
  private readonly sums: Float64Array;    // per-channel scratch of the widest activation

  constructor(cfg: ModelConfig) {
    this.cfg = cfg;
    const L = cfg.numLayers, per = (w: number) => Array.from({ length: L }, () => new Float64Array(w));
    this.ln1 = per(cfg.hiddenSize);
    this.ln2 = per(cfg.hiddenSize);
    this.att = per(cfg.numHeads * cfg.headDim);
    this.act = per(cfg.intermediateSize);
    this.sq1 = per(cfg.hiddenSize);
    this.sq2 = per(cfg.hiddenSize);
    this.sqAtt = per(cfg.numHeads * cfg.headDim);
    this.sqAct = per(cfg.intermediateSize);
    this.bi = new Float64Array(L);
    this.sums = new Float64Array(Math.max(cfg.hiddenSize, cfg.numHeads * cfg.headDim, cfg.intermediateSize));
  }

  /** The next forward pass's row b holds valid[b] real tokens, then padding (null: all valid). */
  setValid(valid: Int32Array | null): void { this.valid = valid; }

  observe(name: ProbeName, layer: number, data: Float32Array, width: number, batch: Batch): void {
    const valid = this.validFor(batch);
    switch (name) {
      case 'resid_in':
        if (this.residIn.length < data.length) this.residIn = new Float32Array(data.length);
        this.residIn.set(data);
        return;
      case 'resid_out':
        this.bi[layer] += blockImportance(this.residIn, data, width, batch.T, valid);
        return;
      case 'input_layernorm': return this.both(this.ln1[layer], this.sq1[layer], data, width, batch, valid, layer);
      case 'post_attention_layernorm': return this.both(this.ln2[layer], this.sq2[layer], data, width, batch, valid);
      case 'attn_pre_o': return this.both(this.att[layer], this.sqAtt[layer], data, width, batch, valid);
      case 'mlp_act': return this.both(this.act[layer], this.sqAct[layer], data, width, batch, valid);
    }
  }

  /** Both statistics of one activation; layer 0's input_layernorm also counts the tokens (once per pass). */
  private both(A: Float64Array, S: Float64Array, data: Float32Array, width: number, batch: Batch, valid: Int32Array, layer = -1): void {
    accumulateMeanAbs(A, data, width, batch.T, valid, this.sums);
    accumulateSquares(S, data, width, batch.T, valid);
    if (layer === 0) for (const n of valid) this.tokens += n;
  }

  /** The mean square of every channel entering each linear layer, per layer (the scores' input_mean_squares). */
  meanSquares(): InputMeanSquares {
    const ms = (S: Float64Array[]) => S.map((v) => Array.from(v, (x) => (this.tokens > 0 ? x / this.tokens : 0)));
    return { qkv: ms(this.sq1), o_proj: ms(this.sqAtt), gate_up: ms(this.sq2), down_proj: ms(this.sqAct) };
  }

  private validFor(batch: Batch): Int32Array {
    const v = this.valid ?? new Int32Array(batch.B).fill(batch.T);
    ensure(v.length === batch.B && v.every((n) => n >= 0 && n <= batch.T), 'Importance',
      () => `valid lengths must be one per row, within [0, ${batch.T}]; got ${v.length} for ${batch.B} rows`);
    return v;
  }

  /** The final scores per the header of ./scores.ts. */
  scores(): Pick<ImportanceScores, 'hidden' | 'heads' | 'mlp' | 'layers'> {
    const { hiddenSize: C, numHeads: nH, headDim: hd } = this.cfg;
    const hidden = new Array<number>(C).fill(0);
    for (const A of [...this.ln1, ...this.ln2]) for (let c = 0; c < C; c++) hidden[c] += Math.sqrt(A[c]);
    const heads = this.att.map((A) => Array.from({ length: nH }, (_, h) => {
      let s = 0;
      for (let c = h * hd; c < (h + 1) * hd; c++) s += A[c];
      return Math.sqrt(s);
    }));
    const mlp = this.act.map((A) => Array.from(A, Math.sqrt));
    return { hidden, heads, mlp, layers: Array.from(this.bi) };
  }
}

/**
 * A[c] += (mean over row b's first valid[b] tokens of |x[b, t, c]|)², for every row.
 * x: (B*T, W) row-major; sum: scratch of at least W.
 */
export function accumulateMeanAbs(A: Float64Array, x: Float32Array, W: number, T: number, valid: Int32Array, sum: Float64Array): void {
  for (let b = 0; b < valid.length; b++) {
    const n = valid[b];
    if (n === 0) continue;
    sum.fill(0, 0, W);
    // four tokens per sweep over `sum`: half the time of one (this loop is the probe's whole cost)
    let t = 0;
    for (; t + 4 <= n; t += 4) {
      const o0 = (b * T + t) * W, o1 = o0 + W, o2 = o1 + W, o3 = o2 + W;
      for (let c = 0; c < W; c++) sum[c] += (Math.abs(x[o0 + c]) + Math.abs(x[o1 + c])) + (Math.abs(x[o2 + c]) + Math.abs(x[o3 + c]));
    }
    for (; t < n; t++) {
      const o = (b * T + t) * W;
      for (let c = 0; c < W; c++) sum[c] += Math.abs(x[o + c]);
    }
    for (let c = 0; c < W; c++) { const m = sum[c] / n; A[c] += m * m; }
  }
}

/** S[c] += Σ over row b's first valid[b] tokens of x[b, t, c]², for every row; x: (B*T, W). */
export function accumulateSquares(S: Float64Array, x: Float32Array, W: number, T: number, valid: Int32Array): void {
  for (let b = 0; b < valid.length; b++) {
    for (let t = 0; t < valid[b]; t++) {
      const o = (b * T + t) * W;
      for (let c = 0; c < W; c++) S[c] += x[o + c] * x[o + c];
    }
  }
}

/** Σ over rows with valid tokens of 1 − mean_t cos(a[b, t], y[b, t]); a, y: (B*T, C). */
export function blockImportance(a: Float32Array, y: Float32Array, C: number, T: number, valid: Int32Array): number {
  let total = 0;
  for (let b = 0; b < valid.length; b++) {
    const n = valid[b];
    if (n === 0) continue;
    let cosSum = 0;
    for (let t = 0; t < n; t++) {
      const o = (b * T + t) * C;
      let ay = 0, aa = 0, yy = 0;
      for (let c = 0; c < C; c++) { const u = a[o + c], v = y[o + c]; ay += u * v; aa += u * u; yy += v * v; }
      cosSum += ay / Math.max(Math.sqrt(aa * yy), 1e-8);
    }
    total += 1 - cosSum / n;
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// the layer-skip loss metric (in memory only: it runs the upper layers again for every l)

export class SkipLoss {
  private full = 0;
  private count = 0;
  private readonly skipped: Float64Array;
  constructor(private readonly L: number) { this.skipped = new Float64Array(L); }

  /** After model.forward(batch): the full loss, then the loss with each layer skipped in turn. */
  add(model: Decoder, a: Activations, batch: Batch): void {
    const { loss, count } = model.headLoss(a, batch, false);
    if (count === 0) return;
    this.full += loss * count;
    this.count += count;
    const N = batch.B * batch.T, C = model.cfg.hiddenSize, L = this.L;
    // descending l: a skipped pass writes resid[l+1..L] only, and later passes need resid[<l]
    for (let l = L - 1; l >= 0; l--) {
      layerSlice(a.buf.resid, l + 1, N * C).set(layerSlice(a.buf.resid, l, N * C));  // layer l = identity
      for (let k = l + 1; k < L; k++) model.layerForward(k, a, batch);
      K.rmsnormForward(a.buf.lnf, a.buf.lnfRstd, layerSlice(a.buf.resid, L, N * C), model.w.lnf, N, C, model.cfg.rmsNormEps);
      this.skipped[l] += model.headLoss(a, batch, false).loss * count;
    }
  }

  /** layers_loss[l] = mean loss with l skipped − mean loss of the full model. */
  deltas(): number[] {
    return Array.from(this.skipped, (s) => (this.count > 0 ? (s - this.full) / this.count : 0));
  }
}

// ---------------------------------------------------------------------------------------------
// running over the calibration set, all weights in memory

/** Memory the Node process, tokenizer and calibration rows take before any tensor (an estimate). */
export { BASELINE_BYTES };
/** Activation arena aimed at per forward pass: big enough for full GEMMs, small beside the weights. */
export const ACTIVATION_TARGET_BYTES = 256 * 2 ** 20;

/** Bytes of the activation arena for B rows of T tokens (every buffer is linear in B*T but the logits chunk). */
export function arenaBytes(cfg: ModelConfig, B: number, T: number): number {
  const one = allocateActivations(cfg, 1, 1).bytes - 4 * cfg.vocabSize;
  return one * B * T + 4 * Math.min(256, B * T) * cfg.vocabSize;
}

/** Rows per forward pass: as many as fit the activation target and the budget left by the weights. */
export function memoryBatchRows(cfg: ModelConfig, samples: number, seqLen: number, weightBytes: number, maxMemory: number): number {
  const room = Math.min(ACTIVATION_TARGET_BYTES, maxMemory - weightBytes - BASELINE_BYTES);
  const perRow = arenaBytes(cfg, 1, seqLen);
  return Math.max(1, Math.min(samples, Math.floor(room / perRow)));
}

export interface ScoreRun {
  imp: Importance;
  layersLoss?: number[];
}

export interface InMemoryOptions {
  batchRows: number;
  layerMetric: LayerMetric;
  /** Called after each forward pass with the rows done so far. */
  onRows?: (done: number) => void;
}

export function scoreInMemory(model: Decoder, set: CalibrationSet, o: InMemoryOptions): ScoreRun {
  const imp = new Importance(model.cfg);
  const skip = o.layerMetric === 'loss' ? new SkipLoss(model.cfg.numLayers) : null;
  for (let r0 = 0; r0 < set.samples; r0 += o.batchRows) {
    const r1 = Math.min(set.samples, r0 + o.batchRows);
    const { batch, valid } = calibrationBatch(set, r0, r1);
    imp.setValid(valid);
    const a = model.forward(batch, imp);
    skip?.add(model, a, batch);
    o.onRows?.(r1);
  }
  model.releaseActivations();
  return { imp, layersLoss: skip?.deltas() };
}

// ---------------------------------------------------------------------------------------------
// the scores file

export function scoredShape(cfg: ModelConfig): ScoredShape {
  return {
    architecture: cfg.architecture, hidden_size: cfg.hiddenSize, num_hidden_layers: cfg.numLayers,
    num_attention_heads: cfg.numHeads, num_key_value_heads: cfg.numKvHeads, head_dim: cfg.headDim,
    intermediate_size: cfg.intermediateSize, vocab_size: cfg.vocabSize, tie_word_embeddings: cfg.tieWordEmbeddings,
  };
}

export function buildScores(run: ScoreRun, calibration: CalibrationInfo): ImportanceScores {
  const s: ImportanceScores = {
    format: SCORES_FORMAT, version: SCORES_VERSION, model: scoredShape(run.imp.cfg), calibration, ...run.imp.scores(),
    input_mean_squares: run.imp.meanSquares(),
  };
  if (run.layersLoss) s.layers_loss = run.layersLoss;
  return s;
}
