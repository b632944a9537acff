// Autoregressive generation with a KV cache (llama2.c RunState style). The prompt is prefilled
// with the batched forward pass (left-padded rows; pads are their own one-token documents so
// nothing attends to them) on a forward-only arena sized for the prompt (one layer's buffers, no
// backward scratch, no logits chunk), each layer's rotated keys and values are copied into the
// cache as the layer produces them, and then each step runs every layer on one token per row
// against the cache. The decoder's own (training) arena is not used.
//
// Dimension legend: B = rows, P = padded prompt length, M = cache capacity (maxT),
// C = hidden, F = intermediate, nH/nKV/hd = heads and head_dim, KVW = nKV*hd, V = vocab.
import { kernels as K } from '../tensor/ops.ts';
import type { Decoder, Probe } from './decoder.ts';
import { linearForward, embeddingRow } from './parameters.ts';
import { allocateActivations, type Activations } from './activations.ts';
import { batchFromDocs, type Batch } from './batch.ts';
import { type SamplingOptions, Rng, sampleToken } from './sampling.ts';
import { KompresorError } from '../errors.ts';

export interface GenerateOptions {
  maxNewTokens: number;
  sampling: SamplingOptions;
  seed: number;
  eosTokenIds: number[];
  padTokenId?: number;
  /** Called after every step with the new token of each row (-1 for finished rows). */
  onStep?: (tokens: number[]) => void;
  /**
   * Called before every sampling step with the next-token logits (B, V) of every row, finished
   * rows included (a view, reused by the next step: copy what you keep).
   */
  onLogits?: (logits: Float32Array) => void;
  /**
   * Called after each new token of a row with the row's tokens so far; returning true ends the row
   * as an EOS would (eval's generate_until stops at stop strings this way).
   */
  stopRow?: (row: number, tokens: readonly number[]) => boolean;
}

export interface GenerateResult {
  tokens: number[][];          // new tokens per row (without the prompt), EOS included when hit
  prefillSeconds: number;
  decodeSeconds: number;
  decodeSteps: number;
  /** Bytes of the activation arena the prefill ran on: forward-only, no head, (B, P), one per call. */
  prefillArenaBytes: number;
}

/** Per-step state: one row per sequence, plus the cache. */
class DecodeState {
  readonly k: Float32Array[];  // per layer (B, M, KVW)
  readonly v: Float32Array[];
  readonly x: Float32Array;    // (B, C) residual
  readonly ln: Float32Array;   // (B, C)
  readonly rstd: Float32Array; // (B)
  readonly qkv: Float32Array;  // (B, QKV)
  readonly q: Float32Array;    // (B, nH*hd)
  readonly att: Float32Array;  // (B, nH*hd)
  readonly gateup: Float32Array; // (B, 2F)
  readonly act: Float32Array;  // (B, F)
  readonly logits: Float32Array; // (B, V)
  readonly pos: Int32Array;    // (B)
  constructor(readonly model: Decoder, readonly B: number, readonly M: number, readonly kvStart: Int32Array) {
    const c = model.cfg, KVW = c.numKvHeads * c.headDim, A = c.numHeads * c.headDim;
    this.k = Array.from({ length: c.numLayers }, () => new Float32Array(B * M * KVW));
    this.v = Array.from({ length: c.numLayers }, () => new Float32Array(B * M * KVW));
    this.x = new Float32Array(B * c.hiddenSize);
    this.ln = new Float32Array(B * c.hiddenSize);
    this.rstd = new Float32Array(B);
    this.qkv = new Float32Array(B * (A + 2 * KVW));
    this.q = new Float32Array(B * A);
    this.att = new Float32Array(B * A);
    this.gateup = new Float32Array(B * 2 * c.intermediateSize);
    this.act = new Float32Array(B * c.intermediateSize);
    this.logits = new Float32Array(B * c.vocabSize);
    this.pos = new Int32Array(B);
  }
}

