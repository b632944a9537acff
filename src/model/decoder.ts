// The decoder: Llama / Mistral / Qwen2 forward and backward as flat lists of kernel calls per
// layer (llm.c style), over parameter and gradient blocks (one per layer, src/model/parameters.ts)
// and one activation arena. A frozen model may hold 16-bit weights (HalfBlocks): its forward widens
// them inside the GEMM, and backward refuses it.
// Training can freeze tensors (freeze(): no gradients, no memory for them; src/model/freeze.ts)
// and recompute activations (recompute = true: the arena keeps each layer's input only, and
// backward runs each layer's forward again before its backward, with the same kernels on the same
// inputs, so the gradients are the same bit for bit).
// Architectures differ only by flags of the normalised config (qkvBias, oBias, slidingWindow,
// tieWordEmbeddings, headDim, ropeScaling) — there is no branch on model_type here.
//
// The loss path never materialises [B, T, V] logits: the lm_head runs on chunks of LOGIT_CHUNK
// rows, and the fused softmax-cross-entropy (or another ChunkLoss, such as the distillation head)
// turns each chunk into its gradient in place.
//
// Dimension legend: B = batch, T = seq len, N = B*T, C = hidden, F = intermediate, V = vocab,
// nH/nKV = heads, hd = head_dim, QKV = (nH + 2 nKV) hd, L = layers.
import type { ModelConfig } from '../io/hf_config.ts';
import { ropeTables } from '../io/hf_config.ts';
import { kernels as K } from '../tensor/ops.ts';
import { buildLayout, viewsOf, linearForward, embeddingRow, ParamBlocks, HalfBlocks, type ModelViews, type ParameterLayout,
  type WeightStore, type WeightDtype } from './parameters.ts';
import { allocateActivations, layerSlice, type Activations } from './activations.ts';
import { trainableLayout } from './freeze.ts';
import { type Batch, checkIds, countTargets } from './batch.ts';
import { KompresorError, ensure } from '../errors.ts';

/** Activations a probe can observe, named as the pruning work refers to them. */
export type ProbeName =
  | 'resid_in'                  // (N, C) residual stream entering the layer
  | 'resid_out'                 // (N, C) residual stream leaving the layer
  | 'input_layernorm'           // (N, C) output of the pre-attention norm
  | 'post_attention_layernorm'  // (N, C) output of the pre-MLP norm
  | 'qkv'                       // (N, QKV) q|k|v projections, q and k rotated: what a KV cache keeps
  | 'attn_pre_o'                // (N, nH*hd) attention output, the input of o_proj
  | 'mlp_act';                  // (N, F) silu(gate)*up, the input of down_proj

/**
 * A loss on a chunk of lm_head output rows, in the fused cross-entropy kernel's contract: writes
 * losses[0..rows) for batch rows [r0, r0 + rows) and overwrites logits[rows, V] in place with
 * d(dscale * sum of those losses)/d(logits). The default is next-token cross-entropy; the
 * distillation head (src/distill/kd_head.ts) plugs in the KD loss against a teacher.
 */
export type ChunkLoss = (losses: Float32Array, logits: Float32Array, r0: number, rows: number, dscale: number) => void;

/** Receives views into the activation arena (no copies); must not keep them past the call. */
export interface Probe {
  names: ReadonlySet<ProbeName>;
  observe(name: ProbeName, layer: number, data: Float32Array, width: number, batch: Batch): void;
}

export class Decoder {
  readonly cfg: ModelConfig;
  readonly layout: ParameterLayout;
  /** The weights: float32 blocks (trainable), or 16-bit blocks as the checkpoint stores them (frozen). */
  readonly weights: WeightStore;
  readonly w: ModelViews;
  grads: ParamBlocks | null = null;
  dw: ModelViews<Float32Array> | null = null;
  /**
   * Allocate forward-only activation arenas (one layer's buffers, reused by every layer): for a
   * model that never runs backward, such as a distillation teacher. backward() then refuses.
   */
  forwardOnly = false;
  /** Keep only each layer's input in the activation arena and recompute the rest in backward. */
  recompute = false;
  /** The gradient layout: the parameter layout with frozen tensors at size 0 (see freeze()). */
  gradLayout: ParameterLayout;
  private acts: Activations | null = null;
  private rope: { cos: Float32Array; sin: Float32Array; maxPos: number } | null = null;

