// The kernel contract. Every kernel exists twice with the same name and argument order:
// a plain TypeScript reference in src/tensor/kernels/<name>.ts and a native (C++/OpenMP/OpenBLAS)
// version in native/src/<name>.cpp. src/tensor/ops.ts picks one set at load time.
//
// Argument order (llm.c): outputs, values saved for backward, inputs, weights, dimensions.
// Forward kernels overwrite their outputs. Backward kernels ADD INTO their gradient outputs
// (callers zero them), except where a comment says "in place".
// Buffers are flat row-major Float32Array views (subarray views are fine: the native side
// honours byteOffset). Int32Array for ids, positions and document starts.
//
// Dimension legend:
//   N  = number of token rows (B*T)         C  = hidden size (channels)
//   OC = output channels of a linear        F  = MLP intermediate size
//   B  = batch, T = sequence length         V  = vocabulary size
//   nH = query heads, nKV = key/value heads, hd = head_dim
//   QKV = (nH + 2*nKV) * hd, the width of the fused q|k|v projection

export type F32 = Float32Array;
export type I32 = Int32Array;
export type Nullable<T> = T | null;

export interface Kernels {
  /**
   * out[N,OC] = inp[N,C] @ weight[OC,C]^T (+ bias[OC]). HF nn.Linear layout.
   * accumulate: out += ... instead (folds residual connections into the GEMM's beta = 1).
   */
  matmulForward(out: F32, inp: F32, weight: F32, bias: Nullable<F32>, N: number, C: number, OC: number,
    accumulate?: boolean): void;
  /**
   * matmulForward on a 16-bit weight (bf16 bit patterns, or f16 when `f16`), widened to float32
   * inside the kernel: a frozen model keeps 2 bytes per weight and decode reads half the bytes.
   */
  matmulForwardHalf(out: F32, inp: F32, weight: Uint16Array, bias: Nullable<F32>, N: number, C: number, OC: number,
    accumulate?: boolean, f16?: boolean): void;
  /** dinp[N,C] += dout @ weight; dweight[OC,C] += dout^T @ inp; dbias[OC] += colsum(dout). null = skip. */
  matmulBackward(dinp: Nullable<F32>, dweight: Nullable<F32>, dbias: Nullable<F32>,
    dout: F32, inp: F32, weight: F32, N: number, C: number, OC: number): void;

  /** out = inp * rstd * weight, rstd[N] = 1/sqrt(mean(inp^2) + eps) (HF LlamaRMSNorm, f32). */
  rmsnormForward(out: F32, rstd: F32, inp: F32, weight: F32, N: number, C: number, eps: number): void;
  rmsnormBackward(dinp: F32, dweight: F32, dout: F32, inp: F32, weight: F32, rstd: F32, N: number, C: number): void;

  /**
   * In place: rotate heads 0..nHeads-1 of every row of x (row n starts at n*stride; head h at h*hd),
   * HF rotate_half convention: x1 = x[:hd/2], x2 = x[hd/2:]; y1 = x1*c - x2*s; y2 = x2*c + x1*s,
   * with c = cos[pos[n], i], s = sin[pos[n], i]; cos/sin are [maxPos, hd/2].
   */
  ropeForward(x: F32, pos: I32, cos: F32, sin: F32, N: number, nHeads: number, hd: number, stride: number): void;
  /** In place: the transpose rotation (dx1 = dy1*c + dy2*s; dx2 = dy2*c - dy1*s). */
  ropeBackward(dx: F32, pos: I32, cos: F32, sin: F32, N: number, nHeads: number, hd: number, stride: number): void;

  /**
   * Causal GQA attention over packed rows. qkv is [B,T,QKV] with q at column 0, k at nH*hd,
   * v at (nH+nKV)*hd; query head h reads kv head floor(h / (nH/nKV)). Token t of a row attends
   * to keys j with max(docStart[b*T+t], t - window + 1) <= j <= t (window 0 = unlimited), so
   * documents packed in one row never see each other. scale = 1/sqrt(hd).
   * out[B,T,nH*hd]; lse[B,nH,T] = log-sum-exp of the scaled scores (saved for backward).
   * Memory is O(T) per head (no T x T score matrix is materialised).
   */
  attentionForward(out: F32, lse: F32, qkv: F32, docStart: I32,
    B: number, T: number, nH: number, nKV: number, hd: number, window: number): void;
  /** dqkv[B,T,QKV] += gradients w.r.t. q, k and v (the rope-rotated q,k as stored in qkv). */
  attentionBackward(dqkv: F32, dout: F32, out: F32, lse: F32, qkv: F32, docStart: I32,
    B: number, T: number, nH: number, nKV: number, hd: number, window: number): void;
  /**
   * One new query per row against a KV cache. q[B, nH*hd]; kCache, vCache [B, maxT, nKV*hd];
   * row b's new token sits at cache index t = len - 1 and attends to j in
   * [max(kvStart[b], t - window + 1), t]. out[B, nH*hd].
   */
  attentionDecode(out: F32, q: F32, kCache: F32, vCache: F32, kvStart: I32,
    B: number, len: number, maxT: number, nH: number, nKV: number, hd: number, window: number): void;

