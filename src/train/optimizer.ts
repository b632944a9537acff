// AdamW over parameter blocks (torch.optim.AdamW semantics), with global-norm gradient clipping
// and a cosine schedule with linear warmup and a floor. The state (m, v, step) lives in blocks
// with the parameter layout, so checkpointing it is one tensor write per parameter and moment.
import { kernels as K } from '../tensor/ops.ts';
import { KompresorError } from '../errors.ts';
import { ParamBlocks, type ParameterLayout } from '../model/parameters.ts';

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

/** Ranges of one block with or without weight decay: norms and biases (1-D tensors) get none, as is customary. */
export type DecayMask = { block: number; offset: number; size: number; decay: boolean }[];

export class AdamW {
  readonly m: ParamBlocks;
  readonly v: ParamBlocks;
  readonly groups: DecayMask;
  step = 0;
  constructor(readonly layout: ParameterLayout, readonly cfg: AdamWConfig) {
    this.m = new ParamBlocks(layout);
    this.v = new ParamBlocks(layout);
    this.groups = decayGroups(layout);
  }

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
    for (const g of this.groups) {
      const sl = (b: ParamBlocks) => b.arrays[g.block].subarray(g.offset, g.offset + g.size);
      K.adamwUpdate(sl(params), sl(grads), sl(this.m), sl(this.v), g.size, lr, c.beta1, c.beta2, c.eps, g.decay ? c.weightDecay : 0, this.step);
    }
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

/** Decay groups of a parameter layout, per block: 1-D tensors (norms, biases) are not decayed. Adjacent slots merge. */
export function decayGroups(layout: ParameterLayout): DecayMask {
  const out: DecayMask = [];
  for (const s of layout.slots) {
    const decay = s.shape.length > 1;
    const last = out[out.length - 1];
    if (last && last.block === s.block && last.decay === decay && last.offset + last.size === s.blockOffset) last.size += s.size;
    else out.push({ block: s.block, offset: s.blockOffset, size: s.size, decay });
  }
  return out;
}
