// What a trainer minimises, as a plug-in: plain training, distillation (a KD head), and later
// SFT/DPO/GRPO each provide an Objective; the loop, the optimizer, checkpoints and metrics are the
// same for all of them (trainer.ts).
//
// Contract of `train`: run forward and backward on ONE micro-batch and ADD d(loss)/d(params) into
// model.grads (allocated and zeroed by the trainer; never zero it here). The gradient is that of
// the returned loss; the trainer averages micro-batches by scaling the sum by 1/accum. Return a
// non-finite loss rather than throwing when the numbers blow up: the trainer turns it into a
// clean stop that names the step and keeps the last good checkpoint.
import type { Decoder } from '../model/decoder.ts';
import type { Batch } from '../model/batch.ts';
import type { Rng } from '../model/sampling.ts';
import { KompresorError } from '../errors.ts';

export interface ObjectiveResult {
  /** The scalar whose gradient was accumulated (train) or that is reported (evaluate). */
  loss: number;
  /** Extra per-batch numbers for metrics.jsonl, e.g. { kl: 0.12 }; averaged like the loss. */
  metrics?: Record<string, number>;
  /**
   * Items the loss is a mean over (tokens, pairs): validation averages its batches weighted by
   * it, so the result is the mean over all items, not a mean of batch means. Default 1.
   */
  weight?: number;
}

export interface ObjectiveContext {
  /** 1-based optimizer step this micro-batch belongs to. */
  step: number;
  /** 0-based index of the micro-batch within the step. */
  micro: number;
  /** The run's generator (checkpointed with the run), for objectives that sample. */
  rng: Rng;
}

/** TBatch: what the run's BatchSource hands out (token rows; GRPO: scored rollouts). */
export interface Objective<TBatch = Batch> {
  /** Short name recorded in state.json (a resumed run must use the same objective). */
  readonly name: string;
  /**
   * Optional: called once per optimizer step with all of its micro-batches, before the first
   * `train` of the step, so an objective can normalise over the whole accumulated batch (SFT's
   * token mean over every micro-batch: TRL's num_items_in_batch).
   */
  beginStep?(batches: TBatch[], ctx: { step: number; rng: Rng }): void;
  train(model: Decoder, batch: TBatch, ctx: ObjectiveContext): ObjectiveResult;
  /** Forward only, on a validation batch. */
  evaluate(model: Decoder, batch: Batch): ObjectiveResult;
}

/** Next-token cross-entropy, mean over the batch's targets: plain (pre)training. */
export const nextTokenCE: Objective = {
  name: 'next_token_ce',
  train: (model, batch) => ({ loss: finiteOrNaN(() => model.lossAndBackward(batch)) }),
  evaluate: (model, batch) => ({ loss: finiteOrNaN(() => model.loss(batch)) }),
};

/**
 * The decoder refuses a non-finite loss by throwing (where: 'loss'); the trainer wants the
 * number, so that one error becomes NaN and every other error passes through.
 */
function finiteOrNaN(f: () => number): number {
  try {
    return f();
  } catch (e) {
    if (e instanceof KompresorError && e.where === 'loss') return NaN;
    throw e;
  }
}
