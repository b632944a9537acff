// Training checkpoints that never lose work. Layout of a run folder (RUN_DIR):
//
//   checkpoint-<step>/        one complete checkpoint (normally only the newest is kept)
//     config.json             the model's HF config
//     model.safetensors       weights, F32 (a standard HF checkpoint: this folder loads as a model)
//     optimizer.safetensors   AdamW state: "exp_avg.<name>" and "exp_avg_sq.<name>" per trainable
//                             tensor, in the run's --optim-state (F32, BF16, or U8 codes with
//                             "exp_avg_scale.<name>"/"exp_avg_sq_scale.<name>"; src/train/moments.ts)
//     state.json              step, tokens, data-source position, RNG, options, metrics position
//   latest                    "checkpoint-<step>\n", written atomically after the folder is complete
//   checkpoint.tmp-<pid>/     a checkpoint being written (ignored, and removed by the next save)
//
// A checkpoint is written whole into checkpoint.tmp-<pid>/ (each file fsynced), then the folder is
// renamed to checkpoint-<step>/. So a checkpoint-<step>/ folder is complete by construction, and a
// crash at any moment leaves the previous one untouched. Older folders are deleted only after the
// new one and `latest` are in place. Resume takes the highest-step checkpoint-<step>/ folder
// (normally the one `latest` names). Limit: one writer per run folder.
import fs from 'node:fs';
import nodePath from 'node:path';
import { saveCheckpoint, openCheckpoint } from '../io/checkpoint.ts';
import { readSafetensorsHeader, writeSafetensors, writeAtomic, writeAll } from '../io/safetensors.ts';
import { kernels as K } from '../tensor/ops.ts';
import type { Decoder } from '../model/decoder.ts';
import { AdamW } from './optimizer.ts';
import type { SourceState } from '../data/source.ts';
import type { TrainOptions } from './options.ts';
import { KompresorError } from '../errors.ts';

export const STATE_FORMAT = 'kompresor-train-state';
export const STATE_VERSION = 1;
export const LATEST_FILE = 'latest';
const CHECKPOINT_RE = /^checkpoint-(\d+)$/;
const TMP_RE = /^checkpoint\.tmp-\d+$/;

export interface TrainState {
  format: typeof STATE_FORMAT;
  version: number;
  /** Optimizer steps done and tokens consumed so far. */
  step: number;
  tokens: number;
  /** Training wall time so far, summed over sessions. */
  seconds: number;
  /** Training loss of the last step and the last validation loss (null: none yet). */
  loss: number | null;
  validLoss: number | null;
  /** The run generator's state (Rng.state). */
  rng: number;
  /** The training BatchSource's position (BatchSource.state()). */
  source: SourceState;
  objective: string;
  schedule: { totalSteps: number; lr: number; minLr: number; warmup: number };
  options: TrainOptions;
  /** metrics.jsonl length when the checkpoint was taken; a resume truncates the file back to it. */
  metrics: { bytes: number; lines: number };
  /** What the caller needs to rebuild the run (model path, data dir...); opaque here. */
  meta: Record<string, unknown>;
}

export interface CheckpointParts {
  model: Decoder;
  config: Record<string, unknown>;
  opt: AdamW;
  state: TrainState;
}

/** Test seam: called after each file lands in the temporary folder (a throw simulates a crash). */
export type CheckpointFileHook = (file: string) => void;

export function checkpointName(step: number): string { return `checkpoint-${step}`; }

// ---------------------------------------------------------------------------------------------
// writing

/** Writes a complete checkpoint of the run; returns its folder. Refuses non-finite weights. */
export function writeRunCheckpoint(runDir: string, p: CheckpointParts, onFile: CheckpointFileHook = () => {}): string {
  const w = p.model.params;
  if (!Number.isFinite(AdamW.gradNorm(w))) {
    throw new KompresorError({ code: 'impl_error', where: `checkpoint at step ${p.state.step}`, rule: 'weights written to a checkpoint must be finite' });
  }
  removeStale(runDir);
  const tmp = nodePath.join(runDir, `checkpoint.tmp-${process.pid}`);
  fs.mkdirSync(tmp);
  const tensors = p.model.layout.slots.map((s) => ({ name: s.name, shape: s.shape, data: w.view(s) }));
  saveCheckpoint(tmp, p.config, tensors, { dtype: 'F32' });
  onFile('model.safetensors');
  writeOptimizer(nodePath.join(tmp, 'optimizer.safetensors'), p.opt);
  onFile('optimizer.safetensors');
  writeJson(nodePath.join(tmp, 'state.json'), p.state);
  onFile('state.json');
  fsyncDir(tmp);
  const name = checkpointName(p.state.step);
  const dir = nodePath.join(runDir, name);
  // the same step saved twice (stopped right after a resume): the old copy goes aside first
  if (fs.existsSync(dir)) fs.renameSync(dir, `${tmp}-old`);
  fs.renameSync(tmp, dir);
  onFile('rename');
  writeAtomicText(nodePath.join(runDir, LATEST_FILE), `${name}\n`);
  fsyncDir(runDir);
  onFile(LATEST_FILE);
  pruneCheckpoints(runDir, p.state.options.keepCheckpoints);
  return dir;
}

