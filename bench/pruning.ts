// `npm run bench`, section "Pruning: calibration and streaming" (issue 3):
//   1. calibration throughput, per config, on the same model and batch:
//        calibration  the in-memory scoring pass, model.forward with the Importance probe (exactly
//                     what scoreInMemory runs per batch; no lm_head, scoring needs no logits)
//        forward      the plain forward, logits for every position (bench/engine.ts's forward)
//        layers       model.forward without the probe: the calibration pass minus the statistics
//      The three run back to back in each repetition (rotating the order), so a noisy neighbour
//      slows them alike; tokens/s are medians, ratios the medians of the per-repetition ratios.
//      One child process per config, as bench/engine.ts.
//   2. a streamed scoring run: a random Llama checkpoint whose float32 weights exceed the memory
//      limit (written tensor by tensor to a temp folder, F32), scored by the real CLI in a child
//      process, `kompresor score --stream --max-memory X --json`, X = 60% of the weights. The
//      CLI's summary gives that process's peak RSS (getrusage) and tokens/s.
// Standalone: node --import tsx bench/pruning.ts [--configs tiny15m,smollm135] [--threads 2] [--quick] [--json FILE]
//             node --import tsx bench/pruning.ts --calibration CONFIG --threads N --rows B --seq T --steps S --warmup W
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { normalizeConfig, type ModelConfig } from '../src/io/hf_config.ts';
import { saveCheckpoint } from '../src/io/checkpoint.ts';
import { byteLevelTokenizer } from '../src/io/byte_tokenizer.ts';
import { buildLayout } from '../src/model/parameters.ts';
import { Rng } from '../src/model/sampling.ts';
import { native } from '../src/tensor/native.ts';
import { Importance } from '../src/prune/importance.ts';
import { calibrationBatch, type CalibrationSet } from '../src/prune/calibration.ts';
import { weightBytes } from '../src/prune/stream.ts';
import { BENCH_CONFIGS, modelFor, median } from './engine.ts';
import { peakRss, type PeerError } from './peers.ts';

const SELF = fileURLToPath(import.meta.url);
const ROOT = nodePath.join(nodePath.dirname(SELF), '..');
const BIN = nodePath.join(ROOT, 'bin/kompresor.mjs');

export interface CalibrationResult {
  config: string;
  rows: number;
  seq_len: number;
  /** Scoring pass (forward through the layers + Importance probe), tokens/s, median. */
  calibration_tokens_per_s: number;
  /** Plain forward with logits for every position, tokens/s, median. */
  forward_tokens_per_s: number;
  /** calibration / forward (median of the per-repetition ratios). */
  calibration_ratio: number;
  /** The calibration pass without the probe (embedding, layers, final norm), tokens/s, median. */
  layers_forward_tokens_per_s: number;
  /** 1 − calibration / layers_forward (median per repetition): what the statistics cost. */
  probe_overhead: number;
  calibration_step_s: number[];
  forward_step_s: number[];
  layers_forward_step_s: number[];
  peak_rss_bytes: number;
}

export interface StreamResult {
  /** The random checkpoint's shape. */
  model: { hidden_size: number; num_hidden_layers: number; num_attention_heads: number; num_key_value_heads: number; intermediate_size: number; vocab_size: number; params: number };
  /** Float32 bytes of every weight (= the F32 safetensors file's payload). */
  weights_bytes: number;
  max_memory_bytes: number;
  /** The scoring process's peak RSS (getrusage maxrss, as the CLI reports it). */
  peak_rss_bytes: number;
  tokens_per_s: number;
  tokens: number;
  samples: number;
  seq_len: number;
  seconds: number;
  batch_rows: number;
  row_groups: number;
  /** Seconds spent writing the random checkpoint (not part of tokens/s). */
  write_seconds: number;
}

export interface PruningBench {
  calibration: Record<string, CalibrationResult | PeerError>;
  stream: StreamResult | PeerError;
}

export interface PruningBenchOptions { configs: string[]; threads: number; quick: boolean; log?: (line: string) => void }

function failed<T extends object>(r: T | PeerError): r is PeerError {
  return typeof (r as PeerError).error === 'string';
}

// ---------------------------------------------------------------------------------------------
// 1. calibration throughput (runs in a child process per config)

