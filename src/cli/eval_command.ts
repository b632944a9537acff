// `kompresor eval MODEL --tasks TASKS --out RESULTS.json [--teacher TEACHER]`: harness-style tasks
// (src/eval/tasks.ts) scored on our engine, results shaped like lm-evaluation-harness's, and with a
// teacher the recovery table. The student and the teacher run one after the other, so only one
// model is in memory at a time. A model whose float32 weights do not fit --max-memory (or any model
// with --stream) runs layer by layer (src/eval/stream_lm.ts): log-likelihood and perplexity tasks
// only. Progress over requests on stderr; a table (or --json) on stdout.
import fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import type { Command } from 'commander';
import { KompresorError } from '../errors.ts';
import { loadModel, weightDtypeFor, type WeightsOption } from '../model/load.ts';
import { openCheckpoint } from '../io/checkpoint.ts';
import { buildLayout, storeBytes } from '../model/parameters.ts';
import { loadTokenizer, type LoadedTokenizer } from '../io/tokenizer.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { forwardArenaBytes, formatBytes, BASELINE_BYTES } from '../model/stream_forward.ts';
import { EngineLM, HEAD_ROWS, type EvalLM } from '../eval/requests.ts';
import { StreamLM, planEvalStream } from '../eval/stream_lm.ts';
import { findTaskFiles, loadTask, type Task } from '../eval/tasks.ts';
import { evaluateTasks, computeRecovery, stderrKey, type EvalResults, type Recovery } from '../eval/run.ts';
import { parseNumber, checkOutPath, weightsDtypeOption } from './args.ts';
import { progressBar } from './progress.ts';
import { parseSize } from './score_command.ts';

export const DEFAULT_MAX_LENGTH = 2048;
export const DEFAULT_BOOTSTRAP_ITERS = 1000;

export interface EvalCommandOptions {
  /** How the evaluated models hold their weights (default 'auto': as stored). */
  weights?: WeightsOption;
  modelDir: string;
  tasks: string;
  out: string;
  teacher?: string;
  limit?: number;
  numFewshot?: number;
  /** Context length; default min(max_position_embeddings, 2048). */
  maxLength?: number;
  batchTokens: number;
  genBatch: number;
  bootstrapIters: number;
  seed: number;
  progress: boolean;
  /** Layer by layer even when the weights fit (otherwise only when they do not fit maxMemory). */
  stream: boolean;
  maxMemory: number;
  /** Notes for the user (automatic streaming); default: none. */
  log?: (line: string) => void;
}

type Mode = 'memory' | 'stream';

export interface EvalSummary extends EvalResults {
  teacher_results?: EvalResults['results'];
  recovery?: Recovery;
  config: Record<string, unknown>;
}

export async function evalCommand(o: EvalCommandOptions): Promise<EvalSummary> {
  checkOutPath(o.out, '--out', [o.modelDir, ...(o.teacher ? [o.teacher] : []), ...o.tasks.split(',')]);
  const files = findTaskFiles(o.tasks);
  const tasks = files.map((f) => loadTask(f, o.numFewshot));
  const dup = tasks.find((t, i) => tasks.findIndex((u) => u.name === t.name) !== i);
  if (dup) throw new KompresorError({ code: 'config_invalid', where: `--tasks ${o.tasks}`, rule: 'task names must be unique', found: `"${dup.name}" twice` });
  // both models' modes (and a streamed model's plan) are settled before any work
  const modes = { student: chooseMode(o.modelDir, tasks, o, 'the model'), teacher: o.teacher === undefined ? null : chooseMode(o.teacher, tasks, o, '--teacher') };
  const student = await runModel(o.modelDir, tasks, o, 'student', modes.student);
  const summary: EvalSummary = { ...student.results, config: {} };
  if (o.teacher !== undefined) {
    const teacher = await runModel(o.teacher, tasks, o, 'teacher', modes.teacher!);
    summary.teacher_results = teacher.results.results;
    summary.recovery = computeRecovery(student.results, teacher.results);
  }
  summary.config = {
    model: o.modelDir, teacher: o.teacher ?? null, task_files: files, limit: o.limit ?? null, num_fewshot: o.numFewshot ?? null,
    max_length: student.maxLength, prefix_token_id: student.prefixTokenId, bootstrap_iters: o.bootstrapIters, seed: o.seed,
    fewshot_seed: 1234, batch_tokens: o.batchTokens, gen_batch: o.genBatch, mode: modes, max_memory: o.maxMemory,
  };
  writeFileAtomic(o.out, JSON.stringify(summary, null, 2) + '\n');
  return summary;
}

