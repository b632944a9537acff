// `kompresor distill`: logit distillation of a student (typically a model made by `kompresor
// prune`) from a teacher (the model it was pruned from), on a folder made by `kompresor data
// prepare`, with the shared loop of src/train/trainer.ts and the KD objective of
// src/distill/objective.ts. The run folder, checkpoints, resume, signals and metrics are those of
// `kompresor train`; metrics lines add kl and ce, validation lines report the student's CE as
// their loss. The teacher is loaded once, with a forward-only activation arena; with
// --teacher-cache its logits are cached per batch (src/distill/teacher_cache.ts).
// Registered on the program by registerDistillCommand.
import fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import type { Command } from 'commander';
import { KompresorError } from '../errors.ts';
import { openCheckpoint } from '../io/checkpoint.ts';
import { checkOutDir } from '../io/out_guard.ts';
import { Decoder } from '../model/decoder.ts';
import { loadModel, weightDtypeFor } from '../model/load.ts';
import { buildLayout, storeBytes } from '../model/parameters.ts';
import { openPackedData } from '../data/packed_source.ts';
import { train, type TrainResult } from '../train/trainer.ts';
import { TRAIN_DEFAULTS, type TrainOptions } from '../train/options.ts';
import { kdOptions, type KdOptions } from '../distill/kd_head.ts';
import { kdObjective } from '../distill/objective.ts';
import { TeacherCache, cachedTeacher, liveTeacher, loadTeacher, teacherChecksum, type Teacher } from '../distill/teacher_cache.ts';
import { cacheCoverage, distillBatches } from '../distill/cache_build.ts';
import { weightBytes, forwardArenaBytes, formatBytes, BASELINE_BYTES } from '../model/stream_forward.ts';
import { LOGIT_CHUNK } from '../model/activations.ts';
import type { ModelConfig } from '../io/hf_config.ts';
import { parseNumber } from './args.ts';
import { parseSize } from './score_command.ts';
import { addTrainerFlags, parseTrainerFlags, installStopSignals, exitCodeFor, trainingProgress, describeResult, resumeState, checkSeqLen } from './trainer_flags.ts';

/** ModelOpt's distillation example: lr 1e-4 -> 1e-5 cosine, warmup 50 (spec §3). */
export const DISTILL_DEFAULTS = { ...TRAIN_DEFAULTS, lr: 1e-4, minLr: 1e-5, warmup: 50 };

const DISTILL_HELP = `
Loss (spec §3, docs/kd-loss.md): mean over valid tokens of KL(P_teacher || P_student) of the
logits, temperature 1, no LM loss (Minitron's recipe). Options:
  --temperature T    softmax of logits / T on both sides; --t2 multiplies the KD term by T^2
  --reverse-kl       KL(P_student || P_teacher) instead (worse in Minitron's ablation)
  --top-k K          only the teacher's top-K ids, both sides renormalised over them
  --ce-weight W      add next-token CE: total = CE + KD * stopgrad(CE / KD) / W, i.e. the KD term
                     rescaled to the CE magnitude each micro-batch (ModelOpt kd_loss_scale = 1/W)
Teacher and student must share the vocabulary (and tokenizer).

Run folder (--out): as \`kompresor train\` (checkpoint-<step>/, latest, metrics.jsonl, report/,
final/ = the distilled student as a Hugging Face checkpoint). Step lines of metrics.jsonl carry
loss (the KD objective), kl and ce; validation lines carry loss = the student's next-token CE
(comparable with \`kompresor train\` runs), kl and ce.

Teacher cache (--teacher-cache DIR): one file per batch with the teacher's top-K logits (all
logits without --top-k: 4 x vocab_size bytes per token), keyed by the batch and checked against
the teacher's checksum; a later run on the same data reads them instead of running the teacher
(it loads the teacher only on a miss). Losses are identical with and without the cache. A
teacher larger than --max-memory cannot run live: build the cache first with \`kompresor
teacher-cache\` (layer by layer, with the same --data, budget, batch, --seed and --top-k flags);
the run then checks, before its first step, that every batch it will read is cached, and never
loads the teacher.

Stopping and resuming: Ctrl-C / SIGTERM checkpoint and exit (130/143); --resume RUN_DIR continues
(also after kill -9) with the same losses as an uninterrupted run. Flags given with --resume
(trainer or KD flags) override the saved ones; --teacher, --data and --teacher-cache may point to
moved folders.

Examples:
  kompresor distill --teacher models/base --student models/pruned --data data/corpus --out runs/kd1 --steps 2000 --micro-batch 8 --seq-len 512
  kompresor distill --teacher models/base --student models/pruned --data data/corpus --out runs/kd2 --tokens 50M --top-k 1024 --teacher-cache cache/base
  kompresor distill --resume runs/kd1`;

