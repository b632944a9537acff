// Importance scoring layer by layer, for models whose float32 weights do not fit in memory, on the
// layer-streamed forward of src/model/stream_forward.ts: only one layer's weights are resident (a
// one-layer Decoder refilled from the checkpoint's model.layers.{l}.* tensors). The calibration hidden
// states (rows × seqLen × C floats) are carried from layer to layer in one buffer; the embedding
// is read row range by row range for the token ids present, never whole. The final norm and
// lm_head are never needed (every statistic lives inside the layers), so they are never read.
//
// When the hidden states of all rows do not fit the budget either, rows are processed in groups,
// each group going through every layer; the weights are then read once per group (the plan says
// how many). Same kernels, same per-row arithmetic as the in-memory path: the scores agree to
// float32 rounding (exactly, for the same rows per forward pass).
import type { Checkpoint } from '../io/checkpoint.ts';
import type { ModelConfig } from '../io/hf_config.ts';
import type { Probe } from '../model/decoder.ts';
import type { Batch } from '../model/batch.ts';
import { streamForward, layerBytes, layerConfig, formatBytes, BASELINE_BYTES } from '../model/stream_forward.ts';
import { KompresorError } from '../errors.ts';
import { calibrationBatch, type CalibrationSet } from './calibration.ts';
import { Importance, arenaBytes, ACTIVATION_TARGET_BYTES, type ScoreRun } from './importance.ts';

export { weightBytes, formatBytes, embedRows } from '../model/stream_forward.ts';

/** Embedding rows read at once (the scratch of embedRows). */
const EMBED_READ_BYTES = 16 * 2 ** 20;

export interface StreamPlan {
  /** Rows per forward pass. */
  batchRows: number;
  /** Rows whose hidden states are carried through all layers together. */
  groupRows: number;
  groups: number;
  /** Bytes of one layer's float32 weights, and of the hidden-state buffer. */
  layerBytes: number;
  hiddenBytes: number;
}

/**
 * Splits the budget: one layer's weights and an embedding scratch first, then the activation
 * arena (at most ACTIVATION_TARGET_BYTES, at most half of what is left), then hidden states.
 */
export function planStream(cfg: ModelConfig, samples: number, seqLen: number, maxMemory: number,
  force: { batchRows?: number; groupRows?: number } = {}): StreamPlan {
  const layer = layerBytes(cfg);
  // the Importance keeps a copy of the layer input (rows × seqLen × C) for Block Importance
  const perRowAct = arenaBytes(layerConfig(cfg), 1, seqLen) + seqLen * cfg.hiddenSize * 4;
  const perRowHidden = seqLen * cfg.hiddenSize * 4;
  const embedScratch = Math.min(EMBED_READ_BYTES, cfg.vocabSize * cfg.hiddenSize * 4);
  const avail = maxMemory - BASELINE_BYTES - layer - embedScratch;
  if (avail < perRowAct + perRowHidden && !(force.batchRows && force.groupRows)) {
    throw new KompresorError({ code: 'input_invalid', where: '--max-memory', rule: 'the budget must hold one layer\'s weights and one calibration row',
      expected: `at least ${formatBytes(maxMemory - avail + perRowAct + perRowHidden)}`, found: formatBytes(maxMemory),
      hint: 'raise --max-memory or lower --seq-len' });
  }
  let batchRows = force.batchRows ?? Math.max(1, Math.min(samples, Math.floor(Math.min(ACTIVATION_TARGET_BYTES, avail / 2) / perRowAct)));
  const groupRows = force.groupRows ?? Math.max(1, Math.min(samples, Math.floor((avail - batchRows * perRowAct) / perRowHidden)));
  batchRows = Math.min(batchRows, groupRows);
  return { batchRows, groupRows, groups: Math.ceil(samples / groupRows), layerBytes: layer, hiddenBytes: Math.min(samples, groupRows) * perRowHidden };
}

export interface StreamOptions {
  plan: StreamPlan;
  /** Called after each layer of each group: steps done of groups × L. */
  onLayer?: (done: number, total: number) => void;
}

export function scoreStreaming(ck: Checkpoint, set: CalibrationSet, o: StreamOptions): ScoreRun {
  const imp = new Importance(ck.config);
  const valid: Int32Array[] = [];
  let step = 0;
  streamForward(ck, groupsOf(set, o.plan, valid), {
    probe: (l, n) => { imp.setValid(valid[n]); return asLayer(imp, l); },
    onLayer: () => o.onLayer?.(++step, o.plan.groups * ck.config.numLayers),
  });
  return { imp };
}

/** The plan's row groups, each cut into batches of batchRows (the last shorter); valid[n] per batch. */
function* groupsOf(set: CalibrationSet, plan: StreamPlan, valid: Int32Array[]): Generator<Batch[]> {
  for (let g0 = 0; g0 < set.samples; g0 += plan.groupRows) {
    const g1 = Math.min(set.samples, g0 + plan.groupRows), group: Batch[] = [];
    for (let r0 = g0; r0 < g1; r0 += plan.batchRows) {
      const c = calibrationBatch(set, r0, Math.min(g1, r0 + plan.batchRows));
      group.push(c.batch);
      valid.push(c.valid);
    }
    yield group;
  }
}

/** The one-layer decoder's probe calls, relabelled with the real layer index. */
function asLayer(imp: Importance, l: number): Probe {
  return { names: imp.names, observe: (name, _l, data, width, batch) => imp.observe(name, l, data, width, batch) };
}
