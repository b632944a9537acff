// `kompresor bench MODEL [--vs OTHER]`: prefill and decode speed (batch 1 and a larger batch), time
// to first token and peak RSS, in our engine or in llama.cpp (via a GGUF export into a temporary
// folder), for one model or two side by side in the same run with the ratios. Each model is
// measured in its own child process (src/eval/bench.ts), one after the other, so the two never
// compete for the cores and each peak RSS is its own.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { Option, type Command } from 'commander';
import { KompresorError } from '../errors.ts';
import { openCheckpoint } from '../io/checkpoint.ts';
import { buildLayout } from '../model/parameters.ts';
import { exportGguf, EXPORT_DTYPES, type ExportDtype } from '../export/gguf_export.ts';
import { mergeFigures, type BenchChildOptions, type BenchEngine, type BenchFigures } from '../eval/bench.ts';
import { parseNumber, weightsDtypeOption } from './args.ts';
import type { WeightsOption } from '../model/load.ts';

export interface BenchOptions {
  model: string;
  vs?: string;
  engine: BenchEngine;
  batch: number;
  promptLen: number;
  newTokens: number;
  repeats: number;
  /** Child processes per model, alternating between the models (A B A B ...) so slow spells of a shared machine hit both. */
  rounds: number;
  threads: number;
  ggufDtype: ExportDtype;
  seed: number;
  /** kompresor: how the weights are held (default 'auto': as stored). */
  weights?: WeightsOption;
  log?: (line: string) => void;
}

export interface BenchModel {
  path: string;
  architecture: string;
  params: number;
  layers: number;
  hidden_size: number;
  intermediate_size: number;
  heads: number;
  kv_heads: number;
  vocab_size: number;
  /** The GGUF file measured (llama.cpp engine), deleted after the run. */
  gguf_bytes: number | null;
  figures: BenchFigures;
}

export interface BenchSummary {
  engine: BenchEngine;
  settings: { batch: number; prompt_len: number; new_tokens: number; repeats: number; rounds: number; threads: number; gguf_dtype: ExportDtype | null; seed: number; weights_dtype: WeightsOption | null };
  machine: { cpu: string; cores: number; node: string; platform: string };
  models: BenchModel[];
  /**
   * With --vs: how many times faster MODEL is than OTHER (throughputs MODEL / OTHER; time to first
   * token OTHER / MODEL), and MODEL's parameters and peak RSS as fractions of OTHER's.
   */
  ratios: Record<string, number> | null;
}

export async function benchCommand(o: BenchOptions): Promise<BenchSummary> {
  const paths = [o.model, ...(o.vs !== undefined ? [o.vs] : [])];
  const infos = paths.map(describe);
  checkContext(paths, o);
  const tmp = o.engine === 'llama.cpp' ? fs.mkdtempSync(nodePath.join(os.tmpdir(), 'kompresor-bench-')) : null;
  const models: BenchModel[] = [];
  try {
    const targets = paths.map((p, i) => {
      if (!tmp) return { path: p, bytes: null };
      const file = nodePath.join(tmp, `model${i}.gguf`);
      o.log?.(`bench: exporting ${p} to GGUF (${o.ggufDtype})`);
      return { path: file, bytes: exportGguf(p, file, { dtype: o.ggufDtype }).bytes };
    });
    const parts: BenchFigures[][] = paths.map(() => []);
    for (let round = 0; round < o.rounds; round++) {
      for (const [i, p] of paths.entries()) {
        o.log?.(`bench: measuring ${p} (${o.engine}, prompt ${o.promptLen}, ${o.newTokens} new tokens, batch 1 and ${o.batch}, ${o.repeats} runs`
          + `${o.rounds > 1 ? `, round ${round + 1}/${o.rounds}` : ''})`);
        parts[i].push(await runChild({ engine: o.engine, path: targets[i].path, vocabSize: infos[i].vocab_size, batch: o.batch, promptLen: o.promptLen,
          newTokens: o.newTokens, repeats: o.repeats, threads: o.threads, seed: o.seed, weights: o.weights }));
      }
    }
    paths.forEach((_, i) => models.push({ ...infos[i], gguf_bytes: targets[i].bytes, figures: mergeFigures(parts[i]) }));
  } finally {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }
  const cpus = os.cpus();
  return {
    engine: o.engine,
    settings: { batch: o.batch, prompt_len: o.promptLen, new_tokens: o.newTokens, repeats: o.repeats, rounds: o.rounds, threads: o.threads,
      gguf_dtype: o.engine === 'llama.cpp' ? o.ggufDtype : null, seed: o.seed, weights_dtype: o.engine === 'kompresor' ? o.weights ?? 'auto' : null },
    machine: { cpu: cpus[0]?.model ?? 'unknown', cores: cpus.length, node: process.version, platform: `${os.platform()} ${os.arch()}` },
    models,
    ratios: models.length === 2 ? ratios(models[0], models[1]) : null,
  };
}

