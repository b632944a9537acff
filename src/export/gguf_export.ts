// Hugging Face checkpoint -> GGUF for llama.cpp, streaming one tensor at a time (read, permute,
// convert, write). The mapping follows llama.cpp's convert_hf_to_gguf.py (docs/gguf.md has the
// table):
//   LlamaForCausalLM, MistralForCausalLM -> arch "llama"; q_proj/k_proj rows (and biases) are
//     permuted from HF's rotate-half RoPE layout to llama.cpp's interleaved pairs
//   Qwen2ForCausalLM -> arch "qwen2" (NeoX RoPE, no permutation, q/k/v biases) when
//     num_attention_heads * head_dim == hidden_size; otherwise (pruned heads) or with llama3 RoPE
//     it goes out as arch "llama", whose graph takes any q width, biases and rope_freqs
//   tied embeddings: no output.weight; llama.cpp reuses token_embd.weight as the head
//   explicit head_dim: attention.key_length/value_length and rope.dimension_count
//   RoPE: linear -> rope.scaling.type/factor; llama3 -> a rope_freqs.weight tensor of divisors
//   sliding window: llama.cpp's llama/qwen2 graphs attend to every earlier token, so the export
//     warns that outputs agree only for sequences no longer than the window
// dtypes: f32, f16, bf16 or q8_0 for 2-D weights; norms, biases and rope_freqs stay f32, and a
// q8_0 matrix whose rows are not a multiple of 32 falls back to f16 (as convert_hf_to_gguf does).
// q4_0, q4_k_m, q5_k_m, q6_k: ./gguf_quant_mix.ts picks each matrix's type as llama-quantize
// would, and ./gguf_quants.ts packs it, weighted by the calibration's input mean squares if given.
import nodePath from 'node:path';
import { openCheckpoint, type Checkpoint } from '../io/checkpoint.ts';
import { ropeInvFreq, type ModelConfig } from '../io/hf_config.ts';
import { buildLayout, layerPrefix } from '../model/parameters.ts';
import { checkCheckpoint } from '../model/load.ts';
import { KompresorError } from '../errors.ts';
import { kv, writeGguf, type GgufTensor, type GgmlTypeName } from './gguf_writer.ts';
import { vocabKv, type KvList } from './gguf_vocab.ts';
import { EXPORT_DTYPES, FILE_TYPE, matrixType, type ExportDtype, type MatrixRole } from './gguf_quant_mix.ts';
import { loadImportance, importanceFor, type ChannelImportance } from './gguf_calibration.ts';

export { EXPORT_DTYPES, type ExportDtype };
export type GgufArch = 'llama' | 'qwen2';

/** GGML_QNT_VERSION, written by every converter. */
const QUANT_VERSION = 2;

export interface ExportOptions {
  dtype?: ExportDtype;
  /** A scores file of `kompresor score` with input_mean_squares: weights the quantization error. */
  calibration?: string;
  /** After each tensor: how many are done, of how many, and what was written (bytes before padding). */
  onTensor?: (done: number, total: number, name: string, type: GgmlTypeName, bytes: number) => void;
}

export interface ExportSummary {
  model_dir: string;
  out: string;
  architecture: string;
  gguf_arch: GgufArch;
  dtype: ExportDtype;
  tensors: number;
  /** Tensors per stored ggml type. */
  types: Partial<Record<GgmlTypeName, number>>;
  params: number;
  bytes: number;
  seconds: number;
  vocab: { tokens: number; model: string; pre: string };
  /** The scores file whose input mean squares weighted the block scales, or null. */
  calibration: string | null;
  /** Bits per parameter of the whole file (header included). */
  bits_per_weight: number;
  notes: string[];
  warnings: string[];
}

