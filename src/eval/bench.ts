// Inference speed of one model, measured in a child process of its own (so the peak RSS is that
// model's alone) by `kompresor bench` (src/cli/bench_command.ts). Two engines:
//
//   kompresor  src/model/generate.ts: the batched forward pass for the prompt (prefill), then the
//              KV-cache decode loop, fp32 weights, greedy, EOS ignored so every run makes exactly
//              --new-tokens tokens.
//   llama.cpp  node-llama-cpp (an optional dependency) on a GGUF file exported by src/export:
//              prefill = evaluateWithoutGeneratingNewTokens(prompt); decode = a greedy evaluate()
//              generator started after a prefill of prompt[:-1], timed over --new-tokens yields
//              (each yield is one llama_decode of one token per sequence); time to first token =
//              evaluate(prompt) up to its first yield. Batch N = N sequences of one context
//              decoded concurrently (node-llama-cpp puts their tokens into one llama_decode batch).
//
// Figures, both engines (median over --repeats runs after one warm-up run; with several rounds,
// the median over the runs of all rounds, see mergeFigures):
//   prefill_tokens_per_s        P prompt tokens / prefill seconds, batch 1
//   time_to_first_token_s       prompt in -> first new token out, batch 1
//   decode_tokens_per_s         new tokens / seconds after the first one (our engine: decode steps
//                               / decode seconds; llama.cpp: N yields / their seconds), batch 1
//   batch_prefill_tokens_per_s  B x P / prefill seconds of B prompts together
//   batch_decode_tokens_per_s   B x steps / decode seconds, all B rows decoding together
//   peak_rss_bytes              ru_maxrss of the child process (model load included)
// Prompts are random token ids from a seeded generator: the speed does not depend on the text.
import { pathToFileURL } from 'node:url';
import { loadModel, type WeightsOption } from '../model/load.ts';
import { generate } from '../model/generate.ts';
import { GREEDY, Rng } from '../model/sampling.ts';
import { native } from '../tensor/native.ts';
import { nativeKernelNames } from '../tensor/ops.ts';

export type BenchEngine = 'kompresor' | 'llama.cpp';

export interface BenchChildOptions {
  engine: BenchEngine;
  /** The checkpoint folder (kompresor) or the .gguf file (llama.cpp). */
  path: string;
  vocabSize: number;
  batch: number;
  promptLen: number;
  newTokens: number;
  repeats: number;
  threads: number;
  seed: number;
  /** kompresor: how the weights are held (default 'auto': as stored). */
  weights?: WeightsOption;
}

export interface BenchFigures {
  prefill_tokens_per_s: number;
  time_to_first_token_s: number;
  decode_tokens_per_s: number;
  batch_prefill_tokens_per_s: number;
  batch_decode_tokens_per_s: number;
  peak_rss_bytes: number;
  load_seconds: number;
  /** kompresor: bytes of weights held in memory, and their storage type (what decode reads per token). */
  weight_bytes?: number;
  weights_dtype?: string;
  /** What ran: native kernels or not, llama.cpp's build. */
  backend: string;
  /** Every timed run's value of the five speed figures (the figures are their medians). */
  runs: Record<RunKey, number[]>;
}

export const RUN_KEYS = ['prefill_tokens_per_s', 'time_to_first_token_s', 'decode_tokens_per_s', 'batch_prefill_tokens_per_s', 'batch_decode_tokens_per_s'] as const;
export type RunKey = typeof RUN_KEYS[number];

/** The figures of several children (rounds) of one model: medians over all their runs, the largest RSS. */
export function mergeFigures(parts: BenchFigures[]): BenchFigures {
  const runs = Object.fromEntries(RUN_KEYS.map((k) => [k, parts.flatMap((p) => p.runs[k])])) as Record<RunKey, number[]>;
  return {
    ...(Object.fromEntries(RUN_KEYS.map((k) => [k, median(runs[k])])) as Record<RunKey, number>),
    peak_rss_bytes: Math.max(...parts.map((p) => p.peak_rss_bytes)),
    load_seconds: median(parts.map((p) => p.load_seconds)),
    ...(parts[0].weight_bytes !== undefined ? { weight_bytes: parts[0].weight_bytes, weights_dtype: parts[0].weights_dtype } : {}),
    backend: parts[0].backend,
    runs,
  };
}