/** What the run folder records so that `--resume RUN_DIR` alone can rebuild the run. */
interface DistillMeta {
  command: 'distill';
  teacher: string;
  student: string;
  data: string;
  tokenizerFrom: string;
  kd: KdOptions;
  teacherCache: string | null;
}

interface DistillFlags {
  teacher?: string; student?: string; data?: string; out?: string; resume?: string; json?: boolean; teacherCache?: string; maxMemory?: string;
  temperature: string; t2?: boolean; reverseKl?: boolean; topK: string; ceWeight: string;
}

export function registerDistillCommand(program: Command): void {
  const cmd = program.command('distill')
    .description('Recover a pruned model by logit distillation from its teacher on prepared token data: KD loss, AdamW, cosine schedule, resumable checkpoints, metrics and plots.')
    .option('--teacher <model_dir>', 'the teacher: a Hugging Face model folder (usually the unpruned model)')
    .option('--student <model_dir>', 'the student to train (e.g. the output of `kompresor prune`); same vocabulary as the teacher')
    .option('--data <data_dir>', 'a folder made by `kompresor data prepare` with their tokenizer')
    .option('--out <run_dir>', 'the run folder (created; must not hold another run)')
    .option('--temperature <t>', 'KD temperature (both softmaxes of logits / T)', '1')
    .option('--t2', 'multiply the KD term by T^2 (Hinton et al.; ModelOpt does not)')
    .option('--reverse-kl', 'reverse KL, KL(P_student || P_teacher)')
    .option('--top-k <k>', 'teacher top-k logits only, both sides renormalised (0 = the full vocabulary)', '0')
    .option('--ce-weight <w>', 'add next-token CE with the KD term rescaled to its magnitude, KD weight 1/W (0 = KD only)', '0')
    .option('--teacher-cache <dir>', 'cache the teacher\'s (top-k) logits per batch in this folder; later runs read them instead of running the teacher')
    .option('--max-memory <size>', 'memory budget: a teacher that does not fit it is never loaded, so every batch must be in --teacher-cache (default: 75% of RAM)');
  addTrainerFlags(cmd, DISTILL_DEFAULTS);
  cmd.addHelpText('after', DISTILL_HELP)
    .action(async (o: DistillFlags, c: Command) => {
      const maxMemory = o.maxMemory === undefined ? Math.floor(0.75 * os.totalmem()) : parseSize(o.maxMemory, '--max-memory');
      const r = o.resume ? await resumeRun(o, c, maxMemory) : await startRun(o, c, maxMemory);
      if (r.status === 'stopped') process.exitCode = exitCodeFor(r.signal ?? 'SIGINT'); // main() returns it
    });
}

/** KD options from the flags; with `explicitOnly`, only those given on the command line. */
function parseKdFlags(o: DistillFlags, c: Command, explicitOnly = false): Partial<KdOptions> {
  const given = (key: string) => !explicitOnly || c.getOptionValueSource(key) === 'cli';
  const out: Partial<KdOptions> = {};
  if (given('temperature')) out.temperature = parseNumber(o.temperature, '--temperature', { min: Number.MIN_VALUE });
  if (given('t2')) out.scaleT2 = Boolean(o.t2);
  if (given('reverseKl')) out.reverse = Boolean(o.reverseKl);
  if (given('topK')) out.topK = parseNumber(o.topK, '--top-k', { min: 0, integer: true });
  if (given('ceWeight')) {
    const w = parseNumber(o.ceWeight, '--ce-weight', { min: 0 });
    out.lmLoss = w > 0;
    out.kdLossScale = w > 0 ? 1 / w : 1;
  }
  return out;
}

async function startRun(o: DistillFlags, c: Command, maxMemory: number) {
  if (!o.teacher || !o.student || !o.data || !o.out) {
    const missing = (['teacher', 'student', 'data', 'out'] as const).filter((k) => !o[k]).map((k) => `--${k}`);
    throw new KompresorError({ code: 'input_invalid', where: 'kompresor distill', rule: 'a new run needs --teacher, --student, --data and --out', found: `${missing.join(', ')} missing`,
      hint: 'kompresor distill --teacher MODEL_DIR --student PRUNED_DIR --data DATA_DIR --out RUN_DIR --steps N' });
  }
  checkOutDir(o.out, '--out', [o.teacher, o.student, o.data, ...(o.teacherCache ? [o.teacherCache] : [])]);
  const options = { ...DISTILL_DEFAULTS, ...parseTrainerFlags(c) } as TrainOptions;
  const kd = kdOptions(parseKdFlags(o, c));
  checkModelFolder(o.teacher, '--teacher');
  checkModelFolder(o.student, '--student');
  checkSameVocab(o.teacher, o.student);
  const { model, config } = await loadModel(o.student);
  const meta: DistillMeta = {
    command: 'distill', teacher: nodePath.resolve(o.teacher), student: nodePath.resolve(o.student), data: nodePath.resolve(o.data),
    tokenizerFrom: nodePath.resolve(o.student), kd, teacherCache: o.teacherCache ? nodePath.resolve(o.teacherCache) : null,
  };
  return runDistill(o.out, model, config, meta, options, false, false, Boolean(o.json), maxMemory);
}