/** One GGUF tensor and where its values come from. */
export interface TensorMapping {
  gguf: string;
  /** HF tensor name, or null for a generated tensor (rope_freqs). */
  hf: string | null;
  shape: number[];
  /** 1-D tensors (norms, biases, rope_freqs) stay F32. */
  vector: boolean;
  /** Rows are grouped in this many heads and interleaved for llama.cpp's RoPE (0 = none). */
  permuteHeads: number;
  /** What the matrix is, for the quantization mix and the calibration (null for vectors). */
  role: MatrixRole | null;
  /** Its layer, or -1. */
  layer: number;
}

// ---------------------------------------------------------------------------------------------
// entry point

export function exportGguf(modelDir: string, out: string, o: ExportOptions = {}): ExportSummary {
  const t0 = performance.now();
  const dtype = o.dtype ?? 'f16';
  const ck = openCheckpoint(modelDir);
  const cfg = ck.config;
  checkCheckpoint(ck, buildLayout(cfg));
  const notes: string[] = [], warnings: string[] = [];
  const arch = chooseArch(cfg, notes);
  const vocab = vocabKv(ck.dir, cfg.vocabSize, ck.rawConfig);
  warnings.push(...vocab.warnings, ...slidingWindowWarnings(cfg));
  const imp = o.calibration ? loadImportance(o.calibration, cfg) : null;
  if (imp && !dtype.startsWith('q4') && !dtype.startsWith('q5') && dtype !== 'q6_k') {
    notes.push(`--calibration has no effect on ${dtype} (only the block types q4_0, q4_k_m, q5_k_m and q6_k choose scales)`);
  }
  const kvs: KvList = [...modelKv(ck, arch, dtype), ...vocab.kv];
  const map = tensorMap(cfg, arch);
  const fallbacks: string[] = [];
  const tensors = map.map((m) => ggufTensor(ck, m, dtype, cfg, imp, fallbacks));
  if (fallbacks.length > 0) notes.push(`${fallbacks.length} matrices whose rows do not divide the block size were stored in a fallback type: ${fallbacks.join(', ')}`);
  const res = writeGguf(out, kvs, tensors, {
    onTensor: (i, t, bytes) => o.onTensor?.(i + 1, tensors.length, t.name, t.type, bytes),
  });
  const types: Partial<Record<GgmlTypeName, number>> = {};
  for (const t of tensors) types[t.type] = (types[t.type] ?? 0) + 1;
  const params = map.filter((m) => m.hf !== null).reduce((s, m) => s + m.shape.reduce((a, b) => a * b, 1), 0);
  return {
    model_dir: ck.dir, out, architecture: cfg.architecture, gguf_arch: arch, dtype, tensors: tensors.length, types, params,
    bytes: res.bytes, seconds: (performance.now() - t0) / 1000, vocab: { tokens: vocab.tokens, model: vocab.model, pre: vocab.pre },
    calibration: o.calibration ?? null, bits_per_weight: (res.bytes * 8) / params, notes, warnings,
  };
}

/** llama for Llama/Mistral; qwen2 unless its graph cannot hold the model (then llama, same numerics). */
export function chooseArch(cfg: ModelConfig, notes: string[] = []): GgufArch {
  if (cfg.architecture !== 'Qwen2ForCausalLM') return 'llama';
  if (cfg.numHeads * cfg.headDim !== cfg.hiddenSize) {
    notes.push(`Qwen2 with num_attention_heads * head_dim (${cfg.numHeads * cfg.headDim}) != hidden_size (${cfg.hiddenSize}) ` +
      'is written as arch "llama" (llama.cpp\'s qwen2 graph assumes q width = hidden size; the computation is the same)');
    return 'llama';
  }
  if (cfg.ropeScaling?.type === 'llama3') {
    notes.push('Qwen2 with llama3 RoPE scaling is written as arch "llama", whose graph applies rope_freqs');
    return 'llama';
  }
  return 'qwen2';
}

function slidingWindowWarnings(cfg: ModelConfig): string[] {
  if (cfg.slidingWindow <= 0 || cfg.slidingWindow >= cfg.maxPositionEmbeddings) return [];
  return [`sliding_window ${cfg.slidingWindow}: llama.cpp's llama/qwen2 graphs have no sliding window and attend to every ` +
    `earlier token, so its outputs match this model only for sequences of at most ${cfg.slidingWindow} tokens`];
}

