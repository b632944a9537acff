// The activation arena: every buffer a forward pass saves for backward, and the backward scratch,
// as Float32Array views into ONE ArrayBuffer allocated for a given (B, T). The table below lists
// each buffer with its shape; `sizeOf` turns it into floats. Per-layer buffers are stacked [L, ...].
//
// Dimension legend: B = batch, T = sequence length, N = B*T token rows, C = hidden,
// F = intermediate, L = layers, nH/nKV = heads, hd = head_dim, QKV = (nH + 2 nKV) hd,
// V = vocab, R = rows of logits held at once by the chunked lm_head (LOGIT_CHUNK).
//
// A forward-only arena (a distillation teacher, scoring) keeps nothing for backward: every
// per-layer buffer has ONE layer slot that each layer overwrites, resid has two slots that
// alternate (layer l reads slot l % 2 and writes (l + 1) % 2), and the backward scratch is empty.
// layerSlice maps layer l onto the slots a buffer has, so the decoder's kernel calls are the same.
// An arena without a head (a generation prefill, which runs the lm_head on the last rows itself)
// also leaves out the logits chunk and the per-token losses.
//
// A recompute arena (training with --recompute) keeps every layer's input, resid (L+1, N, C), and
// ONE slot of every other per-layer buffer: the forward overwrites it layer after layer, and the
// backward runs each layer's forward again from its saved input before its backward. Memory is
// then L+1 residual rows plus one layer's buffers, instead of L layers' buffers.
import type { ModelConfig } from '../io/hf_config.ts';
import { ensure } from '../errors.ts';

/** Rows of logits materialised at once by the chunked lm_head + cross-entropy. */
export const LOGIT_CHUNK = 256;

interface Dims { N: number; B: number; T: number; C: number; F: number; L: number; nH: number; hd: number; QKV: number; V: number; R: number }

// name, floats, shape comment
const ACTIVATION_LAYOUT: [string, (d: Dims) => number, string][] = [
  ['resid', (d) => (d.L + 1) * d.N * d.C, '(L+1, N, C) residual stream entering each layer; [L] enters the final norm'],
  ['ln1', (d) => d.L * d.N * d.C, '(L, N, C) input_layernorm output'],
  ['ln1Rstd', (d) => d.L * d.N, '(L, N) its 1/rms'],
  ['qkv', (d) => d.L * d.N * d.QKV, '(L, N, QKV) q|k|v projections, q and k rotated by RoPE'],
  ['att', (d) => d.L * d.N * d.nH * d.hd, '(L, N, nH*hd) attention output before o_proj'],
  ['lse', (d) => d.L * d.B * d.nH * d.T, '(L, B, nH, T) attention log-sum-exp'],
  ['residMid', (d) => d.L * d.N * d.C, '(L, N, C) residual after attention'],
  ['ln2', (d) => d.L * d.N * d.C, '(L, N, C) post_attention_layernorm output'],
  ['ln2Rstd', (d) => d.L * d.N, '(L, N) its 1/rms'],
  ['gateup', (d) => d.L * d.N * 2 * d.F, '(L, N, 2F) gate | up projections'],
  ['act', (d) => d.L * d.N * d.F, '(L, N, F) silu(gate) * up, the input of down_proj'],
  ['lnf', (d) => d.N * d.C, '(N, C) final norm output'],
  ['lnfRstd', (d) => d.N, '(N) its 1/rms'],
  ['logits', (d) => d.R * d.V, '(R, V) one chunk of logits (becomes dlogits in place)'],
  ['losses', (d) => d.N, '(N) per-token loss'],
  // backward scratch, reused by every layer
  ['dresid', (d) => d.N * d.C, '(N, C) gradient of the residual stream'],
  ['dln', (d) => d.N * d.C, '(N, C) gradient of a norm output'],
  ['dqkv', (d) => d.N * d.QKV, '(N, QKV)'],
  ['datt', (d) => d.N * d.nH * d.hd, '(N, nH*hd)'],
  ['dgateup', (d) => d.N * 2 * d.F, '(N, 2F)'],
  ['dact', (d) => d.N * d.F, '(N, F)'],
];
const BACKWARD_SCRATCH = new Set(['dresid', 'dln', 'dqkv', 'datt', 'dgateup', 'dact']);
const HEAD = new Set(['logits', 'losses']);