/** Rows × tokens per pass and repetitions: 8 × 512 on tiny15m, 4 × 512 on smollm135 (seconds a pass). */
export function calibrationShape(config: string, quick: boolean): { rows: number; seq: number; steps: number; warmup: number } {
  const big = config === 'smollm135';
  return { rows: big ? 4 : 8, seq: 512, steps: big ? (quick ? 2 : 4) : (quick ? 4 : 9), warmup: quick || big ? 1 : 2 };
}

/** Rows packed from documents of 64..319 random tokens, as `kompresor score` packs calibration text. */
function syntheticCalibration(rows: number, seq: number, vocab: number, seed: number): CalibrationSet {
  const rng = new Rng(seed);
  const out: number[][][] = [];
  for (let r = 0; r < rows; r++) {
    const docs: number[][] = [];
    for (let used = 0; used < seq;) {
      const n = Math.min(seq - used, 64 + Math.floor(rng.next() * 256));
      docs.push(Array.from({ length: n }, () => Math.floor(rng.next() * vocab)));
      used += n;
    }
    out.push(docs);
  }
  return { files: ['synthetic'], samples: rows, seqLen: seq, rows: out, valid: new Int32Array(rows).fill(seq), tokens: rows * seq, documents: 0, documentsUsed: 0 };
}

export function measureCalibration(config: string, o: { threads: number; rows: number; seq: number; steps: number; warmup: number }): CalibrationResult {
  native?.setThreads(o.threads);
  const pc = BENCH_CONFIGS[config];
  const model = modelFor(pc);
  const set = syntheticCalibration(o.rows, o.seq, pc.vocab, 3);
  const { batch, valid } = calibrationBatch(set, 0, o.rows);
  const imp = new Importance(model.cfg);
  const passes: Record<'calibration' | 'forward' | 'layers', () => void> = {
    calibration: () => { imp.setValid(valid); model.forward(batch, imp); },
    forward: () => model.logits(batch, () => {}),
    layers: () => { model.forward(batch); },
  };
  const names = Object.keys(passes) as (keyof typeof passes)[];
  const times: Record<keyof typeof passes, number[]> = { calibration: [], forward: [], layers: [] };
  for (let i = 0; i < o.warmup + o.steps; i++) {
    // rotate the order, so no pass always follows the same other one
    for (let k = 0; k < names.length; k++) {
      const name = names[(i + k) % names.length];
      const t0 = performance.now();
      passes[name]();
      if (i >= o.warmup) times[name].push((performance.now() - t0) / 1000);
    }
  }
  const tokens = o.rows * o.seq, rate = (xs: number[]) => tokens / median(xs);
  const paired = (num: number[], den: number[]) => median(num.map((x, i) => x / den[i]));
  return {
    config, rows: o.rows, seq_len: o.seq,
    calibration_tokens_per_s: rate(times.calibration), forward_tokens_per_s: rate(times.forward),
    calibration_ratio: paired(times.forward, times.calibration),
    layers_forward_tokens_per_s: rate(times.layers), probe_overhead: 1 - paired(times.layers, times.calibration),
    calibration_step_s: times.calibration, forward_step_s: times.forward, layers_forward_step_s: times.layers, peak_rss_bytes: peakRss(),
  };
}

/** Runs `node ARGS` in a child process and parses its stdout: one JSON document (or its last JSON line). */
function runJsonChild<T>(args: string[], what: string): Promise<T | PeerError> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
    const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    child.on('close', (code) => {
      try {
        if (code !== 0) throw new Error(`exited with code ${code}`);
        const text = out.trim();
        resolve(JSON.parse(text.startsWith('{') ? text : text.split('\n').filter((l) => l.startsWith('{')).pop() ?? '') as T);
      } catch (e) {
        resolve({ error: `${what}: ${(e as Error).message}`, stderr: err.slice(-2000) });
      }
    });
  });
}

function runCalibration(config: string, threads: number, quick: boolean): Promise<CalibrationResult | PeerError> {
  const s = calibrationShape(config, quick);
  return runJsonChild<CalibrationResult>(['--import', 'tsx', SELF, '--calibration', config, '--threads', String(threads),
    '--rows', String(s.rows), '--seq', String(s.seq), '--steps', String(s.steps), '--warmup', String(s.warmup)], `calibration bench for ${config}`);
}

// ---------------------------------------------------------------------------------------------
// 2. a streamed scoring run on a checkpoint larger than the limit