// ---------------------------------------------------------------------------------------------
// key-values

function modelKv(ck: Checkpoint, arch: GgufArch, dtype: ExportDtype): KvList {
  const c = ck.config;
  const a = (k: string) => `${arch}.${k}`;
  const out: KvList = [
    ['general.architecture', kv.str(arch)],
    ['general.type', kv.str('model')],
    ['general.name', kv.str(modelName(ck))],
    ['general.file_type', kv.u32(FILE_TYPE[dtype])],
    ['general.quantization_version', kv.u32(QUANT_VERSION)],
    [a('vocab_size'), kv.u32(c.vocabSize)],
    [a('context_length'), kv.u32(c.maxPositionEmbeddings)],
    [a('embedding_length'), kv.u32(c.hiddenSize)],
    [a('block_count'), kv.u32(c.numLayers)],
    [a('feed_forward_length'), kv.u32(c.intermediateSize)],
    [a('attention.head_count'), kv.u32(c.numHeads)],
    [a('attention.head_count_kv'), kv.u32(c.numKvHeads)],
    [a('attention.key_length'), kv.u32(c.headDim)],
    [a('attention.value_length'), kv.u32(c.headDim)],
    [a('attention.layer_norm_rms_epsilon'), kv.f32(c.rmsNormEps)],
    [a('rope.dimension_count'), kv.u32(c.headDim)],
    [a('rope.freq_base'), kv.f32(c.ropeTheta)],
  ];
  if (c.ropeScaling?.type === 'linear') {
    out.push([a('rope.scaling.type'), kv.str('linear')], [a('rope.scaling.factor'), kv.f32(c.ropeScaling.factor)]);
  }
  return out;
}

function modelName(ck: Checkpoint): string {
  const n = ck.rawConfig._name_or_path;
  return typeof n === 'string' && n.length > 0 ? nodePath.basename(n) : nodePath.basename(ck.dir);
}

// ---------------------------------------------------------------------------------------------
// tensors

/** Every GGUF tensor of the model, in file order, with its HF source. */
export function tensorMap(cfg: ModelConfig, arch: GgufArch): TensorMapping[] {
  const C = cfg.hiddenSize, F = cfg.intermediateSize, q = cfg.numHeads * cfg.headDim, kvw = cfg.numKvHeads * cfg.headDim;
  const permute = arch === 'llama';
  const m: TensorMapping[] = [];
  let layer = -1;
  const add = (gguf: string, hf: string | null, shape: number[], permuteHeads = 0, role: MatrixRole | null = null) =>
    m.push({ gguf, hf, shape, vector: shape.length === 1, permuteHeads: permute ? permuteHeads : 0, role, layer });
  if (cfg.ropeScaling?.type === 'llama3') add('rope_freqs.weight', null, [cfg.headDim / 2]);
  add('token_embd.weight', 'model.embed_tokens.weight', [cfg.vocabSize, C], 0, cfg.tieWordEmbeddings ? 'output' : 'token_embd');
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = layerPrefix(l), b = `blk.${l}.`;
    layer = l;
    add(b + 'attn_norm.weight', p + 'input_layernorm.weight', [C]);
    add(b + 'attn_q.weight', p + 'self_attn.q_proj.weight', [q, C], cfg.numHeads, 'attn_q');
    add(b + 'attn_k.weight', p + 'self_attn.k_proj.weight', [kvw, C], cfg.numKvHeads, 'attn_k');
    add(b + 'attn_v.weight', p + 'self_attn.v_proj.weight', [kvw, C], 0, 'attn_v');
    if (cfg.qkvBias) {
      add(b + 'attn_q.bias', p + 'self_attn.q_proj.bias', [q], cfg.numHeads);
      add(b + 'attn_k.bias', p + 'self_attn.k_proj.bias', [kvw], cfg.numKvHeads);
      add(b + 'attn_v.bias', p + 'self_attn.v_proj.bias', [kvw]);
    }
    add(b + 'attn_output.weight', p + 'self_attn.o_proj.weight', [C, q], 0, 'attn_output');
    if (cfg.oBias) add(b + 'attn_output.bias', p + 'self_attn.o_proj.bias', [C]);
    add(b + 'ffn_norm.weight', p + 'post_attention_layernorm.weight', [C]);
    add(b + 'ffn_gate.weight', p + 'mlp.gate_proj.weight', [F, C], 0, 'ffn_gate');
    add(b + 'ffn_up.weight', p + 'mlp.up_proj.weight', [F, C], 0, 'ffn_up');
    add(b + 'ffn_down.weight', p + 'mlp.down_proj.weight', [C, F], 0, 'ffn_down');
  }
  layer = -1;
  add('output_norm.weight', 'model.norm.weight', [C]);
  if (!cfg.tieWordEmbeddings) add('output.weight', 'lm_head.weight', [cfg.vocabSize, C], 0, 'output');
  return m;
}

