// `kompresor search`: the parameter-budget architecture search (src/prune/search.ts). Everything
// that can be refused (flags, scores, budget, data, output folder) is checked before the first
// candidate is pruned; then a progress bar runs over the candidates, and the table of every
// candidate (sizes, parameters, loss after pruning and after the distill steps, rank) is printed.
import type { Command } from 'commander';
import { Option } from 'commander';
import { parseNumber } from './args.ts';
import { progressBar, formatSeconds, type Progress } from './progress.ts';
import { parseDepth, parseParams, parseParamsConvention, parseTarget, PRUNE_AXES } from '../prune/plan.ts';
import { DEFAULT_ROUND_TO, parseRoundTo } from '../prune/rounding.ts';
import { search, SEARCH_DEFAULTS, type SearchOptions, type SearchReport, type SearchSpace } from '../prune/search.ts';

export const SEARCH_CLI_DEFAULTS = { valTokens: 16384, seqLen: 512, microBatch: 4, distillSteps: 0, distillLr: 1e-4 } as const;

const fmt = (n: number) => n.toLocaleString('en-US');
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const SHORT: Record<string, string> = { num_hidden_layers: 'layers', hidden_size: 'hidden', num_attention_heads: 'heads', intermediate_size: 'MLP' };

/** The line printed before the first candidate: the space, the budget and what is evaluated. */
export function formatSpace(space: SearchSpace, budget: number, divisors: Record<string, number>,
  o: Pick<SearchOptions, 'maxWidthPruning' | 'maxDepthPruning' | 'distillSteps' | 'paramsConvention'>): string {
  const steps = PRUNE_AXES.map((a) => `${SHORT[a]} ${space.choices[a].length} (step ${divisors[a]})`).join(', ');
  return `search: ${fmt(space.enumerated)} architectures within the bounds (width <= ${pct(o.maxWidthPruning)}, depth <= ${pct(o.maxDepthPruning)}; sizes per axis: ${steps}); `
    + (space.notDivisible > 0 ? `${fmt(space.notDivisible)} left out (hidden_size not a multiple of the heads); ` : '')
    + `${fmt(space.withinBudget)} fit ${fmt(budget)} parameters${o.paramsConvention === 'no-lm-head' ? ' (without the lm_head)' : ''}; evaluating the ${space.candidates.length} largest`
    + (o.distillSteps > 0 ? `, each after ${o.distillSteps} distillation step${o.distillSteps === 1 ? '' : 's'}` : '');
}

/** The candidates table (in candidate order, largest first) and the winner. */
export function formatSearch(r: SearchReport, outDir: string): string {
  const head = ['#', 'layers', 'hidden', 'heads', 'intermediate', 'parameters', 'of orig.', 'loss pruned', 'loss distilled', 'rank'];
  const rows = r.candidates.map((c) => [
    String(c.candidate), String(c.sizes.num_hidden_layers), String(c.sizes.hidden_size), String(c.sizes.num_attention_heads),
    String(c.sizes.intermediate_size), fmt(c.params), pct(c.fraction), c.loss_pruned.toFixed(4),
    c.loss_distilled === null ? '-' : c.loss_distilled.toFixed(4) + (c.distill_diverged ? ' (diverged)' : ''),
    c.rank === 1 ? '1 *' : String(c.rank),
  ]);
  const width = head.map((h, j) => Math.max(h.length, ...rows.map((row) => row[j].length)));
  const line = (cells: string[]) => '  ' + cells.map((c, j) => (j === cells.length - 1 ? c : c.padStart(width[j]))).join('  ');
  const w = r.candidates[r.winner - 1];
  const o = r.original;
  return [
    line(head), ...rows.map(line),
    `original: ${PRUNE_AXES.map((a) => `${SHORT[a]} ${o.sizes[a]}`).join(', ')}; ${fmt(o.params)} parameters, loss ${o.loss.toFixed(4)} `
      + `on ${fmt(r.validation.tokens)} validation tokens${r.params_convention === 'no-lm-head' ? ' (parameters counted without the lm_head)' : ''}`,
    `ranked by ${r.ranked_by === 'loss_distilled' ? `the loss after ${r.distill!.steps} distillation steps` : 'the loss right after pruning'}; `
      + `winner: candidate ${w.candidate} (${PRUNE_AXES.map((a) => `${a}=${w.sizes[a]}`).join(',')}), ${fmt(w.params)} parameters`,
    ...r.rounding.notes.map((n) => `note: ${n}`),
    `wrote ${outDir}: ${r.files.join(', ')}${r.distill ? ' (the pruned weights; the distill steps only ranked the candidates)' : ''} in ${formatSeconds(r.seconds)}`,
  ].join('\n');
}

