// Per-token log-probabilities of the targets of a batch, the quantity the alignment losses are
// built from (spec alignment-and-eval.md, conventions): for every row position n with a target
//
//   lp[n] = log_softmax(logits[n] / temperature)[targets[n]]         (TRL selective_log_softmax)
//
// computed chunk by chunk from the decoder's final-norm output, so [N, V] logits are never held.
// Shared by the alignment objectives (GRPO's old and reference log-probs; usable for DPO's sequence
// log-probs as sums of these). Forward only: nothing is written into the gradient arena, and a
// `forwardOnly` Decoder (a frozen reference model) works.
//
// Numerics: each row's log-sum-exp is taken in float64 over the float32 logits (max-shifted), so
// lp is exact to float32 input rounding; the result is float64.
import type { Decoder } from '../model/decoder.ts';
import type { Batch } from '../model/batch.ts';
import { KompresorError } from '../errors.ts';

/**
 * log_softmax(row / temperature)[target] of one row of V logits, float64. Also returns lse, the
 * log-sum-exp of row / temperature, so callers can form softmax(row / T)_j = exp(z_j / T - lse).
 */
export function rowLogprob(row: Float32Array, target: number, temperature: number): { lp: number; lse: number } {
  const V = row.length, invT = 1 / temperature;
  let m = -Infinity;
  for (let j = 0; j < V; j++) if (row[j] > m) m = row[j];
  const ms = m * invT;
  let s = 0;
  for (let j = 0; j < V; j++) s += Math.exp(row[j] * invT - ms);
  const lse = ms + Math.log(s);
  return { lp: row[target] * invT - lse, lse };
}

/**
 * lp[n] for every n = b*T + t of the batch: the log-probability of targets[n] under
 * softmax(logits[n] / temperature); NaN where targets[n] < 0 (no target).
 */
export function tokenLogprobs(model: Decoder, batch: Batch, temperature = 1): Float64Array {
  if (!(temperature > 0 && Number.isFinite(temperature))) {
    throw new KompresorError({ code: 'input_invalid', where: 'tokenLogprobs', rule: 'the temperature must be a finite number > 0', found: String(temperature) });
  }
  const N = batch.B * batch.T, V = model.cfg.vocabSize;
  const out = new Float64Array(N).fill(NaN);
  let any = false;
  for (let n = 0; n < N; n++) if (batch.targets[n] >= 0) { any = true; break; }
  if (!any) return out;
  model.logits(batch, (r0, rows, logits) => {
    for (let r = 0; r < rows; r++) {
      const y = batch.targets[r0 + r];
      if (y >= 0) out[r0 + r] = rowLogprob(logits.subarray(r * V, (r + 1) * V), y, temperature).lp;
    }
  });
  return out;
}
