// Parameter layout: the weights of a decoder live in blocks, one typed array per block, never in
// one array for all of them, so any model that fits in memory loads on Node 20 (a typed array
// holds at most 2^32 elements: 4.29B parameters) and no buffer is larger than one block. The
// gradients (and the optimizer's moments) use the same blocks. Each Hugging Face tensor is one
// contiguous slice of its block, named verbatim by its HF key, so loading and saving are name
// matching.
//
// Blocks: 0 = model.embed_tokens.weight; 1 + l = layer l; L + 1 = model.norm.weight followed by
// lm_head.weight when untied. Within a layer the slices are ordered so that the fused projections
// are contiguous:
//   q_proj | k_proj | v_proj      -> one [QKV, C] matrix, one GEMM for all three
//   q_bias | k_bias | v_bias      -> one [QKV] bias
//   gate_proj | up_proj           -> one [2F, C] matrix, one GEMM, SwiGLU reads [gate | up] rows
// A layer is one block, which is what streaming, pruning and recomputation per layer need.
//
// Weights are float32 (a model that trains), or 16-bit bf16/f16 bit patterns as the checkpoint
// stores them (a frozen model: teacher, reference, eval, generate). In a 16-bit store the
// matrices stay 16-bit and are widened inside the GEMM (matmulForwardHalf); the vectors (norms,
// biases) are widened once at load, since every kernel but the GEMM reads float32.
//
// Dimension legend: V = vocab, C = hidden, F = intermediate, L = layers,
// nH/nKV = query/kv heads, hd = head_dim, QKV = (nH + 2 nKV) hd.
import type { ModelConfig } from '../io/hf_config.ts';
import { kernels as K } from '../tensor/ops.ts';
import { ensure } from '../errors.ts';

export interface TensorSlot {
  name: string;       // HF key, e.g. "model.layers.3.self_attn.q_proj.weight"
  shape: number[];
  offset: number;     // in elements, in HF order over all blocks (a flat index; no array has it)
  size: number;
  block: number;      // which block holds it
  blockOffset: number; // in elements, into that block
}

export interface ParameterLayout {
  slots: TensorSlot[];
  byName: Map<string, TensorSlot>;
  total: number;               // elements over all blocks (= exact parameter count)
  blockSizes: number[];        // elements of each block
  blockStarts: number[];       // flat offset of each block's first element
}

/** A matrix as the GEMM reads it: float32, or 16-bit bit patterns (bf16 or f16, see ModelViews.f16). */
export type WeightArray = Float32Array | Uint16Array;
export type WeightDtype = 'f32' | 'bf16' | 'f16';

/** Views of one layer's parameters (or gradients). Vectors are always float32. */
export interface LayerViews<W extends WeightArray = WeightArray> {
  ln1: Float32Array;           // [C]      input_layernorm.weight
  qkvW: W;                     // [QKV, C] q_proj | k_proj | v_proj
  qkvB: Float32Array | null;   // [QKV]    q/k/v biases (Qwen2, Llama attention_bias)
  oW: W;                       // [C, nH*hd]
  oB: Float32Array | null;     // [C]      (Llama attention_bias)
  ln2: Float32Array;           // [C]      post_attention_layernorm.weight
  gateupW: W;                  // [2F, C]  gate_proj | up_proj
  downW: W;                    // [C, F]
}

export interface ModelViews<W extends WeightArray = WeightArray> {
  wte: W;                      // [V, C]   model.embed_tokens.weight
  layers: LayerViews<W>[];
  lnf: Float32Array;           // [C]      model.norm.weight
  lmHead: W;                   // [V, C]   lm_head.weight, or wte itself when tied
  f16: boolean;                // 16-bit matrices are f16 (else bf16); false for float32
}

export function layerPrefix(l: number): string {
  return `model.layers.${l}.`;
}

/** The block of layer l. */
export function layerBlock(l: number): number { return 1 + l; }