/** Prompt + new tokens within each model's context, checked before a child runs (--prompt-len 1e8 ran it into a heap OOM). */
function checkContext(paths: string[], o: BenchOptions): void {
  for (const p of paths) {
    const max = openCheckpoint(p).config.maxPositionEmbeddings;
    if (o.promptLen + o.newTokens > max) {
      throw new KompresorError({ code: 'input_invalid', where: '--prompt-len', rule: 'the prompt and the new tokens must fit the model\'s context',
        expected: `--prompt-len + --new-tokens <= max_position_embeddings = ${max} (${p})`, found: `${o.promptLen} + ${o.newTokens}` });
    }
  }
}

function describe(dir: string): Omit<BenchModel, 'figures' | 'gguf_bytes'> {
  const ck = openCheckpoint(dir);
  const c = ck.config;
  return {
    path: dir, architecture: String((ck.rawConfig.architectures as string[] | undefined)?.[0] ?? ck.rawConfig.model_type ?? 'unknown'),
    params: buildLayout(c).total, layers: c.numLayers, hidden_size: c.hiddenSize, intermediate_size: c.intermediateSize,
    heads: c.numHeads, kv_heads: c.numKvHeads, vocab_size: c.vocabSize,
  };
}

export function ratios(a: BenchModel, b: BenchModel): Record<string, number> {
  const f = a.figures, g = b.figures;
  return {
    prefill_speedup: f.prefill_tokens_per_s / g.prefill_tokens_per_s,
    decode_speedup: f.decode_tokens_per_s / g.decode_tokens_per_s,
    batch_prefill_speedup: f.batch_prefill_tokens_per_s / g.batch_prefill_tokens_per_s,
    batch_decode_speedup: f.batch_decode_tokens_per_s / g.batch_decode_tokens_per_s,
    time_to_first_token_speedup: g.time_to_first_token_s / f.time_to_first_token_s,
    params_ratio: a.params / b.params,
    peak_rss_ratio: f.peak_rss_bytes / g.peak_rss_bytes,
  };
}