/** Figures from per-run values. */
function figuresOf(runs: Record<RunKey, number[]>, rest: Pick<BenchFigures, 'peak_rss_bytes' | 'load_seconds' | 'backend' | 'weight_bytes' | 'weights_dtype'>): BenchFigures {
  return mergeFigures([{ ...rest, runs, prefill_tokens_per_s: 0, time_to_first_token_s: 0, decode_tokens_per_s: 0, batch_prefill_tokens_per_s: 0, batch_decode_tokens_per_s: 0 }]);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** B prompts of P random token ids in [0, V). */
export function randomPrompts(B: number, P: number, V: number, seed: number): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: B }, () => Array.from({ length: P }, () => Math.floor(rng.next() * V)));
}

const peakRss = () => process.resourceUsage().maxRSS * 1024;

// ---------------------------------------------------------------------------------------------
// our engine

export async function benchKompresor(o: BenchChildOptions): Promise<BenchFigures> {
  native?.setThreads(o.threads);
  const t0 = performance.now();
  const { model } = await loadModel(o.path, { weights: o.weights ?? 'auto' });
  const load = (performance.now() - t0) / 1000;
  const weightBytes = model.weights.arrays.reduce((s, a) => s + a.byteLength, 0);
  const one = randomPrompts(1, o.promptLen, model.cfg.vocabSize, o.seed);
  const many = randomPrompts(o.batch, o.promptLen, model.cfg.vocabSize, o.seed + 1);
  const run = (prompts: number[][], maxNewTokens: number) => {
    let first = 0;
    const start = performance.now();
    const r = generate(model, prompts, { maxNewTokens, sampling: GREEDY, seed: 0, eosTokenIds: [],
      onStep: () => { if (first === 0) first = performance.now(); } });
    return { ...r, ttft: (first - start) / 1000 };
  };
  run(one, 2); // warm-up: first-call allocations, page faults of the weights
  const single = [], batched = [];
  for (let i = 0; i < o.repeats; i++) {
    single.push(run(one, o.newTokens));
    batched.push(run(many, o.newTokens));
  }
  const B = o.batch, P = o.promptLen;
  return figuresOf({
    prefill_tokens_per_s: single.map((r) => P / r.prefillSeconds),
    time_to_first_token_s: single.map((r) => r.ttft),
    decode_tokens_per_s: single.map((r) => r.decodeSteps / r.decodeSeconds),
    batch_prefill_tokens_per_s: batched.map((r) => (B * P) / r.prefillSeconds),
    batch_decode_tokens_per_s: batched.map((r) => (B * r.decodeSteps) / r.decodeSeconds),
  }, {
    peak_rss_bytes: peakRss(),
    load_seconds: load,
    weight_bytes: weightBytes,
    weights_dtype: model.weightDtype,
    backend: native ? `native (${nativeKernelNames.length} kernels, ${o.threads} threads)` : 'TypeScript reference kernels',
  });
}

// ---------------------------------------------------------------------------------------------
// llama.cpp through node-llama-cpp

type NodeLlamaCpp = typeof import('node-llama-cpp');

export async function importLlamaCpp(): Promise<NodeLlamaCpp> {
  try {
    return await import('node-llama-cpp');
  } catch (e) {
    const { KompresorError } = await import('../errors.ts');
    throw new KompresorError({ code: 'input_invalid', where: '--engine llama.cpp', rule: 'the llama.cpp engine needs the optional dependency node-llama-cpp',
      found: `import failed: ${(e as Error).message.split('\n')[0]}`, hint: 'run npm ci (it installs optional dependencies), or use --engine kompresor' });
  }
}

