// AdamW's moments (m, v) in the storage the run asks for (--optim-state):
//
//   f32   float32 m and v, 8 bytes per trainable parameter (torch's AdamW state)
//   bf16  bf16 m and v, 4 bytes per trainable parameter
//   int8  8-bit codes in 256-value blocks plus a float32 scale per block and moment,
//         2 + 8/256 bytes per trainable parameter (src/tensor/kernels/adamw_lean.ts)
//
// They live in the blocks of the gradient layout (frozen tensors have size 0 there, so no
// moments). The int8 blocks start at each tensor's first element, so a block never mixes two
// tensors and a tensor's codes and scales are one checkpoint entry each. In optimizer.safetensors:
//   exp_avg.<name>, exp_avg_sq.<name>             F32 (f32), BF16 (bf16) or U8 codes (int8)
//   exp_avg_scale.<name>, exp_avg_sq_scale.<name>  F32 [ceil(size / 256)]   (int8 only; sq: of sqrt(v))
// and __metadata__.optim_state names the storage ("f32" when absent: checkpoints before it).
import { kernels as K } from '../tensor/ops.ts';
import { QUANT_BLOCK, mix32 } from '../tensor/kernels/adamw_lean.ts';
import { ParamBlocks, type ParameterLayout, type TensorSlot } from '../model/parameters.ts';
import { readTensorF32, readTensorRaw, type SafetensorsHeader, type TensorToWrite } from '../io/safetensors.ts';
import { KompresorError } from '../errors.ts';

export const OPTIM_STATES = ['f32', 'bf16', 'int8'] as const;
export type OptimState = typeof OPTIM_STATES[number];

/** The AdamW hyperparameters a moment update reads. */
export interface MomentHyper { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number; salt: number }

/** Bytes of m and v together for a tensor of `size` parameters. */
export function momentBytes(kind: OptimState, size: number): number {
  if (kind === 'f32') return 8 * size;
  if (kind === 'bf16') return 4 * size;
  return 2 * size + 8 * Math.ceil(size / QUANT_BLOCK);
}

/** The stochastic-rounding salt of one tensor at one step (int8): a hash of (seed, step, tensor). */
export function roundingSalt(seed: number, step: number, slot: number): number {
  return mix32((mix32(seed >>> 0) ^ mix32(step >>> 0)) + mix32((slot * 0x9e3779b1) >>> 0) >>> 0);
}

export class Moments {
  readonly bytes: number;
  private readonly m32: ParamBlocks | null = null;
  private readonly v32: ParamBlocks | null = null;
  private readonly m16: Uint16Array[] = [];
  private readonly v16: Uint16Array[] = [];
  private readonly mq: Uint8Array[] = [];
  private readonly vq: Uint8Array[] = [];
  private readonly mScale: Float32Array[] = [];
  private readonly vScale: Float32Array[] = [];
  /** int8: first scale of each slot in its block's scale array. */
  private readonly scaleStart = new Map<string, number>();

  constructor(readonly layout: ParameterLayout, readonly kind: OptimState) {
    if (kind === 'f32') {
      this.m32 = new ParamBlocks(layout);
      this.v32 = new ParamBlocks(layout);
    } else if (kind === 'bf16') {
      for (const n of layout.blockSizes) { this.m16.push(new Uint16Array(n)); this.v16.push(new Uint16Array(n)); }
    } else {
      const scales = layout.blockSizes.map(() => 0);
      for (const s of layout.slots) { this.scaleStart.set(s.name, scales[s.block]); scales[s.block] += Math.ceil(s.size / QUANT_BLOCK); }
      layout.blockSizes.forEach((n, b) => {
        this.mq.push(new Uint8Array(n)); this.vq.push(new Uint8Array(n));
        this.mScale.push(new Float32Array(scales[b])); this.vScale.push(new Float32Array(scales[b]));
      });
    }
    this.bytes = layout.slots.reduce((sum, s) => sum + momentBytes(kind, s.size), 0);
  }

