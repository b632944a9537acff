// The contract between token data and the trainers (train, distill, and later sft/dpo/grpo):
// a source hands out packed batches in a deterministic order and can say exactly where it is,
// so a checkpoint can store that position and a resumed run continues with the very next batch.
import type { Batch } from '../model/batch.ts';

/** JSON-serialisable position of a source; opaque to the trainer. */
export type SourceState = Record<string, unknown>;

export interface BatchSource<TBatch = Batch> {
  /** The next batch: B rows of T tokens, documents packed without attention across them. */
  next(B: number, T: number): TBatch;
  /** Where the source is now (after the last `next`). */
  state(): SourceState;
  /** Continue from a state returned by `state()` of a source over the same data and seed. */
  restore(state: SourceState): void;
  /**
   * Optional: awaited by the trainer before the micro-batches of optimizer step `step` (1-based)
   * are drawn. A source that makes its batches with the model being trained (GRPO rollouts:
   * sampling, then rewards that may be asynchronous) does that work here.
   */
  prepare?(step: number): Promise<void>;
}

export interface EvalSource {
  /** Fixed validation batches (the same every call), at most maxBatches of them. */
  batches(B: number, T: number, maxBatches: number): Batch[];
}
