// Supervised fine-tuning as an Objective of the shared training loop (spec §1, TRL's SFTTrainer):
// next-token cross-entropy on completion tokens only (the batches' targets are -100 elsewhere,
// see data.ts and sources.ts), as a token mean over the WHOLE accumulated batch:
//
//   loss = Σ over the step's valid targets of -logp / N_items,  N_items = valid targets of all
//   gradAccum micro-batches (TRL's num_items_in_batch)
//
// The trainer sums the micro-batch gradients and scales by 1/gradAccum; so micro-batch k is
// trained on sum_k * gradAccum / N_items (its gradient scale gradAccum / N_items per token), and
// the step's loss and gradient are exactly those of the formula above, however the completion
// tokens are spread over the micro-batches. `beginStep` (called by the trainer with all the
// step's micro-batches) counts N_items. Validation: the token mean over all held-out batches
// (weight = the batch's valid targets).
import { kernels as K } from '../tensor/ops.ts';
import { countTargets, type Batch } from '../model/batch.ts';
import type { ChunkLoss, Decoder } from '../model/decoder.ts';
import type { Objective } from '../train/objective.ts';
import { KompresorError } from '../errors.ts';

export const SFT_OBJECTIVE_NAME = 'sft';

/** Cross-entropy chunks with a fixed gradient scale (instead of 1/count of this micro-batch). */
function scaledCrossEntropy(batch: Batch, V: number, dscale: number): ChunkLoss {
  return (losses, logits, r0, rows) => K.crossEntropyForwardBackward(losses, logits, batch.targets.subarray(r0, r0 + rows), rows, V, dscale);
}

export function sftObjective(): Objective {
  // the step beginStep last saw: its number, micro-batches and valid targets
  let step = -1, accum = 1, items = 0;
  return {
    name: SFT_OBJECTIVE_NAME,
    beginStep(batches, ctx) {
      step = ctx.step;
      accum = batches.length;
      items = batches.reduce((s, b) => s + countTargets(b), 0);
    },
    train(model, batch, ctx) {
      const n = countTargets(batch);
      // without beginStep (a caller driving micro-batches by hand): this micro-batch's own mean
      const scale = ctx.step === step ? (items > 0 ? accum / items : 0) : (n > 0 ? 1 / n : 0);
      const mean = finiteOr(() => model.lossAndBackward(batch, scaledCrossEntropy(batch, model.cfg.vocabSize, scale)));
      return { loss: mean * n * scale, metrics: { completion_tokens: n } };
    },
    evaluate(model, batch) {
      return { loss: finiteOr(() => model.loss(batch)), weight: countTargets(batch) };
    },
  };
}

/** Mean completion-token cross-entropy of a model over batches (the token mean over all of them). */
export function completionLoss(model: Decoder, batches: Batch[]): { loss: number; tokens: number } {
  let sum = 0, tokens = 0;
  for (const b of batches) {
    const n = countTargets(b);
    if (n === 0) continue;
    sum += model.loss(b) * n;
    tokens += n;
  }
  return { loss: tokens > 0 ? sum / tokens : NaN, tokens };
}

/** The decoder refuses a non-finite loss by throwing (where: 'loss'); the trainer wants NaN. */
function finiteOr(f: () => number): number {
  try {
    return f();
  } catch (e) {
    if (e instanceof KompresorError && e.where === 'loss') return NaN;
    throw e;
  }
}
