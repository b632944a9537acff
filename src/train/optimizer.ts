// AdamW over parameter blocks (torch.optim.AdamW semantics), with global-norm gradient clipping
// and a cosine schedule with linear warmup and a floor. The state (m, v, step) lives in the blocks
// of the gradient layout, stored as float32, bf16 or 8-bit codes (src/train/moments.ts); frozen
// tensors (size 0 in that layout) get no state and no update. One kernel call per tensor: decay
// applies to matrices, not to norms and biases (1-D tensors), as is customary.
import { kernels as K } from '../tensor/ops.ts';
import { KompresorError } from '../errors.ts';
import type { ParamBlocks, ParameterLayout } from '../model/parameters.ts';
import { Moments, roundingSalt, type OptimState } from './moments.ts';

export interface AdamWConfig {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Max global L2 norm of the gradient; 0 = no clipping. */
  clip: number;
}

export const ADAMW_DEFAULTS: AdamWConfig = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip: 1.0 };

export interface AdamWStorage {
  /** How m and v are stored (default f32). */
  state?: OptimState;
  /** The gradient layout (frozen tensors at size 0); default: the parameter layout. */
  trainable?: ParameterLayout;
  /** Seeds the stochastic rounding of int8 moments. */
  seed?: number;
}

export class AdamW {
  readonly moments: Moments;
  readonly trainable: ParameterLayout;
  private readonly seed: number;
  step = 0;
  constructor(readonly layout: ParameterLayout, readonly cfg: AdamWConfig, storage: AdamWStorage = {}) {
    this.trainable = storage.trainable ?? layout;
    this.moments = new Moments(this.trainable, storage.state ?? 'f32');
    this.seed = storage.seed ?? 0;
  }

  /** Float32 first moments (an f32 state only). */
  get m(): ParamBlocks { return this.moments.f32.m; }
  /** Float32 second moments (an f32 state only). */
  get v(): ParamBlocks { return this.moments.f32.v; }

  /** Global L2 norm of the gradient blocks (each block's sum of squares in double, added in double). */
  static gradNorm(grads: ParamBlocks): number {
    let s = 0;
    for (const a of grads.arrays) s += K.sumSquares(a, a.length);
    return Math.sqrt(s);
  }

  /** Clips (in place) and applies one update at learning rate lr; returns the pre-clip norm. */
  update(params: ParamBlocks, grads: ParamBlocks, lr: number): number {
    const norm = AdamW.gradNorm(grads);
    if (!Number.isFinite(norm)) {
      throw new KompresorError({ code: 'input_invalid', where: `optimizer step ${this.step + 1}`, rule: 'the gradient norm must be finite', found: String(norm), hint: 'lower the learning rate or check the data; the last checkpoint is intact' });
    }
    if (this.cfg.clip > 0 && norm > this.cfg.clip) {
      const s = this.cfg.clip / (norm + 1e-6);
      for (const g of grads.arrays) for (let i = 0; i < g.length; i++) g[i] *= s;
    }
    this.step++;
    const c = this.cfg;
    this.layout.slots.forEach((s, i) => {
      const t = this.trainable.slots[i];
      if (t.size === 0) return; // frozen
      this.moments.update(t, params.view(s), grads.view(t), {
        lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, weightDecay: s.shape.length > 1 ? c.weightDecay : 0,
        step: this.step, salt: roundingSalt(this.seed, this.step, i),
      });
    });
    return norm;
  }
}

/** Cosine decay from lr to minLr after a linear warmup (Megatron/NeMo style). step counts from 0. */
export function cosineLr(step: number, total: number, lr: number, minLr: number, warmup: number): number {
  if (warmup > 0 && step < warmup) return (lr * (step + 1)) / warmup;
  if (step >= total) return minLr;
  const progress = (step - warmup) / Math.max(1, total - warmup);
  return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
}
