// Peers for `npm run bench`: the tuned PyTorch peer (bench/torch_peer.py, run with Debian's
// /usr/bin/python3 and python3-torch) and the machine's sgemm peak through our native addon.
// See bench/README.md for the tuning and the FLOP conventions.
//
// CLI (for a quick look):  node --import tsx bench/peers.ts [--torch tiny15m|smollm135] [--untuned]
//                              [--threads 2] [--steps N] [--warmup N] [--sgemm] [--quick]
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { native } from '../src/tensor/native.ts';

export const PEER_PYTHON = '/usr/bin/python3';
export const TCMALLOC = '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4';
const PEER_SCRIPT = fileURLToPath(new URL('./torch_peer.py', import.meta.url));
const INSTALL_HINT = 'apt-get install python3-torch libtcmalloc-minimal4';

export type PeerConfigName = 'tiny15m' | 'smollm135';

export interface PeerConfig {
  name: string; hidden: number; layers: number; heads: number; kv_heads: number; mlp: number;
  vocab: number; tied: boolean; seq: number; batch: number; rope_theta: number; eps: number;
}

/** One JSON object printed by bench/torch_peer.py. Throughputs are medians; null when a phase was skipped. */
export interface PeerResult {
  config: PeerConfig;
  threads: number;
  torch_version: string;
  /** Total parameters (a tied lm_head counted once). */
  params: number;
  /** N of the FLOP convention: all parameters except an untied input embedding table. */
  flop_params: number;
  train_tokens_per_s: number | null;
  forward_tokens_per_s: number | null;
  decode_tokens_per_s: number | null;
  prefill_tokens_per_s?: number;
  /** 6 · flop_params · train tok/s / 1e9. */
  train_gflops: number | null;
  /** 2 · flop_params · forward tok/s / 1e9. */
  forward_gflops: number | null;
  /** ru_maxrss of the peer process, bytes (peak over all phases; training dominates). */
  peak_rss_bytes: number;
  tcmalloc: boolean;
  omp_wait_policy: string | null;
  sdpa: boolean;
  steps: number;
  warmup: number;
  train_step_s?: number[];
  forward_step_s?: number[];
  decode?: { prompt: number; new_tokens: number; runs: number };
  /** Whether the launcher applied the tuning (tcmalloc + OMP_WAIT_POLICY=PASSIVE). */
  tuned: boolean;
  wall_s: number;
}

export interface PeerError { error: string; stderr?: string }

export interface TorchPeerOptions {
  /** torch.set_num_threads; use the same count as our engine. Default 2. */
  threads?: number;
  /** Timed training steps (forward passes use the same count). Default: script's (8, or 5 for smollm135). */
  steps?: number;
  /** Warmup training steps. Default 3. */
  warmup?: number;
  /** Apply tcmalloc + OMP_WAIT_POLICY=PASSIVE. Default true; false only to show that the tuning matters. */
  tuned?: boolean;
  /** Phases to skip. */
  skip?: Array<'train' | 'forward' | 'decode'>;
  /** Extra CLI args for torch_peer.py (e.g. ['--new-tokens', '32']). */
  extraArgs?: string[];
  /** Kill the peer after this long. Default 40 min. */
  timeoutMs?: number;
  /** Stream the peer's progress lines (stderr) to our stderr. Default false. */
  verbose?: boolean;
}

export function isPeerError(r: PeerResult | PeerError): r is PeerError {
  return typeof (r as PeerError).error === 'string';
}

/** The environment the peer runs under: tuned = tcmalloc preloaded + passive OpenMP waiting. */
export function peerEnv(tuned: boolean): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.KOMPRESOR_PEER_REEXEC;
  const pre = (env.LD_PRELOAD ?? '').split(':').filter((x) => x && !x.includes('tcmalloc'));
  if (tuned) {
    if (existsSync(TCMALLOC)) pre.unshift(TCMALLOC);
    env.OMP_WAIT_POLICY = 'PASSIVE';
  } else {
    delete env.OMP_WAIT_POLICY;
  }
  if (pre.length) env.LD_PRELOAD = pre.join(':');
  else delete env.LD_PRELOAD;
  // Keep PyTorch's threads under torch.set_num_threads, not a stray inherited setting.
  delete env.OMP_NUM_THREADS;
  delete env.OPENBLAS_NUM_THREADS;
  delete env.MKL_NUM_THREADS;
  return env;
}