/**
 * In memory when the weights (as --weights-dtype holds them), a forward-only arena and the head's rows fit --max-memory;
 * otherwise (or with --stream) layer by layer, which refuses generate_until tasks and a budget
 * too small for one batch streamed, here, before any model runs.
 */
function chooseMode(dir: string, tasks: Task[], o: EvalCommandOptions, what: string): Mode {
  const ck = openCheckpoint(dir), cfg = ck.config;
  const maxLength = o.maxLength ?? Math.min(cfg.maxPositionEmbeddings, DEFAULT_MAX_LENGTH);
  const batchTokens = Math.max(o.batchTokens, maxLength);
  // in memory the weights are held as --weights-dtype says (a bf16 checkpoint stays 2 bytes per weight)
  const layout = buildLayout(cfg), stored = weightDtypeFor(ck, layout, o.weights ?? 'auto');
  const held = stored === 'f32' ? 'float32' : stored;
  const weights = storeBytes(layout, stored);
  const need = BASELINE_BYTES + weights + forwardArenaBytes(cfg, batchTokens) + HEAD_ROWS * (cfg.vocabSize + cfg.hiddenSize) * 4;
  if (!o.stream && need <= o.maxMemory) return 'memory';
  const gen = tasks.find((t) => t.outputType === 'generate_until');
  if (gen) {
    throw new KompresorError({ code: 'input_invalid', where: `--tasks ${o.tasks}`, rule: `a model evaluated layer by layer (${o.stream ? '--stream' : `${what}'s ${held} weights, ${formatBytes(weights)}, exceed --max-memory ${formatBytes(o.maxMemory)}`}) answers log-likelihood and perplexity tasks only`,
      found: `generate_until task "${gen.name}"`, hint: o.stream ? 'leave out --stream, or the generate_until tasks' : 'raise --max-memory, or leave out the generate_until tasks' });
  }
  planEvalStream(cfg, batchTokens, batchTokens, o.maxMemory);
  if (!o.stream) o.log?.(`eval: ${what === 'the model' ? dir : `the teacher ${dir}`}: the ${held} weights (${formatBytes(weights)}) do not fit --max-memory ${formatBytes(o.maxMemory)}; evaluating layer by layer`);
  return 'stream';
}

async function runModel(dir: string, tasks: Task[], o: EvalCommandOptions, label: string, mode: Mode): Promise<{ results: EvalResults; maxLength: number; prefixTokenId: number }> {
  const tok = loadTokenizer(dir);
  const ck = openCheckpoint(dir);
  const maxLength = o.maxLength ?? Math.min(ck.config.maxPositionEmbeddings, DEFAULT_MAX_LENGTH);
  const prefixTokenId = prefixToken(tok);
  const lmo = { maxLength, batchTokens: o.batchTokens, genBatch: o.genBatch, prefixTokenId };
  const lm: EvalLM = mode === 'stream' ? new StreamLM(ck, tok, lmo, o.maxMemory) : new EngineLM((await loadModel(dir, { weights: o.weights ?? 'auto', maxMemory: o.maxMemory })).model, tok, lmo);
  let bar: ReturnType<typeof progressBar> | null = null;
  const results = evaluateTasks(lm, tasks, {
    limit: o.limit, bootstrapIters: o.bootstrapIters, seed: o.seed,
    progress: (done, total) => { bar ??= progressBar(`eval ${label}`, total, 'requests', '', { hidden: !o.progress }); bar.update(done); },
  });
  (bar as ReturnType<typeof progressBar> | null)?.stop();
  return { results, maxLength, prefixTokenId };
}

