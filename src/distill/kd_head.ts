// Logit distillation as the decoder's loss head (Minitron recovery, spec §3): the student's
// lm_head runs chunk by chunk as for cross-entropy, the teacher's logits for the same rows come
// from a callback, and the fused KD kernel turns each student chunk into its gradient in place.
// Neither model's [N, V] logits are ever held: at most one (rows, V) chunk of each.
//
//   loss = mean over valid tokens of KL(P_teacher || P_student)      (defaults: T = 1, no LM loss)
//   options: temperature T, T^2 factor, reverse KL, teacher top-k, and CE + KD balanced as
//   ModelOpt's LogitsAndIntermediatesLossBalancer: total = CE + kd * (CE / kd).detach() * scale.
// Valid tokens are those with a next-token target (targets >= 0), as for the LM loss (NeMo's
// loss mask). The derivation and the choices are in docs/kd-loss.md.
import { kernels as K } from '../tensor/ops.ts';
import type { ChunkLoss, Decoder } from '../model/decoder.ts';
import type { Batch } from '../model/batch.ts';
import { KompresorError } from '../errors.ts';

export interface KdOptions {
  /** Both softmaxes are taken of logits / T. Every Minitron run used 1. */
  temperature: number;
  /** 0 = full vocabulary; k = the teacher's top-k ids only, both sides renormalised over them. */
  topK: number;
  /** KL(P_student || P_teacher) instead of KL(P_teacher || P_student). */
  reverse: boolean;
  /** Multiply the KD term by T^2 (Hinton et al.; HF's LogitsDistillationLoss). ModelOpt does not. */
  scaleT2: boolean;
  /** Add next-token CE, with the KD term rescaled to its magnitude each micro-batch. */
  lmLoss: boolean;
  /** Weight of the rescaled KD term next to CE (ModelOpt's kd_loss_scale); used with lmLoss. */
  kdLossScale: number;
}

export const KD_DEFAULTS: Readonly<KdOptions> = {
  temperature: 1, topK: 0, reverse: false, scaleT2: false, lmLoss: false, kdLossScale: 1,
};

export interface KdResult {
  /** The differentiated scalar: kd, or with lmLoss CE + kd * (CE/kd).detach() * kdLossScale. */
  loss: number;
  /** Mean KD term over valid tokens (times T^2 with scaleT2). */
  kd: number;
  /** Mean next-token cross-entropy (with lmLoss, or when asked for with `withCe`; else not computed). */
  ce?: number;
  /** Valid tokens averaged over. */
  count: number;
}

/**
 * Teacher logits for batch rows [r0, r0 + rows), a (rows, V) array valid until the next call.
 * Called in row order, once per chunk (twice with lmLoss: the balancing needs a measuring pass).
 */
export type TeacherChunk = (r0: number, rows: number) => Float32Array;

/**
 * Runs the teacher's forward pass on the batch now and serves its logits chunk by chunk (its
 * lm_head on the final-norm rows asked for). The teacher must be a different Decoder object than
 * the student: each keeps its own activation arena.
 */
export function teacherChunks(teacher: Decoder, batch: Batch): TeacherChunk {
  const a = teacher.forward(batch);
  return (r0, rows) => teacher.logitsChunk(a, r0, rows);
}

/**
 * Forward, KD loss and backward for the student: accumulates into its gradient arena. `withCe`
 * also measures the student's next-token CE (a metric; it adds nothing to the gradient) when the
 * loss does not include it: one copy of each logits chunk and a CE pass over it.
 */
export function kdLossAndBackward(student: Decoder, batch: Batch, teacher: TeacherChunk, opts: Partial<KdOptions> = {}, withCe = false): KdResult {
  if (!student.grads) student.zeroGrad();
  const a = student.forward(batch);
  const r = kdHead((chunkLoss, backward) => student.headLoss(a, batch, backward, chunkLoss).loss,
    student.cfg.vocabSize, batch.targets, teacher, kdOptions(opts), true, withCe);
  student.backward(a, batch);
  return r;
}

/** Forward only: the KD loss of the student on the batch (evaluation); `withCe` as above. */
export function kdLoss(student: Decoder, batch: Batch, teacher: TeacherChunk, opts: Partial<KdOptions> = {}, withCe = false): KdResult {
  const a = student.forward(batch);
  return kdHead((chunkLoss, backward) => student.headLoss(a, batch, backward, chunkLoss).loss,
    student.cfg.vocabSize, batch.targets, teacher, kdOptions(opts), false, withCe);
}

/**
 * The same loss on logits already in memory, logits and teacherLogits [N, V] (tests, and KD
 * from stored teacher logits). With backward, logits is overwritten with d(loss)/d(logits);
 * otherwise it is left untouched.
 */
export function kdLossOnRows(logits: Float32Array, teacherLogits: Float32Array, targets: Int32Array, N: number, V: number,
  opts: Partial<KdOptions> = {}, backward = false): KdResult {
  const count = countValid(targets, N);
  const run: HeadRunner = (chunkLoss, bwd) => {
    const z = bwd ? logits : logits.slice(0, N * V), losses = new Float32Array(N);
    chunkLoss(losses, z, 0, N, count > 0 ? 1 / count : 0);
    let sum = 0;
    for (let n = 0; n < N; n++) if (targets[n] >= 0) sum += losses[n];
    return count > 0 ? sum / count : 0;
  };
  const teacher: TeacherChunk = (r0, rows) => teacherLogits.subarray(r0 * V, (r0 + rows) * V);
  return kdHead(run, V, targets.subarray(0, N), teacher, kdOptions(opts), backward);
}