export type ActivationName =
  'resid' | 'ln1' | 'ln1Rstd' | 'qkv' | 'att' | 'lse' | 'residMid' | 'ln2' | 'ln2Rstd' | 'gateup' | 'act' |
  'lnf' | 'lnfRstd' | 'logits' | 'losses' | 'dresid' | 'dln' | 'dqkv' | 'datt' | 'dgateup' | 'dact';

export interface Activations {
  B: number;
  T: number;
  bytes: number;
  /** One slot per per-layer buffer (two for resid), no backward scratch: backward is refused. */
  forwardOnly: boolean;
  /** Every layer's input kept, one slot of the other per-layer buffers: backward recomputes each layer. */
  recompute: boolean;
  /** false: no logits chunk and no losses, so the loss head and logitsChunk are refused. */
  head: boolean;
  buf: Record<ActivationName, Float32Array>;
}

export function dimsOf(cfg: ModelConfig, B: number, T: number): Dims {
  const N = B * T;
  return {
    N, B, T, C: cfg.hiddenSize, F: cfg.intermediateSize, L: cfg.numLayers, nH: cfg.numHeads, hd: cfg.headDim,
    QKV: (cfg.numHeads + 2 * cfg.numKvHeads) * cfg.headDim, V: cfg.vocabSize, R: Math.min(LOGIT_CHUNK, N),
  };
}

/**
 * Allocates the arena for (B, T): one ArrayBuffer, views per the layout table. `head = false`
 * (forward-only arenas only) leaves out the logits chunk and the losses. With `storage` (at least
 * the arena's floats) the views are carved from it instead: arenas of several shapes can then share
 * one buffer when only one is in use at a time (the layer-streamed forward).
 */
export function allocateActivations(cfg: ModelConfig, B: number, T: number, forwardOnly = false, head = true, recompute = false,
  storage?: Float32Array): Activations {
  const sizes = arenaSizes(cfg, B, T, forwardOnly, head, recompute);
  const total = sizes.reduce((a, b) => a + b, 0);
  ensure(!storage || storage.length >= total, 'allocateActivations', () => `the storage holds ${storage!.length} floats, the arena needs ${total}`);
  const arena = storage ?? new Float32Array(total);
  const buf = {} as Record<ActivationName, Float32Array>;
  let off = 0;
  ACTIVATION_LAYOUT.forEach(([name], i) => {
    buf[name as ActivationName] = arena.subarray(off, off + sizes[i]);
    off += sizes[i];
  });
  return { B, T, bytes: total * 4, forwardOnly, recompute: recompute && !forwardOnly, head, buf };
}

/** Bytes allocateActivations would allocate for these arguments (memory planning, summaries). */
export function activationBytes(cfg: ModelConfig, B: number, T: number, forwardOnly = false, head = true, recompute = false): number {
  return 4 * arenaSizes(cfg, B, T, forwardOnly, head, recompute).reduce((a, b) => a + b, 0);
}

/** Floats of each buffer of ACTIVATION_LAYOUT for the arena kind. */
function arenaSizes(cfg: ModelConfig, B: number, T: number, forwardOnly: boolean, head: boolean, recompute: boolean): number[] {
  const d = dimsOf(cfg, B, T);
  const one = { ...d, L: 1 };
  if (forwardOnly) d.L = 1; // resid: (L+1) = 2 alternating slots
  ensure(head || forwardOnly, 'allocateActivations', () => 'only a forward-only arena can leave out the head');
  const left = (name: string) => (forwardOnly && BACKWARD_SCRATCH.has(name)) || (!head && HEAD.has(name));
  // recompute: resid keeps its L+1 slots, every other per-layer buffer one
  return ACTIVATION_LAYOUT.map(([name, f]) => (left(name) ? 0 : f(recompute && name !== 'resid' ? one : d)));
}

/**
 * The slice of a stacked [L, ...] buffer for layer l. A buffer with fewer slots than l + 1 (a
 * forward-only arena: one slot, or two for resid) gives slot l mod slots.
 */
export function layerSlice(a: Float32Array, l: number, per: number): Float32Array {
  const slots = Math.floor(a.length / per);
  const s = l < slots || slots === 0 ? l : l % slots;
  return a.subarray(s * per, (s + 1) * per);
}