/** HFLM.prefix_token_id: the tokenizer's BOS, else its EOS (tokenizer_config.json eos_token). */
export function prefixToken(tok: LoadedTokenizer): number {
  if (tok.bosTokenId !== null) return tok.bosTokenId;
  const p = nodePath.join(tok.dir, 'tokenizer_config.json');
  if (fs.existsSync(p)) {
    const eos = (JSON.parse(fs.readFileSync(p, 'utf8')) as Record<string, unknown>).eos_token;
    const text = typeof eos === 'string' ? eos : typeof eos === 'object' && eos !== null ? (eos as { content?: unknown }).content : undefined;
    const id = typeof text === 'string' ? tok.tokenToId(text) : undefined;
    if (id !== undefined) return id;
  }
  if (tok.eosTokenIds.length > 0) return tok.eosTokenIds[0];
  throw new KompresorError({ code: 'tokenizer_invalid', where: tok.dir, rule: 'scoring needs a prefix token for empty contexts and the first rolling window: bos_token or eos_token',
    found: 'neither in tokenizer_config.json or generation_config.json', hint: 'set bos_token or eos_token in tokenizer_config.json' });
}

// ---------------------------------------------------------------------------------------------
// output

export function formatEval(s: EvalSummary): string {
  const fmt = (v: unknown) => (typeof v !== 'number' ? String(v ?? '-') : v === 0 ? '0'
    : Math.abs(v) >= 1e6 ? v.toExponential(3) : Math.abs(v) >= 1000 ? v.toFixed(1) : v.toPrecision(4));
  const rows: string[][] = [['task', 'metric', 'value', 'stderr', ...(s.teacher_results ? ['teacher', 'recovery %'] : [])]];
  for (const [task, m] of Object.entries(s.results)) {
    for (const key of Object.keys(s.higher_is_better[task])) {
      const arrow = s.higher_is_better[task][key] ? '↑' : '↓';
      const primary = key === s.primary_metric[task];
      rows.push([task, `${key} ${arrow}`, fmt(m[key]), fmt(m[stderrKey(key)]),
        ...(s.teacher_results ? [fmt(s.teacher_results[task]?.[key]), primary && s.recovery ? fmt(s.recovery[task]) : ''] : [])]);
    }
  }
  if (s.recovery) rows.push(['average', '', '', '', '', fmt(s.recovery.average)]);
  const w = rows[0].map((_, c) => Math.max(...rows.map((r) => [...(r[c] ?? '')].length)));
  const lines = rows.map((r) => r.map((x, c) => (c < 2 ? x.padEnd(w[c]) : x.padStart(w[c]))).join('  ').trimEnd());
  lines.splice(1, 0, w.map((n) => '-'.repeat(n)).join('  '));
  const seconds = Object.values(s.timing).reduce((a, t) => a + t.seconds, 0);
  const requests = Object.values(s.timing).reduce((a, t) => a + t.requests, 0);
  lines.push('', `${requests} requests in ${seconds.toFixed(1)} s (student)${s.teacher_results ? '; recovery uses each task\'s primary (first) metric' : ''}`);
  return lines.join('\n');
}

