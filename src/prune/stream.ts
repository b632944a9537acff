// Importance scoring layer by layer, for models whose float32 weights do not fit in memory.
// Only one layer's weights are resident: a one-layer Decoder (no embedding: vocab 1, tied) whose
// arena is refilled from the checkpoint's model.layers.{l}.* tensors. The calibration hidden
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
import { Decoder, type Probe } from '../model/decoder.ts';
import { buildLayout, layerPrefix, layerSize } from '../model/parameters.ts';
import { layerSlice } from '../model/activations.ts';
import type { Batch } from '../model/batch.ts';
import { checkCheckpoint } from '../model/load.ts';
import { KompresorError } from '../errors.ts';
import { formatBytes } from '../io/bytes.ts';
import { calibrationBatch, type CalibrationSet } from './calibration.ts';
import { Importance, arenaBytes, BASELINE_BYTES, ACTIVATION_TARGET_BYTES, type ScoreRun } from './importance.ts';

/** Embedding rows read at once (and the scratch they land in). */
const EMBED_READ_BYTES = 16 * 2 ** 20;
/** Ids this close together are read in one range (reading a few unused rows beats a syscall each). */
const EMBED_GAP_ROWS = 64;

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

/** The float32 bytes of every weight of the model (what the in-memory path holds). */
export function weightBytes(cfg: ModelConfig): number {
  return buildLayout(cfg).total * 4;
}

/** A one-layer model of the same shape, without the embedding (vocab 1, tied: no lm_head). */
function layerConfig(cfg: ModelConfig): ModelConfig {
  return { ...cfg, numLayers: 1, vocabSize: 1, tieWordEmbeddings: true };
}

/**
 * Splits the budget: one layer's weights and an embedding scratch first, then the activation
 * arena (at most ACTIVATION_TARGET_BYTES, at most half of what is left), then hidden states.
 */
export function planStream(cfg: ModelConfig, samples: number, seqLen: number, maxMemory: number,
  force: { batchRows?: number; groupRows?: number } = {}): StreamPlan {
  const layout = buildLayout(cfg);
  const layerBytes = layerSize(layout) * 4;
  // the Importance keeps a copy of the layer input (rows × seqLen × C) for Block Importance
  const perRowAct = arenaBytes(layerConfig(cfg), 1, seqLen) + seqLen * cfg.hiddenSize * 4;
  const perRowHidden = seqLen * cfg.hiddenSize * 4;
  const embedScratch = Math.min(EMBED_READ_BYTES, cfg.vocabSize * cfg.hiddenSize * 4);
  const avail = maxMemory - BASELINE_BYTES - layerBytes - embedScratch;
  if (avail < perRowAct + perRowHidden && !(force.batchRows && force.groupRows)) {
    throw new KompresorError({ code: 'input_invalid', where: '--max-memory', rule: 'the budget must hold one layer\'s weights and one calibration row',
      expected: `at least ${formatBytes(maxMemory - avail + perRowAct + perRowHidden)}`, found: formatBytes(maxMemory),
      hint: 'raise --max-memory or lower --seq-len' });
  }
  let batchRows = force.batchRows ?? Math.max(1, Math.min(samples, Math.floor(Math.min(ACTIVATION_TARGET_BYTES, avail / 2) / perRowAct)));
  const groupRows = force.groupRows ?? Math.max(1, Math.min(samples, Math.floor((avail - batchRows * perRowAct) / perRowHidden)));
  batchRows = Math.min(batchRows, groupRows);
  return { batchRows, groupRows, groups: Math.ceil(samples / groupRows), layerBytes, hiddenBytes: Math.min(samples, groupRows) * perRowHidden };
}

export { formatBytes };

export interface StreamOptions {
  plan: StreamPlan;
  /** Called after each layer of each group: steps done of groups × L. */
  onLayer?: (done: number, total: number) => void;
}