/** ~145M parameters, 582 MB of float32 weights; the limit is 60% of it. */
export const STREAM_MODEL = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu', hidden_size: 1024, num_hidden_layers: 10,
  num_attention_heads: 16, num_key_value_heads: 4, intermediate_size: 2816, vocab_size: 32000, tie_word_embeddings: true,
  rope_theta: 10000, rms_norm_eps: 1e-5, max_position_embeddings: 2048, torch_dtype: 'float32',
};
export const STREAM_MEMORY_FRACTION = 0.6;

/** Writes a random F32 checkpoint (std 0.02 uniform, norms 1) with the byte-level tokenizer; one tensor in memory at a time. */
export function writeRandomCheckpoint(dir: string, raw: Record<string, unknown>, seed = 1): ModelConfig {
  const cfg = normalizeConfig(raw, 'bench stream model');
  let s = seed >>> 0 || 1;
  const uniform = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 4294967296 - 0.5; };
  const a = 0.02 * Math.sqrt(12);   // uniform(-a/2, a/2) has std 0.02
  const tensors = buildLayout(cfg).slots.map((slot) => ({
    name: slot.name, shape: slot.shape,
    data: () => {
      const x = new Float32Array(slot.size);
      if (slot.name.endsWith('norm.weight')) x.fill(1);
      else for (let i = 0; i < x.length; i++) x[i] = a * uniform();
      return x;
    },
  }));
  saveCheckpoint(dir, raw, tensors, { dtype: 'F32' });
  const tf = byteLevelTokenizer();
  fs.writeFileSync(nodePath.join(dir, 'tokenizer.json'), JSON.stringify(tf.tokenizerJson));
  fs.writeFileSync(nodePath.join(dir, 'tokenizer_config.json'), JSON.stringify(tf.tokenizerConfig));
  return cfg;
}

/** Plain text of random words, comfortably more bytes than samples × seqLen byte-level tokens. */
function writeCalibrationText(file: string, tokens: number): void {
  const rng = new Rng(5);
  const words = ['stream', 'the', 'layers', 'one', 'at', 'a', 'time', 'while', 'hidden', 'states', 'carry', 'over', 'scores', 'of', 'heads', 'and', 'neurons'];
  const docs: string[] = [];
  for (let bytes = 0; bytes < 2 * tokens;) {
    const doc = Array.from({ length: 30 + Math.floor(rng.next() * 60) }, () => words[Math.floor(rng.next() * words.length)]).join(' ');
    docs.push(doc);
    bytes += doc.length;
  }
  fs.writeFileSync(file, docs.join('\n\n'));
}

interface ScoreJson { tokens: number; samples: number; seq_len: number; seconds: number; tokens_per_s: number; batch_rows: number; row_groups: number; peak_rss_bytes: number; max_memory_bytes: number; weights_f32_bytes: number; mode: string }

