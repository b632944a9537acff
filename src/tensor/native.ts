// Loads the native addon (native/build/Release/kompresor_native.node) when it was built.
// KOMPRESOR_NATIVE=0 forces the TypeScript reference kernels (slow, used by parity tests).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Kernels } from './kernels/types.ts';

export interface NativeAddon extends Partial<Kernels> {
  info(): { blas: string; blasThreads: number; ompThreads: number };
  setThreads(n: number): void;
  /** Row-major C = alpha*op(A)@op(B) + beta*C. */
  sgemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: Float32Array, lda: number, B: Float32Array, ldb: number, beta: number, C: Float32Array, ldc: number): void;
}

const addonPath = fileURLToPath(new URL('../../native/build/Release/kompresor_native.node', import.meta.url));

function load(): NativeAddon | null {
  if (process.env.KOMPRESOR_NATIVE === '0') return null;
  if (!existsSync(addonPath)) return null;
  // OpenBLAS (pthreads) and our OpenMP kernels share the same cores. With libgomp's default
  // active waiting, OpenMP threads keep spinning after each kernel and steal the cores from the
  // next sgemm: on 2 cores tiny15m trained at 1250 instead of 2140 tokens/s. libgomp reads
  // this once, when the addon (which links it) is loaded, so it is set before the require.
  process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
  const require = createRequire(import.meta.url);
  return require(addonPath) as NativeAddon;
}

/** The addon, or null when it is not built or disabled. */
export const native: NativeAddon | null = load();