export async function benchLlamaCpp(o: BenchChildOptions): Promise<BenchFigures> {
  const lib = await importLlamaCpp();
  const llama = await lib.getLlama({ gpu: false, build: 'never', logLevel: lib.LlamaLogLevel.error });
  try {
    const t0 = performance.now();
    const model = await llama.loadModel({ modelPath: o.path, gpuLayers: 0 });
    const load = (performance.now() - t0) / 1000;
    const P = o.promptLen, N = o.newTokens, B = o.batch;
    const ctxOpts = (sequences: number) => ({
      sequences, contextSize: P + N + 8, batchSize: Math.max(1, Math.min(sequences * P, 4096)), threads: o.threads, flashAttention: false,
    });
    type Token = import('node-llama-cpp').Token;
    const asTokens = (ids: number[]) => ids as Token[];
    const one = randomPrompts(1, P, o.vocabSize, o.seed).map(asTokens);
    const many = randomPrompts(B, P, o.vocabSize, o.seed + 1).map(asTokens);
    const ctx1 = await model.createContext(ctxOpts(1));
    const ctxB = await model.createContext(ctxOpts(B));
    try {
      const seq = ctx1.getSequence();
      const seqs = Array.from({ length: B }, () => ctxB.getSequence());
      const evalOpts = { temperature: 0, yieldEogToken: true };
      /** Seconds to prefill every sequence's prompt together. */
      const prefill = async (ss: typeof seqs, prompts: Token[][]) => {
        await Promise.all(ss.map((s) => s.clearHistory()));
        const s0 = performance.now();
        await Promise.all(ss.map((s, i) => s.evaluateWithoutGeneratingNewTokens(prompts[i])));
        return (performance.now() - s0) / 1000;
      };
      /** Seconds for n greedy tokens per sequence after a prefill of prompt[:-1]. */
      const decode = async (ss: typeof seqs, prompts: Token[][], n: number) => {
        await Promise.all(ss.map((s) => s.clearHistory()));
        await Promise.all(ss.map((s, i) => s.evaluateWithoutGeneratingNewTokens(prompts[i].slice(0, -1))));
        const s0 = performance.now();
        await Promise.all(ss.map(async (s, i) => {
          const it = s.evaluate([prompts[i][P - 1]], evalOpts);
          for (let k = 0; k < n; k++) await it.next();
          await it.return();
        }));
        return (performance.now() - s0) / 1000;
      };
      const ttft = async () => {
        await seq.clearHistory();
        const s0 = performance.now();
        const it = seq.evaluate(one[0], evalOpts);
        await it.next();
        const s = (performance.now() - s0) / 1000;
        await it.return();
        return s;
      };
      await decode([seq], one, 2); // warm-up
      const pre1: number[] = [], dec1: number[] = [], first: number[] = [], preB: number[] = [], decB: number[] = [];
      for (let i = 0; i < o.repeats; i++) {
        pre1.push(P / await prefill([seq], one));
        first.push(await ttft());
        dec1.push(N / await decode([seq], one, N));
        preB.push(B * P / await prefill(seqs, many));
        decB.push(B * N / await decode(seqs, many, N));
      }
      return figuresOf({
        prefill_tokens_per_s: pre1, time_to_first_token_s: first, decode_tokens_per_s: dec1,
        batch_prefill_tokens_per_s: preB, batch_decode_tokens_per_s: decB,
      }, {
        peak_rss_bytes: peakRss(), load_seconds: load,
        backend: `llama.cpp ${llama.llamaCppRelease.release} (${llama.buildType}, CPU, ${o.threads} threads)`,
      });
    } finally {
      await ctxB.dispose();
      await ctx1.dispose();
      await model.dispose();
    }
  } finally {
    await llama.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// child-process entry: node --import tsx src/eval/bench.ts '<BenchChildOptions as JSON>'
// prints one JSON line: {"ok": true, "figures": {...}} or {"ok": false, "error": "..."}

async function childMain(arg: string): Promise<void> {
  const o = JSON.parse(arg) as BenchChildOptions;
  try {
    const figures = o.engine === 'kompresor' ? await benchKompresor(o) : await benchLlamaCpp(o);
    process.stdout.write(JSON.stringify({ ok: true, figures }) + '\n');
  } catch (e) {
    const { KompresorError } = await import('../errors.ts');
    process.stdout.write(JSON.stringify({ ok: false, error: e instanceof KompresorError ? e.message : String((e as Error).stack ?? e) }) + '\n');
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await childMain(process.argv[2]);
