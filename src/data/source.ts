// The contract between token data and the trainers (train, distill, and later sft/dpo/grpo):
// a source hands out packed batches in a deterministic order and can say exactly where it is,
// so a checkpoint can store that position and a resumed run continues with the very next batch.
import type { Batch } from '../model/batch.ts';

/** JSON-serialisable position of a source; opaque to the trainer. */
export type SourceState = Record<string, unknown>;

export interface BatchSource {
  /** The next batch: B rows of T tokens, documents packed without attention across them. */
  next(B: number, T: number): Batch;
  /** Where the source is now (after the last `next`). */
  state(): SourceState;
  /** Continue from a state returned by `state()` of a source over the same data and seed. */
  restore(state: SourceState): void;
}

export interface EvalSource {
  /** Fixed validation batches (the same every call), at most maxBatches of them. */
  batches(B: number, T: number, maxBatches: number): Batch[];
}