export async function runStream(quick: boolean, log?: (line: string) => void): Promise<StreamResult | PeerError> {
  const tmp = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'kompresor-bench-stream-'));
  try {
    const modelDir = nodePath.join(tmp, 'model');
    const t0 = performance.now();
    const cfg = writeRandomCheckpoint(modelDir, STREAM_MODEL);
    const writeSeconds = (performance.now() - t0) / 1000;
    const weights = weightBytes(cfg), limit = Math.floor(STREAM_MEMORY_FRACTION * weights);
    const samples = quick ? 4 : 8, seq = quick ? 256 : 512;
    const calib = nodePath.join(tmp, 'calib.txt');
    writeCalibrationText(calib, samples * seq);
    log?.(`bench: stream: ${(weights / 2 ** 20).toFixed(0)} MiB of float32 weights written in ${writeSeconds.toFixed(1)} s; `
      + `kompresor score --stream --max-memory ${limit} (${(limit / 2 ** 20).toFixed(0)} MiB), ${samples} x ${seq} tokens ...`);
    const r = await runJsonChild<ScoreJson>([BIN, 'score', modelDir, '--data', calib, '--samples', String(samples), '--seq-len', String(seq),
      '--out', nodePath.join(tmp, 'scores.json'), '--stream', '--max-memory', String(limit), '--json', '--no-report'], 'streamed scoring run');
    if (failed(r)) return r;
    if (r.mode !== 'stream') return { error: `streamed scoring run: ran in mode ${r.mode}` };
    return {
      model: { hidden_size: cfg.hiddenSize, num_hidden_layers: cfg.numLayers, num_attention_heads: cfg.numHeads, num_key_value_heads: cfg.numKvHeads,
        intermediate_size: cfg.intermediateSize, vocab_size: cfg.vocabSize, params: buildLayout(cfg).total },
      weights_bytes: weights, max_memory_bytes: r.max_memory_bytes, peak_rss_bytes: r.peak_rss_bytes, tokens_per_s: r.tokens_per_s,
      tokens: r.tokens, samples: r.samples, seq_len: r.seq_len, seconds: r.seconds, batch_rows: r.batch_rows, row_groups: r.row_groups,
      write_seconds: writeSeconds,
    };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// the section

export async function runPruningBench(o: PruningBenchOptions): Promise<PruningBench> {
  const calibration: PruningBench['calibration'] = {};
  for (const c of o.configs) {
    const s = calibrationShape(c, o.quick);
    o.log?.(`bench: ${c}: calibration vs forward, ${s.rows} x ${s.seq} tokens (${s.warmup} warmup + ${s.steps} passes each) ...`);
    calibration[c] = await runCalibration(c, o.threads, o.quick);
    if (failed(calibration[c])) o.log?.(`bench: ${calibration[c].error}\n${calibration[c].stderr ?? ''}`);
  }
  const stream = await runStream(o.quick, o.log);
  if (failed(stream)) o.log?.(`bench: ${stream.error}\n${stream.stderr ?? ''}`);
  return { calibration, stream };
}

export function pruningTable(r: PruningBench): string {
  const f0 = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  const rows = [
    '| config | rows × tokens | forward tok/s (logits) | scoring tok/s | **scoring / forward** | layers-only forward tok/s | probe overhead |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const [c, x] of Object.entries(r.calibration)) {
    rows.push(failed(x) ? `| ${c} | not measured: ${x.error} | | | | | |`
      : `| ${c} | ${x.rows} × ${x.seq_len} | ${f0(x.forward_tokens_per_s)} | ${f0(x.calibration_tokens_per_s)} | **${x.calibration_ratio.toFixed(2)}** | `
        + `${f0(x.layers_forward_tokens_per_s)} | ${(100 * x.probe_overhead).toFixed(1)}% |`);
  }
  const s = r.stream;
  rows.push('', '| streamed scoring | float32 weights | --max-memory | peak RSS | peak RSS / limit | tok/s | rows × tokens |', '|---|---|---|---|---|---|---|');
  if (failed(s)) rows.push(`| not measured: ${s.error} | | | | | | |`);
  else {
    const m = s.model;
    rows.push(`| ${(m.params / 1e6).toFixed(0)}M params (${m.num_hidden_layers} × hidden ${m.hidden_size}, MLP ${m.intermediate_size}) | ${mib(s.weights_bytes)} | `
      + `${mib(s.max_memory_bytes)} | ${mib(s.peak_rss_bytes)} | **${(s.peak_rss_bytes / s.max_memory_bytes).toFixed(2)}** | ${f0(s.tokens_per_s)} | ${s.samples} × ${s.seq_len} |`);
  }
  return rows.join('\n');
}

// ---- child-process entry (calibration) and standalone section
async function main(argv: string[]): Promise<void> {
  const val = (k: string) => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1] : undefined; };
  const threads = Number(val('--threads') ?? 2);
  const one = val('--calibration');
  if (one) {
    if (!BENCH_CONFIGS[one]) throw new Error(`bench/pruning.ts: unknown config ${one}; known: ${Object.keys(BENCH_CONFIGS).join(', ')}`);
    const d = calibrationShape(one, false);
    const num = (k: string, dflt: number) => Number(val(k) ?? dflt);
    console.log(JSON.stringify(measureCalibration(one, { threads, rows: num('--rows', d.rows), seq: num('--seq', d.seq), steps: num('--steps', d.steps), warmup: num('--warmup', d.warmup) })));
    return;
  }
  const configs = (val('--configs') ?? 'tiny15m,smollm135').split(',').filter(Boolean);
  const r = await runPruningBench({ configs, threads, quick: argv.includes('--quick'), log: (l) => console.error(l) });
  console.log(pruningTable(r));
  const json = val('--json');
  if (json) fs.writeFileSync(json, JSON.stringify(r, null, 1));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((e) => { console.error(e instanceof Error ? e.message : e); process.exit(1); });
}
