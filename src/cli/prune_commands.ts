// `kompresor prune`: Minitron-style structured pruning of a checkpoint folder from saved
// importance scores. Everything that can be refused (flags, scores, plan) is checked before the
// first tensor is read; then the plan is printed, tensors are sliced one at a time, and the
// report (per axis before -> after, kept/dropped indices, exact parameter counts) is printed.
// OUT_DIR/report/ gets the readable report (charts and tables, src/report/pruning_report.ts).
import nodePath from 'node:path';
import { Command, Option } from 'commander';
import { openCheckpoint } from '../io/checkpoint.ts';
import { checkOutDir } from '../io/out_guard.ts';
import { loadScores, checkScoresMatch, type ImportanceScores } from '../prune/scores.ts';
import {
  makePlan, parseDepth, parseParams, parseParamsConvention, parseTarget, scoredShapeOf, selectChannels, PRUNE_AXES, PARAMS_POLICY_TEXT,
  type PrunePlan, type Selection,
} from '../prune/plan.ts';
import { DEFAULT_ROUND_TO, parseRoundTo } from '../prune/rounding.ts';
import { prune, type PruneReport } from '../prune/apply.ts';
import { checkReportDir, writePruneReport } from '../report/pruning_report.ts';
import { progressBar, type Progress } from './progress.ts';

export interface PruneCommandOptions {
  scores: string;
  out: string;
  target?: string;
  params?: string;
  depth?: string;
  /** --round-to N (default 64): pruned widths the policy chooses are multiples of N. */
  roundTo?: string;
  /** --params-convention total|no-lm-head (default total). */
  paramsConvention?: string;
  /** false: no OUT_DIR/report/ (commander's --no-report); written otherwise. */
  report?: boolean;
}

export const PRUNE_REPORT_DIR = 'report';

export interface PreparedPrune {
  plan: PrunePlan;
  scores: ImportanceScores;
  selection: Selection;
}

/** Parses and validates everything (headers and scores only, no tensor data). */
export function preparePrune(modelDir: string, o: PruneCommandOptions): PreparedPrune {
  const request = {
    target: o.target !== undefined ? parseTarget(o.target) : undefined,
    params: o.params !== undefined ? parseParams(o.params) : undefined,
    depth: parseDepth(o.depth),
    roundTo: parseRoundTo(o.roundTo),
    paramsConvention: parseParamsConvention(o.paramsConvention),
  };
  checkOutDir(o.out, '--out', [modelDir, o.scores], { mustBeEmpty: true });
  const ck = openCheckpoint(modelDir);
  const scores = loadScores(o.scores);
  checkScoresMatch(scores, scoredShapeOf(ck.config), o.scores);
  const plan = makePlan(ck.config, request);
  return { plan, scores, selection: selectChannels(plan, scores) };
}

export function pruneCommand(modelDir: string, o: PruneCommandOptions, p: PreparedPrune = preparePrune(modelDir, o),
  onTensor?: (done: number, total: number, name: string) => void): PruneReport {
  const reportDir = nodePath.join(o.out, PRUNE_REPORT_DIR);
  if (o.report !== false) checkReportDir(reportDir, '--out');
  const report = prune(modelDir, p.plan, p.scores, o.out, { scoresPath: o.scores, onTensor });
  if (o.report !== false) {
    writePruneReport(reportDir, p.scores, report, { title: `Pruning ${nodePath.basename(nodePath.resolve(modelDir))}`,
      links: [{ label: 'prune_report.json', href: '../prune_report.json' }, { label: 'config.json', href: '../config.json' }] });
  }
  return report;
}

const fmt = (n: number) => n.toLocaleString('en-US');

/** The plan as a table: each axis before -> after, then the exact parameter counts. */
export function formatPlan(modelDir: string, p: PreparedPrune): string {
  const { plan, selection: sel } = p;
  const notes: Record<string, string> = {
    num_hidden_layers: plan.after.num_hidden_layers < plan.before.num_hidden_layers
      ? `depth ${plan.depth}: drop layers ${sel.droppedLayers.join(', ')}` : '',
    num_attention_heads: `num_key_value_heads ${plan.num_key_value_heads} kept, `
      + `${plan.after.num_attention_heads / plan.num_key_value_heads} query head(s) per group, head_dim ${plan.head_dim}`,
  };
  const lines = [`prune ${modelDir} (${plan.architecture})`, `  ${'axis'.padEnd(22)} ${'before'.padStart(14)} ${'after'.padStart(14)}`];
  for (const a of PRUNE_AXES) {
    lines.push(`  ${a.padEnd(22)} ${fmt(plan.before[a]).padStart(14)} ${fmt(plan.after[a]).padStart(14)}   ${notes[a] ?? ''}`.trimEnd());
  }
  const { before: pb, after: pa } = plan.params;
  const count = (name: string, before: number, after: number) =>
    `  ${name.padEnd(22)} ${fmt(before).padStart(14)} ${fmt(after).padStart(14)}   ${((100 * after) / before).toFixed(2)}% of the original`;
  lines.push(count('parameters', pb.total, pa.total));
  if (pb.lmHead > 0) lines.push(count('  without lm_head', pb.total - pb.lmHead, pa.total - pa.lmHead));
  if (plan.params_budget !== null) {
    const counted = plan.params_convention === 'total' ? 'counted as the total' : 'counted without the untied lm_head';
    lines.push(`  budget ${fmt(plan.params_budget)} parameters, ${counted} (--params-convention ${plan.params_convention}; `
      + `${plan.chosen_by === 'params' ? PARAMS_POLICY_TEXT : 'met by the target'})`);
  }
  lines.push(...roundingLines(plan));
  return lines.join('\n');
}