function ggufTensor(ck: Checkpoint, m: TensorMapping, dtype: ExportDtype, cfg: ModelConfig, imp: ChannelImportance | null,
  fallbacks: string[]): GgufTensor {
  let type: GgmlTypeName = 'F32';
  if (!m.vector) {
    const pick = matrixType(dtype, m.role!, m.layer, cfg.numLayers, m.shape);
    type = pick.type;
    if (pick.wanted !== pick.type) fallbacks.push(`${m.gguf} ${pick.wanted} -> ${pick.type}`);
  }
  const data = () => {
    const x = m.hf === null ? llama3RopeFreqs(ck.config) : ck.read(m.hf);
    return m.permuteHeads > 0 ? permuteRope(x, m.permuteHeads, m.shape) : x;
  };
  return { name: m.gguf, shape: m.shape, type, data, importance: imp && m.role ? importanceFor(imp, m.role, m.layer) : null };
}

/**
 * HF rotate-half -> llama.cpp interleaved RoPE (convert_hf_to_gguf's LlamaModel.permute): within
 * each head of hd rows, HF row (half * hd/2 + i) moves to row (2i + half). `shape` is [rows, ...].
 */
export function permuteRope(x: Float32Array, heads: number, shape: readonly number[]): Float32Array {
  const rows = shape[0], cols = x.length / rows, hd = rows / heads, h2 = hd / 2;
  if (!Number.isInteger(hd) || hd % 2 !== 0 || !Number.isInteger(cols)) {
    throw new KompresorError({ code: 'impl_error', where: 'permuteRope', rule: 'rows must split into heads of even size',
      found: `${rows} rows, ${heads} heads` });
  }
  const out = new Float32Array(x.length);
  for (let h = 0; h < heads; h++) {
    for (let half = 0; half < 2; half++) {
      for (let i = 0; i < h2; i++) {
        const src = (h * hd + half * h2 + i) * cols, dst = (h * hd + 2 * i + half) * cols;
        out.set(x.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

/**
 * rope_freqs for llama3 scaling: per frequency the divisor llama.cpp applies (1 above the high
 * band, factor below the low band, 1 / ((1 - smooth) / factor + smooth) between), computed in
 * double from the float32 base frequencies as convert_hf_to_gguf does.
 */
export function llama3RopeFreqs(cfg: ModelConfig): Float32Array {
  const s = cfg.ropeScaling;
  if (s?.type !== 'llama3') throw new KompresorError({ code: 'impl_error', where: 'llama3RopeFreqs', rule: 'needs llama3 RoPE scaling', found: String(s?.type) });
  const base = ropeInvFreq({ ...cfg, ropeScaling: null });
  const old = s.originalMaxPositionEmbeddings;
  const lowWavelen = old / s.lowFreqFactor, highWavelen = old / s.highFreqFactor;
  return base.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) return 1;
    if (wavelen > lowWavelen) return s.factor;
    const smooth = (old / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return 1 / ((1 - smooth) / s.factor + smooth);
  });
}