const HELP = `
Enumerates pruned architectures over the four axes, keeps the largest within the budget, prunes
each from the saved scores, measures its next-token loss on the validation split of DATA_DIR
(optionally after a few steps of logit distillation from the original, as the Minitron paper
does), and writes the best one as a Hugging Face folder with search_report.json.

Sizes per axis: the original, and every multiple of the axis's step down to the bound:
  - num_hidden_layers: step 1, at most --max-depth-pruning (20%) of the layers removed;
  - hidden_size, intermediate_size: step --round-to (${DEFAULT_ROUND_TO}, as ModelOpt), at most
    --max-width-pruning (40%) removed; a width with no multiple of --round-to within that bound
    steps by the largest power of two below it that has one (printed as a note);
  - num_attention_heads: multiples of num_key_value_heads (KV heads are never pruned), 40%.
  --divisors hidden_size=256,intermediate_size=512 sets other steps (ModelOpt's current ones).
  Combinations whose hidden_size is not a multiple of num_attention_heads are left out
  (transformers 5 refuses such Llama/Mistral/Qwen2 configs).
--params-convention total (default) counts every tensor, a tied lm_head once; no-lm-head counts
  without an untied lm_head, as the seed's Bielik-11B 11.04B -> 7.35B does.
Candidates: every combination with at most --params parameters, largest first, the first
--top-k (10). DATA_DIR is a folder from \`kompresor data prepare\` made with this model's
tokenizer: its validation split (first --val-tokens tokens, stored order) ranks the candidates,
its train split feeds --distill-steps (the same batches for every candidate).

Examples:
  kompresor search ./Qwen2.5-0.5B --scores s.json --params 0.75 --data ./data --out ./best
  kompresor search ./model --scores s.json --params 350e6 --data ./data --out ./best --top-k 5 --distill-steps 20
See docs/pruning.md.`;

interface SearchFlags {
  scores: string; params: string; data: string; out: string; topK: string; maxWidthPruning: string; maxDepthPruning: string;
  divisors?: string; roundTo: string; paramsConvention: string; depth: string; valTokens: string; seqLen: string; microBatch: string; distillSteps: string; distillLr: string;
  seed: string; report: boolean; json?: boolean;
}

/** SearchOptions from the flags (each value checked with the flag's name in the message). */
export function searchOptions(modelDir: string, f: SearchFlags): SearchOptions {
  const int = (v: string, flag: string, min: number) => parseNumber(v, flag, { min, integer: true });
  return {
    modelDir, scoresPath: f.scores, params: parseParams(f.params), dataDir: f.data, outDir: f.out,
    topK: int(f.topK, '--top-k', 1),
    maxWidthPruning: parseNumber(f.maxWidthPruning, '--max-width-pruning', { min: 0, max: 0.999 }),
    maxDepthPruning: parseNumber(f.maxDepthPruning, '--max-depth-pruning', { min: 0, max: 0.999 }),
    divisors: f.divisors !== undefined ? parseTarget(f.divisors, '--divisors') : undefined,
    roundTo: parseRoundTo(f.roundTo), paramsConvention: parseParamsConvention(f.paramsConvention),
    depth: parseDepth(f.depth),
    valTokens: int(f.valTokens, '--val-tokens', 1), seqLen: int(f.seqLen, '--seq-len', 2), microBatch: int(f.microBatch, '--micro-batch', 1),
    distillSteps: int(f.distillSteps, '--distill-steps', 0), distillLr: parseNumber(f.distillLr, '--distill-lr', { min: 1e-12 }),
    seed: int(f.seed, '--seed', 0), report: f.report,
  };
}