/** Left-pads prompts into one batch: row b has pad[b] pads, then its prompt. */
function promptBatch(prompts: number[][], padId: number): { batch: Batch; pad: Int32Array } {
  const P = Math.max(...prompts.map((p) => p.length));
  const pad = Int32Array.from(prompts, (p) => P - p.length);
  // each pad is its own one-token document; the prompt is one document after them
  const rows = prompts.map((p, b) => [...Array.from({ length: pad[b] }, () => [padId]), p]);
  return { batch: batchFromDocs(rows, P, padId), pad };
}

/**
 * The forward-only arena of a prefill over B rows of P tokens: one layer's buffers, which every
 * layer overwrites, so the cache takes each layer's keys and values while they are there.
 */
export function prefillArena(model: Decoder, B: number, P: number): Activations {
  return allocateActivations(model.cfg, B, P, true, false);
}

/**
 * Runs the prompt through the batched forward pass on `arena` and fills the cache with its
 * keys/values, layer by layer (a probe on the rotated q|k|v rows).
 */
function prefill(st: DecodeState, batch: Batch, arena: Activations): void {
  const m = st.model, c = m.cfg;
  const { B, T: P } = batch;
  const A = c.numHeads * c.headDim, KVW = c.numKvHeads * c.headDim, QKV = A + 2 * KVW, C = c.hiddenSize;
  const toCache: Probe = {
    names: new Set(['qkv']),
    observe: (_name, l, qkv) => {
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < P; t++) {
          const src = (b * P + t) * QKV, dst = (b * st.M + t) * KVW;
          st.k[l].set(qkv.subarray(src + A, src + A + KVW), dst);
          st.v[l].set(qkv.subarray(src + A + KVW, src + QKV), dst);
        }
      }
    },
  };
  const a = m.forward(batch, toCache, arena);
  // logits of the last prompt token of every row
  for (let b = 0; b < B; b++) st.ln.set(a.buf.lnf.subarray((b * P + P - 1) * C, (b * P + P) * C), b * C);
  linearForward(st.logits, st.ln, m.w.lmHead, null, B, C, c.vocabSize, false, m.w.f16);
}

/** One token per row at cache index t = len - 1: every layer, then the logits. */
function decodeStep(st: DecodeState, tokens: Int32Array, len: number): void {
  const m = st.model, c = m.cfg, B = st.B, C = c.hiddenSize, F = c.intermediateSize, f16 = m.w.f16;
  const nH = c.numHeads, nKV = c.numKvHeads, hd = c.headDim, A = nH * hd, KVW = nKV * hd, QKV = A + 2 * KVW;
  const t = len - 1;
  const { cos, sin } = m.ropeFor(len);
  for (let b = 0; b < B; b++) {
    embeddingRow(st.x.subarray(b * C, (b + 1) * C), m.w.wte, tokens[b], C, m.w.f16);
    st.pos[b] = t - st.kvStart[b];
  }
  for (let l = 0; l < c.numLayers; l++) {
    const w = m.w.layers[l];
    K.rmsnormForward(st.ln, st.rstd, st.x, w.ln1, B, C, c.rmsNormEps);
    linearForward(st.qkv, st.ln, w.qkvW, w.qkvB, B, C, QKV, false, f16);
    K.ropeForward(st.qkv, st.pos, cos, sin, B, nH + nKV, hd, QKV);
    for (let b = 0; b < B; b++) {
      const r = b * QKV, dst = (b * st.M + t) * KVW;
      st.q.set(st.qkv.subarray(r, r + A), b * A);
      st.k[l].set(st.qkv.subarray(r + A, r + A + KVW), dst);
      st.v[l].set(st.qkv.subarray(r + A + KVW, r + QKV), dst);
    }
    K.attentionDecode(st.att, st.q, st.k[l], st.v[l], st.kvStart, B, len, st.M, nH, nKV, hd, c.slidingWindow);
    linearForward(st.x, st.att, w.oW, w.oB, B, A, C, true, f16);
    K.rmsnormForward(st.ln, st.rstd, st.x, w.ln2, B, C, c.rmsNormEps);
    linearForward(st.gateup, st.ln, w.gateupW, null, B, C, 2 * F, false, f16);
    K.swigluForward(st.act, st.gateup, B, F);
    linearForward(st.x, st.act, w.downW, null, B, F, C, true, f16);
  }
  K.rmsnormForward(st.ln, st.rstd, st.x, m.w.lnf, B, C, c.rmsNormEps);
  linearForward(st.logits, st.ln, m.w.lmHead, null, B, C, c.vocabSize, false, f16);
}

