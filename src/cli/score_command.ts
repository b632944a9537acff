// `kompresor score`: importance scores of a Hugging Face model from calibration text, written as
// the scores file `prune` reads (src/prune/scores.ts). In memory when the float32 weights fit the
// budget, layer by layer (src/prune/stream.ts) when they do not or when --stream is given.
import os from 'node:os';
import nodePath from 'node:path';
import type { Command } from 'commander';
import { KompresorError } from '../errors.ts';
import { openCheckpoint } from '../io/checkpoint.ts';
import { loadTokenizer } from '../io/tokenizer.ts';
import { checkOutDir } from '../io/out_guard.ts';
import { loadModel, weightDtypeFor } from '../model/load.ts';
import { buildLayout, storeBytes } from '../model/parameters.ts';
import { buildCalibration, type TxtSplit } from '../prune/calibration.ts';
import { scoreInMemory, buildScores, arenaBytes, memoryBatchRows, BASELINE_BYTES, type LayerMetric, type ScoreRun } from '../prune/importance.ts';
import { planStream, scoreStreaming, formatBytes, type StreamPlan } from '../prune/stream.ts';
import { saveScores } from '../prune/scores.ts';
import { checkReportDir, defaultReportDir, writeScoreReport } from '../report/pruning_report.ts';
import { parseNumber, checkOutPath } from './args.ts';
import { progressBar } from './progress.ts';

export const DEFAULT_SAMPLES = 64;
export const DEFAULT_SEQ_LEN = 512;

export interface ScoreOptions {
  modelDir: string;
  data: string[];
  samples: number;
  seqLen: number;
  out: string;
  /** Force layer-by-layer scoring (otherwise chosen when the weights do not fit maxMemory). */
  stream: boolean;
  maxMemory: number;
  layerMetric: LayerMetric;
  seed: number;
  txtSplit: TxtSplit;
  /** Draw a progress bar on stderr. */
  progress: boolean;
  /** Notes for the user (automatic streaming, row groups); default: none. */
  log?: (line: string) => void;
  /** Folder for the readable report (src/report/pruning_report.ts); none when absent. */
  report?: string;
}

export interface ScoreSummary {
  out: string;
  mode: 'memory' | 'stream';
  samples: number;
  seq_len: number;
  tokens: number;
  documents: number;
  documents_used: number;
  /** Reading and tokenizing the calibration files. */
  prepare_seconds: number;
  /** The forward passes (and, in stream mode, the weight reads). */
  seconds: number;
  tokens_per_s: number;
  batch_rows: number;
  row_groups: number;
  weights_f32_bytes: number;
  max_memory_bytes: number;
  peak_rss_bytes: number;
  /** Layers by Block Importance, most important first. */
  layers_by_bi: { layer: number; bi: number }[];
  layers_loss?: number[];
  /** The report folder, or null when none was written. */
  report: string | null;
}

export async function scoreCommand(o: ScoreOptions): Promise<ScoreSummary> {
  checkOutPath(o.out, '--out', [o.modelDir, ...o.data]);
  if (o.report !== undefined) { checkOutDir(o.report, '--report', [o.modelDir, ...o.data]); checkReportDir(o.report); }
  const ck = openCheckpoint(o.modelDir);
  const cfg = ck.config;
  if (o.seqLen > cfg.maxPositionEmbeddings) {
    throw new KompresorError({ code: 'input_invalid', where: '--seq-len', rule: 'calibration rows must fit the model\'s context',
      expected: `at most max_position_embeddings = ${cfg.maxPositionEmbeddings}`, found: `${o.seqLen}` });
  }
  // in memory, the weights stay as stored (a bf16 checkpoint holds 2 bytes per weight)
  const weights = storeBytes(buildLayout(cfg), weightDtypeFor(ck, buildLayout(cfg), 'auto'));
  const mode = chooseMode(o, weights, arenaBytes(cfg, 1, o.seqLen));
  const t0 = performance.now();
  const set = buildCalibration(o.data, loadTokenizer(o.modelDir), {
    samples: o.samples, seqLen: o.seqLen, seed: o.seed, txtSplit: o.txtSplit, vocabSize: cfg.vocabSize,
  });
  const t1 = performance.now();
  let run: ScoreRun, batchRows: number, groups = 1;
  if (mode === 'memory') {
    batchRows = memoryBatchRows(cfg, o.samples, o.seqLen, weights, o.maxMemory);
    const { model } = await loadModel(o.modelDir, { weights: 'auto' });
    const bar = progressBar('score', o.samples, 'rows', '', { hidden: !o.progress });
    run = scoreInMemory(model, set, { batchRows, layerMetric: o.layerMetric, onRows: (d) => bar?.update(d) });
    bar?.stop();
  } else {
    const plan = planStream(cfg, o.samples, o.seqLen, o.maxMemory);
    noteStream(o, plan, weights, cfg.hiddenSize);
    ({ batchRows, groups } = plan);
    const bar = progressBar('score', plan.groups * cfg.numLayers, 'layers', '', { hidden: !o.progress });
    run = scoreStreaming(ck, set, { plan, onLayer: (d) => bar?.update(d) });
    bar?.stop();
  }
  const seconds = (performance.now() - t1) / 1000;
  const scores = buildScores(run, { files: o.data, samples: o.samples, seq_len: o.seqLen, tokens: set.tokens, mode, seconds });
  saveScores(o.out, scores);
  if (o.report !== undefined) {
    writeScoreReport(o.report, scores, { title: `Importance scores of ${nodePath.basename(nodePath.resolve(o.modelDir))}`,
      links: [{ label: nodePath.basename(o.out), href: nodePath.relative(o.report, o.out) }] });
  }
  return {
    out: o.out, mode, samples: o.samples, seq_len: o.seqLen, tokens: set.tokens, documents: set.documents,
    documents_used: set.documentsUsed, prepare_seconds: (t1 - t0) / 1000, seconds, tokens_per_s: set.tokens / seconds,
    batch_rows: batchRows, row_groups: groups, weights_f32_bytes: weights, max_memory_bytes: o.maxMemory,
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
    layers_by_bi: scores.layers.map((bi, layer) => ({ layer, bi })).sort((a, b) => b.bi - a.bi || a.layer - b.layer),
    ...(scores.layers_loss ? { layers_loss: scores.layers_loss } : {}),
    report: o.report ?? null,
  };
}

