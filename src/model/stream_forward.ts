// The layer-streamed forward: a model whose weights do not fit the memory budget runs with one
// layer's weights resident. Token batches go in groups; a group's hidden states (its tokens x C
// floats) are carried from layer to layer in one buffer, so each layer's weights are read once per
// group. The embedding is read row range by row range for the ids present, the final norm once,
// and the lm_head (or the tied embedding) by StreamHead: whole when the budget holds it, else
// block of vocabulary rows by block, so it is never whole in memory.
//
//   for each group:  hidden <- embed_tokens[ids]              (row ranges, never the whole table)
//                    for l in 0..L-1: fill the one-layer decoder with model.layers.{l}.*
//                                     each batch: hidden <- layer(hidden)      (its own pass)
//                    each batch: lnf = rmsnorm(hidden) * model.norm.weight -> onOutput
//
// Every batch runs through the same kernel calls as Decoder.forward on that batch (same B, T), so
// the final-norm output is the in-memory one bit for bit; with the lm_head resident, StreamHead's
// logits are too. The blocked lm_head computes the same dot products on column blocks: equal to
// float32 rounding. Users: `score --stream` (src/prune/stream.ts), `eval --stream`
// (src/eval/stream_lm.ts) and `teacher-cache` (src/distill/cache_build.ts).
//
// Dimension legend: N = B*T token rows of a batch, C = hidden, V = vocab, L = layers.
import type { Checkpoint } from '../io/checkpoint.ts';
import type { ModelConfig } from '../io/hf_config.ts';
import { kernels as K } from '../tensor/ops.ts';
import { Decoder, type Probe } from './decoder.ts';
import { buildLayout, layerPrefix, layerSize } from './parameters.ts';
import { allocateActivations, layerSlice, type Activations } from './activations.ts';
import { checkIds, type Batch } from './batch.ts';
import { checkCheckpoint } from './load.ts';
import { KompresorError } from '../errors.ts';
import { formatBytes } from '../io/bytes.ts';

/** Memory the Node process, tokenizer and inputs take before any tensor (an estimate). */
export const BASELINE_BYTES = 192 * 2 ** 20;
/** Embedding rows read at once (and the scratch they land in). */
const EMBED_READ_BYTES = 16 * 2 ** 20;
/** Ids this close together are read in one range (reading a few unused rows beats a syscall each). */
const EMBED_GAP_ROWS = 64;

/** The float32 bytes of every weight of the model (what the in-memory path holds). */
export function weightBytes(cfg: ModelConfig): number {
  return buildLayout(cfg).total * 4;
}

/** The float32 bytes of one decoder layer's weights. */
export function layerBytes(cfg: ModelConfig): number {
  return layerSize(buildLayout({ ...cfg, numLayers: 1 })) * 4;
}

export { formatBytes };

/** A one-layer model of the same shape, without the embedding (vocab 1, tied: no lm_head). */
export function layerConfig(cfg: ModelConfig): ModelConfig {
  return { ...cfg, numLayers: 1, vocabSize: 1, tieWordEmbeddings: true };
}

/**
 * Reads model.layers.{l}.* into the one-layer decoder's model.layers.0.* weights. The only place
 * the streamed forward touches a Decoder's parameter storage.
 */
export function fillLayer(dec: Decoder, ck: Checkpoint, l: number): void {
  const from = layerPrefix(0), to = layerPrefix(l);
  for (const s of dec.layout.slots) {
    if (s.name.startsWith(from)) readByRows(ck, to + s.name.slice(from.length), dec.params.view(s));
  }
}

/**
 * Reads a tensor into `out` a block of rows at a time, so a bf16/f16 tensor's conversion buffer
 * stays at EMBED_READ_BYTES instead of the whole tensor's bytes (the budget does not count it).
 */