/** Fills in the defaults and checks the values (the kernels check again, with less context). */
export function kdOptions(o: Partial<KdOptions>): KdOptions {
  const r = { ...KD_DEFAULTS, ...o };
  const bad = (key: string, rule: string, found: unknown) => new KompresorError({
    code: 'input_invalid', where: `KD option ${key}`, rule, found: String(found),
  });
  if (!(r.temperature > 0 && Number.isFinite(r.temperature))) throw bad('temperature', 'the temperature must be a finite number > 0', r.temperature);
  if (!Number.isInteger(r.topK) || r.topK < 0) throw bad('topK', 'topK must be an integer >= 0 (0 = full vocabulary)', r.topK);
  if (!(r.kdLossScale >= 0 && Number.isFinite(r.kdLossScale))) throw bad('kdLossScale', 'kdLossScale must be a finite number >= 0', r.kdLossScale);
  return r;
}

// ---------------------------------------------------------------------------------------------
// the head itself

/** Streams a ChunkLoss over all rows (the decoder's headLoss, or rows in memory); returns the mean. */
type HeadRunner = (chunkLoss: ChunkLoss, backward: boolean) => number;

function kdHead(run: HeadRunner, V: number, targets: Int32Array, teacher: TeacherChunk, o: KdOptions,
  backward: boolean, withCe = false): KdResult {
  const count = countValid(targets, targets.length);
  const t2 = o.scaleT2 ? o.temperature * o.temperature : 1;

  // losses[i] = w * t2 * KL_i and logits <- dscale * w * t2 * dKL/dlogits
  const kdChunk = (losses: Float32Array, logits: Float32Array, r0: number, rows: number, dscale: number, w: number) => {
    const u = teacher(r0, rows);
    if (u.length !== rows * V) {
      throw new KompresorError({
        code: 'shape_mismatch', where: 'KD teacher logits', rule: 'the teacher must share the student\'s vocabulary (one row of V logits per token)',
        expected: `${rows} x ${V} = ${rows * V} values`, found: `${u.length}`, hint: 'distil from a teacher with the same tokenizer and vocab_size',
      });
    }
    const tg = targets.subarray(r0, r0 + rows);
    K.kdForwardBackward(losses, logits, u, tg, rows, V, o.temperature, o.topK, o.reverse, dscale * w * t2);
    if (w * t2 !== 1) for (let i = 0; i < rows; i++) losses[i] *= w * t2;
  };

  // Per chunk the CE kernel runs on a copy of the logits, as both kernels work in place.
  let copy = new Float32Array(0), ceRows = new Float32Array(0), ceSum = 0;
  const ceOfCopy = (logits: Float32Array, r0: number, rows: number, dscale: number) => {
    if (copy.length < rows * V) { copy = new Float32Array(rows * V); ceRows = new Float32Array(rows); }
    const ce = copy.subarray(0, rows * V), ceLoss = ceRows.subarray(0, rows);
    ce.set(logits);
    K.crossEntropyForwardBackward(ceLoss, ce, targets.subarray(r0, r0 + rows), rows, V, dscale);
    return { ce, ceLoss };
  };
  const meanCe = () => (count > 0 ? ceSum / count : 0);

  if (!o.lmLoss) {
    const kd = run((losses, logits, r0, rows, dscale) => {
      if (withCe) {
        const { ceLoss } = ceOfCopy(logits, r0, rows, dscale);
        for (let i = 0; i < rows; i++) if (targets[r0 + i] >= 0) ceSum += ceLoss[i];
      }
      kdChunk(losses, logits, r0, rows, dscale, 1);
    }, backward);
    return withCe ? { loss: kd, kd, ce: meanCe(), count } : { loss: kd, kd, count };
  }

  // CE + KD. The KD term is rescaled by the detached ratio CE/kd of this micro-batch, so both
  // means must be known before any gradient is written: a measuring pass (forward only) first,
  // then the gradient pass with d total = d CE + w * d kd, w = kdLossScale * CE / kd.
  const both = (w: number, measure: boolean): ChunkLoss => (losses, logits, r0, rows, dscale) => {
    const { ce, ceLoss } = ceOfCopy(logits, r0, rows, dscale);
    kdChunk(losses, logits, r0, rows, dscale, w);
    if (measure) {
      for (let i = 0; i < rows; i++) if (targets[r0 + i] >= 0) ceSum += ceLoss[i];
    } else {
      for (let i = 0; i < rows; i++) losses[i] += ceLoss[i];
      for (let j = 0; j < rows * V; j++) logits[j] += ce[j];
    }
  };
  const kd = run(both(1, true), false);
  const ce = meanCe();
  // as ModelOpt: no rescaling when either is 0 (e.g. a micro-batch without valid tokens)
  const w = kd > 0 && ce > 0 ? o.kdLossScale * ce / kd : o.kdLossScale;
  const loss = backward ? run(both(w, false), true) : ce + w * kd;
  return { loss, kd, ce, count };
}

function countValid(targets: Int32Array, N: number): number {
  let c = 0;
  for (let n = 0; n < N; n++) if (targets[n] >= 0) c++;
  return c;
}