/** Lays out every tensor of the config in HF order, fused projections contiguous, one block per layer. */
export function buildLayout(cfg: ModelConfig): ParameterLayout {
  const C = cfg.hiddenSize, F = cfg.intermediateSize, hd = cfg.headDim;
  const q = cfg.numHeads * hd, kv = cfg.numKvHeads * hd;
  const slots: TensorSlot[] = [];
  const blockSizes: number[] = [], blockStarts: number[] = [];
  let offset = 0;
  const open = () => { blockStarts.push(offset); blockSizes.push(0); };
  const add = (name: string, shape: number[]) => {
    const size = shape.reduce((a, b) => a * b, 1), block = blockSizes.length - 1;
    slots.push({ name, shape, offset, size, block, blockOffset: blockSizes[block] });
    blockSizes[block] += size;
    offset += size;
  };
  open();
  add('model.embed_tokens.weight', [cfg.vocabSize, C]);
  for (let l = 0; l < cfg.numLayers; l++) {
    open();
    const p = layerPrefix(l);
    add(p + 'input_layernorm.weight', [C]);
    add(p + 'self_attn.q_proj.weight', [q, C]);
    add(p + 'self_attn.k_proj.weight', [kv, C]);
    add(p + 'self_attn.v_proj.weight', [kv, C]);
    if (cfg.qkvBias) {
      add(p + 'self_attn.q_proj.bias', [q]);
      add(p + 'self_attn.k_proj.bias', [kv]);
      add(p + 'self_attn.v_proj.bias', [kv]);
    }
    add(p + 'self_attn.o_proj.weight', [C, q]);
    if (cfg.oBias) add(p + 'self_attn.o_proj.bias', [C]);
    add(p + 'post_attention_layernorm.weight', [C]);
    add(p + 'mlp.gate_proj.weight', [F, C]);
    add(p + 'mlp.up_proj.weight', [F, C]);
    add(p + 'mlp.down_proj.weight', [C, F]);
  }
  open();
  add('model.norm.weight', [C]);
  if (!cfg.tieWordEmbeddings) add('lm_head.weight', [cfg.vocabSize, C]);
  return { slots, byName: new Map(slots.map((s) => [s.name, s])), total: offset, blockSizes, blockStarts };
}

/** Elements of one layer's block (every layer has the same shape). */
export function layerSize(layout: ParameterLayout): number {
  return layout.blockSizes.length > 2 ? layout.blockSizes[1] : 0;
}

// ---------------------------------------------------------------------------------------------
// storage

/**
 * Float32 parameters (or gradients, or optimizer moments) of a layout, one array per block.
 * get/set address the flat HF-order index of TensorSlot.offset (tests, finite differences).
 */
export class ParamBlocks {
  readonly arrays: Float32Array[];
  readonly length: number;
  constructor(readonly layout: ParameterLayout, arrays?: Float32Array[]) {
    this.arrays = arrays ?? layout.blockSizes.map((n) => new Float32Array(n));
    ensure(this.arrays.length === layout.blockSizes.length && this.arrays.every((a, i) => a.length === layout.blockSizes[i]),
      'ParamBlocks', () => `the arrays must match the layout's ${layout.blockSizes.length} blocks`);
    this.length = layout.total;
  }
  /** The tensor's values (a view into its block). */
  view(slot: TensorSlot | string): Float32Array {
    const s = typeof slot === 'string' ? slotOf(this.layout, slot) : slot;
    return this.arrays[s.block].subarray(s.blockOffset, s.blockOffset + s.size);
  }
  get(i: number): number { const [b, j] = this.locate(i); return this.arrays[b][j]; }
  set(i: number, v: number): void { const [b, j] = this.locate(i); this.arrays[b][j] = v; }
  fill(v: number): void { for (const a of this.arrays) a.fill(v); }
  /** Copies a flat array (HF order, this.length values) into the blocks. */
  setAll(values: ArrayLike<number>): void {
    ensure(values.length === this.length, 'ParamBlocks.setAll', () => `${values.length} values for ${this.length} parameters`);
    this.arrays.forEach((a, b) => { const s = this.layout.blockStarts[b]; for (let i = 0; i < a.length; i++) a[i] = values[s + i]; });
  }
  allFinite(): boolean { return this.arrays.every((a) => a.every(Number.isFinite)); }
  /** A float32 copy of every value in flat order (small models: tests, hashes). */
  flat(): Float32Array {
    const out = new Float32Array(this.length);
    this.arrays.forEach((a, b) => out.set(a, this.layout.blockStarts[b]));
    return out;
  }
  private locate(i: number): [number, number] {
    const starts = this.layout.blockStarts;
    let lo = 0, hi = starts.length - 1;
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (starts[mid] <= i) lo = mid; else hi = mid - 1; }
    return [lo, i - starts[lo]];
  }
}

/** 16-bit weights as the checkpoint stores them, with the vectors (norms, biases) widened to float32. */
export class HalfBlocks {
  readonly arrays: Uint16Array[];
  readonly vectors = new Map<string, Float32Array>();
  constructor(readonly layout: ParameterLayout, readonly f16: boolean) {
    this.arrays = layout.blockSizes.map((n) => new Uint16Array(n));
    for (const s of layout.slots) if (s.shape.length === 1) this.vectors.set(s.name, new Float32Array(s.size));
  }
  view(slot: TensorSlot | string): Uint16Array {
    const s = typeof slot === 'string' ? slotOf(this.layout, slot) : slot;
    return this.arrays[s.block].subarray(s.blockOffset, s.blockOffset + s.size);
  }
  get dtype(): WeightDtype { return this.f16 ? 'f16' : 'bf16'; }
}

