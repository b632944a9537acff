// Shared by the trainer tests and the child process they kill: the tiny fixture model, a
// learnable synthetic corpus for its 64-token vocabulary, and small run options.
import path from 'node:path';
import { loadModel } from '../src/model/load.ts';
import { MemorySource, memoryEvalSource, concatDocuments } from '../src/data/memory_source.ts';
import { TRAIN_DEFAULTS, type TrainOptions } from '../src/train/options.ts';
import type { TrainRun } from '../src/train/trainer.ts';
import { rng } from './helpers.ts';

export const TINY = path.join(import.meta.dirname, 'fixtures/llama_tied_gqa');

/** Documents of 4..40 tokens where each token mostly follows from the previous one (learnable). */
export function syntheticDocs(n: number, seed: number, vocab = 64): number[][] {
  const r = rng(seed);
  return Array.from({ length: n }, () => {
    const len = 4 + Math.floor(r() * 37);
    const doc = [Math.floor(r() * vocab)];
    while (doc.length < len) doc.push(r() < 0.9 ? (doc[doc.length - 1] * 5 + 3) % vocab : Math.floor(r() * vocab));
    return doc;
  });
}

export function tinyOptions(over: Partial<TrainOptions> = {}): TrainOptions {
  return { ...TRAIN_DEFAULTS, steps: 6, microBatch: 2, seqLen: 16, gradAccum: 2, lr: 3e-3, minLr: 3e-4, warmup: 2,
    saveEvery: 3, evalEvery: 3, evalBatches: 2, seed: 7, ...over };
}

/** A complete TrainRun over the fixture model and the synthetic corpus (a fresh model each call). */
export async function tinyRun(runDir: string, over: Partial<TrainRun> = {}, opts: Partial<TrainOptions> = {}): Promise<TrainRun> {
  const { model, config } = await loadModel(TINY);
  const train = MemorySource.fromDocuments(syntheticDocs(200, 1), { seed: 11 });
  const v = concatDocuments(syntheticDocs(20, 2));
  return { runDir, model, config, tokenizerFrom: TINY, train, valid: memoryEvalSource(v.tokens, v.starts), options: tinyOptions(opts), ...over };
}

/** The child process's run (trainer_child.ts): long enough to be interrupted mid-way. */
export const CHILD_OPTIONS: Partial<TrainOptions> = { steps: 12, saveEvery: 2, evalEvery: 4 };