function writeOptimizer(path: string, opt: AdamW): void {
  const tensors = opt.trainable.slots.filter((s) => s.size > 0).flatMap((s) => opt.moments.tensors(s));
  writeSafetensors(path, tensors, { step: String(opt.step), optim_state: opt.moments.kind });
}

/** Temporary folders of crashed saves (and set-aside copies) are garbage: nothing points at them. */
function removeStale(runDir: string): void {
  for (const f of fs.readdirSync(runDir)) {
    if (TMP_RE.test(f) || /^checkpoint\.tmp-\d+-old$/.test(f)) fs.rmSync(nodePath.join(runDir, f), { recursive: true, force: true });
  }
}

function pruneCheckpoints(runDir: string, keep: number): void {
  const all = listCheckpoints(runDir);
  for (const c of all.slice(0, Math.max(0, all.length - Math.max(1, keep)))) fs.rmSync(c.dir, { recursive: true, force: true });
  removeStale(runDir);
}

function writeJson(path: string, v: unknown): void {
  writeAtomicText(path, JSON.stringify(v, null, 2) + '\n');
}

/** Text written through writeAtomic (fsynced before the rename, unlike io/atomic.ts). */
export function writeAtomicText(path: string, text: string): void {
  const bytes = new TextEncoder().encode(text);
  writeAtomic(path, (fd) => writeAll(fd, bytes));
}

/** Makes a rename inside `dir` durable; a no-op where directories cannot be opened (Windows). */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // best effort: the rename itself is still atomic
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// reading

/** Complete checkpoints of a run, oldest first. */
export function listCheckpoints(runDir: string): { step: number; dir: string }[] {
  if (!fs.existsSync(runDir)) return [];
  return fs.readdirSync(runDir)
    .map((f) => ({ m: CHECKPOINT_RE.exec(f), f }))
    .filter((x) => x.m && fs.existsSync(nodePath.join(runDir, x.f, 'state.json')))
    .map((x) => ({ step: Number(x.m![1]), dir: nodePath.join(runDir, x.f) }))
    .sort((a, b) => a.step - b.step);
}

/** The checkpoint a resume continues from: the highest complete step, or null if there is none. */
export function latestCheckpoint(runDir: string): string | null {
  const all = listCheckpoints(runDir);
  return all.length > 0 ? all[all.length - 1].dir : null;
}

export function readTrainState(dir: string): TrainState {
  const path = nodePath.join(dir, 'state.json');
  let s: TrainState;
  try {
    s = JSON.parse(fs.readFileSync(path, 'utf8')) as TrainState;
  } catch (e) {
    throw new KompresorError({ code: 'config_invalid', where: path, rule: 'the training state must be valid JSON', found: (e as Error).message });
  }
  if (s.format !== STATE_FORMAT || s.version !== STATE_VERSION) {
    throw new KompresorError({ code: 'config_invalid', where: path, rule: 'the training state must be one this version writes',
      expected: `${STATE_FORMAT} v${STATE_VERSION}`, found: `${String(s.format)} v${String(s.version)}` });
  }
  return s;
}

/** Loads the checkpoint's weights into the model (names and shapes must match its layout). */
export function readWeightsInto(model: Decoder, dir: string): void {
  const ck = openCheckpoint(dir);
  for (const s of model.layout.slots) {
    const t = ck.tensors.get(s.name);
    checkShape(dir, s.name, s.shape, t?.info.shape);
    ck.read(s.name, model.params.view(s));
  }
}

/**
 * Loads m, v and the step count of AdamW from the checkpoint. The checkpoint's moments must be
 * stored as the optimizer stores them (metadata optim_state, "f32" when absent).
 */
export function readOptimizerInto(opt: AdamW, dir: string): void {
  const path = nodePath.join(dir, 'optimizer.safetensors');
  const h = readSafetensorsHeader(path);
  const saved = h.metadata.optim_state ?? 'f32';
  if (saved !== opt.moments.kind) {
    throw new KompresorError({ code: 'input_invalid', where: `${path}: __metadata__.optim_state`, rule: 'a run resumes with the AdamW state storage it was saved with',
      expected: opt.moments.kind, found: saved, hint: `resume with --optim-state ${saved} (or none), or start a new run from ${dir} as a model folder` });
  }
  for (const s of opt.trainable.slots) if (s.size > 0) opt.moments.read(h, s);
  const step = Number(h.metadata.step);
  if (!Number.isSafeInteger(step) || step < 0) {
    throw new KompresorError({ code: 'safetensors_corrupt', where: `${path}: __metadata__.step`, rule: 'the optimizer step count must be a non-negative integer', found: JSON.stringify(h.metadata.step) });
  }
  opt.step = step;
}

function checkShape(where: string, name: string, expected: number[], found: number[] | undefined): void {
  if (!found || found.length !== expected.length || found.some((d, i) => d !== expected[i])) {
    throw new KompresorError({ code: found ? 'safetensors_shape' : 'checkpoint_missing_tensor', where: `${where}: tensor "${name}"`,
      rule: 'a resumed run must have the shapes of the model it checkpointed', expected: JSON.stringify(expected),
      found: found ? JSON.stringify(found) : 'no such tensor' });
  }
}