/** Runs bench/torch_peer.py for a named config; never throws (errors come back as {error}). */
export function runTorchPeer(configName: PeerConfigName | string, opts: TorchPeerOptions = {}): Promise<PeerResult | PeerError> {
  const threads = opts.threads ?? 2;
  const tuned = opts.tuned ?? true;
  if (!existsSync(PEER_PYTHON)) {
    return Promise.resolve({ error: `${PEER_PYTHON} not found; the PyTorch peer needs Debian's python3-torch: ${INSTALL_HINT}` });
  }
  if (tuned && !existsSync(TCMALLOC)) {
    return Promise.resolve({ error: `${TCMALLOC} not found; the tuned PyTorch peer preloads it: ${INSTALL_HINT}` });
  }
  const args = [PEER_SCRIPT, '--config', configName, '--threads', String(threads)];
  if (opts.steps !== undefined) args.push('--steps', String(opts.steps));
  if (opts.warmup !== undefined) args.push('--warmup', String(opts.warmup));
  if (opts.skip?.length) args.push('--skip', opts.skip.join(','));
  if (opts.extraArgs) args.push(...opts.extraArgs);
  const t0 = performance.now();
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let settled = false;
    const done = (r: PeerResult | PeerError) => { if (!settled) { settled = true; clearTimeout(timer); resolve(r); } };
    const child = spawn(PEER_PYTHON, args, { env: peerEnv(tuned), stdio: ['ignore', 'pipe', 'pipe'] });
    const timeoutMs = opts.timeoutMs ?? 40 * 60_000;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      done({ error: `PyTorch peer timed out after ${Math.round(timeoutMs / 1000)} s`, stderr: tail(stderr) });
    }, timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (opts.verbose) process.stderr.write(d);
    });
    child.on('error', (e) => done({ error: `could not start ${PEER_PYTHON}: ${e.message}` }));
    child.on('close', (code, signal) => {
      if (/No module named ['"]?torch/.test(stderr)) {
        done({ error: `PyTorch is not installed for ${PEER_PYTHON}: ${INSTALL_HINT}`, stderr: tail(stderr) });
        return;
      }
      if (code !== 0) {
        done({ error: `PyTorch peer exited with ${signal ?? `code ${code}`}`, stderr: tail(stderr) });
        return;
      }
      const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
      if (!line) { done({ error: 'PyTorch peer printed no JSON', stderr: tail(stderr) }); return; }
      try {
        const r = JSON.parse(line) as Omit<PeerResult, 'tuned' | 'wall_s'>;
        done({ ...r, tuned: tuned && r.tcmalloc && r.omp_wait_policy === 'PASSIVE', wall_s: (performance.now() - t0) / 1000 });
      } catch (e) {
        done({ error: `PyTorch peer printed bad JSON: ${(e as Error).message}`, stderr: tail(stderr) });
      }
    });
  });
}

function tail(s: string, n = 2000): string {
  return s.length > n ? '…' + s.slice(-n) : s;
}

/** Peak resident set size of this process, bytes (process.resourceUsage().maxRSS is in kB). */
export function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

export interface SgemmShape {
  /** C[M×N] = op(A)[M×K] · op(B)[K×N], row-major. */
  M: number; N: number; K: number;
  transA: boolean; transB: boolean;
  label: string;
}

export interface SgemmShapeResult extends SgemmShape {
  gflops: number;
  /** Median seconds per call. */
  seconds: number;
  runs: number;
}

export interface SgemmPeak {
  threads: number;
  blas: string;
  /** GFLOP/s (2·M·N·K / median time) of the square sgemm. */
  peak_gflops: number;
  peak_size: number;
  shapes: SgemmShapeResult[];
}

export interface SgemmPeakOptions {
  /** Square size for the peak: 4096 by default, 2048 with quick. */
  size?: number;
  quick?: boolean;
  /** Timed runs per shape (median). Default 5 (3 with quick). */
  runs?: number;
  /** Override the small-LLM shapes. */
  shapes?: SgemmShape[];
}