/** Generates up to maxNewTokens per prompt; rows stop independently at an EOS id. */
export function generate(model: Decoder, prompts: number[][], o: GenerateOptions): GenerateResult {
  if (prompts.length === 0 || prompts.some((p) => p.length === 0)) {
    throw new KompresorError({ code: 'input_invalid', where: 'prompt', rule: 'every prompt needs at least one token', found: JSON.stringify(prompts.map((p) => p.length)) });
  }
  if (!Number.isSafeInteger(o.maxNewTokens) || o.maxNewTokens < 1) {
    throw new KompresorError({ code: 'input_invalid', where: 'max_new_tokens', rule: 'generation makes at least one token', expected: 'an integer >= 1', found: String(o.maxNewTokens) });
  }
  const padId = o.padTokenId ?? o.eosTokenIds[0] ?? 0;
  const { batch, pad } = promptBatch(prompts, padId);
  const B = batch.B, P = batch.T, M = P + o.maxNewTokens, V = model.cfg.vocabSize;
  // generation never uses the decoder's arena: drop one left by training (a GRPO policy) before
  // the cache and the prefill arena are allocated
  model.releaseActivations();
  let st: DecodeState;
  try {
    st = new DecodeState(model, B, M, pad);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    const c = model.cfg, bytes = 2 * 4 * c.numLayers * B * M * c.numKvHeads * c.headDim;
    throw new KompresorError({ code: 'input_invalid', where: 'max_new_tokens', rule: 'the KV cache for prompt + max_new_tokens must fit in memory',
      expected: 'a smaller max_new_tokens', found: `${o.maxNewTokens} (a ${(bytes / 2 ** 30).toFixed(1)} GiB cache: ${e.message})` });
  }
  const rng = new Rng(o.seed);
  const t0 = performance.now();
  let arena: Activations | null = prefillArena(model, B, P);
  const prefillArenaBytes = arena.bytes;
  prefill(st, batch, arena);
  arena = null; // not needed by the decode loop
  const t1 = performance.now();
  const out: number[][] = prompts.map(() => []);
  const done = new Array<boolean>(B).fill(false);
  const next = new Int32Array(B);
  let steps = 0;
  for (let len = P + 1; ; len++) {
    o.onLogits?.(st.logits);
    const stepTokens: number[] = [];
    for (let b = 0; b < B; b++) {
      if (done[b]) { next[b] = padId; stepTokens.push(-1); continue; }
      const tok = sampleToken(st.logits.subarray(b * V, (b + 1) * V), o.sampling, rng);
      out[b].push(tok);
      next[b] = tok;
      stepTokens.push(tok);
      if (o.eosTokenIds.includes(tok) || out[b].length >= o.maxNewTokens || o.stopRow?.(b, out[b])) done[b] = true;
    }
    o.onStep?.(stepTokens);
    if (done.every(Boolean)) break;
    decodeStep(st, next, len);
    steps++;
  }
  const t2 = performance.now();
  return { tokens: out, prefillSeconds: (t1 - t0) / 1000, decodeSeconds: (t2 - t1) / 1000, decodeSteps: steps, prefillArenaBytes };
}
