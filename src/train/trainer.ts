// The training loop every trainer shares (train, distill, later sft/dpo/grpo). What is minimised
// is a pluggable Objective (objective.ts; default next-token cross-entropy); the rest is here:
//
//   for each step: zero the gradient arena; run `gradAccum` micro-batches of microBatch x seqLen
//   through objective.train (each adds its gradient); scale the sum by 1/gradAccum (the mean of
//   the micro-batch losses); stop cleanly if the loss or gradient norm is not finite; AdamW with
//   clipping at the cosine learning rate of the step; log a metrics line; evaluate, checkpoint
//   and honour a stop request when due.
//
// Checkpoints (run_checkpoint.ts) hold everything the next step depends on: weights, AdamW m/v
// and step, the data-source position, the run's RNG, the options and the metrics-log position.
// So a resumed run takes exactly the steps the uninterrupted run would have taken: with the same
// kernels on the same machine its per-step losses are bitwise equal (docs/training.md).
//
// The loop is async to yield to the event loop between steps, so SIGINT/SIGTERM handlers can run
// and set `shouldStop`, and to await a source's `prepare(step)` (sources that make their batches
// with the model, such as GRPO rollouts scored by possibly asynchronous rewards) and a run's own
// `evaluate`. Limits: one process, one writer per run folder.
import fs from 'node:fs';
import nodePath from 'node:path';
import type { Decoder } from '../model/decoder.ts';
import type { Batch } from '../model/batch.ts';
import type { BatchSource, EvalSource } from '../data/source.ts';
import { AdamW, cosineLr } from './optimizer.ts';
import { Rng } from '../model/sampling.ts';
import { saveCheckpoint } from '../io/checkpoint.ts';
import { KompresorError } from '../errors.ts';
import { nextTokenCE, type Objective, type ObjectiveResult } from './objective.ts';
import { type TrainOptions, validateTrainOptions, totalSteps, tokensPerStep, firstDifference, memoryOptions } from './options.ts';
import { stateMemory, type StateMemory } from './memory.ts';
import { frozenTensors } from '../model/freeze.ts';
import { MetricsLog, type MetricsLine } from './metrics.ts';
import { writeTrainingReport } from './report.ts';
import { machineFingerprint } from '../tensor/machine.ts';
import {
  writeRunCheckpoint, latestCheckpoint, listCheckpoints, readTrainState, readWeightsInto, readOptimizerInto,
  fsyncDir, STATE_FORMAT, STATE_VERSION, type TrainState, type CheckpointFileHook,
} from './run_checkpoint.ts';

/** TBatch: what `train` hands out and `objective` consumes (token rows by default). */
export interface TrainRun<TBatch = Batch> {
  runDir: string;
  model: Decoder;
  /** The HF config.json written with every checkpoint and with the final model. */
  config: Record<string, unknown>;
  /** Folder whose tokenizer files are copied into RUN_DIR/final/. */
  tokenizerFrom?: string;
  train: BatchSource<TBatch>;
  valid?: EvalSource;
  /** Required when TBatch is not Batch; default next-token cross-entropy. */
  objective?: Objective<TBatch>;
  /**
   * A validation of its own instead of `objective.evaluate` over `valid` (GRPO: greedy decoding
   * of held-out prompts and their rewards). Run on the same cadence; its loss is the line's loss.
   */
  evaluate?: (model: Decoder, step: number) => Promise<ObjectiveResult>;
  options: TrainOptions;
  /** Continue from the run folder's latest checkpoint (weights are loaded into `model`). */
  resume?: boolean;
  /** On resume, accept options that differ from the saved ones (the CLI: flags given explicitly). */
  allowOptionChanges?: boolean;
  /** Stored in state.json for rebuilding the run on resume (model path, data dir, ...). */
  meta?: Record<string, unknown>;
  /** The command a user runs to resume, quoted in messages. */
  resumeCommand?: string;
  /** Polled after every step; true = checkpoint now and return with status 'stopped'. */
  shouldStop?: () => boolean;
  /** Called once before the first step with what the training state costs. */
  onStart?: (memory: StateMemory) => void;
  onStep?: (line: MetricsLine) => void;
  onEval?: (line: MetricsLine) => void;
  /** Test seam, see run_checkpoint.ts. */
  onCheckpointFile?: CheckpointFileHook;
}

