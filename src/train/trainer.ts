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
// The loop is async only to yield to the event loop between steps, so SIGINT/SIGTERM handlers
// can run and set `shouldStop`. Limits: one process, one writer per run folder.
import fs from 'node:fs';
import nodePath from 'node:path';
import type { Decoder } from '../model/decoder.ts';
import type { BatchSource, EvalSource } from '../data/source.ts';
import { AdamW, cosineLr, decayGroups } from './optimizer.ts';
import { Rng } from '../model/sampling.ts';
import { saveCheckpoint } from '../io/checkpoint.ts';
import { KompresorError } from '../errors.ts';
import { nextTokenCE, type Objective, type ObjectiveResult } from './objective.ts';
import { type TrainOptions, validateTrainOptions, totalSteps, tokensPerStep, firstDifference } from './options.ts';
import { MetricsLog, type MetricsLine } from './metrics.ts';
import { writeTrainingReport } from './report.ts';
import {
  writeRunCheckpoint, latestCheckpoint, listCheckpoints, readTrainState, readWeightsInto, readOptimizerInto,
  fsyncDir, STATE_FORMAT, STATE_VERSION, type TrainState, type CheckpointFileHook,
} from './run_checkpoint.ts';

export interface TrainRun {
  runDir: string;
  model: Decoder;
  /** The HF config.json written with every checkpoint and with the final model. */
  config: Record<string, unknown>;
  /** Folder whose tokenizer files are copied into RUN_DIR/final/. */
  tokenizerFrom?: string;
  train: BatchSource;
  valid?: EvalSource;
  objective?: Objective;
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

export async function train(run: TrainRun): Promise<TrainResult> {
  const o = validateTrainOptions(run.options);
  const objective = run.objective ?? nextTokenCE;
  const model = run.model;
  const opt = new AdamW(model.layout.total, { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay, clip: o.clip }, decayGroups(model.layout.slots));
  const s = run.resume ? resumeLoop(run, o, objective, opt) : freshLoop(run, o);
  const total = totalSteps(o);
  const t0 = performance.now(), seconds0 = s.seconds, step0 = s.step;
  const elapsed = () => seconds0 + (performance.now() - t0) / 1000;
  const evaluate = () => { s.validLoss = evaluateRun(run, o, objective, s); };
  const save = () => {
    s.seconds = elapsed();
    s.checkpoint = writeRunCheckpoint(run.runDir, { model, config: run.config, opt, state: stateOf(run, o, objective, s) }, run.onCheckpointFile);
    s.lastSaved = s.step;
    writeTrainingReport(run.runDir, nodePath.basename(nodePath.resolve(run.runDir)));
  };
  try {
    if (s.step === 0 && run.valid) evaluate();
    while (s.step < total) {
      const tStep = performance.now();
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
      if (run.valid && (last || (o.evalEvery > 0 && s.step % o.evalEvery === 0))) evaluate();
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
      sessionSeconds: (performance.now() - t0) / 1000, checkpoint: s.checkpoint, final, loss: s.loss, validLoss: s.validLoss };
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
export function optimizerStep(model: Decoder, opt: AdamW, source: BatchSource, objective: Objective,
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
export function accumulateGradients(model: Decoder, source: BatchSource, objective: Objective,
  o: Pick<TrainOptions, 'microBatch' | 'seqLen' | 'gradAccum'>, ctx: { step: number; rng: Rng }): ObjectiveResult {
  model.zeroGrad();
  let loss = 0;
  const sums: Record<string, number> = {};
  for (let k = 0; k < o.gradAccum; k++) {
    const r = objective.train(model, source.next(o.microBatch, o.seqLen), { step: ctx.step, micro: k, rng: ctx.rng });
    if (!Number.isFinite(r.loss)) return { loss: r.loss };
    loss += r.loss;
    for (const [key, v] of Object.entries(r.metrics ?? {})) sums[key] = (sums[key] ?? 0) + v;
  }
  const A = o.gradAccum;
  if (A > 1) {
    const g = model.grads!, inv = 1 / A;
    for (let i = 0; i < g.length; i++) g[i] *= inv;
  }
  return { loss: loss / A, metrics: Object.fromEntries(Object.entries(sums).map(([key, v]) => [key, v / A])) };
}

/** Mean objective loss and extras over the validation batches; logged with split "validation". */
function evaluateRun(run: TrainRun, o: TrainOptions, objective: Objective, s: Loop): number {
  const batches = run.valid!.batches(o.microBatch, o.seqLen, o.evalBatches);
  let loss = 0;
  const sums: Record<string, number> = {};
  for (const b of batches) {
    const r = objective.evaluate(run.model, b);
    loss += r.loss;
    for (const [key, v] of Object.entries(r.metrics ?? {})) sums[key] = (sums[key] ?? 0) + v;
  }
  const n = batches.length;
  const line: MetricsLine = { split: 'validation', step: s.step, tokens: s.tokens, loss: loss / n, batches: n };
  for (const [key, v] of Object.entries(sums)) line[key] = v / n;
  s.log.append(line);
  run.onEval?.(line);
  return loss / n;
}

// ---------------------------------------------------------------------------------------------
// starting and resuming

function freshLoop(run: TrainRun, o: TrainOptions): Loop {
  const used = fs.existsSync(run.runDir) && (listCheckpoints(run.runDir).length > 0 || fs.existsSync(nodePath.join(run.runDir, 'metrics.jsonl')));
  if (used) {
    throw new KompresorError({ code: 'input_invalid', where: run.runDir, rule: 'a new run needs a new or empty run folder',
      found: 'a previous run (metrics.jsonl or checkpoints)', hint: `continue it with \`${resumeCommand(run)}\` or choose another --out` });
  }
  fs.mkdirSync(run.runDir, { recursive: true });
  const log = MetricsLog.create(nodePath.join(run.runDir, 'metrics.jsonl'));
  return { step: 0, tokens: 0, seconds: 0, rng: new Rng(o.seed), log, lastSaved: -1, checkpoint: '', loss: NaN };
}

function resumeLoop(run: TrainRun, o: TrainOptions, objective: Objective, opt: AdamW): Loop {
  const dir = latestCheckpoint(run.runDir);
  if (!dir) {
    throw new KompresorError({ code: 'file_not_found', where: run.runDir, rule: 'a resumed run needs a checkpoint-<step> folder in the run folder',
      found: 'none', hint: 'the run stopped before its first checkpoint; start it again with a new --out' });
  }
  const st = readTrainState(dir);
  if (st.objective !== objective.name) {
    throw new KompresorError({ code: 'input_invalid', where: `${dir}/state.json`, rule: 'a run resumes with the objective it started with', expected: st.objective, found: objective.name });
  }
  const diff = firstDifference(o, st.options);
  if (diff && !run.allowOptionChanges) {
    throw new KompresorError({ code: 'input_invalid', where: `${dir}/state.json`, rule: 'a run resumes with the options it was saved with',
      found: diff, hint: 'give the changed option explicitly to accept it (the steps after the resume then differ from an uninterrupted run)' });
  }
  readWeightsInto(run.model, dir);
  readOptimizerInto(opt, run.model, dir);
  run.train.restore(st.source);
  const rng = new Rng(0);
  rng.state = st.rng;
  const log = MetricsLog.resume(nodePath.join(run.runDir, 'metrics.jsonl'), st.metrics);
  return { step: st.step, tokens: st.tokens, seconds: st.seconds, rng, log, lastSaved: st.step, checkpoint: dir,
    loss: st.loss ?? NaN, validLoss: st.validLoss ?? undefined };
}

function stateOf(run: TrainRun, o: TrainOptions, objective: Objective, s: Loop): TrainState {
  return {
    format: STATE_FORMAT, version: STATE_VERSION,
    step: s.step, tokens: s.tokens, seconds: s.seconds, loss: finiteOrNull(s.loss), validLoss: finiteOrNull(s.validLoss), rng: s.rng.state,
    source: run.train.state(), objective: objective.name,
    schedule: { totalSteps: totalSteps(o), lr: o.lr, minLr: o.minLr, warmup: o.warmup },
    options: o, metrics: s.log.sync(), meta: run.meta ?? {},
  };
}

// ---------------------------------------------------------------------------------------------
// endings

/** RUN_DIR/final: config.json, model.safetensors (F32) and the base model's tokenizer files. */
function writeFinal(run: TrainRun): string {
  const final = nodePath.join(run.runDir, 'final');
  const tmp = `${final}.tmp-${process.pid}`, old = `${final}.old-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  const w = run.model.params;
  const tensors = run.model.layout.slots.map((s) => ({ name: s.name, shape: s.shape, data: w.subarray(s.offset, s.offset + s.size) }));
  saveCheckpoint(tmp, run.config, tensors, { dtype: 'F32', tokenizerFrom: run.tokenizerFrom });
  if (fs.existsSync(final)) fs.renameSync(final, old);
  fs.renameSync(tmp, final);
  fsyncDir(run.runDir);
  fs.rmSync(old, { recursive: true, force: true });
  return final;
}

function diverged(run: TrainRun, s: Loop, what: string, value: number): KompresorError {
  const good = s.lastSaved >= 0
    ? `the last good checkpoint (${s.checkpoint}, step ${s.lastSaved}) is intact; resume from it with \`${resumeCommand(run)}\`, e.g. with a lower --lr`
    : 'no checkpoint was written yet; start again, e.g. with a lower --lr';
  return new KompresorError({ code: 'training_diverged', where: `step ${s.step + 1}`, rule: `the ${what} must be finite`,
    found: String(value), hint: `the step was not applied and ${good}` });
}

function finiteOrNull(v: number | undefined): number | null {
  return v !== undefined && Number.isFinite(v) ? v : null;
}

function resumeCommand(run: TrainRun): string {
  return run.resumeCommand ?? `kompresor train --resume ${run.runDir}`;
}