async function resumeRun(o: DistillFlags, c: Command, maxMemory: number) {
  if (o.student !== undefined || o.out !== undefined) {
    throw new KompresorError({ code: 'input_invalid', where: '--resume', rule: 'a resumed run takes its student and run folder from the checkpoint',
      found: [o.student && `--student ${o.student}`, o.out && `--out ${o.out}`].filter(Boolean).join(', '),
      hint: `run \`kompresor distill --resume ${o.resume}\` alone (--teacher, --data and --teacher-cache may point to moved folders)` });
  }
  const runDir = o.resume!;
  const { dir, state: st } = resumeState(runDir, 'distill');
  const saved = st.meta as unknown as DistillMeta;
  const changes = parseTrainerFlags(c, true);
  const kdChanges = parseKdFlags(o, c, true);
  const meta: DistillMeta = {
    ...saved, kd: kdOptions({ ...saved.kd, ...kdChanges }),
    teacher: o.teacher ? nodePath.resolve(o.teacher) : saved.teacher, data: o.data ? nodePath.resolve(o.data) : saved.data,
    teacherCache: o.teacherCache ? nodePath.resolve(o.teacherCache) : saved.teacherCache,
  };
  checkModelFolder(meta.teacher, '--teacher');
  const ck = openCheckpoint(dir); // headers only: the trainer reads the weights
  checkSameVocab(meta.teacher, dir);
  const model = new Decoder(ck.config);
  const allowChanges = Object.keys(changes).length > 0 || Object.keys(kdChanges).length > 0;
  return runDistill(runDir, model, ck.rawConfig, meta, { ...st.options, ...changes }, true, allowChanges, Boolean(o.json), maxMemory);
}

async function runDistill(runDir: string, student: Decoder, config: Record<string, unknown>, meta: DistillMeta, options: TrainOptions,
  resume: boolean, allowOptionChanges: boolean, json: boolean, maxMemory: number): Promise<TrainResult & { signal: NodeJS.Signals | null }> {
  const data = openPackedData(meta.data, { seed: options.seed, modelVocabSize: student.cfg.vocabSize });
  try { checkSeqLen(options.seqLen, student.cfg.maxPositionEmbeddings, '--seq-len', data.manifest.splits.train.tokens); } catch (e) { data.close(); throw e; }
  let cache: TeacherCache | null = null;
  let teacher: Teacher;
  try {
    if (meta.teacherCache) {
      // a teacher that cannot be loaded: the whole run must be cached, checked before the folder is touched
      const fits = teacherFits(meta.teacher, student.cfg, options, maxMemory);
      if (!fits.ok) checkFullyCached(meta.teacherCache, meta, options, fits.why);
      cache = TeacherCache.open(meta.teacherCache, { teacher: teacherChecksum(meta.teacher), teacherDir: meta.teacher, vocabSize: student.cfg.vocabSize, topK: meta.kd.topK });
      teacher = cachedTeacher(cache, () => loadTeacher(meta.teacher));
    } else {
      const fits = teacherFits(meta.teacher, student.cfg, options, maxMemory);
      if (!fits.ok) {
        throw new KompresorError({ code: 'input_invalid', where: `--teacher ${meta.teacher}`, rule: 'a live teacher must fit --max-memory beside the student',
          found: fits.why, hint: 'build its logits layer by layer first with `kompresor teacher-cache` (the same --data, budget, batch, --seed and --top-k flags) and pass --teacher-cache, or raise --max-memory' });
      }
      teacher = liveTeacher(loadTeacher(meta.teacher));
    }
  } catch (e) {
    data.close();
    throw e;
  }
  const signals = installStopSignals();
  const startStep = resume ? resumeState(runDir, 'distill').state.step : 0;
  const progress = trainingProgress('distill', options, startStep, json);
  const resumeCommand = `kompresor distill --resume ${runDir}`;
  let r: TrainResult;
  try {
    r = await train({
      runDir, model: student, config, tokenizerFrom: meta.tokenizerFrom, train: data.train,
      valid: data.manifest.splits.val.documents > 0 ? data.val : undefined, objective: kdObjective(teacher, meta.kd),
      options, resume, allowOptionChanges, meta: meta as unknown as Record<string, unknown>, resumeCommand,
      shouldStop: () => signals.received() !== null, onStart: progress.onStart, onStep: progress.onStep,
    });
  } finally {
    progress.stop();
    signals.dispose();
    data.close();
  }
  const cacheStats = cache ? { dir: cache.dir, hits: cache.hits, misses: cache.misses } : null;
  if (json) console.log(JSON.stringify({ ...r, run_dir: runDir, teacher_cache: cacheStats }));
  else {
    console.log(describeResult(r, runDir, resumeCommand));
    if (cacheStats) console.log(`teacher cache: ${cacheStats.hits} batches read, ${cacheStats.misses} written (${cacheStats.dir})`);
  }
  return { ...r, signal: signals.received() };
}

