// Hugging Face config.json -> ModelConfig, normalised once (after transformers.js
// getNormalizedConfig). Architecture differences become flags (qkvBias, oBias, slidingWindow,
// tieWordEmbeddings, ropeScaling); nothing downstream branches on model_type.
// Also: the RoPE cos/sin tables exactly as transformers computes them in float32, and exact
// parameter counts per component.
import { KompresorError } from '../errors.ts';

export type Architecture = 'LlamaForCausalLM' | 'MistralForCausalLM' | 'Qwen2ForCausalLM';
const ARCHITECTURES: readonly Architecture[] = ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM'];
const ARCH_BY_MODEL_TYPE: Record<string, Architecture> = {
  llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM',
};

export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };

export interface ModelConfig {
  architecture: Architecture;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry biases (Qwen2 always; Llama when attention_bias). */
  qkvBias: boolean;
  /** o_proj carries a bias (Llama attention_bias). */
  oBias: boolean;
  /** Every layer attends to at most this many previous positions; 0 = full causal attention. */
  slidingWindow: number;
  bosTokenId: number | null;
  eosTokenIds: number[];
  padTokenId: number | null;
}

/** transformers' per-class defaults for keys a config.json may omit. */
const DEFAULTS: Record<Architecture, { maxPositionEmbeddings: number }> = {
  LlamaForCausalLM: { maxPositionEmbeddings: 2048 },
  MistralForCausalLM: { maxPositionEmbeddings: 4096 * 32 },
  Qwen2ForCausalLM: { maxPositionEmbeddings: 32768 },
};

type Raw = Record<string, unknown>;

// ---------------------------------------------------------------------------------------------
// normalisation

/** Validates and normalises a raw config.json object; `where` names it in errors (a path). */
export function normalizeConfig(raw: unknown, where: string): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new KompresorError({ code: 'config_invalid', where, rule: 'config.json must hold a JSON object',
      found: raw === null ? 'null' : Array.isArray(raw) ? 'an array' : typeof raw });
  }
  const r = raw as Raw;
  const architecture = readArchitecture(r, where);
  const sizes = readSizes(r, where);
  checkUnsupported(r, where);
  const rope = readRope(r, where);
  const attn = readAttentionFlags(r, where, architecture, sizes.numLayers);
  return {
    architecture, ...sizes, ...rope, ...attn,
    rmsNormEps: optPositive(r, 'rms_norm_eps', 1e-6, where),
    maxPositionEmbeddings: optPositiveInt(r, 'max_position_embeddings', DEFAULTS[architecture].maxPositionEmbeddings, where),
    tieWordEmbeddings: r.tie_word_embeddings === true,
    bosTokenId: optTokenId(r, 'bos_token_id', where),
    eosTokenIds: readEos(r, where),
    padTokenId: optTokenId(r, 'pad_token_id', where),
  };
}

function unsupported(where: string, key: string, value: unknown, supported: string, hint: string): KompresorError {
  return new KompresorError({ code: 'config_unsupported', where: `${where}: ${key}`,
    rule: `${key} must be one of the supported values`, expected: supported, found: JSON.stringify(value), hint });
}

function invalid(where: string, key: string, rule: string, expected: string, value: unknown): KompresorError {
  return new KompresorError({ code: 'config_invalid', where: `${where}: ${key}`, rule, expected,
    found: value === undefined ? 'the key is missing' : JSON.stringify(value) });
}

function readArchitecture(r: Raw, where: string): Architecture {
  const list = r.architectures;
  const named = Array.isArray(list) && typeof list[0] === 'string' ? list[0]
    : typeof r.model_type === 'string' ? ARCH_BY_MODEL_TYPE[r.model_type] : undefined;
  if (named === undefined || !ARCHITECTURES.includes(named as Architecture)) {
    throw unsupported(where, 'architectures', list ?? r.model_type, ARCHITECTURES.join(', '),
      'Kompresor runs Llama, Mistral and Qwen2 decoder checkpoints only');
  }
  return named as Architecture;
}

/**
 * Upper bounds on sizes, far above any released model (the largest have ~130 layers, hidden
 * 16k-25k, vocabularies of 256k): a config beyond them is corrupt or hostile, and refusing it
 * here keeps every command from sizing arrays by it (1e9 layers ran 49 s into a heap OOM).
 */
