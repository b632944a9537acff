// The GRPO loss (spec alignment-and-eval.md §3, TRL GRPOTrainer) as the decoder's loss head: the
// per-token clipped surrogate with the k3 KL penalty, its gradient with respect to the token's
// log-probability, and that gradient carried to the logits chunk by chunk. The derivation, the
// clipping cases and the aggregations are in docs/grpo.md.
//
// Per completion token t of sequence i (float64 throughout):
//   lp   = log_softmax(z / T)[y]                 z: the policy's logits, T: the sampling temperature
//   ρ    = exp(lp - lp_old)                      lp_old: the policy at generation time (μ = 1: lp itself)
//   ℓ    = -min(ρ·A, clip(ρ, 1-ε_low, 1+ε_high)·A) + β·k3
//   k3   = exp(lp_ref - lp) - (lp_ref - lp) - 1
// and the loss is Σ w_it ℓ_it over the completion tokens, with the aggregation weights w of
// aggregationWeights (grpo | bnpo | dr_grpo | dapo). Gradients:
//   dℓ/dlp   = -[ρ·A if the unclipped term is the minimum, else 0] + β·(1 - exp(lp_ref - lp))
//   dℓ/dz_j  = dℓ/dlp · (δ_jy - softmax(z / T)_j) / T
import type { ChunkLoss } from '../model/decoder.ts';
import { KompresorError } from '../errors.ts';
import { targetLogprob } from './logprobs.ts';

export const LOSS_TYPES = ['grpo', 'bnpo', 'dr_grpo', 'dapo'] as const;
export type LossType = (typeof LOSS_TYPES)[number];

export interface GrpoLossOptions {
  /** Lower and upper clipping range of the ratio: clip(ρ, 1 - epsilonLow, 1 + epsilonHigh). */
  epsilonLow: number;
  epsilonHigh: number;
  /** Weight of the k3 KL penalty to the reference model (0: no reference). */
  beta: number;
  /** Log-probabilities are of softmax(logits / temperature), the sampling temperature. */
  temperature: number;
}

/** One token's loss and what the metrics need. */
export interface TokenLoss {
  /** ℓ = -min(ρA, clip(ρ)A) + β·k3. */
  loss: number;
  /** dℓ/dlp (lp_old and lp_ref held fixed). */
  dlp: number;
  ratio: number;
  /** ρ < 1 - ε_low with A < 0, and ρ > 1 + ε_high with A > 0: the clipped term is active (TRL's clip_ratio/low, /high). */
  clippedLow: boolean;
  clippedHigh: boolean;
  /** k3 (0 when lpRef is NaN, i.e. β = 0). */
  k3: number;
}

/**
 * The per-token GRPO loss of one completion token in float64. lpOld = lp gives ρ = 1 (μ = 1,
 * TRL's lp_old = lp.detach()); lpRef is ignored when beta = 0.
 */
export function grpoTokenLoss(lp: number, lpOld: number, lpRef: number, A: number, o: GrpoLossOptions): TokenLoss {
  const ratio = Math.exp(lp - lpOld);
  const clipped = Math.min(Math.max(ratio, 1 - o.epsilonLow), 1 + o.epsilonHigh);
  const unclippedTerm = ratio * A, clippedTerm = clipped * A;
  // torch.min splits a tie evenly and clamp passes the gradient inside [lo, hi] (bounds included),
  // so wherever the two terms are equal the gradient is ρA, as when the unclipped one is smaller
  const dobj = unclippedTerm <= clippedTerm ? ratio * A : 0;
  let loss = -Math.min(unclippedTerm, clippedTerm), dlp = 0 - dobj, k3 = 0; // 0 - 0 is +0
  if (o.beta !== 0) {
    const d = lpRef - lp, e = Math.exp(d);
    k3 = e - d - 1;
    loss += o.beta * k3;
    dlp += o.beta * (1 - e);
  }
  return { loss, dlp, ratio, clippedLow: ratio < 1 - o.epsilonLow && A < 0, clippedHigh: ratio > 1 + o.epsilonHigh && A > 0, k3 };
}

// ---------------------------------------------------------------------------------------------
// aggregation

/** What the aggregation weights depend on, for one micro-batch. */
export interface AggregationInput {
  /** Loss tokens of each sequence of the micro-batch (completion mask sums; 0 for masked ones). */
  lengths: number[];
  /** Micro-batches per optimizer step (the trainer averages them). */
  gradAccum: number;
  /** max_new_tokens (dr_grpo's fixed normaliser). */
  maxCompletionLength: number;
  /** Loss tokens in the whole generation batch, all micro-batches of the step (dapo). */
  generationTokens: number;
}

