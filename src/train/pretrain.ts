// Next-token training on a token stream: random windows of T+0 tokens per row, AdamW with a
// cosine schedule, gradient clipping. This is the minimal loop the demo uses; the full trainer
// (data shards, checkpoints, resume, metrics) builds on the same pieces.
import type { Decoder } from '../model/decoder.ts';
import { batchFromRows, type Batch } from '../model/batch.ts';
import { AdamW, cosineLr, decayGroups, type AdamWConfig } from './optimizer.ts';
import { Rng } from '../model/sampling.ts';

export interface PretrainOptions {
  steps: number;
  batchSize: number;
  seqLen: number;
  lr: number;
  minLr: number;
  warmup: number;
  seed: number;
  optimizer?: Partial<AdamWConfig>;
  /** Called after every step. */
  onStep?: (s: { step: number; loss: number; lr: number; gradNorm: number; tokens: number; seconds: number }) => void;
}

/** A batch of random windows from `tokens` (each row is one document of seqLen tokens). */
export function randomWindows(tokens: Int32Array, B: number, T: number, rng: Rng): Batch {
  const rows: number[][] = [];
  for (let b = 0; b < B; b++) {
    const start = Math.floor(rng.next() * (tokens.length - T));
    rows.push(Array.from(tokens.subarray(start, start + T)));
  }
  return batchFromRows(rows);
}

/** Mean loss over consecutive windows covering `tokens` (at most maxBatches batches). */
export function evalLoss(model: Decoder, tokens: Int32Array, B: number, T: number, maxBatches = 8): number {
  let sum = 0, n = 0;
  for (let start = 0, k = 0; start + B * T <= tokens.length && k < maxBatches; start += B * T, k++) {
    const rows = Array.from({ length: B }, (_, b) => Array.from(tokens.subarray(start + b * T, start + (b + 1) * T)));
    sum += model.loss(batchFromRows(rows));
    n++;
  }
  return n > 0 ? sum / n : NaN;
}

export function pretrain(model: Decoder, tokens: Int32Array, o: PretrainOptions): { finalLoss: number; seconds: number } {
  const opt = new AdamW(model.layout.total, { lr: o.lr, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip: 1.0, ...o.optimizer }, decayGroups(model.layout.slots));
  const rng = new Rng(o.seed);
  const t0 = performance.now();
  let loss = NaN;
  for (let step = 0; step < o.steps; step++) {
    const batch = randomWindows(tokens, o.batchSize, o.seqLen, rng);
    model.zeroGrad();
    loss = model.lossAndBackward(batch);
    const lr = cosineLr(step, o.steps, o.lr, o.minLr, o.warmup);
    const gradNorm = opt.update(model.params, model.grads!, lr);
    o.onStep?.({ step: step + 1, loss, lr, gradNorm, tokens: (step + 1) * o.batchSize * o.seqLen, seconds: (performance.now() - t0) / 1000 });
  }
  return { finalLoss: loss, seconds: (performance.now() - t0) / 1000 };
}