/** What rounding did: the multiples, the unrounded choice and its cost, and every note. */
export function roundingLines(plan: PrunePlan): string[] {
  const r = plan.rounding, out: string[] = [];
  if (r.steps.length > 0) {
    out.push(`  rounding: ${r.steps.map((s) => `${s.axis} to multiples of ${s.multiple}`).join(', ')} (--round-to ${r.round_to})`);
  }
  if (r.unrounded) {
    const u = r.unrounded;
    out.push(`  unrounded, the policy would keep ${PRUNE_AXES.map((a) => `${a}=${u.sizes[a]}`).join(',')}: ${fmt(u.params)} parameters; `
      + `rounding cost ${fmt(r.cost)} (${((100 * r.cost) / plan.params_budget!).toFixed(2)}% of the budget)`);
  }
  for (const n of r.notes) out.push(`  note: ${n}`);
  return out;
}

const HELP = `
Prunes every layer to the same sizes (homogeneous, Minitron / ModelOpt style), keeping the
highest-scoring channels in importance order, and writes a complete Hugging Face folder:
weights in the input's dtype, config.json with the new sizes and an explicit head_dim,
tokenizer and generation files, and prune_report.json (kept/dropped indices per axis);
OUT_DIR/report/index.html shows it with charts (layer importance, head heatmap, sorted MLP
and hidden importance with the kept/dropped threshold) and tables (--no-report: none).

Axes (HF config names): num_hidden_layers, hidden_size, num_attention_heads, intermediate_size.
  - num_key_value_heads and head_dim are never pruned: num_attention_heads must be a multiple
    of num_key_value_heads, and each KV group keeps its best heads (so MHA models, where every
    head is its own group, cannot prune heads).
  - every size is a positive integer at most the original.
--params N: N > 1 is a parameter count (7.35e9 is fine), 0 < N <= 1 a fraction of the original.
  Axes given with --target stay fixed; the others follow the default policy: drop layers (at most
  20%, stopping within one layer of the budget), then shrink intermediate_size (at most 40%),
  then hidden_size (at most 40%; the MLP then takes back what hidden's step leaves); heads are
  left alone. An unreachable budget is refused.
  Widths the policy chooses are multiples of --round-to (${DEFAULT_ROUND_TO}), and hidden_size a
  multiple of num_attention_heads (transformers 5 refuses other Llama/Mistral/Qwen2 configs); a
  width too small for that steps by the largest power of two below --round-to that fits, and the
  plan says so, with what rounding cost against the unrounded choice. --target sizes are taken
  as given (the plan notes those that miss either rule).
--params-convention total (the default) counts every tensor, a tied lm_head once; no-lm-head
  counts without an untied lm_head, as the seed's Bielik-11B 11.04B -> 7.35B does.
--depth importance drops the layers with the lowest Block Importance wherever they are;
  contiguous drops the consecutive block with the smallest summed Block Importance.

Examples:
  kompresor prune ./bielik-11b --scores bi.json --out ./pruned --target num_hidden_layers=40,intermediate_size=11264
  kompresor prune ./model --scores s.json --out ./pruned --params 0.67 --depth contiguous
See docs/pruning.md.`;

export function registerPruneCommand(program: Command): void {
  program.command('prune')
    .description('Structured pruning (depth, hidden, heads, MLP) from saved importance scores; writes a new HF checkpoint folder.')
    .argument('<model_dir>', 'a Hugging Face checkpoint folder (config.json + safetensors)')
    .requiredOption('--scores <file>', 'importance scores of this model (written by `kompresor score`)')
    .requiredOption('--out <dir>', 'output folder for the pruned checkpoint (not the model folder)')
    .option('--target <axes>', 'sizes to reach, e.g. "num_hidden_layers=40,intermediate_size=11264" (any subset of the axes)')
    .option('--params <n>', 'parameter budget: a count (> 1) or a fraction of the original (0 < n <= 1)')
    .addOption(new Option('--depth <mode>', 'which layers go when num_hidden_layers shrinks').choices(['importance', 'contiguous']).default('importance'))
    .option('--round-to <n>', 'pruned widths chosen by --params are multiples of n (1: no rounding)', String(DEFAULT_ROUND_TO))
    .addOption(new Option('--params-convention <c>', 'how --params counts: total (every tensor) or no-lm-head (without an untied lm_head, the seed\'s 11.04B -> 7.35B)')
      .choices(['total', 'no-lm-head']).default('total'))
    .option('--json', 'print the prune report as JSON (nothing else on stdout)')
    .option('--no-report', `write no ${PRUNE_REPORT_DIR}/ folder (charts and tables) into the output`)
    .addHelpText('after', HELP)
    .action((dir: string, o: PruneCommandOptions & { json?: boolean }) => {
      const prepared = preparePrune(dir, o);
      if (!o.json) console.log(formatPlan(dir, prepared));
      const progress = tensorProgress(!o.json && process.stderr.isTTY);
      let report: PruneReport;
      try { report = pruneCommand(dir, o, prepared, progress.onTensor); } finally { progress.stop(); }
      if (o.json) console.log(JSON.stringify(report));
      else {
        console.log(`wrote ${o.out}: ${report.files.join(', ')}`);
        if (o.report !== false) console.log(`report ${nodePath.join(o.out, PRUNE_REPORT_DIR, 'index.html')}`);
      }
    });
}

/** A progress bar over the written tensors, drawn on a terminal only (created at the first tensor; the progress file, if set, in any case). */
function tensorProgress(show: boolean): { onTensor?: (done: number, total: number) => void; stop(): void } {
  let bar: Progress | null = null;
  return {
    onTensor: (done, total) => { bar ??= progressBar('prune', total, 'tensors', '', { hidden: !show }); bar.update(done); },
    stop: () => bar?.stop(),
  };
}