export function readByRows(ck: Checkpoint, name: string, out: Float32Array): void {
  const shape = ck.tensors.get(name)?.info.shape ?? [];
  if (shape.length < 2) { ck.read(name, out); return; }
  const rowFloats = out.length / shape[0];
  const step = Math.max(1, Math.floor(EMBED_READ_BYTES / (rowFloats * 4)));
  for (let r0 = 0; r0 < shape[0]; r0 += step) {
    const n = Math.min(step, shape[0] - r0);
    ck.readRows(name, r0, n, out.subarray(r0 * rowFloats, (r0 + n) * rowFloats));
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

// ---------------------------------------------------------------------------------------------
// the memory plan

export interface HeadPlan {
  /** Vocabulary rows of the lm_head read at once; V = the whole lm_head, resident. */
  blockRows: number;
  /** Rows of logits StreamHead.logits computes per call (its caller's chunk). */
  chunkRows: number;
  bytes: number;
}

export interface ForwardPlan {
  /** One layer's float32 weights, the embedding read scratch and the activation arena. */
  layerBytes: number;
  embedBytes: number;
  arenaBytes: number;
  /** null when the caller needs no logits. */
  head: HeadPlan | null;
  /** Tokens whose hidden states are carried through all layers together (at least one batch). */
  groupTokens: number;
  /** The smallest budget this plan could have been made in. */
  minBytes: number;
}

export interface ForwardPlanInput {
  /** Tokens of the largest batch (B*T) and of all batches (the group never needs more). */
  batchTokens: number;
  totalTokens: number;
  /** Memory the caller keeps beside the forward (its results, one cache entry, ...). */
  extraBytes: number;
  /** Rows of logits the caller asks StreamHead for at once; 0 = no lm_head at all. */
  headRows: number;
  maxMemory: number;
  /** The error's hint: which flags make a batch smaller besides --max-memory. */
  hint: string;
}

/**
 * Splits the budget: the process baseline, one layer's weights, the embedding scratch, the
 * forward-only arena of one batch, the caller's own bytes and one batch's hidden states first.
 * Then the lm_head: whole when it fits, else half of what is left,
 * shared between a chunk of logits and a block of lm_head rows. The rest carries hidden states.
 * Refuses, before any work, a budget that cannot hold one batch streamed.
 */
export function planForward(cfg: ModelConfig, p: ForwardPlanInput): ForwardPlan {
  const C = cfg.hiddenSize, V = cfg.vocabSize;
  const layer = layerBytes(cfg);
  const embed = Math.min(EMBED_READ_BYTES, V * C * 4);
  const arena = forwardArenaBytes(cfg, p.batchTokens);
  const batchHidden = p.batchTokens * C * 4;
  const fixed = BASELINE_BYTES + layer + embed + arena + p.extraBytes + batchHidden;
  const minHead = p.headRows > 0 ? (V + C + 1) * 4 : 0; // one row of logits, one lm_head row
  const minBytes = fixed + minHead;
  if (p.maxMemory < minBytes) {
    throw new KompresorError({ code: 'input_invalid', where: '--max-memory',
      rule: 'a layer-streamed forward holds one layer\'s weights, one batch\'s activations and hidden states and one row of logits',
      expected: `at least ${formatBytes(minBytes)} (one layer ${formatBytes(layer)}, one batch of ${p.batchTokens} tokens ${formatBytes(arena + batchHidden)})`,
      found: formatBytes(p.maxMemory), hint: p.hint });
  }
  let avail = p.maxMemory - fixed;
  let head: HeadPlan | null = null;
  if (p.headRows > 0) {
    const whole = (V * C + p.headRows * V) * 4;
    if (whole <= avail) head = { blockRows: V, chunkRows: p.headRows, bytes: whole };
    else {
      const share = Math.max(minHead, Math.floor(avail / 2));
      const chunkRows = Math.max(1, Math.min(p.totalTokens, Math.floor(share / 2 / (V * 4))));
      const blockRows = Math.max(1, Math.min(V, Math.floor((share - chunkRows * V * 4) / ((C + chunkRows) * 4))));
      head = { blockRows, chunkRows, bytes: (chunkRows * V + blockRows * (C + chunkRows)) * 4 };
    }
    avail -= head.bytes;
  }
  const groupTokens = Math.min(p.totalTokens, p.batchTokens + Math.max(0, Math.floor(avail / (C * 4))));
  return { layerBytes: layer, embedBytes: embed, arenaBytes: arena, head, groupTokens: Math.max(p.batchTokens, groupTokens), minBytes };
}

/** Bytes of a forward-only arena without head for N token rows (every buffer is linear in N). */
export function forwardArenaBytes(cfg: ModelConfig, N: number): number {
  return allocateActivations(layerConfig(cfg), 1, 1, true, false).bytes * N;
}

/**
 * Cuts batches (in order) into groups of at most `groupTokens` tokens, one batch at least. Lazy:
 * the batches are drawn as the groups are consumed.
 */
export function* groupsOf(batches: Iterable<Batch>, groupTokens: number): Generator<Batch[]> {
  let group: Batch[] = [], tokens = 0;
  for (const b of batches) {
    const n = b.B * b.T;
    if (group.length > 0 && tokens + n > groupTokens) { yield group; group = []; tokens = 0; }
    group.push(b);
    tokens += n;
  }
  if (group.length > 0) yield group;
}

// ---------------------------------------------------------------------------------------------
// the forward

export interface StreamForwardOptions {
  /** Called before layer l runs on batch n (n counts batches over all groups): the probe to observe it, if any. */
  probe?: (l: number, n: number) => Probe | undefined;
  /**
   * The final-norm output of batch n, lnf (N, C), a view valid during the call. Without it the
   * final norm is never read or computed (score needs only what happens inside the layers).
   */
  onOutput?: (batch: Batch, n: number, lnf: Float32Array) => void;
  /** After each layer of each group. */
  onLayer?: () => void;
}

export function streamForward(ck: Checkpoint, groups: Iterable<Batch[]>, o: StreamForwardOptions = {}): void {
  const cfg = ck.config, L = cfg.numLayers, C = cfg.hiddenSize;
  checkCheckpoint(ck, buildLayout(cfg));
  const layer = new Decoder(layerConfig(cfg));
  const arenas = new SharedArenas(cfg);
  let hidden = new Float32Array(0);
  let normW: Float32Array | null = null;
  let n0 = 0;
  for (const group of groups) {
    const at: number[] = [];
    let floats = 0;
    for (const b of group) { checkIds(b, cfg.vocabSize); at.push(floats); floats += b.B * b.T * C; }
    if (hidden.length < floats) { hidden = new Float32Array(0); hidden = new Float32Array(floats); }
    const h = (i: number) => hidden.subarray(at[i], at[i] + group[i].B * group[i].T * C);
    group.forEach((b, i) => embedRows(ck, b.ids, C, h(i)));
    for (let l = 0; l < L; l++) {
      fillLayer(layer, ck, l);
      group.forEach((b, i) => {
        const a = arenas.get(b), x = h(i);
        layerSlice(a.buf.resid, 0, x.length).set(x);
        layer.layerForward(0, a, b, o.probe?.(l, n0 + i));
        x.set(layerSlice(a.buf.resid, 1, x.length));
      });
      o.onLayer?.();
    }
    if (o.onOutput) {
      normW ??= ck.read('model.norm.weight');
      group.forEach((b, i) => {
        const a = arenas.get(b), N = b.B * b.T;
        K.rmsnormForward(a.buf.lnf, a.buf.lnfRstd, h(i), normW!, N, C, cfg.rmsNormEps);
        o.onOutput!(b, n0 + i, a.buf.lnf);
      });
    }
    n0 += group.length;
  }
}

/**
 * Forward-only arenas without head for the batch shapes met so far (a full batch and a tail), all
 * views of ONE buffer sized for the largest: only one batch runs at a time.
 */
class SharedArenas {
  private list: Activations[] = [];
  private storage = new Float32Array(0);
  constructor(private cfg: ModelConfig) {}
  get(b: Batch): Activations {
    let a = this.list.find((x) => x.B === b.B && x.T === b.T);
    if (!a) {
      const floats = forwardArenaBytes(this.cfg, b.B * b.T) / 4;
      if (floats > this.storage.length) {
        this.list = [];
        this.storage = new Float32Array(0); // let the old buffer go first
        this.storage = new Float32Array(floats);
      }
      if (this.list.length === 4) this.list.shift();
      a = allocateActivations(layerConfig(this.cfg), b.B, b.T, true, false, false, this.storage);
      this.list.push(a);
    }
    return a;
  }
}

// ---------------------------------------------------------------------------------------------
// the lm_head

/**
 * The lm_head of a checkpoint (lm_head.weight, or model.embed_tokens.weight when tied) for
 * streamed callers: resident when the plan's block is the whole vocabulary, else read block of
 * rows by block on every call (so a caller should ask for plan.chunkRows rows at once).
 */
export class StreamHead {
  readonly V: number;
  readonly C: number;
  readonly name: string;
  private whole: Float32Array | null = null;
  private block: Float32Array;
  private tmp: Float32Array;

  constructor(private ck: Checkpoint, readonly plan: HeadPlan) {
    const cfg = ck.config;
    this.V = cfg.vocabSize;
    this.C = cfg.hiddenSize;
    this.name = cfg.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
    const blocked = plan.blockRows < this.V;
    this.block = new Float32Array(blocked ? plan.blockRows * this.C : 0);
    this.tmp = new Float32Array(blocked ? plan.blockRows * plan.chunkRows : 0);
  }

  get resident(): boolean { return this.plan.blockRows >= this.V; }

  /** out[rows, V] = x[rows, C] lm_headᵀ, for rows <= plan.chunkRows. */
  logits(out: Float32Array, x: Float32Array, rows: number): void {
    const { V, C } = this;
    if (this.resident) {
      if (!this.whole) readByRows(this.ck, this.name, this.whole = new Float32Array(V * C));
      K.matmulForward(out.subarray(0, rows * V), x.subarray(0, rows * C), this.whole, null, rows, C, V);
      return;
    }
    const vb = this.plan.blockRows;
    for (let v0 = 0; v0 < V; v0 += vb) {
      const nb = Math.min(vb, V - v0);
      const w = this.ck.readRows(this.name, v0, nb, this.block.subarray(0, nb * C));      // (nb, C)
      const t = this.tmp.subarray(0, rows * nb);                                             // (rows, nb)
      K.matmulForward(t, x.subarray(0, rows * C), w, null, rows, C, nb);
      for (let r = 0; r < rows; r++) out.set(t.subarray(r * nb, (r + 1) * nb), r * V + v0);
    }
  }
}