  constructor(cfg: ModelConfig, weights?: WeightStore) {
    this.cfg = cfg;
    this.layout = buildLayout(cfg);
    this.weights = weights ?? new ParamBlocks(this.layout);
    if (this.weights.layout.total !== this.layout.total || this.weights.arrays.length !== this.layout.blockSizes.length) {
      throw new KompresorError({ code: 'impl_error', where: 'Decoder', rule: 'the weight blocks must match the layout', expected: `${this.layout.total}`, found: `${this.weights.layout.total}` });
    }
    this.w = viewsOf(this.layout, cfg, this.weights);
    this.gradLayout = this.layout;
  }

  /**
   * Freezes the named tensors (HF keys): they get no gradient blocks (empty views) and stay
   * untouched by training. Drops gradients already allocated; an empty set unfreezes.
   */
  freeze(names: ReadonlySet<string>): void {
    for (const n of names) ensure(this.layout.byName.has(n), 'Decoder.freeze', () => `the model has no tensor ${n}`);
    this.gradLayout = trainableLayout(this.layout, names);
    this.grads = null;
    this.dw = null;
  }

  /** The float32 parameters of a trainable model (a 16-bit frozen model has none). */
  get params(): ParamBlocks {
    ensure(this.weights instanceof ParamBlocks, 'Decoder.params', () => `this model holds ${this.weightDtype} weights for forward passes only; load it with float32 weights to train or save it`);
    return this.weights as ParamBlocks;
  }

  get weightDtype(): WeightDtype { return this.weights instanceof HalfBlocks ? this.weights.dtype : 'f32'; }

  /** Float32 views of the weights: what backward needs. */
  private w32(): ModelViews<Float32Array> {
    ensure(!(this.weights instanceof HalfBlocks), 'Decoder.backward', () => `a backward pass needs float32 weights; this model holds ${this.weightDtype}`);
    return this.w as ModelViews<Float32Array>;
  }

  /** Allocates the gradient blocks (same layout as the parameters) on first use and zeroes them. */
  zeroGrad(): void {
    if (!this.grads) {
      this.grads = new ParamBlocks(this.gradLayout);
      this.dw = viewsOf(this.gradLayout, this.cfg, this.grads);
    } else this.grads.fill(0);
  }

  /** The activation arena for (B, T), allocated once and reused while the shape stays the same. */
  activations(B: number, T: number): Activations {
    const recompute = this.recompute && !this.forwardOnly;
    if (!this.acts || this.acts.B !== B || this.acts.T !== T || this.acts.forwardOnly !== this.forwardOnly || this.acts.recompute !== recompute) {
      this.acts = null; // let the old arena go before allocating the new one
      this.acts = allocateActivations(this.cfg, B, T, this.forwardOnly, true, recompute);
    }
    return this.acts;
  }

  /** Frees the activation arena (e.g. between phases with different shapes). */
  releaseActivations(): void { this.acts = null; }

  ropeFor(T: number): { cos: Float32Array; sin: Float32Array } {
    if (!this.rope || this.rope.maxPos < T) {
      const maxPos = Math.max(T, this.rope ? this.rope.maxPos * 2 : 0);
      this.rope = { ...ropeTables(this.cfg, maxPos), maxPos };
    }
    return this.rope;
  }

  // ---------------------------------------------------------------------------------------------
  // forward

  /**
   * Runs embedding, all layers and the final norm; returns the arena (lnf holds the result). With
   * `arena` (from allocateActivations for the batch's B and T, e.g. the forward-only arena of a
   * generation prefill) it runs on that arena and leaves the decoder's own alone.
   */
  forward(batch: Batch, probe?: Probe, arena?: Activations): Activations {
    checkIds(batch, this.cfg.vocabSize);
    if (arena) ensure(arena.B === batch.B && arena.T === batch.T, 'Decoder.forward', () => `the arena is for (B ${arena.B}, T ${arena.T}), the batch is (B ${batch.B}, T ${batch.T})`);
    const a = arena ?? this.activations(batch.B, batch.T);
    this.embed(a, batch);
    for (let l = 0; l < this.cfg.numLayers; l++) this.layerForward(l, a, batch, probe);
    const { N, C } = this.nc(batch);
    const x = layerSlice(a.buf.resid, this.cfg.numLayers, N * C);
    K.rmsnormForward(a.buf.lnf, a.buf.lnfRstd, x, this.w.lnf, N, C, this.cfg.rmsNormEps);
    return a;
  }

