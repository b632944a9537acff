// The machine fingerprint: what, besides the inputs and the seed, decides the bits of a result.
// Run folders (machine.json, and every checkpoint's state.json) and the pipeline report carry
// it, so two results can be compared knowing whether they could be identical:
//   - the CPU (model, SIMD flags): OpenBLAS picks its kernels by CPU, and the addon is compiled
//     with -march=native (KOMPRESOR_MARCH fixes it);
//   - the BLAS library, its kernel set (core type) and thread count; OpenMP's thread count;
//   - the Node version (V8's Math.exp/log) and whether the native addon ran at all.
// `key` is a short hash of the parts that decide the bits (not the CPU's model name; the SIMD
// flags only when the addon was built with -march=native), equal on machines that should give
// byte-identical results.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import { native } from './native.ts';

export interface MachineFingerprint {
  key: string;
  cpu: string;
  cpus: number;
  /** The SIMD-related flags of /proc/cpuinfo (sse4_2, avx, avx2, fma, f16c, avx512*, amx*, ...). */
  cpu_flags: string[];
  arch: string;
  platform: string;
  node: string;
  native: boolean;
  blas: string | null;
  blas_core: string | null;
  blas_threads: number | null;
  omp_threads: number | null;
  addon_flags: string | null;
  compiler: string | null;
  /** KOMPRESOR_PIN=1 was set (core type and threads fixed). */
  pinned: boolean;
  /** The environment variables that change the arithmetic (OPENBLAS_*, OMP_*, KOMPRESOR_*). */
  env: Record<string, string>;
}

const SIMD = /^(sse\d.*|ssse3|avx.*|fma.*|f16c|amx.*|neon|asimd.*|sve.*)$/;
const ENV = /^(OPENBLAS_|OMP_|GOMP_|KOMPRESOR_(PIN|THREADS|NATIVE|MARCH)$)/;

let cached: MachineFingerprint | undefined;

/** The fingerprint of this process (computed once). */
export function machineFingerprint(): MachineFingerprint {
  cached ??= compute();
  return cached;
}

function compute(): MachineFingerprint {
  const info = native?.info();
  const env = Object.fromEntries(Object.entries(process.env).filter(([k, v]) => ENV.test(k) && v !== undefined).sort()) as Record<string, string>;
  const f: Omit<MachineFingerprint, 'key'> = {
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown', cpus: os.availableParallelism(), cpu_flags: cpuFlags(),
    arch: process.arch, platform: process.platform, node: process.version, native: native !== null,
    blas: info?.blas ?? null, blas_core: info?.blasCore ?? null, blas_threads: info?.blasThreads ?? null, omp_threads: info?.ompThreads ?? null,
    addon_flags: info?.cxxFlags ?? null, compiler: info?.compiler ?? null, pinned: process.env.KOMPRESOR_PIN === '1', env,
  };
  // the CPU's flags decide our kernels' code only under -march=native (OpenBLAS's choice is blas_core)
  const flags = f.native && /-march=native\b/.test(f.addon_flags ?? '') ? f.cpu_flags.join(' ') : null;
  const decisive = [f.arch, flags, f.node, f.native, f.blas, f.blas_core, f.blas_threads, f.omp_threads, f.addon_flags, f.compiler];
  return { key: crypto.createHash('sha256').update(JSON.stringify(decisive)).digest('hex').slice(0, 12), ...f };
}

function cpuFlags(): string[] {
  try {
    const text = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const line = /^(flags|Features)\s*:\s*(.*)$/m.exec(text);
    return line ? line[2].split(/\s+/).filter((x) => SIMD.test(x)).sort() : [];
  } catch {
    return [];
  }
}

/** One line for reports: "AMD EPYC, 2 CPUs, OpenBLAS Haswell x2, OpenMP x2, Node v20.19.0 (key 1a2b3c4d5e6f)". */
export function describeMachine(f: MachineFingerprint): string {
  const blas = f.native ? `OpenBLAS ${f.blas_core ?? '?'} x${f.blas_threads ?? '?'}, OpenMP x${f.omp_threads ?? '?'}` : 'TypeScript kernels (no native addon)';
  return `${f.cpu}, ${f.cpus} CPUs, ${blas}, Node ${f.node}${f.pinned ? ', pinned' : ''} (key ${f.key})`;
}
