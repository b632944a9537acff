// Log-probabilities of a batch's target tokens under the decoder: the one quantity every alignment
// objective is built from (spec alignment-and-eval.md, conventions), in one module so that GRPO
// and DPO read it the same way. With z the logits of the row position n that predicts targets[n]
// (targets < 0: no target) and T a temperature:
//
//   per token     lp[n]   = log_softmax(z[n] / T)[targets[n]]       (TRL selective_log_softmax)
//   per sequence  logπ(b) = Σ over row b's targets of lp[n], T = 1  (a SUM over completion tokens, TRL)
//
// Both are computed chunk by chunk from the decoder's final-norm output (lnf), like the
// cross-entropy head, so [N, V] logits are never held. Two numeric routes, kept on purpose:
//   - per token (GRPO's lp_old and lp_ref; its loss head's lp): targetLogprob, float64 over the
//     float32 logits (max-shifted log-sum-exp). The loss head recomputes lp with the same
//     function, so lp_old of an unchanged policy equals its lp and the ratio is exactly 1.
//     Forward only: nothing is written into the gradient arena, and a `forwardOnly` Decoder (a
//     frozen reference model) works.
//   - per sequence (DPO's policy and reference): the fused cross-entropy kernel (native when the
//     addon is built), because a sequence loss L(logπ(rows)) has, with c_row = dL/dlogπ(row),
//       dL/dlogits[n] = c_row · (onehot - softmax)
//     the kernel's gradient (softmax - onehot) times -c_row. Every row's sum is needed before
//     any c_row is known, so the head runs twice over the same forward activations:
//       1. rowLogps:          logits chunk -> -logp per token (kernel, dscale 0), summed per row
//       2. rowLogpsBackward:  the kernel again (dscale 1), each row scaled by -c_row; then d(lnf)
//                             flows through the decoder's backward as usual
//     The second pass repeats the lm_head GEMM of each chunk (as the KD head's balancing pass
//     does). docs/dpo.md has the derivation, docs/grpo.md the per-token loss.
import { kernels as K } from '../tensor/ops.ts';
import type { Activations } from '../model/activations.ts';
import type { Batch } from '../model/batch.ts';
import type { ChunkLoss, Decoder } from '../model/decoder.ts';
import { KompresorError } from '../errors.ts';

// ---------------------------------------------------------------------------------------------
// one logits row

/**
 * log_softmax(row / temperature)[target] of one row of V logits, float64. Also returns lse, the
 * log-sum-exp of row / temperature, so callers can form softmax(row / T)_j = exp(z_j / T - lse).
 */
export function targetLogprob(row: Float32Array, target: number, temperature: number): { lp: number; lse: number } {
  const V = row.length, invT = 1 / temperature;                    // row: (V)
  let m = -Infinity;
  for (let j = 0; j < V; j++) if (row[j] > m) m = row[j];
  const ms = m * invT;
  let s = 0;
  for (let j = 0; j < V; j++) s += Math.exp(row[j] * invT - ms);
  const lse = ms + Math.log(s);
  return { lp: row[target] * invT - lse, lse };
}

// ---------------------------------------------------------------------------------------------
// per token (GRPO), forward only

/**
 * lp[n] for every n = b*T + t of the batch (Float64Array of N = B·T): the log-probability of
 * targets[n] under softmax(logits[n] / temperature); NaN where targets[n] < 0 (no target).
 */
export function tokenLogprobs(model: Decoder, batch: Batch, temperature = 1): Float64Array {
  if (!(temperature > 0 && Number.isFinite(temperature))) {
    throw new KompresorError({ code: 'input_invalid', where: 'tokenLogprobs', rule: 'the temperature must be a finite number > 0', found: String(temperature) });
  }
  const N = batch.B * batch.T, V = model.cfg.vocabSize;
  const out = new Float64Array(N).fill(NaN);                       // (N)
  let any = false;
  for (let n = 0; n < N; n++) if (batch.targets[n] >= 0) { any = true; break; }
  if (!any) return out;
  model.logits(batch, (r0, rows, logits) => {                      // logits: (rows, V)
    for (let r = 0; r < rows; r++) {
      const y = batch.targets[r0 + r];
      if (y >= 0) out[r0 + r] = targetLogprob(logits.subarray(r * V, (r + 1) * V), y, temperature).lp;
    }
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// per sequence (DPO), forward and backward

/** -logp of each valid target into losses (rows), 0 elsewhere, and minus their sum into rowLogp (B); the logits chunk (rows, V) is clobbered. */
export function gatherChunk(batch: Batch, V: number, rowLogp: Float64Array): ChunkLoss {
  const T = batch.T;
  return (losses, logits, r0, rows) => {
    const tg = batch.targets.subarray(r0, r0 + rows);                // (rows)
    K.crossEntropyForwardBackward(losses, logits, tg, rows, V, 0);
    for (let i = 0; i < rows; i++) if (tg[i] >= 0) rowLogp[Math.floor((r0 + i) / T)] -= losses[i];
  };
}

/** Writes dlogits (rows, V) = coef[row] · (onehot - softmax) for valid targets, 0 elsewhere; coef: (B). */
export function gatherBackwardChunk(batch: Batch, V: number, coef: Float64Array): ChunkLoss {
  const T = batch.T;
  return (losses, logits, r0, rows) => {
    K.crossEntropyForwardBackward(losses, logits, batch.targets.subarray(r0, r0 + rows), rows, V, 1);
    for (let i = 0; i < rows; i++) {
      const c = -coef[Math.floor((r0 + i) / T)], row = logits.subarray(i * V, (i + 1) * V);
      if (c === 0) row.fill(0);
      else for (let j = 0; j < V; j++) row[j] *= c;
    }
  };
}

/**
 * The model's sequence log-prob of each row (Float64Array of B; rows without valid targets get
 * 0). Runs the forward pass unless the caller's activations `a` for this batch are given.
 * NaN for every row when the numbers are not finite (the trainer then stops cleanly).
 */
export function rowLogps(model: Decoder, batch: Batch, a: Activations = model.forward(batch)): Float64Array {
  const out = new Float64Array(batch.B);
  try {
    model.headLoss(a, batch, false, gatherChunk(batch, model.cfg.vocabSize, out));
  } catch (e) {
    if (e instanceof KompresorError && e.where === 'loss') return out.fill(NaN);
    throw e;
  }
  return out;
}

/**
 * Backward of L(row log-probs) given coef[b] = dL/dlogπ(row b) (B): the second head pass over
 * the forward activations `a` of this batch, then the decoder's backward; ADDS into model.grads.
 */
export function rowLogpsBackward(model: Decoder, batch: Batch, a: Activations, coef: Float64Array): void {
  if (!model.grads) model.zeroGrad();
  model.headLoss(a, batch, true, gatherBackwardChunk(batch, model.cfg.vocabSize, coef));
  model.backward(a, batch);
}

/** Valid targets (completion tokens) per row (B). */
export function rowTokens(batch: Batch): Int32Array {
  const out = new Int32Array(batch.B);
  for (let n = 0; n < batch.targets.length; n++) if (batch.targets[n] >= 0) out[Math.floor(n / batch.T)]++;
  return out;
}