export function scoreStreaming(ck: Checkpoint, set: CalibrationSet, o: StreamOptions): ScoreRun {
  const cfg = ck.config, L = cfg.numLayers, rowFloats = set.seqLen * cfg.hiddenSize;
  checkCheckpoint(ck, buildLayout(cfg));
  const layer = new Decoder(layerConfig(cfg));
  // the last, shorter batch of a group gets its own arena (same weights), so neither is reallocated
  const tail = new Decoder(layerConfig(cfg), layer.params);
  const imp = new Importance(cfg);
  const { batchRows, groupRows } = o.plan;
  const hidden = new Float32Array(Math.min(set.samples, groupRows) * rowFloats);
  let step = 0;
  for (let g0 = 0; g0 < set.samples; g0 += groupRows) {
    const g1 = Math.min(set.samples, g0 + groupRows);
    const batches = groupBatches(set, g0, g1, batchRows);
    embedRows(ck, calibrationBatch(set, g0, g1).batch.ids, cfg.hiddenSize, hidden);
    for (let l = 0; l < L; l++) {
      loadLayer(ck, l, layer);
      for (const { batch, valid, r0 } of batches) {
        const dec = batch.B === batchRows ? layer : tail;
        const h = hidden.subarray((r0 - g0) * rowFloats, (r0 - g0 + batch.B) * rowFloats);
        const a = dec.activations(batch.B, batch.T);
        layerSlice(a.buf.resid, 0, h.length).set(h);
        imp.setValid(valid);
        dec.layerForward(0, a, batch, asLayer(imp, l));
        h.set(layerSlice(a.buf.resid, 1, h.length));
      }
      o.onLayer?.(++step, o.plan.groups * L);
    }
  }
  return { imp };
}

function groupBatches(set: CalibrationSet, g0: number, g1: number, batchRows: number): { batch: Batch; valid: Int32Array; r0: number }[] {
  const out = [];
  for (let r0 = g0; r0 < g1; r0 += batchRows) out.push({ ...calibrationBatch(set, r0, Math.min(g1, r0 + batchRows)), r0 });
  return out;
}

/** The one-layer decoder's probe calls, relabelled with the real layer index. */
function asLayer(imp: Importance, l: number): Probe {
  return { names: imp.names, observe: (name, _l, data, width, batch) => imp.observe(name, l, data, width, batch) };
}

/** Reads model.layers.{l}.* into the one-layer decoder's model.layers.0.* slots. */
function loadLayer(ck: Checkpoint, l: number, dec: Decoder): void {
  const from = layerPrefix(0), to = layerPrefix(l);
  for (const s of dec.layout.slots) {
    if (s.name.startsWith(from)) ck.read(to + s.name.slice(from.length), dec.params.view(s));
  }
}

/**
 * out[n] = embed_tokens[ids[n]] for every token, reading only ranges of rows that hold the ids
 * present (tokens visited in id order, so each range is read once).
 */
export function embedRows(ck: Checkpoint, ids: Int32Array, C: number, out: Float32Array): void {
  const name = 'model.embed_tokens.weight';
  const order = Int32Array.from(ids.keys()).sort((a, b) => ids[a] - ids[b]);
  const maxRows = Math.max(1, Math.floor(EMBED_READ_BYTES / (C * 4)));
  const V = ck.tensors.get(name)?.info.shape[0] ?? 0;
  const scratch = new Float32Array(Math.min(maxRows, V) * C);
  for (let i = 0; i < order.length;) {
    const lo = ids[order[i]];
    let hi = lo, j = i;
    while (j < order.length && ids[order[j]] - lo < maxRows && ids[order[j]] - hi <= EMBED_GAP_ROWS) hi = ids[order[j++]];
    const rows = ck.readRows(name, lo, hi - lo + 1, scratch.subarray(0, (hi - lo + 1) * C));
    for (let k = i; k < j; k++) {
      const n = order[k], r = ids[n] - lo;
      out.set(rows.subarray(r * C, (r + 1) * C), n * C);
    }
    i = j;
  }
}