export interface TrainResult {
  status: 'finished' | 'stopped';
  step: number;
  totalSteps: number;
  tokens: number;
  /** Wall time of the whole run, summed over sessions. */
  seconds: number;
  /** Steps taken by this call (0 when resuming a finished run). */
  sessionSteps: number;
  sessionSeconds: number;
  checkpoint: string;
  /** RUN_DIR/final: the trained model as a standard HF checkpoint (finished runs only). */
  final?: string;
  /** Training loss of the last step taken (NaN if none) and the last validation loss. */
  loss: number;
  validLoss?: number;
  /** What the training state costs (bytes/parameter, activations): see src/train/memory.ts. */
  memory: StateMemory;
}

/** The mutable part of a run: what a checkpoint saves. */
interface Loop {
  step: number;
  tokens: number;
  seconds: number;
  rng: Rng;
  log: MetricsLog;
  lastSaved: number;
  checkpoint: string;
  loss: number;
  validLoss?: number;
}

// ---------------------------------------------------------------------------------------------
// the loop

export async function train<TBatch = Batch>(run: TrainRun<TBatch>): Promise<TrainResult> {
  const o = validateTrainOptions(run.options);
  const objective = run.objective ?? (nextTokenCE as Objective<unknown> as Objective<TBatch>);
  const model = run.model;
  const mem = memoryOptions(o);
  // frozen tensors get no gradients and no moments; recompute keeps one layer's activations
  model.freeze(frozenTensors(model.cfg, mem.freeze));
  model.recompute = mem.recompute;
  const opt = new AdamW(model.layout, { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay, clip: o.clip },
    { state: mem.optimState, trainable: model.gradLayout, seed: o.seed });
  const memory = stateMemory(model.cfg, { ...mem, microBatch: o.microBatch, seqLen: o.seqLen });
  const s = run.resume ? resumeLoop(run, o, objective, opt) : freshLoop(run, o);
  const total = totalSteps(o);
  const t0 = performance.now(), seconds0 = s.seconds, step0 = s.step;
  const elapsed = () => seconds0 + (performance.now() - t0) / 1000;
  const canEvaluate = run.valid !== undefined || run.evaluate !== undefined;
  const evaluate = async () => { s.validLoss = await evaluateRun(run, o, objective, s); };
  const save = () => {
    s.seconds = elapsed();
    s.checkpoint = writeRunCheckpoint(run.runDir, { model, config: run.config, opt, state: stateOf(run, o, objective, s) }, run.onCheckpointFile);
    s.lastSaved = s.step;
    writeTrainingReport(run.runDir, nodePath.basename(nodePath.resolve(run.runDir)));
  };
  run.onStart?.(memory);
  try {
    if (s.step === 0 && canEvaluate) await evaluate();
    while (s.step < total) {
      const tStep = performance.now();
      await run.train.prepare?.(s.step + 1);
      const r = optimizerStep(model, opt, run.train, objective, o, s.step, total, s.rng);
      if (r.diverged) throw diverged(run, s, r.diverged, r.diverged === 'loss' ? r.loss : r.gradNorm);
      s.step++;
      s.tokens += tokensPerStep(o);
      s.loss = r.loss;
      const dt = (performance.now() - tStep) / 1000;
      // the objective's extras first: they cannot overwrite the loop's own keys
      const line: MetricsLine = { ...r.metrics, step: s.step, tokens: s.tokens, loss: r.loss, lr: r.lr, grad_norm: r.gradNorm, tokens_per_s: tokensPerStep(o) / dt, seconds: elapsed() };
      s.log.append(line);
      run.onStep?.(line);
      const last = s.step === total;
      if (canEvaluate && (last || (o.evalEvery > 0 && s.step % o.evalEvery === 0))) await evaluate();
      const stop = !last && run.shouldStop?.() === true;
      if (last || stop || (o.saveEvery > 0 && s.step % o.saveEvery === 0)) save();
      if (stop) return result('stopped');
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (s.lastSaved !== s.step) save();
    return result('finished', writeFinal(run));
  } finally {
    s.log.close();
  }

  function result(status: TrainResult['status'], final?: string): TrainResult {
    return { status, step: s.step, totalSteps: total, tokens: s.tokens, seconds: s.seconds, sessionSteps: s.step - step0,
      sessionSeconds: (performance.now() - t0) / 1000, checkpoint: s.checkpoint, final, loss: s.loss, validLoss: s.validLoss, memory };
  }
}

export interface StepResult extends ObjectiveResult {
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Set when the loss or the gradient norm was not finite: the update was NOT applied. */
  diverged?: 'loss' | 'gradient norm';
}

/**
 * Optimizer step `step` (0-based) of `total`: the accumulated gradient, then AdamW (with
 * clipping) at the cosine learning rate of the step, unless the numbers are not finite.
 */
export function optimizerStep<TBatch>(model: Decoder, opt: AdamW, source: BatchSource<TBatch>, objective: Objective<TBatch>,
  o: Pick<TrainOptions, 'microBatch' | 'seqLen' | 'gradAccum' | 'lr' | 'minLr' | 'warmup'>, step: number, total: number, rng: Rng): StepResult {
  const r = accumulateGradients(model, source, objective, o, { step: step + 1, rng });
  const lr = cosineLr(step, total, o.lr, o.minLr, o.warmup);
  if (!Number.isFinite(r.loss)) return { ...r, lr, gradNorm: NaN, diverged: 'loss' };
  const gradNorm = AdamW.gradNorm(model.grads!);
  if (!Number.isFinite(gradNorm)) return { ...r, lr, gradNorm, diverged: 'gradient norm' };
  opt.update(model.params, model.grads!, lr);
  return { ...r, lr, gradNorm };
}

/**
 * One optimizer step's gradient: gradAccum micro-batches through the objective, summed into the
 * (zeroed) gradient arena and scaled by 1/gradAccum. Returns the mean loss and mean extras; stops
 * early on a non-finite loss (the step will not be applied).
 */
export function accumulateGradients<TBatch>(model: Decoder, source: BatchSource<TBatch>, objective: Objective<TBatch>,
  o: Pick<TrainOptions, 'microBatch' | 'seqLen' | 'gradAccum'>, ctx: { step: number; rng: Rng }): ObjectiveResult {
  model.zeroGrad();
  let loss = 0;
  const sums: Record<string, number> = {};
  // the step's micro-batches are drawn first (in the order drawing them one by one would take),
  // so an objective can see the whole accumulated batch before its first backward (SFT's mean)
  const batches = Array.from({ length: o.gradAccum }, () => source.next(o.microBatch, o.seqLen));
  objective.beginStep?.(batches, ctx);
  for (let k = 0; k < o.gradAccum; k++) {
    const r = objective.train(model, batches[k], { step: ctx.step, micro: k, rng: ctx.rng });
    if (!Number.isFinite(r.loss)) return { loss: r.loss };
    loss += r.loss;
    for (const [key, v] of Object.entries(r.metrics ?? {})) sums[key] = (sums[key] ?? 0) + v;
  }
  const A = o.gradAccum;
  if (A > 1) {
    const inv = 1 / A;
    for (const g of model.grads!.arrays) for (let i = 0; i < g.length; i++) g[i] *= inv;
  }
  return { loss: loss / A, metrics: Object.fromEntries(Object.entries(sums).map(([key, v]) => [key, v / A])) };
}

/**
 * Mean objective loss and extras over the validation batches (or the run's own `evaluate`);
 * logged with split "validation".
 */
async function evaluateRun<TBatch>(run: TrainRun<TBatch>, o: TrainOptions, objective: Objective<TBatch>, s: Loop): Promise<number> {
  let loss = 0, n = 1, weights = 0;
  const sums: Record<string, number> = {};
  // batches weigh what their result says they average over (tokens, pairs; default 1)
  const add = (r: ObjectiveResult) => {
    const w = r.weight ?? 1;
    loss += w * r.loss;
    weights += w;
    for (const [key, v] of Object.entries(r.metrics ?? {})) sums[key] = (sums[key] ?? 0) + w * v;
  };
  if (run.evaluate) add(await run.evaluate(run.model, s.step));
  else {
    const batches = run.valid!.batches(o.microBatch, o.seqLen, o.evalBatches);
    for (const b of batches) add(objective.evaluate(run.model, b));
    n = batches.length;
  }
  const mean = (v: number) => (weights > 0 ? v / weights : 0);
  const line: MetricsLine = { split: 'validation', step: s.step, tokens: s.tokens, loss: mean(loss), batches: n };
  for (const [key, v] of Object.entries(sums)) if (!(key in line)) line[key] = mean(v);
  s.log.append(line);
  run.onEval?.(line);
  return mean(loss);
}

// ---------------------------------------------------------------------------------------------
// starting and resuming

function freshLoop<TBatch>(run: TrainRun<TBatch>, o: TrainOptions): Loop {
  const used = fs.existsSync(run.runDir) && (listCheckpoints(run.runDir).length > 0 || fs.existsSync(nodePath.join(run.runDir, 'metrics.jsonl')));
  if (used) {
    throw new KompresorError({ code: 'input_invalid', where: run.runDir, rule: 'a new run needs a new or empty run folder',
      found: 'a previous run (metrics.jsonl or checkpoints)', hint: `continue it with \`${resumeCommand(run)}\` or choose another --out` });
  }
  fs.mkdirSync(run.runDir, { recursive: true });
  const log = MetricsLog.create(nodePath.join(run.runDir, 'metrics.jsonl'));
  return { step: 0, tokens: 0, seconds: 0, rng: new Rng(o.seed), log, lastSaved: -1, checkpoint: '', loss: NaN };
}

function resumeLoop<TBatch>(run: TrainRun<TBatch>, o: TrainOptions, objective: Objective<TBatch>, opt: AdamW): Loop {
  const dir = latestCheckpoint(run.runDir);
  if (!dir) {
    throw new KompresorError({ code: 'file_not_found', where: run.runDir, rule: 'a resumed run needs a checkpoint-<step> folder in the run folder',
      found: 'none', hint: 'the run stopped before its first checkpoint; start it again with a new --out' });
  }
  const st = readTrainState(dir);
  if (st.objective !== objective.name) {
    throw new KompresorError({ code: 'input_invalid', where: `${dir}/state.json`, rule: 'a run resumes with the objective it started with', expected: st.objective, found: objective.name });
  }
  checkMemoryOptions(dir, o, st.options);
  const diff = firstDifference(o, st.options);
  if (diff && !run.allowOptionChanges) {
    throw new KompresorError({ code: 'input_invalid', where: `${dir}/state.json`, rule: 'a run resumes with the options it was saved with',
      found: diff, hint: 'give the changed option explicitly to accept it (the steps after the resume then differ from an uninterrupted run)' });
  }
  readWeightsInto(run.model, dir);
  readOptimizerInto(opt, dir);
  run.train.restore(st.source);
  const rng = new Rng(0);
  rng.state = st.rng;
  const log = MetricsLog.resume(nodePath.join(run.runDir, 'metrics.jsonl'), st.metrics);
  return { step: st.step, tokens: st.tokens, seconds: st.seconds, rng, log, lastSaved: st.step, checkpoint: dir,
    loss: st.loss ?? NaN, validLoss: st.validLoss ?? undefined };
}

/**
 * The moments' storage and the frozen parts cannot change on resume: the checkpoint holds the
 * moments of those tensors in that form (a new run from the checkpoint folder can change them).
 */
function checkMemoryOptions(dir: string, o: TrainOptions, saved: TrainOptions): void {
  const now = memoryOptions(o), was = memoryOptions(saved);
  const fix = `resume without the flag, or start a new run (--out) from ${dir}, which is a model folder`;
  if (now.optimState !== was.optimState) {
    throw new KompresorError({ code: 'input_invalid', where: '--optim-state', rule: 'a run resumes with the AdamW state storage it started with (its checkpoint holds the moments in that form)',
      expected: was.optimState, found: now.optimState, hint: fix });
  }
  if (now.freeze.join(',') !== was.freeze.join(',')) {
    throw new KompresorError({ code: 'input_invalid', where: '--freeze', rule: 'a run resumes with the frozen parts it started with (frozen tensors have no moments in its checkpoint)',
      expected: was.freeze.join(',') || '(none)', found: now.freeze.join(',') || '(none)', hint: fix });
  }
}

function stateOf<TBatch>(run: TrainRun<TBatch>, o: TrainOptions, objective: Objective<TBatch>, s: Loop): TrainState {
  return {
    format: STATE_FORMAT, version: STATE_VERSION,
    step: s.step, tokens: s.tokens, seconds: s.seconds, loss: finiteOrNull(s.loss), validLoss: finiteOrNull(s.validLoss), rng: s.rng.state,
    source: run.train.state(), objective: objective.name,
    schedule: { totalSteps: totalSteps(o), lr: o.lr, minLr: o.minLr, warmup: o.warmup },
    // meta.machine: the machine of the session that wrote this checkpoint (src/tensor/machine.ts)
    options: o, metrics: s.log.sync(), meta: { ...run.meta, machine: machineFingerprint() },
  };
}

// ---------------------------------------------------------------------------------------------
// endings

/** RUN_DIR/final: config.json, model.safetensors (F32) and the base model's tokenizer files. */
function writeFinal<TBatch>(run: TrainRun<TBatch>): string {
  const final = nodePath.join(run.runDir, 'final');
  const tmp = `${final}.tmp-${process.pid}`, old = `${final}.old-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  const w = run.model.params;
  const tensors = run.model.layout.slots.map((s) => ({ name: s.name, shape: s.shape, data: w.view(s) }));
  saveCheckpoint(tmp, run.config, tensors, { dtype: 'F32', tokenizerFrom: run.tokenizerFrom });
  if (fs.existsSync(final)) fs.renameSync(final, old);
  fs.renameSync(tmp, final);
  fsyncDir(run.runDir);
  fs.rmSync(old, { recursive: true, force: true });
  return final;
}

function diverged<TBatch>(run: TrainRun<TBatch>, s: Loop, what: string, value: number): KompresorError {
  const good = s.lastSaved >= 0
    ? `the last good checkpoint (${s.checkpoint}, step ${s.lastSaved}) is intact; resume from it with \`${resumeCommand(run)}\`, e.g. with a lower --lr`
    : 'no checkpoint was written yet; start again, e.g. with a lower --lr';
  return new KompresorError({ code: 'training_diverged', where: `step ${s.step + 1}`, rule: `the ${what} must be finite`,
    found: String(value), hint: `the step was not applied and ${good}` });
}

function finiteOrNull(v: number | undefined): number | null {
  return v !== undefined && Number.isFinite(v) ? v : null;
}

function resumeCommand<TBatch>(run: TrainRun<TBatch>): string {
  return run.resumeCommand ?? `kompresor train --resume ${run.runDir}`;
}
