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
  makePlan, parseDepth, parseParams, parseTarget, scoredShapeOf, selectChannels, PRUNE_AXES, PARAMS_POLICY_TEXT,
  type PrunePlan, type Selection,
} from '../prune/plan.ts';
import { prune, type PruneReport } from '../prune/apply.ts';
import { checkReportDir, writePruneReport } from '../report/pruning_report.ts';
import { progressBar, type Progress } from './progress.ts';

export interface PruneCommandOptions {
  scores: string;
  out: string;
  target?: string;
  params?: string;
  depth?: string;
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
  const before = plan.params.before.total, after = plan.params.after.total;
  lines.push(`  ${'parameters'.padEnd(22)} ${fmt(before).padStart(14)} ${fmt(after).padStart(14)}   ${((100 * after) / before).toFixed(2)}% of the original`);
  if (plan.params_budget !== null) {
    lines.push(`  budget ${fmt(plan.params_budget)} parameters (${plan.chosen_by === 'params' ? PARAMS_POLICY_TEXT : 'met by the target'})`);
  }
  return lines.join('\n');
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
  then hidden_size (at most 40%); heads are left alone. An unreachable budget is refused.
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
