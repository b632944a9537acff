// Next-token training on a token stream held in memory: random windows of T tokens per row, one
// micro-batch per step. This is the minimal, synchronous loop the demo uses, with no run folder;
// each step is the shared trainer's optimizerStep (trainer.ts), so the update, clipping and
// schedule are the ones `kompresor train` uses. Checkpoints, resume and metrics: trainer.ts.
import type { Decoder } from '../model/decoder.ts';
import { batchFromRows, type Batch } from '../model/batch.ts';
import { AdamW, decayGroups, type AdamWConfig } from './optimizer.ts';
import { Rng } from '../model/sampling.ts';
import type { BatchSource, SourceState } from '../data/source.ts';
import { nextTokenCE } from './objective.ts';
import { optimizerStep } from './trainer.ts';
import { KompresorError } from '../errors.ts';

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
  const source = new WindowSource(tokens, o.seed);
  const geometry = { microBatch: o.batchSize, seqLen: o.seqLen, gradAccum: 1, lr: o.lr, minLr: o.minLr, warmup: o.warmup };
  const t0 = performance.now();
  let loss = NaN;
  for (let step = 0; step < o.steps; step++) {
    const r = optimizerStep(model, opt, source, nextTokenCE, geometry, step, o.steps, source.rng);
    if (r.diverged) {
      throw new KompresorError({ code: 'training_diverged', where: `step ${step + 1}`, rule: `the ${r.diverged} must be finite`, found: String(r.diverged === 'loss' ? r.loss : r.gradNorm), hint: 'lower the learning rate' });
    }
    loss = r.loss;
    o.onStep?.({ step: step + 1, loss, lr: r.lr, gradNorm: r.gradNorm, tokens: (step + 1) * o.batchSize * o.seqLen, seconds: (performance.now() - t0) / 1000 });
  }
  return { finalLoss: loss, seconds: (performance.now() - t0) / 1000 };
}

/** Random windows of the token stream as a BatchSource (its state is the generator's). */
class WindowSource implements BatchSource {
  readonly rng: Rng;
  constructor(private tokens: Int32Array, seed: number) { this.rng = new Rng(seed); }
  next(B: number, T: number): Batch { return randomWindows(this.tokens, B, T, this.rng); }
  state(): SourceState { return { rng: this.rng.state }; }
  restore(s: SourceState): void { this.rng.state = s.rng as number; }
}