  /** Float32 m and v (an f32 state only: tests, benchmarks). */
  get f32(): { m: ParamBlocks; v: ParamBlocks } {
    if (!this.m32 || !this.v32) throw new Error(`[ImplError] the AdamW moments are ${this.kind}, not f32`);
    return { m: this.m32, v: this.v32 };
  }

  /** One AdamW step on the tensor `slot` (of this layout): params and grads are its views. */
  update(slot: TensorSlot, params: Float32Array, grads: Float32Array, h: MomentHyper): void {
    const n = slot.size, args = [h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, h.step] as const;
    if (this.kind === 'f32') K.adamwUpdate(params, grads, this.m32!.view(slot), this.v32!.view(slot), n, ...args);
    else if (this.kind === 'bf16') K.adamwUpdateBf16(params, grads, this.span(this.m16, slot), this.span(this.v16, slot), n, ...args);
    else {
      const q = this.quantized(slot);
      K.adamwUpdateInt8(params, grads, q.mq, q.mScale, q.vq, q.vScale, n, ...args, h.salt);
    }
  }

  /** The checkpoint entries of one tensor's moments. */
  tensors(slot: TensorSlot): TensorToWrite[] {
    const e = (name: string, dtype: TensorToWrite['dtype'], shape: number[], data: TensorToWrite['data']) => ({ name: `${name}.${slot.name}`, dtype, shape, data });
    if (this.kind === 'f32') return [e('exp_avg', 'F32', slot.shape, this.m32!.view(slot)), e('exp_avg_sq', 'F32', slot.shape, this.v32!.view(slot))];
    if (this.kind === 'bf16') return [e('exp_avg', 'BF16', slot.shape, this.span(this.m16, slot)), e('exp_avg_sq', 'BF16', slot.shape, this.span(this.v16, slot))];
    const q = this.quantized(slot), blocks = [q.mScale.length];
    return [e('exp_avg', 'U8', slot.shape, q.mq), e('exp_avg_scale', 'F32', blocks, q.mScale),
      e('exp_avg_sq', 'U8', slot.shape, q.vq), e('exp_avg_sq_scale', 'F32', blocks, q.vScale)];
  }

  /** Reads one tensor's moments from an optimizer.safetensors written with the same kind. */
  read(h: SafetensorsHeader, slot: TensorSlot): void {
    for (const t of this.tensors(slot)) {
      const info = h.tensors.get(t.name);
      if (!info || info.dtype !== t.dtype || info.shape.length !== t.shape.length || info.shape.some((d, i) => d !== t.shape[i])) {
        throw new KompresorError({ code: info ? 'safetensors_shape' : 'checkpoint_missing_tensor', where: `${h.path}: tensor "${t.name}"`,
          rule: `a resumed run must have the moments it checkpointed (${this.kind} AdamW state)`, expected: `${t.dtype} ${JSON.stringify(t.shape)}`,
          found: info ? `${info.dtype} ${JSON.stringify(info.shape)}` : 'no such tensor' });
      }
      if (t.data instanceof Float32Array) readTensorF32(h, info, t.data);
      else readTensorRaw(h, info, t.data as Uint8Array | Uint16Array);
    }
  }

  private span<T extends Uint16Array | Uint8Array>(blocks: T[], slot: TensorSlot): T {
    return blocks[slot.block].subarray(slot.blockOffset, slot.blockOffset + slot.size) as T;
  }

  private quantized(slot: TensorSlot) {
    const s0 = this.scaleStart.get(slot.name)!, s1 = s0 + Math.ceil(slot.size / QUANT_BLOCK);
    return { mq: this.span(this.mq, slot), vq: this.span(this.vq, slot),
      mScale: this.mScale[slot.block].subarray(s0, s1), vScale: this.vScale[slot.block].subarray(s0, s1) };
  }
}