  /** out[N,F] = silu(gate) * up, where gateup[N,2F] holds [gate | up] per row. */
  swigluForward(out: F32, gateup: F32, N: number, F: number): void;
  /** dgateup[N,2F] += d/d[gate|up]. */
  swigluBackward(dgateup: F32, dout: F32, gateup: F32, N: number, F: number): void;

  /**
   * Fused softmax cross-entropy on a chunk of rows, in place: losses[n] = logsumexp(logits[n]) -
   * logits[n, targets[n]], and logits[n] is overwritten with (softmax - onehot) * dscale.
   * targets[n] < 0 (-100) means ignore: loss 0 and a zero gradient row. Returns nothing; the
   * caller never holds more than a [chunk, V] block of logits.
   */
  crossEntropyForwardBackward(losses: F32, logits: F32, targets: I32, N: number, V: number, dscale: number): void;
  /**
   * Fused logit distillation on a chunk of rows, in place (the KD twin of the cross-entropy above).
   * With p = softmax(logits[n] / T) (student) and q = softmax(teacherLogits[n] / T) (teacher):
   * losses[n] = KL(q || p) = sum_v q (log q - log p), or KL(p || q) when reverse, and logits[n] is
   * overwritten with dscale * d losses[n] / d logits[n]: (p - q) / T forward,
   * p * (log p - log q - KL) / T reverse. topK in [1, V): both distributions are restricted to
   * the teacher's k largest logits (ties to the lower id) and renormalised there (ModelOpt
   * TopKLogitsKLLoss), with a zero gradient elsewhere; 0 (or >= V) = full vocabulary.
   * targets[n] < 0 ignores row n (loss 0, zero gradient); only their sign is read. A NaN in an
   * active row gives a NaN loss and gradient row. No T^2 factor (callers scale for it).
   * Argument order: outputs, in-place logits, inputs, dims, then options and the scale.
   */
  kdForwardBackward(losses: F32, logits: F32, teacherLogits: F32, targets: I32, N: number, V: number,
    temperature: number, topK: number, reverse: boolean, dscale: number): void;

  /** PyTorch AdamW in place: p -= lr*wd*p; m,v updated; p -= lr * mhat / (sqrt(vhat) + eps). step >= 1. */
  adamwUpdate(params: F32, grads: F32, m: F32, v: F32, n: number,
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void;
  /** sum of squares of x[0..n) accumulated in double. */
  sumSquares(x: F32, n: number): number;
  /**
   * adamwUpdate with m and v held as bf16 bit patterns (rounded to nearest even when stored);
   * the update itself is computed in double from the stored moments. See kernels/adamw_lean.ts.
   */
  adamwUpdateBf16(params: F32, grads: F32, m: Uint16Array, v: Uint16Array, n: number,
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void;
  /**
   * adamwUpdate with m and v as 8-bit codes in blocks of 256 (one float32 scale per block and
   * moment; v stored as sqrt(v)), stochastically rounded under `salt`. See kernels/adamw_lean.ts.
   */
  adamwUpdateInt8(params: F32, grads: F32, mq: Uint8Array, mScale: F32, vq: Uint8Array, vScale: F32, n: number,
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number, salt: number): void;

  /** dtype conversions (bf16/f16 as raw Uint16 bit patterns); f32 -> 16-bit rounds to nearest even. */
  bf16ToF32(out: F32, inp: Uint16Array, n: number): void;
  f16ToF32(out: F32, inp: Uint16Array, n: number): void;
  f32ToBf16(out: Uint16Array, inp: F32, n: number): void;
  f32ToF16(out: Uint16Array, inp: F32, n: number): void;
}