export const SIZE_LIMITS: Record<string, number> = {
  hidden_size: 2 ** 17, num_attention_heads: 2 ** 12, num_key_value_heads: 2 ** 12, head_dim: 2 ** 12,
  vocab_size: 2 ** 24, num_hidden_layers: 2 ** 12, intermediate_size: 2 ** 20,
};

function requiredInt(r: Raw, key: string, where: string): number {
  const v = r[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw invalid(where, key, `${key} must be a positive integer`, 'a positive integer', v);
  }
  const limit = SIZE_LIMITS[key];
  if (limit !== undefined && v > limit) throw invalid(where, key, `${key} must be at most ${limit} (larger than any real model)`, `at most ${limit}`, v);
  return v;
}

function optPositiveInt(r: Raw, key: string, dflt: number, where: string): number {
  return r[key] === undefined || r[key] === null ? dflt : requiredInt(r, key, where);
}

function optPositive(r: Raw, key: string, dflt: number, where: string): number {
  const v = r[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw invalid(where, key, `${key} must be a positive number`, 'a positive number', v);
  return v;
}

function readSizes(r: Raw, where: string) {
  const hiddenSize = requiredInt(r, 'hidden_size', where);
  const numHeads = requiredInt(r, 'num_attention_heads', where);
  const numKvHeads = optPositiveInt(r, 'num_key_value_heads', numHeads, where);
  if (numHeads % numKvHeads !== 0) {
    throw new KompresorError({ code: 'config_unsupported', where: `${where}: num_key_value_heads`,
      rule: `num_attention_heads (${numHeads}) must be divisible by num_key_value_heads (${numKvHeads})`,
      expected: 'a divisor of num_attention_heads', found: String(numKvHeads),
      hint: 'grouped-query attention shares each key/value head among a whole number of query heads' });
  }
  let headDim: number;
  if (r.head_dim !== undefined && r.head_dim !== null) headDim = requiredInt(r, 'head_dim', where);
  else if (hiddenSize % numHeads === 0) headDim = hiddenSize / numHeads;
  else throw invalid(where, 'head_dim', `without head_dim, hidden_size (${hiddenSize}) must be divisible by num_attention_heads (${numHeads})`, 'an explicit head_dim', r.head_dim);
  if (headDim % 2 !== 0) throw invalid(where, 'head_dim', 'head_dim must be even (RoPE rotates pairs)', 'an even number', headDim);
  return {
    vocabSize: requiredInt(r, 'vocab_size', where), hiddenSize,
    numLayers: requiredInt(r, 'num_hidden_layers', where), numHeads, numKvHeads, headDim,
    intermediateSize: requiredInt(r, 'intermediate_size', where),
  };
}

function checkUnsupported(r: Raw, where: string): void {
  const act = r.hidden_act ?? 'silu';
  if (act !== 'silu') throw unsupported(where, 'hidden_act', act, '"silu"', 'only SwiGLU MLPs (silu gate) are implemented');
  if (r.mlp_bias === true) throw unsupported(where, 'mlp_bias', true, 'false', 'MLP biases are not implemented');
  const prf = r.partial_rotary_factor;
  if (prf !== undefined && prf !== null && prf !== 1) {
    throw unsupported(where, 'partial_rotary_factor', prf, '1', 'only full-width rotary embeddings are implemented');
  }
}

function readAttentionFlags(r: Raw, where: string, arch: Architecture, numLayers: number) {
  const llamaBias = arch === 'LlamaForCausalLM' && r.attention_bias === true;
  const qkvBias = arch === 'Qwen2ForCausalLM' || llamaBias;
  return { qkvBias, oBias: llamaBias, slidingWindow: readSlidingWindow(r, where, arch, numLayers) };
}

function readSlidingWindow(r: Raw, where: string, arch: Architecture, numLayers: number): number {
  const sw = r.sliding_window;
  const window = (): number => {
    if (typeof sw !== 'number' || !Number.isSafeInteger(sw) || sw <= 0) {
      throw invalid(where, 'sliding_window', 'sliding_window must be a positive integer or null', 'a positive integer', sw);
    }
    return sw;
  };
  if (arch === 'MistralForCausalLM') return sw === undefined || sw === null ? 0 : window();
  if (arch !== 'Qwen2ForCausalLM' || r.use_sliding_window !== true || sw === undefined || sw === null) return 0;
  // transformers' Qwen2 slides only in layers i >= max_window_layers (default 28): all layers when
  // it is 0, none when it is >= num_layers. A mix would need per-layer windows, which we lack.
  const mwl = r.max_window_layers ?? 28;
  if (typeof mwl !== 'number' || !Number.isSafeInteger(mwl) || mwl < 0) {
    throw invalid(where, 'max_window_layers', 'max_window_layers must be a non-negative integer', 'an integer >= 0', mwl);
  }
  if (mwl >= numLayers) return 0;
  if (mwl === 0) return window();
  throw unsupported(where, 'max_window_layers', mwl, `0 or >= num_hidden_layers (${numLayers})`,
    `with use_sliding_window true, layers ${mwl}..${numLayers - 1} would use a sliding window and the others full ` +
    'attention; per-layer windows are not implemented (set use_sliding_window false if the model was trained without it)');
}

function readRope(r: Raw, where: string): { ropeTheta: number; ropeScaling: RopeScaling | null } {
  // transformers v5 moves both into rope_parameters; older configs use rope_theta + rope_scaling
  const params = isObject(r.rope_parameters) ? r.rope_parameters : null;
  const ropeTheta = optPositive(params && params.rope_theta !== undefined ? params : r, 'rope_theta', 10000, where);
  const scaling = params ?? r.rope_scaling;
  const key = params ? 'rope_parameters' : 'rope_scaling';
  if (scaling === undefined || scaling === null) return { ropeTheta, ropeScaling: null };
  if (!isObject(scaling)) throw invalid(where, key, `${key} must be an object or null`, '{"rope_type": ...}', scaling);
  const type = scaling.rope_type ?? scaling.type ?? 'default';
  if (type === 'default') return { ropeTheta, ropeScaling: null };
  const num = (k: string): number => {
    const v = scaling[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw invalid(where, `${key}.${k}`, `${key}.${k} must be a positive number for rope type ${type}`, 'a positive number', v);
    return v;
  };
  if (type === 'linear') return { ropeTheta, ropeScaling: { type: 'linear', factor: num('factor') } };
  if (type === 'llama3') {
    const ropeScaling: RopeScaling = { type: 'llama3', factor: num('factor'), lowFreqFactor: num('low_freq_factor'),
      highFreqFactor: num('high_freq_factor'), originalMaxPositionEmbeddings: num('original_max_position_embeddings') };
    if (ropeScaling.highFreqFactor <= ropeScaling.lowFreqFactor) {
      throw invalid(where, `${key}.high_freq_factor`, 'high_freq_factor must exceed low_freq_factor', `> ${ropeScaling.lowFreqFactor}`, ropeScaling.highFreqFactor);
    }
    return { ropeTheta, ropeScaling };
  }
  throw unsupported(where, `${key}.rope_type`, type, '"default", "linear", "llama3"',
    'other RoPE variants (yarn, dynamic, longrope) change attention numerics and are not implemented');
}

function isObject(x: unknown): x is Raw {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function optTokenId(r: Raw, key: string, where: string): number | null {
  const v = r[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw invalid(where, key, `${key} must be a token id or null`, 'an integer >= 0', v);
  return v;
}

function readEos(r: Raw, where: string): number[] {
  const v = r.eos_token_id;
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  if (!list.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) {
    throw invalid(where, 'eos_token_id', 'eos_token_id must be a token id, a list of them, or null', 'integers >= 0', v);
  }
  return list as number[];
}

// ---------------------------------------------------------------------------------------------
// RoPE tables, float32 like transformers (Math.fround after every torch float32 op)

/**
 * inv_freq[i] = 1 / theta^(2i/d) as torch computes it: arange(0, d, 2) as int64 -> float32,
 * divided by d in float32, theta ** x in float32, reciprocal in float32; then the scaling rule.
 */
export function ropeInvFreq(config: Pick<ModelConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float32Array {
  const d = config.headDim, half = d / 2;
  const inv = new Float32Array(half);
  const theta = Math.fround(config.ropeTheta);
  for (let i = 0; i < half; i++) {
    const expo = Math.fround((2 * i) / d);
    inv[i] = Math.fround(1 / Math.fround(Math.pow(theta, expo)));
  }
  const s = config.ropeScaling;
  if (s?.type === 'linear') {
    const f = Math.fround(s.factor);
    for (let i = 0; i < half; i++) inv[i] = Math.fround(inv[i] / f);
  } else if (s?.type === 'llama3') {
    applyLlama3(inv, s);
  }
  return inv;
}

/**
 * transformers `_compute_llama3_parameters`: frequencies whose wavelength exceeds
 * original/low_freq_factor are divided by factor, those below original/high_freq_factor are kept,
 * and the band between blends the two with a smooth factor linear in original/wavelength.
 */
function applyLlama3(inv: Float32Array, s: Extract<RopeScaling, { type: 'llama3' }>): void {
  const f32 = Math.fround;
  const factor = f32(s.factor), lo = f32(s.lowFreqFactor);
  const old = s.originalMaxPositionEmbeddings;
  // python-float scalars (computed in double) are cast to the tensor's float32 inside each op
  const lowFreqWavelen = f32(old / s.lowFreqFactor), highFreqWavelen = f32(old / s.highFreqFactor);
  const twoPi = f32(2 * Math.PI), band = f32(s.highFreqFactor - s.lowFreqFactor);
  for (let i = 0; i < inv.length; i++) {
    // `2 * math.pi / inv_freq` is Tensor.__rtruediv__ = reciprocal(inv_freq) * (2*pi)
    const wavelen = f32(f32(1 / inv[i]) * twoPi);
    const scaled = wavelen > lowFreqWavelen ? f32(inv[i] / factor) : inv[i];
    if (wavelen < highFreqWavelen || wavelen > lowFreqWavelen) { inv[i] = scaled; continue; }
    // medium band: here wavelen <= lowFreqWavelen, so `scaled` is the unscaled inv_freq
    const smooth = f32(f32(f32(f32(old) * f32(1 / wavelen)) - lo) / band);
    // (1 - smooth) * inv / factor + smooth * inv, evaluated left to right in float32
    inv[i] = f32(f32(f32(f32(1 - smooth) * scaled) / factor) + f32(smooth * scaled));
  }
}

/**
 * cos/sin tables [maxPos, headDim/2] (row = position): freqs = pos * inv_freq in float32 (the
 * outer-product matmul has K = 1, so one rounding), then cos/sin rounded to float32. The HF
 * attention_factor is 1 for default/linear/llama3, so no extra scaling.
 */
export function ropeTables(config: Pick<ModelConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>, maxPos: number):
  { cos: Float32Array; sin: Float32Array } {
  const inv = ropeInvFreq(config);
  const half = inv.length;
  const cos = new Float32Array(maxPos * half), sin = new Float32Array(maxPos * half);
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const x = Math.fround(p * inv[i]);
      cos[p * half + i] = Math.cos(x);
      sin[p * half + i] = Math.sin(x);
    }
  }
  return { cos, sin };
}

// ---------------------------------------------------------------------------------------------
// parameter counts

export interface ParamCount {
  embeddings: number;
  attention: number;
  mlp: number;
  norms: number;
  /** 0 when the head is tied to the embeddings. */
  lmHead: number;
  total: number;
}

/** Exact parameter counts per component, biases included. */
export function paramCount(c: ModelConfig): ParamCount {
  const q = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim, h = c.hiddenSize;
  const attnPerLayer = h * q + 2 * h * kv + q * h + (c.qkvBias ? q + 2 * kv : 0) + (c.oBias ? h : 0);
  const embeddings = c.vocabSize * h;
  const attention = c.numLayers * attnPerLayer;
  const mlp = c.numLayers * 3 * h * c.intermediateSize;
  // input_layernorm + post_attention_layernorm per layer, plus the final norm
  const norms = c.numLayers * 2 * h + h;
  const lmHead = c.tieWordEmbeddings ? 0 : c.vocabSize * h;
  return { embeddings, attention, mlp, norms, lmHead, total: embeddings + attention + mlp + norms + lmHead };
}

/**
 * How a parameter count is stated. 'total': every tensor the model holds (a tied lm_head once, as
 * part of the embeddings). 'no-lm-head': without an untied lm_head, the convention of the seed's
 * "Bielik-11B-v3.0 (11.04B) -> Bielik-Minitron-7B (7.35B)" and of many model cards. The two agree
 * on tied models.
 */
export type ParamsConvention = 'total' | 'no-lm-head';
export const PARAMS_CONVENTIONS: readonly ParamsConvention[] = ['total', 'no-lm-head'];

/** A ParamCount stated in one convention. */
export function countIn(p: ParamCount, convention: ParamsConvention): number {
  return convention === 'total' ? p.total : p.total - p.lmHead;
}