/** Shapes of a small-LLM training step (T = 2048 tokens; SmolLM2-135M widths), nn.Linear layout W[out,in]. */
export const LLM_SGEMM_SHAPES: SgemmShape[] = [
  { M: 512, N: 1536, K: 576, transA: false, transB: true, label: 'fwd x·Wgateᵀ, 512 tok' },
  { M: 2048, N: 1536, K: 576, transA: false, transB: true, label: 'fwd x·Wgateᵀ' },
  { M: 2048, N: 576, K: 1536, transA: false, transB: true, label: 'fwd h·Wdownᵀ' },
  { M: 2048, N: 576, K: 576, transA: false, transB: true, label: 'fwd x·Wqᵀ' },
  { M: 2048, N: 49152, K: 576, transA: false, transB: true, label: 'fwd lm_head' },
  { M: 2048, N: 576, K: 1536, transA: false, transB: false, label: 'bwd dY·Wgate (dX)' },
  { M: 1536, N: 576, K: 2048, transA: true, transB: false, label: 'bwd dYᵀ·X (dWgate)' },
  { M: 49152, N: 576, K: 2048, transA: true, transB: false, label: 'bwd dYᵀ·X (dW lm_head)' },
];

function fillRandom(a: Float32Array, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < a.length; i++) {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    a[i] = ((s >>> 0) / 4294967296 - 0.5) * 0.1;
  }
  return a;
}

function timeSgemm(sh: SgemmShape, runs: number): SgemmShapeResult {
  const addon = native!;
  const { M, N, K, transA, transB } = sh;
  const A = fillRandom(new Float32Array(M * K), 1);
  const B = fillRandom(new Float32Array(K * N), 2);
  const C = new Float32Array(M * N);
  const lda = transA ? M : K;
  const ldb = transB ? K : N;
  addon.sgemm(transA, transB, M, N, K, 1, A, lda, B, ldb, 0, C, N); // warmup (page faults, thread spin-up)
  const ts: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    addon.sgemm(transA, transB, M, N, K, 1, A, lda, B, ldb, 0, C, N);
    ts.push((performance.now() - t0) / 1000);
  }
  const seconds = median(ts);
  return { ...sh, gflops: (2 * M * N * K) / seconds / 1e9, seconds, runs };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** sgemm GFLOP/s through the native addon: a square peak plus small-LLM shapes. */
export function measureSgemmPeak(threads: number, opts: SgemmPeakOptions = {}): SgemmPeak | PeerError {
  if (!native) return { error: 'native addon not built (or KOMPRESOR_NATIVE=0): run npm run build:native' };
  native.setThreads(threads);
  const size = opts.size ?? (opts.quick ? 2048 : 4096);
  const runs = opts.runs ?? (opts.quick ? 3 : 5);
  const peak = timeSgemm({ M: size, N: size, K: size, transA: false, transB: false, label: `${size}³` }, runs);
  const shapes = (opts.shapes ?? LLM_SGEMM_SHAPES).map((sh) => timeSgemm(sh, runs));
  return { threads, blas: native.info().blas, peak_gflops: peak.gflops, peak_size: size, shapes };
}

// ---- CLI ----
async function main(argv: string[]): Promise<void> {
  const val = (k: string) => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1] : undefined; };
  const threads = Number(val('--threads') ?? 2);
  const num = (k: string) => (val(k) !== undefined ? Number(val(k)) : undefined);
  if (argv.includes('--sgemm')) {
    const r = measureSgemmPeak(threads, { quick: argv.includes('--quick') });
    console.log(JSON.stringify(r, null, 1));
  }
  const cfg = val('--torch');
  if (cfg) {
    const r = await runTorchPeer(cfg, { threads, steps: num('--steps'), warmup: num('--warmup'), tuned: !argv.includes('--untuned'), verbose: true });
    console.log(JSON.stringify(r));
  }
  console.error(`peak RSS (this process): ${(peakRss() / 2 ** 20).toFixed(0)} MiB`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((e) => { console.error(e); process.exit(1); });
}
