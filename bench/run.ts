// `npm run bench`: Kompresor's engine against its peers, measured in one run on this machine.
//   1. the sgemm peak through our addon (the ceiling MFU is measured against),
//   2. per config (tiny15m, smollm135): our engine in a child process (so peak RSS is per config),
//      then the tuned PyTorch peer (bench/torch_peer.py) on the same shapes, one after the other,
//   3. a table with the ratios, a distillation table (ours only: the config model as teacher, a
//      2/3-depth student; teacher forward + student KD step against the student's own step), and
//      `--json FILE` with the same figures.
// Then the pruning section (bench/pruning.ts): scoring vs plain forward throughput per config, and
// a streamed scoring run on a checkpoint larger than its --max-memory, with its peak RSS.
// Flags: --json FILE, --configs a,b, --threads N, --no-torch, --quick (fewer steps, 2048³ peak).
import { spawn } from 'node:child_process';
import { writeFileSync, renameSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { measureSgemmPeak, runTorchPeer, isPeerError, type PeerResult, type PeerError, type SgemmPeak } from './peers.ts';
import { BENCH_CONFIGS, type EngineResult } from './engine.ts';
import { runPruningBench, pruningTable } from './pruning.ts';

/** Any of the bench's results or an {error} in its place. */
function failed<T extends object>(r: T | PeerError): r is PeerError {
  return typeof (r as PeerError).error === 'string';
}

const ENGINE_SCRIPT = fileURLToPath(new URL('./engine.ts', import.meta.url));

interface Args { json?: string; configs: string[]; threads: number; torch: boolean; quick: boolean }

function parseArgs(argv: string[]): Args {
  const val = (k: string) => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1] : undefined; };
  const configs = (val('--configs') ?? 'tiny15m,smollm135').split(',').filter(Boolean);
  for (const c of configs) {
    if (!BENCH_CONFIGS[c]) throw new Error(`bench: unknown config "${c}"; known: ${Object.keys(BENCH_CONFIGS).join(', ')}`);
  }
  return { json: val('--json'), configs, threads: Number(val('--threads') ?? 2), torch: !argv.includes('--no-torch'), quick: argv.includes('--quick') };
}

function stepsFor(config: string, quick: boolean): { steps: number; warmup: number } {
  if (quick) return { steps: 3, warmup: 1 };
  return { steps: config === 'smollm135' ? 5 : 8, warmup: 3 };
}

/** Runs bench/engine.ts for one config in a child process and parses its JSON line. */
function runEngine(config: string, threads: number, steps: number, warmup: number): Promise<EngineResult | PeerError> {
  return new Promise((resolve) => {
    const args = ['--import', 'tsx', ENGINE_SCRIPT, '--config', config, '--threads', String(threads), '--steps', String(steps), '--warmup', String(warmup)];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    child.on('close', (code) => {
      const line = out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
      if (code !== 0 || !line) resolve({ error: `engine bench for ${config} exited with code ${code}`, stderr: err.slice(-2000) });
      else resolve(JSON.parse(line) as EngineResult);
    });
  });
}

interface ConfigReport {
  config: string;
  train_tokens_per_s: number;
  forward_tokens_per_s: number;
  decode_tokens_per_s: number;
  prefill_tokens_per_s: number;
  peak_rss_bytes: number;
  /** Teacher forward + student KD step + AdamW, tokens/s; and its ratio to the training steps alone. */
  distill_tokens_per_s: number;
  distill_ratio_to_train: number;
  distill_ratio_to_student_train: number;
  /** train GFLOP/s (6N per token) / the sgemm peak measured in this run. */
  mfu: number;
  forward_mfu: number;
  engine: EngineResult;
  torch: PeerResult | PeerError | null;
  /** ours / PyTorch; null when the peer did not run. */
  ratios: { train: number; forward: number; decode: number; peak_rss: number } | null;
}

function report(e: EngineResult, peak: number, torch: PeerResult | PeerError | null): ConfigReport {
  const t = torch && !isPeerError(torch) ? torch : null;
  const ratio = (a: number, b: number | null) => (b ? a / b : NaN);
  return {
    config: e.config, train_tokens_per_s: e.train_tokens_per_s, forward_tokens_per_s: e.forward_tokens_per_s,
    decode_tokens_per_s: e.decode_tokens_per_s, prefill_tokens_per_s: e.prefill_tokens_per_s, peak_rss_bytes: e.peak_rss_bytes,
    distill_tokens_per_s: e.distill_tokens_per_s, distill_ratio_to_train: e.distill_ratio_to_train, distill_ratio_to_student_train: e.distill_ratio_to_student_train,
    mfu: e.train_gflops / peak, forward_mfu: e.forward_gflops / peak, engine: e, torch,
    ratios: t ? {
      train: ratio(e.train_tokens_per_s, t.train_tokens_per_s), forward: ratio(e.forward_tokens_per_s, t.forward_tokens_per_s),
      decode: ratio(e.decode_tokens_per_s, t.decode_tokens_per_s), peak_rss: ratio(e.peak_rss_bytes, t.peak_rss_bytes),
    } : null,
  };
}