  private nc(batch: Batch) { return { N: batch.B * batch.T, C: this.cfg.hiddenSize }; }

  private embed(a: Activations, batch: Batch): void {
    const { N, C } = this.nc(batch);
    const out = a.buf.resid;
    for (let n = 0; n < N; n++) embeddingRow(out.subarray(n * C, (n + 1) * C), this.w.wte, batch.ids[n], C, this.w.f16);
  }

  /**
   * One decoder layer: ten kernel calls, in the order of HF's LlamaDecoderLayer.forward. With
   * `forBackward` (recomputation before the layer's backward) it stops before the last GEMM,
   * whose output (the next layer's input) is already saved.
   */
  layerForward(l: number, a: Activations, batch: Batch, probe?: Probe, forBackward = false): void {
    const cfg = this.cfg, w = this.w.layers[l], b = a.buf, f16 = this.w.f16;
    const { N, C } = this.nc(batch);
    const F = cfg.intermediateSize, nH = cfg.numHeads, nKV = cfg.numKvHeads, hd = cfg.headDim;
    const QKV = (nH + 2 * nKV) * hd, A = nH * hd;
    const x = layerSlice(b.resid, l, N * C);              // (N, C) layer input
    const ln1 = layerSlice(b.ln1, l, N * C);              // (N, C)
    const ln1Rstd = layerSlice(b.ln1Rstd, l, N);          // (N)
    const qkv = layerSlice(b.qkv, l, N * QKV);            // (N, QKV)
    const att = layerSlice(b.att, l, N * A);              // (N, nH*hd)
    const lse = layerSlice(b.lse, l, batch.B * nH * batch.T);
    const mid = layerSlice(b.residMid, l, N * C);         // (N, C)
    const ln2 = layerSlice(b.ln2, l, N * C);              // (N, C)
    const ln2Rstd = layerSlice(b.ln2Rstd, l, N);          // (N)
    const gateup = layerSlice(b.gateup, l, N * 2 * F);    // (N, 2F)
    const act = layerSlice(b.act, l, N * F);              // (N, F)
    const y = layerSlice(b.resid, l + 1, N * C);          // (N, C) layer output
    const { cos, sin } = this.ropeFor(batch.T);
    const see = (name: ProbeName, data: Float32Array, width: number) => {
      if (probe && probe.names.has(name)) probe.observe(name, l, data, width, batch);
    };

    see('resid_in', x, C);
    K.rmsnormForward(ln1, ln1Rstd, x, w.ln1, N, C, cfg.rmsNormEps);
    see('input_layernorm', ln1, C);
    linearForward(qkv, ln1, w.qkvW, w.qkvB, N, C, QKV, false, f16);
    K.ropeForward(qkv, batch.pos, cos, sin, N, nH + nKV, hd, QKV);
    see('qkv', qkv, QKV);
    K.attentionForward(att, lse, qkv, batch.docStart, batch.B, batch.T, nH, nKV, hd, cfg.slidingWindow);
    see('attn_pre_o', att, A);
    mid.set(x);
    linearForward(mid, att, w.oW, w.oB, N, A, C, true, f16);    // mid = x + o_proj(att)
    K.rmsnormForward(ln2, ln2Rstd, mid, w.ln2, N, C, cfg.rmsNormEps);
    see('post_attention_layernorm', ln2, C);
    linearForward(gateup, ln2, w.gateupW, null, N, C, 2 * F, false, f16);
    K.swigluForward(act, gateup, N, F);
    see('mlp_act', act, F);
    if (forBackward) return;
    y.set(mid);
    linearForward(y, act, w.downW, null, N, F, C, true, f16);   // y = mid + down_proj(act)
    see('resid_out', y, C);
  }

  // ---------------------------------------------------------------------------------------------
  // loss head