/** Runs src/eval/bench.ts in a child process and returns its figures (its stderr passes through). */
function runChild(o: BenchChildOptions): Promise<BenchFigures> {
  const script = fileURLToPath(new URL('../eval/bench.ts', import.meta.url));
  const tsx = import.meta.resolve('tsx');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', tsx, script, JSON.stringify(o)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const line = out.trim().split('\n').at(-1) ?? '';
      let msg: { ok: boolean; figures?: BenchFigures; error?: string } | null = null;
      try { msg = JSON.parse(line); } catch { /* reported below */ }
      if (msg?.ok && msg.figures) resolve(msg.figures);
      else reject(new KompresorError({ code: msg ? 'input_invalid' : 'impl_error', where: `bench ${o.engine} ${o.path}`,
        rule: 'the measuring child process must finish', found: msg?.error ?? `exit ${code}${signal ? ` (${signal})` : ''}, output ${JSON.stringify(out.slice(-200))}` }));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// output

export function formatBench(s: BenchSummary): string {
  const [a, b] = s.models;
  const name = (m: BenchModel) => nodePath.basename(nodePath.resolve(m.path));
  const num = (x: number, d = 1) => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  const mib = (x: number) => `${num(x / 2 ** 20, 0)} MiB`;
  const rows: [string, (m: BenchModel) => string, string?][] = [
    ['parameters', (m) => m.params.toLocaleString('en-US'), 'params_ratio'],
    ['layers / hidden / MLP', (m) => `${m.layers} / ${m.hidden_size} / ${m.intermediate_size}`],
    ['prefill tokens/s (batch 1)', (m) => num(m.figures.prefill_tokens_per_s), 'prefill_speedup'],
    ['time to first token', (m) => `${num(m.figures.time_to_first_token_s * 1000)} ms`, 'time_to_first_token_speedup'],
    ['decode tokens/s (batch 1)', (m) => num(m.figures.decode_tokens_per_s), 'decode_speedup'],
    [`prefill tokens/s (batch ${s.settings.batch})`, (m) => num(m.figures.batch_prefill_tokens_per_s), 'batch_prefill_speedup'],
    [`decode tokens/s (batch ${s.settings.batch})`, (m) => num(m.figures.batch_decode_tokens_per_s), 'batch_decode_speedup'],
    ['peak RSS', (m) => mib(m.figures.peak_rss_bytes), 'peak_rss_ratio'],
    ...(a.figures.weight_bytes !== undefined ? [['weights held', (m: BenchModel) => `${mib(m.figures.weight_bytes ?? 0)} ${m.figures.weights_dtype ?? ''}`] as [string, (m: BenchModel) => string]] : []),
  ];
  const table = [['', name(a), ...(b ? [`--vs ${name(b)}`, 'ratio'] : [])],
    ...rows.map(([label, f, key]) => [label, f(a), ...(b ? [f(b), key && s.ratios ? `${num(s.ratios[key], 2)}x` : ''] : [])])];
  const w = table[0].map((_, c) => Math.max(...table.map((r) => [...r[c]].length)));
  const lines = table.map((r) => r.map((x, c) => (c === 0 ? x.padEnd(w[c]) : x.padStart(w[c]))).join('  ').trimEnd());
  const st = s.settings;
  lines.unshift(`engine ${s.engine}${st.gguf_dtype ? ` (GGUF ${st.gguf_dtype})` : ''}: prompt ${st.prompt_len} tokens, ${st.new_tokens} new tokens, `
    + `median of ${st.repeats * st.rounds} runs${st.rounds > 1 ? ` (${st.rounds} alternating rounds of ${st.repeats})` : ''}, ${st.threads} threads; ${a.figures.backend}`);
  lines.push(`machine: ${s.machine.cpu}, ${s.machine.cores} cores, Node ${s.machine.node}`);
  if (b) lines.push('ratio: MODEL over --vs (speed-ups > 1 mean MODEL is faster; parameters and RSS as fractions)');
  return lines.join('\n');
}

const HELP = `
Measures, for each model in its own child process (median of --repeats runs after a warm-up):
  prefill tokens/s      the prompt's forward pass, batch 1 and --batch
  time to first token   prompt in -> first generated token out, batch 1
  decode tokens/s       generated tokens after the first, KV cache, greedy; batch 1 and --batch
  peak RSS              of the child process (loading included)
Prompts are random token ids; generation ignores EOS so every run makes --new-tokens tokens.
--engine llama.cpp exports each model to GGUF (--gguf-dtype, default f32 like our engine) in a
temporary folder and measures it with node-llama-cpp's prebuilt llama.cpp (CPU), by default on
one core fewer than the machine has: Node's thread drives every token, and llama.cpp's workers
spin-wait, so on 2 cores 2 llama.cpp threads decoded ~9x slower than 1.
With --vs, both models run in the same invocation, one after the other, and the ratios say how
many times faster MODEL is. The machine may be shared: compare only figures from one run, and
use --rounds K to alternate the models K times (A B A B ...) so a slow spell hits both; the
figures are then medians over all K x --repeats runs and peak RSS the largest of the rounds.

Examples:
  kompresor bench ./pruned --vs ./teacher
  kompresor bench ./pruned --vs ./teacher --engine llama.cpp --gguf-dtype q8_0 --json
`;

/**
 * Our engine: up to 2 threads (its kernels gain little beyond that at these sizes). llama.cpp: one
 * core fewer than the machine has, because Node's own thread drives every token through
 * node-llama-cpp while llama.cpp's workers spin-wait: on 2 cores, 2 llama.cpp threads decoded the
 * demo's 9.5M student at 75 tokens/s and 1 thread at 695 (BENCHMARKS.md).
 */
export function defaultThreads(engine: BenchEngine, cores = os.cpus().length): number {
  return engine === 'llama.cpp' ? Math.max(1, cores - 1) : Math.min(cores, 2);
}

export function registerBenchCommand(program: Command): void {
  program.command('bench')
    .description('Inference speed (prefill, decode, time to first token, peak RSS) of a model, or two side by side with ratios.')
    .argument('<model_dir>', 'a Hugging Face checkpoint folder')
    .option('--vs <dir>', 'a second model measured in the same run (e.g. the teacher of a pruned model)')
    .addOption(new Option('--engine <engine>', 'where to run').choices(['kompresor', 'llama.cpp']).default('kompresor'))
    .option('--batch <n>', 'the larger batch', '8')
    .option('--prompt-len <p>', 'prompt tokens', '128')
    .option('--new-tokens <n>', 'generated tokens per prompt', '64')
    .option('--repeats <n>', 'timed runs per figure and child process (the median is reported)', '3')
    .option('--rounds <n>', 'child processes per model, alternating between the models (for a noisy, shared machine)', '1')
    .option('--threads <n>', 'threads (default: kompresor min(cores, 2); llama.cpp cores - 1, see below)')
    .addOption(new Option('--gguf-dtype <type>', 'GGUF weight type for --engine llama.cpp').choices([...EXPORT_DTYPES]).default('f32'))
    .option('--seed <s>', 'seed of the random prompts', '0')
    .option('--json', 'print the summary as JSON')
    .addOption(weightsDtypeOption('--weights-dtype', 'each model (engine kompresor)'))
    .addHelpText('after', HELP)
    .action(async (dir: string, o: Record<string, string | boolean | undefined>) => {
      const int = (v: unknown, flag: string, min: number) => parseNumber(String(v), flag, { min, integer: true });
      const s = await benchCommand({
        model: dir, vs: o.vs as string | undefined, engine: o.engine as BenchEngine,
        batch: int(o.batch, '--batch', 1), promptLen: int(o.promptLen, '--prompt-len', 2), newTokens: int(o.newTokens, '--new-tokens', 2),
        repeats: int(o.repeats, '--repeats', 1), rounds: int(o.rounds, '--rounds', 1), threads: o.threads === undefined ? defaultThreads(o.engine as BenchEngine) : int(o.threads, '--threads', 1), ggufDtype: o.ggufDtype as ExportDtype,
        seed: int(o.seed, '--seed', 0), weights: o.weightsDtype as WeightsOption, log: o.json ? undefined : (line) => console.error(line),
      });
      console.log(o.json ? JSON.stringify(s, null, 2) : formatBench(s));
    });
}
