// Parameter layout: every weight of a decoder lives in one Float32Array arena (and its gradient in
// a second arena with the same layout). Each Hugging Face tensor is one contiguous slice, named
// verbatim by its HF key, so loading and saving are name matching.
//
// Within a layer the slices are ordered so that the fused projections are contiguous too:
//   q_proj | k_proj | v_proj      -> one [QKV, C] matrix, one GEMM for all three
//   q_bias | k_bias | v_bias      -> one [QKV] bias
//   gate_proj | up_proj           -> one [2F, C] matrix, one GEMM, SwiGLU reads [gate | up] rows
// Layers are contiguous blocks (layer-major), which is what streaming and pruning per layer need.
//
// Dimension legend: V = vocab, C = hidden, F = intermediate, L = layers,
// nH/nKV = query/kv heads, hd = head_dim, QKV = (nH + 2 nKV) hd.
import type { ModelConfig } from '../io/hf_config.ts';

export interface TensorSlot {
  name: string;       // HF key, e.g. "model.layers.3.self_attn.q_proj.weight"
  shape: number[];
  offset: number;     // in floats, into the arena
  size: number;
}

/** Views of one layer's parameters (or gradients) inside an arena. */
export interface LayerViews {
  ln1: Float32Array;           // [C]      input_layernorm.weight
  qkvW: Float32Array;          // [QKV, C] q_proj | k_proj | v_proj
  qkvB: Float32Array | null;   // [QKV]    q/k/v biases (Qwen2, Llama attention_bias)
  oW: Float32Array;            // [C, nH*hd]
  oB: Float32Array | null;     // [C]      (Llama attention_bias)
  ln2: Float32Array;           // [C]      post_attention_layernorm.weight
  gateupW: Float32Array;       // [2F, C]  gate_proj | up_proj
  downW: Float32Array;         // [C, F]
}

export interface ModelViews {
  wte: Float32Array;           // [V, C]   model.embed_tokens.weight
  layers: LayerViews[];
  lnf: Float32Array;           // [C]      model.norm.weight
  lmHead: Float32Array;        // [V, C]   lm_head.weight, or wte itself when tied
}

export interface ParameterLayout {
  slots: TensorSlot[];
  byName: Map<string, TensorSlot>;
  total: number;               // floats in the arena (= exact parameter count)
  layerOffsets: number[];      // start of each layer's block; layerOffsets[L] = end of last layer
}

export function layerPrefix(l: number): string {
  return `model.layers.${l}.`;
}

/** Lays out every tensor of the config in HF order, fused projections contiguous. */
export function buildLayout(cfg: ModelConfig): ParameterLayout {
  const C = cfg.hiddenSize, F = cfg.intermediateSize, hd = cfg.headDim;
  const q = cfg.numHeads * hd, kv = cfg.numKvHeads * hd;
  const slots: TensorSlot[] = [];
  let offset = 0;
  const add = (name: string, shape: number[]) => {
    const size = shape.reduce((a, b) => a * b, 1);
    slots.push({ name, shape, offset, size });
    offset += size;
  };
  add('model.embed_tokens.weight', [cfg.vocabSize, C]);
  const layerOffsets: number[] = [];
  for (let l = 0; l < cfg.numLayers; l++) {
    layerOffsets.push(offset);
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
  layerOffsets.push(offset);
  add('model.norm.weight', [C]);
  if (!cfg.tieWordEmbeddings) add('lm_head.weight', [cfg.vocabSize, C]);
  return { slots, byName: new Map(slots.map((s) => [s.name, s])), total: offset, layerOffsets };
}

/** Typed views of every parameter inside `arena` (the parameter arena or the gradient arena). */
export function viewsOf(layout: ParameterLayout, cfg: ModelConfig, arena: Float32Array): ModelViews {
  const slot = (name: string) => {
    const s = layout.byName.get(name);
    if (!s) throw new Error(`[ImplError] parameter layout has no ${name}`);
    return s;
  };
  const view = (name: string, span = 1) => {
    const s = slot(name);
    return arena.subarray(s.offset, s.offset + s.size * span);
  };
  const layers: LayerViews[] = [];
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = layerPrefix(l);
    const qS = slot(p + 'self_attn.q_proj.weight');
    const qkvSize = (cfg.numHeads + 2 * cfg.numKvHeads) * cfg.headDim;
    const gS = slot(p + 'mlp.gate_proj.weight');
    layers.push({
      ln1: view(p + 'input_layernorm.weight'),
      qkvW: arena.subarray(qS.offset, qS.offset + qkvSize * cfg.hiddenSize),
      qkvB: cfg.qkvBias ? arena.subarray(slot(p + 'self_attn.q_proj.bias').offset,
        slot(p + 'self_attn.q_proj.bias').offset + qkvSize) : null,
      oW: view(p + 'self_attn.o_proj.weight'),
      oB: cfg.oBias ? view(p + 'self_attn.o_proj.bias') : null,
      ln2: view(p + 'post_attention_layernorm.weight'),
      gateupW: arena.subarray(gS.offset, gS.offset + 2 * gS.size),
      downW: view(p + 'mlp.down_proj.weight'),
    });
  }
  const wte = view('model.embed_tokens.weight');
  return {
    wte,
    layers,
    lnf: view('model.norm.weight'),
    lmHead: cfg.tieWordEmbeddings ? wte : view('lm_head.weight'),
  };
}