  /**
   * lm_head on rows [r0, r0 + rows) of the final norm output (rows <= the chunk size): a (rows, V)
   * view of the arena's logits chunk, overwritten by the next call.
   */
  logitsChunk(a: Activations, r0: number, rows: number): Float32Array {
    const C = this.cfg.hiddenSize, V = this.cfg.vocabSize;
    ensure(a.head, 'Decoder.logitsChunk', () => 'this activation arena has no logits chunk (allocated with head = false)');
    const logits = a.buf.logits.subarray(0, rows * V);                   // (rows, V)
    linearForward(logits, a.buf.lnf.subarray(r0 * C, (r0 + rows) * C), this.w.lmHead, null, rows, C, V, false, this.w.f16);
    return logits;
  }

  /** Next-token cross-entropy as a ChunkLoss (the default loss head). */
  crossEntropyChunk(batch: Batch): ChunkLoss {
    const V = this.cfg.vocabSize;
    return (losses, logits, r0, rows, dscale) =>
      K.crossEntropyForwardBackward(losses, logits, batch.targets.subarray(r0, r0 + rows), rows, V, dscale);
  }

  /**
   * Mean loss over the batch's valid targets (next-token cross-entropy unless `chunkLoss` says
   * otherwise), computed chunk by chunk from the final norm output. With `backward`, also
   * accumulates dlm_head and leaves d(lnf) in dln.
   */
  headLoss(a: Activations, batch: Batch, backward: boolean,
    chunkLoss: ChunkLoss = this.crossEntropyChunk(batch)): { loss: number; count: number } {
    ensure(a.head, 'Decoder.headLoss', () => 'this activation arena has no logits chunk (allocated with head = false)');
    const { N, C } = this.nc(batch);
    const V = this.cfg.vocabSize, R = a.buf.logits.length / V;
    const count = countTargets(batch);
    const dscale = count > 0 ? 1 / count : 0;
    if (backward) {
      ensure(!a.forwardOnly, 'Decoder.headLoss', () => 'a backward pass needs a full activation arena; this model allocates forward-only arenas (forwardOnly = true)');
      a.buf.dln.fill(0);
    }
    for (let r0 = 0; r0 < N; r0 += R) {
      const rows = Math.min(R, N - r0);
      const logits = this.logitsChunk(a, r0, rows);                      // (rows, V)
      const x = a.buf.lnf.subarray(r0 * C, (r0 + rows) * C);             // (rows, C)
      chunkLoss(a.buf.losses.subarray(r0, r0 + rows), logits, r0, rows, dscale);
      if (backward) {
        const dlmHead = this.dw!.lmHead.length > 0 ? this.dw!.lmHead : null; // empty: frozen
        K.matmulBackward(a.buf.dln.subarray(r0 * C, (r0 + rows) * C), dlmHead, null, logits, x, this.w32().lmHead, rows, C, V);
      }
    }
    let sum = 0;
    for (let n = 0; n < N; n++) if (batch.targets[n] >= 0) sum += a.buf.losses[n];
    const loss = count > 0 ? sum / count : 0;
    if (!Number.isFinite(loss)) {
      throw new KompresorError({ code: 'input_invalid', where: 'loss', rule: 'the loss must be finite', found: String(loss), hint: 'the weights or inputs contain NaN/Inf, or the learning rate diverged' });
    }
    return { loss, count };
  }

  /** Forward only: the mean loss. */
  loss(batch: Batch, chunkLoss?: ChunkLoss): number {
    const a = this.forward(batch);
    return this.headLoss(a, batch, false, chunkLoss).loss;
  }

  /**
   * Full logits, chunk by chunk: calls onChunk(firstRow, rows, logits[rows, V]). The view is
   * reused for the next chunk, so copy what you keep.
   */
  logits(batch: Batch, onChunk: (firstRow: number, rows: number, logits: Float32Array) => void): void {
    const a = this.forward(batch);
    const { N } = this.nc(batch);
    const R = a.buf.logits.length / this.cfg.vocabSize;
    for (let r0 = 0; r0 < N; r0 += R) {
      const rows = Math.min(R, N - r0);
      onChunk(r0, rows, this.logitsChunk(a, r0, rows));
    }
  }

  // ---------------------------------------------------------------------------------------------
  // backward

  /** Forward, loss and backward: accumulates into the gradient blocks (call zeroGrad first). */
  lossAndBackward(batch: Batch, chunkLoss?: ChunkLoss): number {
    if (!this.grads) this.zeroGrad();
    const a = this.forward(batch);
    const { loss } = this.headLoss(a, batch, true, chunkLoss);
    this.backward(a, batch);
    return loss;
  }