export type WeightStore = ParamBlocks | HalfBlocks;

/** Bytes a store of this dtype holds for the layout (what loading allocates). */
export function storeBytes(layout: ParameterLayout, dtype: WeightDtype): number {
  return layout.total * (dtype === 'f32' ? 4 : 2);
}

function slotOf(layout: ParameterLayout, name: string): TensorSlot {
  const s = layout.byName.get(name);
  if (!s) throw new Error(`[ImplError] parameter layout has no ${name}`);
  return s;
}

/** Typed views of every parameter of a float32 store (parameters or gradients). */
export function viewsOf(layout: ParameterLayout, cfg: ModelConfig, store: ParamBlocks): ModelViews<Float32Array>;
/** Typed views of every parameter: 16-bit matrices for a HalfBlocks store. */
export function viewsOf(layout: ParameterLayout, cfg: ModelConfig, store: WeightStore): ModelViews;
export function viewsOf(layout: ParameterLayout, cfg: ModelConfig, store: WeightStore): ModelViews {
  const half = store instanceof HalfBlocks ? store : null;
  const mat = (name: string, span = 1): WeightArray => {
    const s = slotOf(layout, name);
    return store.arrays[s.block].subarray(s.blockOffset, s.blockOffset + s.size * span);
  };
  const vec = (name: string, span = 1): Float32Array => {
    if (half) return half.vectors.get(name)!;
    return mat(name, span) as Float32Array;
  };
  const layers: LayerViews[] = [];
  const qkvSize = (cfg.numHeads + 2 * cfg.numKvHeads) * cfg.headDim;
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = layerPrefix(l);
    const qS = slotOf(layout, p + 'self_attn.q_proj.weight');
    const gS = slotOf(layout, p + 'mlp.gate_proj.weight');
    layers.push({
      ln1: vec(p + 'input_layernorm.weight'),
      qkvW: store.arrays[qS.block].subarray(qS.blockOffset, qS.blockOffset + qkvSize * cfg.hiddenSize),
      qkvB: cfg.qkvBias ? qkvBias(p) : null,
      oW: mat(p + 'self_attn.o_proj.weight'),
      oB: cfg.oBias ? vec(p + 'self_attn.o_proj.bias') : null,
      ln2: vec(p + 'post_attention_layernorm.weight'),
      gateupW: mat(p + 'mlp.gate_proj.weight', 2),
      downW: mat(p + 'mlp.down_proj.weight'),
    });
  }
  const wte = mat('model.embed_tokens.weight');
  return { wte, layers, lnf: vec('model.norm.weight'), lmHead: cfg.tieWordEmbeddings ? wte : mat('lm_head.weight'), f16: half?.f16 ?? false };

  // q|k|v biases are contiguous in a float32 block; a 16-bit store widened them one by one
  function qkvBias(p: string): Float32Array {
    if (!half) {
      const b = slotOf(layout, p + 'self_attn.q_proj.bias');
      return (store as ParamBlocks).arrays[b.block].subarray(b.blockOffset, b.blockOffset + qkvSize);
    }
    const out = new Float32Array(qkvSize);
    let o = 0;
    for (const n of ['q_proj', 'k_proj', 'v_proj']) { const v = half.vectors.get(`${p}self_attn.${n}.bias`)!; out.set(v, o); o += v.length; }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// the two reads of a weight that depend on its storage

/** out[N,OC] (+)= inp[N,C] @ W[OC,C]^T (+ bias), W float32 or 16-bit (f16 says which 16-bit format). */
export function linearForward(out: Float32Array, inp: Float32Array, W: WeightArray, bias: Float32Array | null,
  N: number, C: number, OC: number, accumulate: boolean, f16: boolean): void {
  if (W instanceof Float32Array) K.matmulForward(out, inp, W, bias, N, C, OC, accumulate);
  else K.matmulForwardHalf(out, inp, W, bias, N, C, OC, accumulate, f16);
}

/** Row `id` of an embedding matrix [V, C] into out[0..C), widened when 16-bit. */
export function embeddingRow(out: Float32Array, wte: WeightArray, id: number, C: number, f16: boolean): void {
  const row = wte.subarray(id * C, (id + 1) * C);
  if (row instanceof Float32Array) out.set(row);
  else (f16 ? K.f16ToF32 : K.bf16ToF32)(out, row, C);
}
