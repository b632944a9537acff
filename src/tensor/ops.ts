// The kernel set the model uses: each native kernel when the addon provides it, otherwise the
// TypeScript reference of the same name. `reference` is always the pure TypeScript set
// (parity tests compare the two).
import type { Kernels } from './kernels/types.ts';
import { native } from './native.ts';
import { matmulForward, matmulBackward, matmulForwardHalf } from './kernels/matmul.ts';
import { rmsnormForward, rmsnormBackward } from './kernels/rmsnorm.ts';
import { ropeForward, ropeBackward } from './kernels/rope.ts';
import { attentionForward, attentionBackward, attentionDecode } from './kernels/attention.ts';
import { swigluForward, swigluBackward } from './kernels/swiglu.ts';
import { crossEntropyForwardBackward } from './kernels/cross_entropy.ts';
import { kdForwardBackward } from './kernels/kd_loss.ts';
import { adamwUpdate, sumSquares } from './kernels/adamw.ts';
import { adamwUpdateBf16, adamwUpdateInt8 } from './kernels/adamw_lean.ts';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './kernels/dtype.ts';

export const reference: Kernels = {
  matmulForward, matmulBackward, matmulForwardHalf, rmsnormForward, rmsnormBackward, ropeForward, ropeBackward,
  attentionForward, attentionBackward, attentionDecode, swigluForward, swigluBackward,
  crossEntropyForwardBackward, kdForwardBackward, adamwUpdate, sumSquares, adamwUpdateBf16, adamwUpdateInt8, bf16ToF32, f16ToF32, f32ToBf16, f32ToF16,
};

function pick(): Kernels {
  if (!native) return reference;
  const out = { ...reference } as Kernels;
  for (const name of Object.keys(reference) as (keyof Kernels)[]) {
    const fn = native[name];
    if (typeof fn === 'function') (out as unknown as Record<string, unknown>)[name] = fn;
  }
  return out;
}

/** The kernels in use: native where available. */
export const kernels: Kernels = pick();
/** Names of the kernels served natively (for `inspect`, benchmarks and tests). */
export const nativeKernelNames: string[] = native
  ? (Object.keys(reference) as (keyof Kernels)[]).filter((k) => typeof native![k] === 'function')
  : [];
