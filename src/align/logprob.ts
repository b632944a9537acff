// Sequence log-probabilities as a loss head (DPO; docs/dpo.md): per row of a batch,
//   logπ(row) = Σ over the row's valid targets t of log softmax(logits[t-1])[ids[t]]
// a SUM over completion tokens (TRL), computed chunk by chunk from the final norm output like the
// cross-entropy head, never holding [N, V] logits.
//
// A sequence loss L(logπ(rows)) needs every row's sum before any gradient can be written, so the
// head runs twice over the same forward activations:
//   1. rowLogps:          logits chunk -> -logp per token (the fused cross-entropy kernel's loss)
//   2. rowLogpsBackward:  coefficient c_row = dL/dlogπ(row); per token
//                         dL/dlogits = c_row * (onehot - softmax)
//      which is the cross-entropy kernel's gradient (softmax - onehot) times -c_row: the kernel
//      runs on the chunk with dscale 1 and each row is scaled by -c_row. Then d(lnf) flows
//      through the decoder's backward as usual.
// The second pass repeats the lm_head GEMM of each chunk (as the KD head's balancing pass does);
// the kernel is the native one when the addon is built.
import { kernels as K } from '../tensor/ops.ts';
import type { Activations } from '../model/activations.ts';
import type { Batch } from '../model/batch.ts';
import type { ChunkLoss, Decoder } from '../model/decoder.ts';
import { KompresorError } from '../errors.ts';

/** -logp of each valid target into losses (0 elsewhere); the logits chunk is clobbered. */
export function gatherChunk(batch: Batch, V: number, rowLogp: Float64Array): ChunkLoss {
  const T = batch.T;
  return (losses, logits, r0, rows) => {
    const tg = batch.targets.subarray(r0, r0 + rows);
    K.crossEntropyForwardBackward(losses, logits, tg, rows, V, 0);
    for (let i = 0; i < rows; i++) if (tg[i] >= 0) rowLogp[Math.floor((r0 + i) / T)] -= losses[i];
  };
}

/** Writes dlogits = coef[row] * (onehot - softmax) for valid targets, 0 elsewhere. */
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
 * Backward of L(row log-probs) given coef[b] = dL/dlogπ(row b): the second head pass over the
 * forward activations `a` of this batch, then the decoder's backward; ADDS into model.grads.
 */
export function rowLogpsBackward(model: Decoder, batch: Batch, a: Activations, coef: Float64Array): void {
  if (!model.grads) model.zeroGrad();
  model.headLoss(a, batch, true, gatherBackwardChunk(batch, model.cfg.vocabSize, coef));
  model.backward(a, batch);
}

/** Valid targets (completion tokens) per row. */
export function rowTokens(batch: Batch): Int32Array {
  const out = new Int32Array(batch.B);
  for (let n = 0; n < batch.targets.length; n++) if (batch.targets[n] >= 0) out[Math.floor(n / batch.T)]++;
  return out;
}