function table(reports: ConfigReport[], peak: SgemmPeak): string {
  const f0 = (x: number | null | undefined) => (x == null || !Number.isFinite(x) ? '—' : x >= 100 ? x.toFixed(0) : x.toFixed(1));
  const mib = (b: number | null | undefined) => (b ? `${(b / 2 ** 20).toFixed(0)} MiB` : '—');
  const x = (r: number | undefined) => (r == null || !Number.isFinite(r) ? '—' : `${r.toFixed(2)}×`);
  const pct = (r: number) => `${(100 * r).toFixed(0)}%`;
  const rows = [
    '| config | engine | train tok/s | forward tok/s | decode tok/s | peak RSS | train GFLOP/s | MFU (train) |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of reports) {
    const t = r.torch && !isPeerError(r.torch) ? r.torch : null;
    rows.push(`| ${r.config} | Kompresor | ${f0(r.train_tokens_per_s)} | ${f0(r.forward_tokens_per_s)} | ${f0(r.decode_tokens_per_s)} | ${mib(r.peak_rss_bytes)} | ${f0(r.engine.train_gflops)} | ${pct(r.mfu)} |`);
    if (t) {
      rows.push(`| ${r.config} | PyTorch ${t.torch_version} (tuned) | ${f0(t.train_tokens_per_s)} | ${f0(t.forward_tokens_per_s)} | ${f0(t.decode_tokens_per_s)} | ${mib(t.peak_rss_bytes)} | ${f0(t.train_gflops)} | ${pct((t.train_gflops ?? 0) / peak.peak_gflops)} |`);
      rows.push(`| ${r.config} | **ratio** | **${x(r.ratios?.train)}** | **${x(r.ratios?.forward)}** | **${x(r.ratios?.decode)}** | ${x(r.ratios?.peak_rss)} | | |`);
    } else if (r.torch) rows.push(`| ${r.config} | PyTorch | not run: ${(r.torch as PeerError).error} | | | | | |`);
  }
  return rows.join('\n');
}

/** Distillation throughput (ours only): teacher = the config model, student = 2/3 of its layers. */
function distillTable(reports: ConfigReport[]): string {
  const f0 = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
  const rows = [
    '| config | teacher → student layers (params) | student train tok/s | distill tok/s | distill / student train | distill / teacher train |',
    '|---|---|---|---|---|---|',
  ];
  for (const r of reports) {
    const e = r.engine, m = (n: number) => `${(n / 1e6).toFixed(1)}M`;
    rows.push(`| ${r.config} | ${BENCH_CONFIGS[r.config].layers} → ${e.student_layers} (${m(e.params)} → ${m(e.student_params)}) | ${f0(e.student_train_tokens_per_s)} | ` +
      `${f0(e.distill_tokens_per_s)} | ${e.distill_ratio_to_student_train.toFixed(2)}× | ${e.distill_ratio_to_train.toFixed(2)}× |`);
  }
  return rows.join('\n');
}

function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  console.error(`bench: ${cpu}, ${cpus().length} cores, ${a.threads} threads, Node ${process.version}`);
  console.error('bench: sgemm peak ...');
  const peak = measureSgemmPeak(a.threads, { quick: a.quick });
  if (failed(peak)) throw new Error(`bench: ${peak.error}`);
  console.error(`bench: sgemm ${peak.peak_size}³ = ${peak.peak_gflops.toFixed(1)} GFLOP/s`);
  const reports: ConfigReport[] = [];
  for (const c of a.configs) {
    const { steps, warmup } = stepsFor(c, a.quick);
    console.error(`bench: ${c}: Kompresor (${warmup} warmup + ${steps} steps) ...`);
    const e = await runEngine(c, a.threads, steps, warmup);
    if (failed(e)) throw new Error(`bench: ${e.error}\n${e.stderr ?? ''}`);
    let t: PeerResult | PeerError | null = null;
    if (a.torch) {
      console.error(`bench: ${c}: PyTorch peer ...`);
      t = await runTorchPeer(c, { threads: a.threads, steps, warmup });
      if (isPeerError(t)) console.error(`bench: PyTorch peer not measured: ${t.error}`);
    }
    reports.push(report(e, peak.peak_gflops, t));
  }
  // the engine table first, on stderr: the pruning section that follows takes several minutes
  console.error('\n' + table(reports, peak) + '\n');
  const pruning = await runPruningBench({ configs: a.configs, threads: a.threads, quick: a.quick, log: (l) => console.error(l) });
  console.log(`sgemm peak (${peak.peak_size}³, ${a.threads} threads, ${peak.blas.split(' ').slice(0, 2).join(' ')}): ${peak.peak_gflops.toFixed(1)} GFLOP/s\n`);
  console.log(table(reports, peak));
  console.log(`\ndistillation (teacher forward + student KD step + AdamW; ours only):\n`);
  console.log(distillTable(reports));
  console.log('\nPruning: calibration and streaming (bench/pruning.ts):\n');
  console.log(pruningTable(pruning));
  if (a.json) {
    const doc = {
      machine: { cpu, cores: cpus().length, threads: a.threads, node: process.version, date: new Date().toISOString() },
      sgemm: peak, configs: Object.fromEntries(reports.map((r) => [r.config, r])), pruning,
    };
    writeAtomic(a.json, JSON.stringify(doc, null, 1));
    console.error(`bench: wrote ${a.json}`);
  }
}

main().catch((e) => { console.error(e instanceof Error ? e.message : e); process.exit(1); });