  /** Backward from d(lnf) (left in dln by headLoss) down to the embeddings, into the gradient blocks. */
  backward(a: Activations, batch: Batch): void {
    ensure(!a.forwardOnly, 'Decoder.backward', () => 'a backward pass needs a full activation arena; this model allocates forward-only arenas (forwardOnly = true)');
    if (!this.grads) this.zeroGrad();
    const { N, C } = this.nc(batch);
    const L = this.cfg.numLayers;
    // in the forward pass this was: lnf = rmsnorm(resid[L]) * w.lnf
    a.buf.dresid.fill(0);
    K.rmsnormBackward(a.buf.dresid, this.dw!.lnf, a.buf.dln, layerSlice(a.buf.resid, L, N * C), this.w32().lnf, a.buf.lnfRstd, N, C);
    for (let l = L - 1; l >= 0; l--) {
      if (a.recompute) this.layerForward(l, a, batch, undefined, true);
      this.layerBackward(l, a, batch);
    }
    this.embedBackward(a, batch);
  }

  /** The layer's kernel calls in reverse; dresid holds d(output) on entry and d(input) on exit. */
  layerBackward(l: number, a: Activations, batch: Batch): void {
    const cfg = this.cfg, w = this.w32().layers[l], dw = this.dw!.layers[l], b = a.buf;
    const { N, C } = this.nc(batch);
    const F = cfg.intermediateSize, nH = cfg.numHeads, nKV = cfg.numKvHeads, hd = cfg.headDim;
    const QKV = (nH + 2 * nKV) * hd, A = nH * hd;
    const x = layerSlice(b.resid, l, N * C);
    const ln1 = layerSlice(b.ln1, l, N * C), ln1Rstd = layerSlice(b.ln1Rstd, l, N);
    const qkv = layerSlice(b.qkv, l, N * QKV), att = layerSlice(b.att, l, N * A);
    const lse = layerSlice(b.lse, l, batch.B * nH * batch.T);
    const mid = layerSlice(b.residMid, l, N * C);
    const ln2 = layerSlice(b.ln2, l, N * C), ln2Rstd = layerSlice(b.ln2Rstd, l, N);
    const gateup = layerSlice(b.gateup, l, N * 2 * F), act = layerSlice(b.act, l, N * F);
    const dresid = b.dresid;
    const { cos, sin } = this.ropeFor(batch.T);

    // y = mid + down_proj(act): the residual passes dresid through unchanged to d(mid)
    b.dact.fill(0);
    K.matmulBackward(b.dact, dw.downW, null, dresid, act, w.downW, N, F, C);
    b.dgateup.fill(0);
    K.swigluBackward(b.dgateup, b.dact, gateup, N, F);
    b.dln.fill(0);
    K.matmulBackward(b.dln, dw.gateupW, null, b.dgateup, ln2, w.gateupW, N, C, 2 * F);
    K.rmsnormBackward(dresid, dw.ln2, b.dln, mid, w.ln2, ln2Rstd, N, C);
    // mid = x + o_proj(att): dresid now holds d(mid), which flows to d(x) as well
    b.datt.fill(0);
    K.matmulBackward(b.datt, dw.oW, dw.oB, dresid, att, w.oW, N, A, C);
    b.dqkv.fill(0);
    K.attentionBackward(b.dqkv, b.datt, att, lse, qkv, batch.docStart, batch.B, batch.T, nH, nKV, hd, cfg.slidingWindow);
    K.ropeBackward(b.dqkv, batch.pos, cos, sin, N, nH + nKV, hd, QKV);
    b.dln.fill(0);
    K.matmulBackward(b.dln, dw.qkvW, dw.qkvB, b.dqkv, ln1, w.qkvW, N, C, QKV);
    K.rmsnormBackward(dresid, dw.ln1, b.dln, x, w.ln1, ln1Rstd, N, C);
  }

  private embedBackward(a: Activations, batch: Batch): void {
    const { N, C } = this.nc(batch);
    const dwte = this.dw!.wte, d = a.buf.dresid;
    if (dwte.length === 0) return; // frozen
    for (let n = 0; n < N; n++) {
      const o = batch.ids[n] * C, r = n * C;
      for (let c = 0; c < C; c++) dwte[o + c] += d[r + c];
    }
  }
}
