// `kompresor teacher-cache`: the teacher's top-k logits over every batch a `kompresor distill` run
// with the same data, seed, budget and batch flags will read, computed with the teacher
// layer-streamed (src/distill/cache_build.ts) and written in the teacher-cache format
// (src/distill/teacher_cache.ts). `distill --teacher-cache` then runs without the teacher in
// memory. The memory plan is checked before the cache folder is created; an interrupted build
// continues where it stopped.
import os from 'node:os';
import fs from 'node:fs';
import nodePath from 'node:path';
import type { Command } from 'commander';
import { KompresorError } from '../errors.ts';
import { openCheckpoint } from '../io/checkpoint.ts';
import { checkCheckpoint } from '../model/load.ts';
import { buildLayout } from '../model/parameters.ts';
import { formatBytes, weightBytes } from '../model/stream_forward.ts';
import { openPackedData } from '../data/packed_source.ts';
import { TeacherCache, teacherChecksum } from '../distill/teacher_cache.ts';
import { buildTeacherCache, distillBatches, microBatches, planCacheBuild, type BatchFlags } from '../distill/cache_build.ts';
import { parseNumber } from './args.ts';
import { progressBar, type Progress } from './progress.ts';
import { parseTokens } from './trainer_flags.ts';
import { parseSize } from './score_command.ts';
import { DISTILL_DEFAULTS } from './distill_command.ts';

export interface TeacherCacheOptions extends BatchFlags {
  teacher: string;
  data: string;
  out: string;
  seed: number;
  topK: number;
  maxMemory: number;
  progress: boolean;
}

export interface TeacherCacheSummary {
  cache: string;
  teacher: string;
  top_k: number;
  /** Distinct batches of the distill run (training micro-batches and validation batches). */
  batches: number;
  written: number;
  already_cached: number;
  tokens: number;
  seconds: number;
  tokens_per_s: number;
  /** Groups of batches carried through the layers together (each layer read once per group). */
  groups: number;
  /** Vocabulary rows of the lm_head read at once (= vocab_size: resident). */
  lm_head_block_rows: number;
  weights_f32_bytes: number;
  max_memory_bytes: number;
  peak_rss_bytes: number;
}

export function teacherCacheCommand(o: TeacherCacheOptions): TeacherCacheSummary {
  const ck = openCheckpoint(o.teacher);
  checkCheckpoint(ck, buildLayout(ck.config));
  const cfg = ck.config;
  const data = openPackedData(o.data, { seed: o.seed, modelVocabSize: cfg.vocabSize });
  try {
    const valid = data.manifest.splits.val.documents > 0 ? data.val : undefined;
    const batchTokens = o.microBatch * o.seqLen;
    const nBatches = microBatches(o) + (valid ? o.evalBatches : 0);
    // the plan refuses a budget too small for one batch before the cache folder exists
    const plan = planCacheBuild(cfg, batchTokens, nBatches * batchTokens, o.topK, o.maxMemory);
    const cache = TeacherCache.open(o.out, { teacher: teacherChecksum(o.teacher), teacherDir: o.teacher, vocabSize: cfg.vocabSize, topK: o.topK });
    // each enumeration opens the train split afresh, at the run's first position
    const batches = function* () {
      const d = openPackedData(o.data, { seed: o.seed, verify: false });
      try { yield* distillBatches(d.train, valid, o); } finally { d.close(); }
    };
    let bar: Progress | null = null, step = 0;
    const t0 = performance.now();
    const r = buildTeacherCache(ck, cache, batches, {
      plan,
      onStart: (groups, L) => { bar = progressBar('teacher-cache', groups * L, 'layers', '{written} batches written', { hidden: !o.progress }); },
      onLayer: (written) => { step++; bar?.update(step, { written }); },
    });
    (bar as Progress | null)?.stop();
    const seconds = (performance.now() - t0) / 1000;
    return {
      cache: o.out, teacher: o.teacher, top_k: o.topK, batches: r.batches, written: r.written, already_cached: r.cached,
      tokens: r.tokens, seconds, tokens_per_s: seconds > 0 ? r.tokens / seconds : 0, groups: r.groups,
      lm_head_block_rows: plan.head!.blockRows, weights_f32_bytes: weightBytes(cfg), max_memory_bytes: o.maxMemory,
      peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
    };
  } finally {
    data.close();
  }
}