/**
 * Whether the teacher can run live beside the student (an estimate): the process baseline, the
 * student's weights, gradients and AdamW moments (16 bytes per parameter), the teacher's float32
 * weights and its forward-only arena for one micro-batch.
 */
function teacherFits(teacherDir: string, student: ModelConfig, o: TrainOptions, maxMemory: number): { ok: boolean; why: string } {
  const N = o.microBatch * o.seqLen;
  // the teacher's weights stay as stored (loadTeacher: a bf16 teacher holds 2 bytes per weight)
  const ck = openCheckpoint(teacherDir), teacher = ck.config, layout = buildLayout(teacher), held = weightDtypeFor(ck, layout, 'auto');
  const teacherBytes = storeBytes(layout, held);
  const need = BASELINE_BYTES + 4 * weightBytes(student) + teacherBytes + forwardArenaBytes(teacher, N) + Math.min(LOGIT_CHUNK, N) * teacher.vocabSize * 4;
  return { ok: need <= maxMemory, why: `the teacher's ${held === 'f32' ? 'float32' : held} weights (${formatBytes(teacherBytes)}) with the student's training state need ${formatBytes(need)}, above --max-memory ${formatBytes(maxMemory)}` };
}

/** A teacher that cannot be loaded: every batch the run reads must be cached, checked before step 1. */
function checkFullyCached(dir: string, meta: DistillMeta, o: TrainOptions, why: string): void {
  const d = openPackedData(meta.data, { seed: o.seed, verify: false });
  let cov;
  try {
    const valid = d.manifest.splits.val.documents > 0 ? d.val : undefined;
    const nValid = valid ? valid.batches(o.microBatch, o.seqLen, o.evalBatches).length : 0;
    cov = cacheCoverage(dir, distillBatches(d.train, valid, o), o, nValid);
  } finally {
    d.close();
  }
  if (cov.missing === 0) return;
  const budget = o.steps !== undefined ? `--steps ${o.steps}` : `--tokens ${o.tokens}`;
  throw new KompresorError({ code: 'input_invalid', where: `--teacher-cache ${dir}`,
    rule: `every batch of the run must be cached when the teacher cannot be loaded (${why})`,
    expected: `${cov.batches} batches cached`, found: `${cov.missing} missing, the first ${cov.first}`,
    hint: `build them with \`kompresor teacher-cache --teacher ${meta.teacher} --data ${meta.data} --out ${dir} ${budget} --micro-batch ${o.microBatch} --seq-len ${o.seqLen} --grad-accum ${o.gradAccum} --eval-batches ${o.evalBatches} --seed ${o.seed} --top-k ${meta.kd.topK}\`, or raise --max-memory` });
}

function checkModelFolder(dir: string, flag: string): void {
  if (!fs.existsSync(nodePath.join(dir, 'config.json'))) {
    throw new KompresorError({ code: 'file_not_found', where: `${flag} ${dir}`, rule: 'the model folder must exist and hold config.json and safetensors weights',
      found: fs.existsSync(dir) ? 'no config.json in it' : 'no such folder', hint: 'pass a local Hugging Face model folder' });
  }
}

/** KD compares the two models' logits token by token: their vocabularies must be the same. */
function checkSameVocab(teacherDir: string, studentDir: string): void {
  const t = openCheckpoint(teacherDir).config.vocabSize, s = openCheckpoint(studentDir).config.vocabSize;
  if (t !== s) {
    throw new KompresorError({ code: 'shape_mismatch', where: `--teacher ${teacherDir}`, rule: 'the teacher and the student must share the vocabulary (KD compares their logits token by token)',
      expected: `vocab_size ${s} (the student's)`, found: `vocab_size ${t}`, hint: 'distil from the model the student was pruned from, or another model with the same tokenizer' });
  }
}
