// Loads the native addon (native/build/Release/kompresor_native.node) when it was built.
// KOMPRESOR_NATIVE=0 forces the TypeScript reference kernels (slow, used by parity tests).
// KOMPRESOR_PIN=1 fixes, before the load, what else decides the bits of a result on a given CPU:
// OpenBLAS's kernel set and the thread counts (see pinnedEnvironment).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Kernels } from './kernels/types.ts';

export interface NativeAddon extends Partial<Kernels> {
  info(): {
    blas: string; blasThreads: number; ompThreads: number;
    /** OpenBLAS's kernel set for this CPU (openblas_get_corename), e.g. "Haswell", "SkylakeX". */
    blasCore: string;
    /** 0 sequential, 1 pthreads, 2 OpenMP (openblas_get_parallel). */
    blasParallel: number;
    /** The addon's compile flags (-march decides our kernels' instruction set) and GCC version. */
    cxxFlags: string; compiler: string;
  };
  setThreads(n: number): void;
  /** Row-major C = alpha*op(A)@op(B) + beta*C. */
  sgemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: Float32Array, lda: number, B: Float32Array, ldb: number, beta: number, C: Float32Array, ldc: number): void;
}

/** The OpenBLAS kernel set KOMPRESOR_PIN=1 uses unless OPENBLAS_CORETYPE is set: AVX2 + FMA, the widest set every x86-64-v3 CPU runs. */
export const PINNED_CORE = 'Haswell';

/**
 * The variables KOMPRESOR_PIN=1 sets. OpenBLAS picks its kernels by CPU (DYNAMIC_ARCH): on one
 * CPU, "Haswell" and "SkylakeX" kernels round a GEMM differently, and with Haswell kernels the
 * bits also change with the thread count. So: OPENBLAS_CORETYPE fixed (PINNED_CORE unless given),
 * OPENBLAS_NUM_THREADS and OMP_NUM_THREADS both KOMPRESOR_THREADS, else the CPU count.
 */
export function pinnedEnvironment(env: NodeJS.ProcessEnv): Record<string, string> {
  const threads = env.KOMPRESOR_THREADS ?? String(os.availableParallelism());
  return { OPENBLAS_CORETYPE: env.OPENBLAS_CORETYPE || PINNED_CORE, OPENBLAS_NUM_THREADS: threads, OMP_NUM_THREADS: threads };
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
  // OpenBLAS reads these once, when the library is loaded with the addon
  if (process.env.KOMPRESOR_PIN === '1') Object.assign(process.env, pinnedEnvironment(process.env));
  const require = createRequire(import.meta.url);
  return require(addonPath) as NativeAddon;
}

/** The addon, or null when it is not built or disabled. */
export const native: NativeAddon | null = load();