export function formatTeacherCacheSummary(s: TeacherCacheSummary): string {
  const fmt = (n: number) => n.toLocaleString('en-US');
  return [
    `teacher cache ${s.cache}: ${fmt(s.batches)} batches of the distill run, ${fmt(s.written)} written now, ${fmt(s.already_cached)} already cached (top-k ${s.top_k || 'all'})`,
    `  ${fmt(s.tokens)} tokens in ${s.seconds.toFixed(2)} s, ${fmt(Math.round(s.tokens_per_s))} tokens/s; ${s.groups} group${s.groups === 1 ? '' : 's'} (each layer read once per group); `
      + `peak RSS ${formatBytes(s.peak_rss_bytes)} of --max-memory ${formatBytes(s.max_memory_bytes)} (float32 weights ${formatBytes(s.weights_f32_bytes)})`,
    `distill with: kompresor distill --teacher ${s.teacher} --teacher-cache ${s.cache} ... (the same --data, budget, batch, --seed and --top-k flags)`,
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// command line

const HELP = `
Runs the teacher over exactly the batches \`kompresor distill\` will read with the same --data,
--steps/--tokens, --micro-batch, --seq-len, --grad-accum, --eval-batches and --seed (training
micro-batches, and the validation batches), and writes their top-K logits into the teacher cache
folder (docs/training.md, "Teacher cache"). The teacher runs layer by layer: one layer's weights
in memory, the hidden states of as many batches as fit --max-memory carried from layer to layer,
the lm_head read by vocabulary blocks when it does not fit either. So a teacher larger than the
machine's memory can teach: \`kompresor distill --teacher-cache CACHE\` with the same flags then
finds every batch cached and never loads it. The cache holds exactly what a live teacher gives
(bit for bit when the lm_head fits the budget). Batches already in the folder are skipped, so an
interrupted build continues where it stopped.

Disk: per token, 8 x K bytes (top-K ids and logits), or 4 x vocab_size bytes with --top-k 0.

Example:
  kompresor teacher-cache --teacher ./Bielik-11B --data data/pl --out cache/bielik --tokens 50M --micro-batch 8 --seq-len 4096 --top-k 1024
  kompresor distill --teacher ./Bielik-11B --student ./pruned --data data/pl --out runs/kd --teacher-cache cache/bielik --tokens 50M --micro-batch 8 --seq-len 4096 --top-k 1024
`;

export function registerTeacherCacheCommand(program: Command): void {
  const d = DISTILL_DEFAULTS;
  program.command('teacher-cache')
    .description('Precompute the teacher\'s top-k logits for a distill run, layer-streamed (a teacher larger than memory), into a --teacher-cache folder.')
    .requiredOption('--teacher <model_dir>', 'the teacher: a Hugging Face model folder')
    .requiredOption('--data <data_dir>', 'the folder the distill run reads (made by `kompresor data prepare`)')
    .requiredOption('--out <cache_dir>', 'the teacher cache folder (new, or one built for this teacher and --top-k)')
    .option('--steps <n>', 'the distill run\'s optimizer steps (or --tokens)')
    .option('--tokens <n>', 'the distill run\'s training tokens; suffixes k, M, B')
    .option('--micro-batch <n>', 'rows per micro-batch, as the distill run', String(d.microBatch))
    .option('--seq-len <n>', 'tokens per row, as the distill run', String(d.seqLen))
    .option('--grad-accum <n>', 'micro-batches per step, as the distill run', String(d.gradAccum))
    .option('--eval-batches <n>', 'validation batches per evaluation, as the distill run', String(d.evalBatches))
    .option('--seed <n>', 'the distill run\'s seed (data order)', String(d.seed))
    .option('--top-k <k>', 'teacher logits kept per token, as the distill run\'s --top-k (0 = all)', '0')
    .option('--max-memory <size>', 'memory budget, e.g. 22GiB (default: 75% of RAM)')
    .option('--json', 'print the summary as JSON (no progress bar)')
    .addHelpText('after', HELP)
    .action((o: Record<string, string | boolean | undefined>) => {
      const int = (key: string, flag: string, min: number) => parseNumber(String(o[key]), flag, { min, integer: true });
      if ((o.steps === undefined) === (o.tokens === undefined)) {
        throw new KompresorError({ code: 'input_invalid', where: '--steps/--tokens', rule: 'give exactly one budget, as the distill run: --steps or --tokens',
          found: o.steps === undefined ? 'neither' : 'both' });
      }
      if (fs.existsSync(String(o.out)) && !fs.statSync(String(o.out)).isDirectory()) {
        throw new KompresorError({ code: 'input_invalid', where: `--out ${String(o.out)}`, rule: 'the teacher cache is a folder', found: 'a file' });
      }
      const s = teacherCacheCommand({
        teacher: String(o.teacher), data: String(o.data), out: nodePath.resolve(String(o.out)),
        steps: o.steps === undefined ? undefined : int('steps', '--steps', 1), tokens: o.tokens === undefined ? undefined : parseTokens(String(o.tokens)),
        microBatch: int('microBatch', '--micro-batch', 1), seqLen: int('seqLen', '--seq-len', 2), gradAccum: int('gradAccum', '--grad-accum', 1),
        evalBatches: int('evalBatches', '--eval-batches', 1), seed: int('seed', '--seed', 0), topK: int('topK', '--top-k', 0),
        maxMemory: o.maxMemory === undefined ? Math.floor(0.75 * os.totalmem()) : parseSize(String(o.maxMemory), '--max-memory'),
        progress: !o.json,
      });
      console.log(o.json ? JSON.stringify(s, null, 2) : formatTeacherCacheSummary(s));
    });
}