const HELP = `
Tasks are lm-evaluation-harness YAML files over local JSONL data (see docs/eval.md):
  output_type       multiple_choice | loglikelihood | loglikelihood_rolling | generate_until
  doc_to_text, doc_to_target, doc_to_choice   a field name, a Jinja template, or a literal
  description, target_delimiter (" "), fewshot_delimiter ("\\n\\n"), num_fewshot,
  fewshot_config {sampler: default | first_n, samples}, metric_list, generation_kwargs
  {until, max_gen_toks, do_sample, temperature, top_k, top_p}, filter_list (regex, take_first,
  lowercase, uppercase, remove_whitespace), include, metadata.version
  dataset_path      a folder of <split>.jsonl (relative to the YAML), a .jsonl file, or "json"
                    with dataset_kwargs.data_files; test_split / validation_split /
                    training_split / fewshot_split name the splits
Metrics: acc, acc_norm (by characters), acc_bytes, exact_match, acc_mutual_info, perplexity,
word_perplexity, byte_perplexity, bits_per_byte, each with a standard error.
Few-shot examples are drawn as the harness draws them: Python's random.Random(1234).sample,
reproduced exactly (one generator per task).

With --teacher, the same tasks run on the teacher and RESULTS.json gains "teacher_results" and
"recovery": per task, student / teacher x 100 on the primary (first) metric, or teacher /
student x 100 when lower is better (perplexity, bits per byte); "average" is their mean.

Memory: in memory when the float32 weights fit --max-memory (default 75% of RAM); otherwise, or
with --stream, layer by layer (one layer's weights resident, the hidden states of as many
batches as fit carried from layer to layer, the lm_head read by vocabulary blocks when it does
not fit either). Layer by layer answers log-likelihood and perplexity tasks only (no
generate_until); the results are those of the in-memory path to float32 rounding.

Examples:
  kompresor eval ./pruned --tasks evals/pl/ --out results.json --teacher ./teacher
  kompresor eval ./model --tasks a.yaml,b.yaml --out r.json --limit 100 --num-fewshot 5
`;

export function registerEvalCommand(program: Command): void {
  program.command('eval')
    .description('Evaluate a model on harness-style tasks (multiple choice, perplexity, generation); with --teacher, the recovery table.')
    .argument('<model_dir>', 'a Hugging Face checkpoint folder with tokenizer.json')
    .requiredOption('--tasks <tasks>', 'comma-separated task YAML files and/or folders of them')
    .requiredOption('--out <results.json>', 'the results file to write')
    .option('--teacher <dir>', 'also evaluate this model and report the student\'s recovery')
    .option('--limit <n>', 'only the first N docs of each task')
    .option('--num-fewshot <k>', 'few-shot examples per prompt (overrides the YAML num_fewshot)')
    .option('--max-length <n>', `context length (default: max_position_embeddings, at most ${DEFAULT_MAX_LENGTH})`)
    .option('--batch-tokens <n>', 'tokens per forward pass when scoring', '4096')
    .option('--gen-batch <n>', 'prompts generated together', '8')
    .option('--bootstrap-iters <n>', 'bootstrap replicates for non-mean standard errors (the harness uses 100000; 0 = none)', String(DEFAULT_BOOTSTRAP_ITERS))
    .option('--seed <s>', 'seed of the bootstrap and of sampled generation', '1234')
    .option('--stream', 'evaluate layer by layer, holding one layer\'s weights (automatic when the weights do not fit --max-memory)')
    .option('--max-memory <size>', 'memory budget, e.g. 24GiB or 512MiB (default: 75% of RAM)')
    .option('--json', 'print the results JSON instead of the table (no progress bar)')
    .addOption(weightsDtypeOption('--weights-dtype', 'each evaluated model'))
    .addHelpText('after', HELP)
    .action(async (dir: string, o: Record<string, string | boolean | undefined>) => {
      const int = (v: unknown, flag: string, min: number) => (v === undefined ? undefined : parseNumber(String(v), flag, { min, integer: true }));
      const s = await evalCommand({
        modelDir: dir, tasks: String(o.tasks), out: String(o.out), teacher: o.teacher as string | undefined,
        limit: int(o.limit, '--limit', 1), numFewshot: int(o.numFewshot, '--num-fewshot', 0), maxLength: int(o.maxLength, '--max-length', 2),
        batchTokens: int(o.batchTokens, '--batch-tokens', 1)!, genBatch: int(o.genBatch, '--gen-batch', 1)!,
        bootstrapIters: int(o.bootstrapIters, '--bootstrap-iters', 0)!, seed: int(o.seed, '--seed', 0)!,
        progress: !o.json, stream: Boolean(o.stream), weights: o.weightsDtype as WeightsOption,
        maxMemory: o.maxMemory === undefined ? Math.floor(0.75 * os.totalmem()) : parseSize(String(o.maxMemory), '--max-memory'),
        log: o.json ? undefined : (line) => console.error(line),
      });
      console.log(o.json ? JSON.stringify(s, null, 2) : `${formatEval(s)}\nwrote ${String(o.out)}`);
    });
}