export function registerSearchCommand(program: Command): void {
  const d = SEARCH_CLI_DEFAULTS;
  program.command('search')
    .description('Parameter-budget architecture search: prune the largest candidates within --params, rank them by validation loss, write the best.')
    .argument('<model_dir>', 'a Hugging Face checkpoint folder (config.json + safetensors)')
    .requiredOption('--scores <file>', 'importance scores of this model (written by `kompresor score`)')
    .requiredOption('--params <n>', 'parameter budget: a count (> 1, e.g. 7.35e9) or a fraction of the original (0 < n <= 1)')
    .requiredOption('--data <data_dir>', 'a folder from `kompresor data prepare` (validation split ranks, train split distils)')
    .requiredOption('--out <dir>', 'output folder for the winner (new or empty)')
    .option('--top-k <k>', 'candidates evaluated (the largest within the budget)', String(SEARCH_DEFAULTS.topK))
    .option('--max-width-pruning <p>', 'largest share of hidden_size, heads and intermediate_size removed', String(SEARCH_DEFAULTS.maxWidthPruning))
    .option('--max-depth-pruning <p>', 'largest share of the layers removed', String(SEARCH_DEFAULTS.maxDepthPruning))
    .option('--divisors <axes>', 'size steps replacing the defaults, e.g. "hidden_size=256,intermediate_size=512"')
    .option('--round-to <n>', 'default step of hidden_size and intermediate_size (1: every size)', String(DEFAULT_ROUND_TO))
    .addOption(new Option('--params-convention <c>', 'how --params and the candidates count: total (every tensor) or no-lm-head (without an untied lm_head)')
      .choices(['total', 'no-lm-head']).default('total'))
    .addOption(new Option('--depth <mode>', 'which layers go when num_hidden_layers shrinks').choices(['importance', 'contiguous']).default('importance'))
    .option('--val-tokens <n>', 'validation tokens per candidate (whole batches; fewer if the split is smaller)', String(d.valTokens))
    .option('--seq-len <n>', 'tokens per row (validation and distillation)', String(d.seqLen))
    .option('--micro-batch <n>', 'rows per batch (validation and distillation)', String(d.microBatch))
    .option('--distill-steps <n>', 'logit-distillation steps from the original before measuring (0 = rank right after pruning)', String(d.distillSteps))
    .option('--distill-lr <x>', 'peak learning rate of the distill steps (cosine to a tenth)', String(d.distillLr))
    .option('--seed <n>', 'train-split order of the distill steps', '0')
    .option('--no-report', 'write no report/ folder (charts and tables of the winner\'s pruning) into the output')
    .option('--json', 'print search_report.json on stdout (no table, no progress bar)')
    .addHelpText('after', HELP)
    .action(async (dir: string, f: SearchFlags) => {
      const o = searchOptions(dir, f);
      let bar: Progress | null = null;
      o.onStart = (space, budget, divisors) => {
        if (!f.json) console.log(formatSpace(space, budget, divisors, o));
        bar = progressBar('search', space.candidates.length, 'candidates', 'best loss {best}', { hidden: f.json });
      };
      let best = Infinity;
      o.onCandidate = (done, _total, row) => {
        best = Math.min(best, row.loss_distilled ?? row.loss_pruned);
        bar?.update(done, { best: best.toFixed(4) });
      };
      let report: SearchReport;
      try { report = await search(o); } finally { (bar as Progress | null)?.stop(); }
      console.log(f.json ? JSON.stringify(report) : formatSearch(report, f.out));
    });
}