/** In memory when the float32 weights and one row's activations fit the budget, else streaming. */
function chooseMode(o: ScoreOptions, weights: number, rowArena: number): 'memory' | 'stream' {
  const need = weights + rowArena + BASELINE_BYTES;
  const fits = need <= o.maxMemory;
  if (o.layerMetric === 'loss' && (o.stream || !fits)) {
    throw new KompresorError({ code: 'input_invalid', where: '--layer-metric loss',
      rule: 'the layer-skip loss reruns the upper layers for every layer, so it needs the whole model in memory',
      expected: o.stream ? 'no --stream' : `--max-memory of at least ${formatBytes(need)}`, found: o.stream ? '--stream' : formatBytes(o.maxMemory),
      hint: 'use --layer-metric bi (Block Importance, always computed), or raise --max-memory' });
  }
  return o.stream || !fits ? 'stream' : 'memory';
}

/** Says why streaming was chosen and whether rows go in groups (after the plan was accepted). */
function noteStream(o: ScoreOptions, plan: StreamPlan, weights: number, C: number): void {
  if (!o.stream) o.log?.(`score: the float32 weights (${formatBytes(weights)}) and activations do not fit --max-memory ${formatBytes(o.maxMemory)}; scoring layer by layer`);
  if (plan.groups === 1) return;
  o.log?.(`score: the hidden states of ${o.samples} rows (${formatBytes(o.samples * o.seqLen * C * 4)}) do not fit the budget; `
    + `processing ${plan.groups} groups of at most ${rows(plan.groupRows)}, reading the weights ${plan.groups} times`);
}

function rows(n: number): string { return n === 1 ? '1 row' : `${n} rows`; }

export function formatScoreSummary(r: ScoreSummary): string {
  const fmt = (n: number) => n.toLocaleString('en-US');
  const layer = (x: { layer: number; bi: number }) => `${x.layer} (${x.bi.toPrecision(4)})`;
  const k = Math.min(3, r.layers_by_bi.length);
  const how = r.mode === 'memory' ? `in memory, ${rows(r.batch_rows)} per pass`
    : `layer by layer, ${rows(r.batch_rows)} per pass${r.row_groups > 1 ? `, ${r.row_groups} row groups` : ''}`;
  const lines = [
    `scored ${r.samples} x ${r.seq_len} = ${fmt(r.tokens)} tokens from ${fmt(r.documents_used)} of ${fmt(r.documents)} documents (${how})`,
    `  ${r.seconds.toFixed(2)} s, ${fmt(Math.round(r.tokens_per_s))} tokens/s (+ ${r.prepare_seconds.toFixed(2)} s reading and tokenizing); peak RSS ${formatBytes(r.peak_rss_bytes)}`,
    ...(r.layers_by_bi.length <= 2 * k
      ? [`  layers by BI, most important first: ${r.layers_by_bi.map(layer).join(', ')}`]
      : [`  most important layers by BI:  ${r.layers_by_bi.slice(0, k).map(layer).join(', ')}`,
        `  least important layers by BI: ${r.layers_by_bi.slice(-k).reverse().map(layer).join(', ')}`]),
  ];
  if (r.layers_loss) lines.push(`  loss increase per skipped layer: ${r.layers_loss.map((d, l) => `${l}: ${d.toFixed(4)}`).join(', ')}`);
  lines.push(`wrote ${r.out}`);
  if (r.report !== null) lines.push(`report ${nodePath.join(r.report, 'index.html')}`);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// command line

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** "2GiB", "512 MiB", "1.5GB", "4000000000" -> bytes. */
export function parseSize(text: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined || Number(m[1]) <= 0) {
    throw new KompresorError({ code: 'input_invalid', where: flag, rule: `${flag} takes a positive size with an optional unit`,
      expected: 'e.g. 2GiB, 512MiB, 8GB', found: JSON.stringify(text) });
  }
  return Math.floor(Number(m[1]) * unit);
}

