// The teacher cache built ahead of a distillation run, with the teacher layer-streamed
// (src/model/stream_forward.ts), so that a teacher larger than the memory budget can teach: this is
// how an 11B teacher distils on a 24 GiB machine. `kompresor teacher-cache` enumerates exactly the
// batches `kompresor distill` will read with the same data, seed, budget and batch flags (every
// training micro-batch, and the validation batches, which every evaluation reads again), runs the
// teacher over them in groups whose hidden states fit the budget, and writes each batch's entry in
// the cache format of teacher_cache.ts. `distill --teacher-cache` then finds every batch cached
// and never loads the teacher.
//
// Exactness: each batch runs through the same kernel calls as the live teacher's forward, and the
// lm_head (when resident) on the same chunks of rows, so the entries are the ones a live run
// would have written, bit for bit; with the lm_head read by vocabulary blocks (a tight budget)
// they agree to float32 rounding. Entries already in the folder are skipped, so an interrupted
// build continues where it stopped (each entry is written atomically).
import type { Checkpoint } from '../io/checkpoint.ts';
import type { ModelConfig } from '../io/hf_config.ts';
import type { Batch } from '../model/batch.ts';
import { LOGIT_CHUNK } from '../model/activations.ts';
import { planForward, streamForward, groupsOf, StreamHead, type ForwardPlan } from '../model/stream_forward.ts';
import type { BatchSource, EvalSource } from '../data/source.ts';
import { TRAIN_DEFAULTS, totalSteps, type TrainOptions } from '../train/options.ts';
import fs from 'node:fs';
import { batchKey, entryFromChunks, entryPath, type TeacherCache } from './teacher_cache.ts';

/** What decides which batches a distill run reads. */
export type BatchFlags = Pick<TrainOptions, 'steps' | 'tokens' | 'microBatch' | 'seqLen' | 'gradAccum' | 'evalBatches'>;

/**
 * The batches of a distill run in the order it reads them first: the validation batches (the
 * trainer evaluates before step 1, and every later evaluation reads the same ones), then the
 * gradAccum micro-batches of every step. `train` must be fresh (at the run's first position).
 */
export function* distillBatches(train: BatchSource, valid: EvalSource | undefined, o: BatchFlags): Generator<Batch> {
  if (valid) yield* valid.batches(o.microBatch, o.seqLen, o.evalBatches);
  for (let i = 0, n = microBatches(o); i < n; i++) yield train.next(o.microBatch, o.seqLen);
}

/** Training micro-batches of the run: its steps (given, or from its tokens) x gradAccum. */
export function microBatches(o: BatchFlags): number {
  return totalSteps({ ...TRAIN_DEFAULTS, ...o }) * o.gradAccum;
}

/** Bytes one cache entry of a B x T batch holds in memory (top-k ids and logits, or full rows). */
export function entryBytes(cfg: ModelConfig, tokens: number, topK: number): number {
  const V = cfg.vocabSize;
  return topK === 0 || topK >= V ? tokens * V * 4 : tokens * topK * 8;
}

export const CACHE_HINT = 'raise --max-memory, or lower --micro-batch or --seq-len';

/** The streamed teacher's plan for batches of `batchTokens` tokens; refuses a budget too small for one. */
export function planCacheBuild(cfg: ModelConfig, batchTokens: number, totalTokens: number, topK: number, maxMemory: number): ForwardPlan {
  return planForward(cfg, {
    batchTokens, totalTokens, maxMemory, hint: CACHE_HINT,
    headRows: Math.min(LOGIT_CHUNK, batchTokens),
    // one entry being filled, the top-k scratch row
    extraBytes: entryBytes(cfg, batchTokens, topK) + cfg.vocabSize * 4,
  });
}

export interface BuildResult {
  /** Distinct batches of the run, those written now and those found in the folder already. */
  batches: number;
  written: number;
  cached: number;
  /** Tokens the teacher ran on (written batches only). */
  tokens: number;
  /** Groups of batches the layers were read for. */
  groups: number;
}

export interface BuildOptions {
  plan: ForwardPlan;
  /** Called once before the forward with the groups and layers to go, then after each layer. */
  onStart?: (groups: number, layers: number) => void;
  onLayer?: (written: number) => void;
}

/**
 * Runs the checkpoint's model layer-streamed over every batch of `batches()` not in the cache yet
 * and writes their entries. `batches` is called twice (once to find what is missing, once to run
 * it), so it must enumerate the same batches each time.
 */
export function buildTeacherCache(ck: Checkpoint, cache: TeacherCache, batches: () => Iterable<Batch>, o: BuildOptions): BuildResult {
  const seen = new Set<string>();
  let cached = 0, missing = 0, batchTokens = 0;
  for (const b of batches()) {
    const key = batchKey(b);
    if (seen.has(key)) continue;
    seen.add(key);
    if (cache.has(key)) cached++;
    else { missing++; batchTokens = Math.max(batchTokens, b.B * b.T); }
  }
  const todo = function* (): Generator<Batch> {
    const done = new Set<string>();
    for (const b of batches()) {
      const key = batchKey(b);
      if (!done.has(key) && !cache.has(key)) { done.add(key); yield b; }
    }
  };
  const perGroup = Math.max(1, Math.floor(o.plan.groupTokens / Math.max(1, batchTokens)));
  const groups = Math.ceil(missing / perGroup);
  o.onStart?.(groups, ck.config.numLayers);
  if (missing === 0) return { batches: seen.size, written: 0, cached, tokens: 0, groups: 0 };

  const cfg = ck.config, C = cfg.hiddenSize, V = cfg.vocabSize, k = cache.manifest.top_k === 0 ? V : cache.manifest.top_k;
  const head = new StreamHead(ck, o.plan.head!);
  const rowsPerChunk = o.plan.head!.chunkRows;
  const logits = new Float32Array(rowsPerChunk * V);
  let written = 0, tokens = 0;
  streamForward(ck, groupsOf(todo(), o.plan.groupTokens), {
    onOutput: (b, _n, lnf) => {
      const chunk = (r0: number, rows: number) => {
        head.logits(logits, lnf.subarray(r0 * C, (r0 + rows) * C), rows);
        return logits.subarray(0, rows * V);
      };
      cache.write(batchKey(b), entryFromChunks(chunk, b.B, b.T, V, k, rowsPerChunk));
      written++;
      tokens += b.B * b.T;
    },
    onLayer: () => o.onLayer?.(written),
  });
  return { batches: seen.size, written, cached, tokens, groups };
}

/** Where the first batch of a run missing from the cache is, and how many are missing. */
export interface CacheCoverage { batches: number; missing: number; first: string | null }

/**
 * Checks every batch of `batches` (from distillBatches) against a cache folder by file name only
 * (it may not exist yet: then every batch is missing, and nothing is created).
 */
export function cacheCoverage(dir: string, batches: Iterable<Batch>, o: BatchFlags, validBatches: number): CacheCoverage {
  let n = 0, missing = 0, first: string | null = null;
  for (const b of batches) {
    if (!fs.existsSync(entryPath(dir, batchKey(b)))) {
      missing++;
      if (first === null) {
        const t = n - validBatches;
        first = t < 0 ? `validation batch ${n}` : `micro-batch ${t % o.gradAccum} of step ${Math.floor(t / o.gradAccum) + 1}`;
      }
    }
    n++;
  }
  return { batches: n, missing, first };
}