/**
 * The weight w_i of every loss token of sequence i, so that the micro-batch's loss is
 * Σ_i w_i Σ_t ℓ_it and the trainer's mean over gradAccum micro-batches gives TRL's loss:
 *   grpo     1 / (B · max(1, n_i))           mean over sequences of each sequence's token mean
 *   bnpo     1 / max(1, Σ_i n_i)             token mean of the micro-batch
 *   dr_grpo  1 / (B · max_completion_length) a constant normaliser
 *   dapo     GA / max(1, N_gen)              token mean over the whole generation batch (the
 *                                            trainer's 1/GA is undone: TRL divides only by N_gen)
 */
export function aggregationWeights(type: LossType, a: AggregationInput): number[] {
  const B = a.lengths.length;
  switch (type) {
    case 'grpo': return a.lengths.map((n) => 1 / (B * Math.max(1, n)));
    case 'bnpo': {
      const total = a.lengths.reduce((s, n) => s + n, 0);
      return a.lengths.map(() => 1 / Math.max(1, total));
    }
    case 'dr_grpo': return a.lengths.map(() => 1 / (B * a.maxCompletionLength));
    case 'dapo': return a.lengths.map(() => a.gradAccum / Math.max(1, a.generationTokens));
    default: {
      const never: never = type;
      throw new KompresorError({ code: 'impl_error', where: 'aggregationWeights', rule: 'a known loss type', found: String(never) });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// the loss head

/** Per batch position n (= b*T + t): the data the loss of the token at targets[n] needs. */
export interface GrpoTokens {
  /** (N) advantage of the row's sequence at loss positions. */
  advantage: Float64Array;
  /** (N) aggregation weight at loss positions. */
  weight: Float64Array;
  /** (N) log-prob of the policy at generation time; null: μ = 1, ρ = 1 (lp_old = lp detached). */
  lpOld: Float64Array | null;
  /** (N) log-prob of the reference model; null when β = 0. */
  lpRef: Float64Array | null;
}

/** Token-level sums of one pass, for the metrics. */
export interface GrpoStats { tokens: number; clippedLow: number; clippedHigh: number; k3: number; ratio: number }

export function emptyStats(): GrpoStats { return { tokens: 0, clippedLow: 0, clippedHigh: 0, k3: 0, ratio: 0 }; }

/**
 * The GRPO loss as a ChunkLoss over the positions with a target (targets[n] >= 0: a completion
 * token in the loss). Writes losses[r] = w·ℓ / dscale, so that the decoder's mean over targets,
 * dscale·Σ losses, is the weighted sum Σ w·ℓ, and overwrites the chunk's logits with
 * d(Σ w·ℓ)/d(logits) (zero rows where there is no target). Adds token counts into `stats`.
 */
export function grpoChunkLoss(targets: Int32Array, t: GrpoTokens, o: GrpoLossOptions, V: number, stats: GrpoStats): ChunkLoss {
  const invT = 1 / o.temperature;
  return (losses, logits, r0, rows, dscale) => {
    for (let r = 0; r < rows; r++) {
      const n = r0 + r, y = targets[n];
      const z = logits.subarray(r * V, (r + 1) * V);               // (V) this row; becomes dz
      if (y < 0) { losses[r] = 0; z.fill(0); continue; }
      const { lp, lse } = targetLogprob(z, y, o.temperature);
      const tl = grpoTokenLoss(lp, t.lpOld ? t.lpOld[n] : lp, t.lpRef ? t.lpRef[n] : NaN, t.advantage[n], o);
      const w = t.weight[n];
      losses[r] = dscale > 0 ? (w * tl.loss) / dscale : 0;
      stats.tokens++;
      stats.ratio += tl.ratio;
      stats.k3 += tl.k3;
      if (tl.clippedLow) stats.clippedLow++;
      if (tl.clippedHigh) stats.clippedHigh++;
      // in the forward pass this was: lp = z_y / T - lse(z / T); so dlp/dz_j = (δ_jy - p_j) / T
      const g = w * tl.dlp * invT;
      for (let j = 0; j < V; j++) z[j] = -g * Math.exp(z[j] * invT - lse);
      z[y] += g;
    }
  };
}

/** Checks the options; the error names the flag. */
export function checkGrpoLossOptions(o: GrpoLossOptions): GrpoLossOptions {
  const bad = (flag: string, rule: string, v: number) => new KompresorError({ code: 'input_invalid', where: flag, rule, found: String(v) });
  if (!(o.epsilonLow >= 0 && o.epsilonLow < 1)) throw bad('--epsilon', '--epsilon takes a number in [0, 1)', o.epsilonLow);
  if (!(o.epsilonHigh >= 0 && Number.isFinite(o.epsilonHigh))) throw bad('--epsilon-high', '--epsilon-high takes a finite number >= 0', o.epsilonHigh);
  if (!(o.beta >= 0 && Number.isFinite(o.beta))) throw bad('--beta', '--beta takes a finite number >= 0', o.beta);
  if (!(o.temperature > 0 && Number.isFinite(o.temperature))) throw bad('--temperature', 'GRPO samples: --temperature takes a finite number > 0', o.temperature);
  return o;
}