function parseChoice<T extends string>(text: string, flag: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(text)) {
    throw new KompresorError({ code: 'input_invalid', where: flag, rule: `${flag} takes one of its choices`,
      expected: choices.join(' or '), found: JSON.stringify(text) });
  }
  return text as T;
}

const HELP = `
Computes Minitron importance scores (forward passes only) and writes them as JSON:
  hidden     one score per hidden channel (outputs of every input/post-attention norm)
  heads      one score per attention head and layer (input of o_proj)
  mlp        one score per MLP neuron and layer (input of down_proj)
  layers     Block Importance per layer, 1 - cos(layer input, layer output)
  layers_loss  with --layer-metric loss: LM-loss increase when the layer is skipped
Each statistic is mean |x| over a row's tokens, squared and summed over rows (L2), as ModelOpt
computes it. \`kompresor prune\` reads the file, so new pruning targets need no new passes.

Calibration data: .txt/.md files (documents separated by blank lines, or one per file with
--txt-split file) and .jsonl/.json files ("text", "content" or chat "messages" per record).
Documents are shuffled by --seed and packed into --samples rows of --seq-len tokens; attention
never crosses documents.

Defaults (64 x 512 = 32,768 tokens) keep a CPU run short: a few seconds for a 24M-parameter
model on 2 cores, growing with the parameter count (several minutes for 1B). The scores are
averages, so far fewer tokens than training suffice; to check, score again with another --seed
and compare the rankings. ModelOpt uses 1024 x 4096 tokens on GPUs: raise --samples for a final
run when time allows.

Memory: in memory when the float32 weights plus one row's activations fit --max-memory
(default 75% of RAM); otherwise, or with --stream, layer by layer with one layer's weights
resident and the hidden states carried between layers (in groups of rows if they do not fit).

Report: beside the scores, SCORES without .json plus .report/ (or --report DIR) gets
index.html (the charts inline, layers ranked), layers.svg (Block Importance per layer),
heads.svg (layers x heads), mlp.svg and hidden.svg (sorted importance) and report.json.

Example:
  kompresor score ./Qwen2.5-0.5B --data calib.jsonl --out scores.json
`;

export function registerScoreCommand(program: Command): void {
  program.command('score')
    .description('Importance scores (hidden channels, heads, MLP neurons, layers) from calibration text, for `prune`.')
    .argument('<model_dir>', 'a Hugging Face checkpoint folder with tokenizer.json')
    .requiredOption('--data <files...>', 'calibration files: .txt/.md or .jsonl/.json')
    .requiredOption('--out <scores.json>', 'the scores file to write')
    .option('--samples <n>', 'calibration rows (sequences)', String(DEFAULT_SAMPLES))
    .option('--seq-len <n>', 'tokens per row', String(DEFAULT_SEQ_LEN))
    .option('--stream', 'score layer by layer, holding one layer\'s weights (automatic when the weights do not fit --max-memory)')
    .option('--max-memory <size>', 'memory budget, e.g. 2GiB or 512MiB (default: 75% of RAM)')
    .option('--layer-metric <metric>', 'bi (Block Importance), or loss (also the LM-loss increase per skipped layer; in memory only)', 'bi')
    .option('--txt-split <mode>', 'documents of a text file: blank-lines (paragraph blocks) or file (the whole file)', 'blank-lines')
    .option('--seed <s>', 'document order (same files + seed + sizes = same rows)', '0')
    .option('--json', 'print the summary as JSON (no progress bar), including peak RSS')
    .option('--report <dir>', 'the readable report\'s folder (charts, tables; default: SCORES without .json, plus .report)')
    .option('--no-report', 'write no report')
    .addHelpText('after', HELP)
    .action(async (dir: string, o: Record<string, string | string[] | boolean | undefined>) => {
      const json = Boolean(o.json);
      const r = await scoreCommand({
        modelDir: dir, data: o.data as string[], out: String(o.out),
        samples: parseNumber(String(o.samples), '--samples', { min: 1, integer: true }),
        seqLen: parseNumber(String(o.seqLen), '--seq-len', { min: 2, integer: true }),
        stream: Boolean(o.stream),
        maxMemory: o.maxMemory === undefined ? Math.floor(0.75 * os.totalmem()) : parseSize(String(o.maxMemory), '--max-memory'),
        layerMetric: parseChoice(String(o.layerMetric), '--layer-metric', ['bi', 'loss'] as const),
        txtSplit: parseChoice(String(o.txtSplit), '--txt-split', ['blank-lines', 'file'] as const),
        seed: parseNumber(String(o.seed), '--seed', { min: 0, integer: true }),
        progress: !json,
        log: json ? undefined : (line) => console.error(line),
        report: o.report === false ? undefined : typeof o.report === 'string' ? o.report : defaultReportDir(String(o.out)),
      });
      console.log(json ? JSON.stringify(r, null, 2) : formatScoreSummary(r));
    });
}
