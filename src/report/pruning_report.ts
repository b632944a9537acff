// The readable report of `kompresor score` and `kompresor prune`: a folder with
//   layers.svg       Block Importance per layer (bars; the layers a plan drops highlighted)
//   layers_loss.svg  LM-loss increase per skipped layer (only when the scores have layers_loss)
//   heads.svg        head importance, layers × heads, each layer divided by its largest head
//                    (heads are ranked within their layer's KV groups); pruned heads crossed out
//   mlp.svg          MLP neuron importance sorted per layer (up to 8 layers), kept/dropped threshold
//   hidden.svg       hidden-channel importance sorted, kept/dropped threshold
//   report.json      the numbers behind the tables (format kompresor-pruning-report v1)
//   index.html       all of it on one page: the SVGs inline, tables of kept/dropped per axis,
//                    parameters before/after
// Everything is derived from the scores file and, for prune, prune_report.json: no timestamps or
// absolute paths, so the same inputs write byte-identical reports.
import fs from 'node:fs';
import nodePath from 'node:path';
import { KompresorError } from '../errors.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import type { ParamCount } from '../io/hf_config.ts';
import { argsortDesc, type CalibrationInfo, type ImportanceScores, type ScoredShape } from '../prune/scores.ts';
import type { PruneReport } from '../prune/apply.ts';
import { barChart } from './svg_bar.ts';
import { heatmap } from './svg_heatmap.ts';
import { linePlot, downsample, niceAxis, esc, type Series } from './svg_plot.ts';

export const PRUNING_REPORT_FORMAT = 'kompresor-pruning-report';

/** Layers drawn in mlp.svg at most (evenly spaced, first and last included). */
const MLP_CURVES = 8;
/** Points per sorted-importance curve. */
const CURVE_POINTS = 400;

export interface ReportLink { label: string; href: string }

export interface ReportOptions {
  /** The page title, e.g. "Importance scores of SmolLM2-135M". */
  title: string;
  /** Related files, relative to the report folder (the scores file, prune_report.json). */
  links?: ReportLink[];
}

interface LayerRow { layer: number; block_importance: number; loss_increase?: number; dropped?: boolean; new_layer?: number }
interface PerLayerKept { layer: number; new_layer: number; kept: number; dropped: number; importance_kept: number }

/** report.json. `plan` and `axes` only for a prune report. */
export interface PruningReportData {
  format: typeof PRUNING_REPORT_FORMAT;
  version: 1;
  kind: 'score' | 'prune';
  title: string;
  model: ScoredShape;
  calibration: CalibrationInfo;
  layers: LayerRow[];
  plan?: {
    depth: string; chosen_by: string; params_budget: number | null; params_convention: PruneReport['params_convention'];
    params: { before: ParamCount; after: ParamCount }; rounding: PruneReport['rounding'];
  };
  /** Per axis: sizes, and the share of the summed importance scores that the kept entries hold. */
  axes?: {
    num_hidden_layers: { before: number; after: number; kept: number[]; dropped: number[]; importance_kept: number };
    hidden_size: { before: number; after: number; dropped: number; importance_kept: number };
    num_attention_heads: { before: number; after: number; num_key_value_heads: number; per_layer: (PerLayerKept & { dropped_heads: number[] })[] };
    intermediate_size: { before: number; after: number; per_layer: PerLayerKept[] };
  };
  figures: string[];
}

// ---------------------------------------------------------------------------------------------
// entry points

/** Writes the report of a scores file into `dir`; returns the files written (names within dir). */
export function writeScoreReport(dir: string, scores: ImportanceScores, o: ReportOptions): string[] {
  return writeReport(dir, reportData(scores, null, o.title), scores, null, o);
}

/** Writes the report of a pruning run (its scores and prune_report.json) into `dir`. */
export function writePruneReport(dir: string, scores: ImportanceScores, pruned: PruneReport, o: ReportOptions): string[] {
  return writeReport(dir, reportData(scores, pruned, o.title), scores, pruned, o);
}

function writeReport(dir: string, data: PruningReportData, scores: ImportanceScores, pruned: PruneReport | null, o: ReportOptions): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const svgs = figures(scores, pruned);
  data.figures = [...svgs.keys()];
  for (const [name, svg] of svgs) writeFileAtomic(nodePath.join(dir, name), svg);
  writeFileAtomic(nodePath.join(dir, 'report.json'), JSON.stringify(data, null, 1) + '\n');
  writeFileAtomic(nodePath.join(dir, 'index.html'), renderHtml(data, svgs, o.links ?? []));
  return [...svgs.keys(), 'report.json', 'index.html'];
}

// ---------------------------------------------------------------------------------------------
// the numbers

/** Original layer index -> the heads a plan drops there (all of them for a dropped layer). */
function droppedHeads(scores: ImportanceScores, pruned: PruneReport): Map<number, number[]> {
  const nH = scores.model.num_attention_heads, out = new Map<number, number[]>();
  for (const l of pruned.axes.num_hidden_layers.dropped) out.set(l, Array.from({ length: nH }, (_, h) => h));
  pruned.axes.num_hidden_layers.kept.forEach((l, i) => out.set(l, pruned.axes.num_attention_heads.dropped[i]));
  return out;
}

/** Σ scores[kept] / Σ scores (1 when the scores sum to 0). */
function shareKept(scores: readonly number[], kept: readonly number[]): number {
  const total = scores.reduce((s, x) => s + x, 0);
  return total > 0 ? kept.reduce((s, i) => s + scores[i], 0) / total : 1;
}

function reportData(scores: ImportanceScores, pruned: PruneReport | null, title: string): PruningReportData {
  const keptAt = new Map(pruned?.axes.num_hidden_layers.kept.map((l, i) => [l, i]) ?? []);
  const layers: LayerRow[] = scores.layers.map((bi, l) => ({
    layer: l, block_importance: bi,
    ...(scores.layers_loss ? { loss_increase: scores.layers_loss[l] } : {}),
    ...(pruned ? { dropped: !keptAt.has(l), ...(keptAt.has(l) ? { new_layer: keptAt.get(l)! } : {}) } : {}),
  }));
  const data: PruningReportData = {
    format: PRUNING_REPORT_FORMAT, version: 1, kind: pruned ? 'prune' : 'score', title,
    model: scores.model, calibration: scores.calibration, layers, figures: [],
  };
  if (!pruned) return data;
  const ax = pruned.axes, keptLayers = ax.num_hidden_layers.kept;
  data.plan = { depth: pruned.depth, chosen_by: pruned.chosen_by, params_budget: pruned.params_budget, params_convention: pruned.params_convention,
    params: pruned.params, rounding: pruned.rounding };
  data.axes = {
    num_hidden_layers: { ...ax.num_hidden_layers, importance_kept: shareKept(scores.layers, keptLayers) },
    hidden_size: { before: ax.hidden_size.before, after: ax.hidden_size.after, dropped: ax.hidden_size.dropped.length,
      importance_kept: shareKept(scores.hidden, ax.hidden_size.kept) },
    num_attention_heads: { before: ax.num_attention_heads.before, after: ax.num_attention_heads.after,
      num_key_value_heads: ax.num_attention_heads.num_key_value_heads,
      per_layer: keptLayers.map((l, i) => ({ layer: l, new_layer: i, kept: ax.num_attention_heads.kept[i].length,
        dropped: ax.num_attention_heads.dropped[i].length, importance_kept: shareKept(scores.heads[l], ax.num_attention_heads.kept[i]),
        dropped_heads: ax.num_attention_heads.dropped[i] })) },
    intermediate_size: { before: ax.intermediate_size.before, after: ax.intermediate_size.after,
      per_layer: keptLayers.map((l, i) => ({ layer: l, new_layer: i, kept: ax.intermediate_size.kept[i].length,
        dropped: ax.intermediate_size.dropped[i].length, importance_kept: shareKept(scores.mlp[l], ax.intermediate_size.kept[i]) })) },
  };
  return data;
}

// ---------------------------------------------------------------------------------------------
// the figures

function figures(scores: ImportanceScores, pruned: PruneReport | null): Map<string, string> {
  const m = scores.model;
  const dropped = new Set(pruned?.axes.num_hidden_layers.dropped ?? []);
  const legend: [string, string] | undefined = pruned ? ['kept', 'dropped'] : undefined;
  const out = new Map<string, string>();
  out.set('layers.svg', barChart({
    title: 'Block Importance per layer (1 − cos(input, output), summed over rows)', xLabel: 'layer', yLabel: 'Block Importance',
    bars: scores.layers.map((v, l) => ({ label: String(l), value: v, highlight: dropped.has(l) })), legend,
  }));
  if (scores.layers_loss) {
    out.set('layers_loss.svg', barChart({
      title: 'LM-loss increase when the layer is skipped', xLabel: 'layer', yLabel: 'Δ loss (nats)',
      bars: scores.layers_loss.map((v, l) => ({ label: String(l), value: v, highlight: dropped.has(l) })), legend,
    }));
  }
  const heads = pruned ? droppedHeads(scores, pruned) : null;
  out.set('heads.svg', heatmap({
    title: 'Attention head importance (÷ the layer\'s largest)', rowLabel: 'layer', colLabel: 'head',
    values: scores.heads.map((row) => { const top = Math.max(...row); return row.map((v) => (top > 0 ? v / top : 0)); }),
    marked: heads ? scores.heads.map((row, l) => { const d = new Set(heads.get(l)); return row.map((_, h) => d.has(h)); }) : undefined,
    colGroup: m.num_attention_heads / m.num_key_value_heads, valueLabel: 'relative', markedLabel: 'pruned',
  }));
  out.set('mlp.svg', linePlot({
    title: 'MLP neuron importance per layer, sorted (÷ the layer\'s largest)', xLabel: 'neuron rank', yLabel: 'relative importance',
    series: [...mlpCurves(scores, dropped), ...threshold(pruned?.axes.intermediate_size.after, m.intermediate_size, [0, 1])],
    yDomain: [0, 1],
  }));
  const hiddenSorted = sortedDesc(scores.hidden);
  const hiddenY = niceAxis([0, hiddenSorted[0], hiddenSorted[hiddenSorted.length - 1]]).domain;
  out.set('hidden.svg', linePlot({
    title: 'Hidden-channel importance, sorted', xLabel: 'channel rank', yLabel: 'importance',
    series: [{ name: 'hidden channels', points: downsample(hiddenSorted.map((v, i) => [i, v]), CURVE_POINTS) },
      ...threshold(pruned?.axes.hidden_size.after, m.hidden_size, hiddenY)],
    yDomain: hiddenY,
  }));
  return out;
}

function sortedDesc(v: readonly number[]): number[] {
  return argsortDesc(v).map((i) => v[i]);
}

/** Up to MLP_CURVES evenly spaced layers, each sorted and divided by its largest score. */
function mlpCurves(scores: ImportanceScores, dropped: Set<number>): Series[] {
  const L = scores.mlp.length;
  const layers = L <= MLP_CURVES ? scores.mlp.map((_, l) => l)
    : [...new Set(Array.from({ length: MLP_CURVES }, (_, i) => Math.round((i * (L - 1)) / (MLP_CURVES - 1))))];
  return layers.map((l) => {
    const s = sortedDesc(scores.mlp[l]), top = s[0] > 0 ? s[0] : 1;
    return {
      name: `layer ${l}${dropped.has(l) ? ' (dropped)' : ''}`, dashed: dropped.has(l),
      points: downsample(s.map((v, i) => [i, v / top] as [number, number]), CURVE_POINTS),
    };
  });
}

/** The kept/dropped boundary as a vertical line at rank `kept`, when the axis shrinks. */
function threshold(kept: number | undefined, total: number, y: [number, number]): Series[] {
  if (kept === undefined || kept >= total) return [];
  // dark red: no layer curve has it (the palette's black is a curve's colour)
  return [{ name: `keep ${kept} of ${total}`, points: [[kept, y[0]], [kept, y[1]]], color: '#b2182b' }];
}

// ---------------------------------------------------------------------------------------------
// index.html

const CSS = `body{font-family:sans-serif;max-width:1000px;margin:24px auto;padding:0 16px;color:#222}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}figure{margin:8px 0 24px}svg{max-width:100%;height:auto}
.muted{color:#777}`;

const fmtInt = (n: number) => n.toLocaleString('en-US');
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

function table(head: string[], rows: (string | number)[][], leftCols = 1): string {
  const cell = (tag: string, v: string | number, i: number) => `<${tag}${i < leftCols ? ' class="l"' : ''}>${esc(String(v))}</${tag}>`;
  return `<table><tr>${head.map((h, i) => cell('th', h, i)).join('')}</tr>\n`
    + rows.map((r) => `<tr>${r.map((v, i) => cell('td', v, i)).join('')}</tr>`).join('\n') + '</table>';
}

/** A list of indices, shortened past `max` entries (the JSON files hold them all). */
function indexList(xs: readonly number[], max = 24): string {
  if (xs.length === 0) return '—';
  return xs.length <= max ? xs.join(', ') : `${xs.slice(0, max).join(', ')}, … (${xs.length} in all)`;
}

/** An SVG document as an inline element: no XML declaration, ids prefixed so figures cannot clash. */
export function inlineSvg(svg: string, prefix: string): string {
  return svg.replace(/^<\?xml[^?]*\?>\s*/, '')
    .replace(/\bid="([^"]+)"/g, `id="${prefix}-$1"`)
    .replace(/url\(#([^)]+)\)/g, `url(#${prefix}-$1)`)
    .trimEnd();
}

function renderHtml(d: PruningReportData, svgs: Map<string, string>, links: ReportLink[]): string {
  const m = d.model, c = d.calibration;
  const fig = (name: string) => (svgs.has(name)
    ? `<figure>${inlineSvg(svgs.get(name)!, name.replace(/\.svg$/, ''))}<figcaption class="muted">${esc(name)}</figcaption></figure>` : '');
  const byBi = [...d.layers].sort((a, b) => b.block_importance - a.block_importance || a.layer - b.layer);
  const parts = [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8"/>',
    `<title>${esc(d.title)}</title><style>${CSS}</style></head><body>`,
    `<h1>${esc(d.title)}</h1>`,
    `<p>${esc(m.architecture)}: ${m.num_hidden_layers} layers, hidden ${m.hidden_size}, ${m.num_attention_heads} heads `
      + `(${m.num_key_value_heads} KV, head_dim ${m.head_dim}), MLP ${m.intermediate_size}, vocab ${m.vocab_size}`
      + `${m.tie_word_embeddings ? ', tied embeddings' : ''}. Scored on ${fmtInt(c.tokens)} tokens `
      + `(${c.samples} × ${c.seq_len}, ${c.mode === 'stream' ? 'layer by layer' : 'in memory'}, ${c.seconds.toFixed(1)} s).</p>`,
  ];
  if (d.plan && d.axes) parts.push(...planSection(d));
  parts.push(
    '<h2>Layers</h2>',
    `<p>By Block Importance, most important first: ${esc(byBi.map((r) => r.layer).join(', '))}.</p>`,
    fig('layers.svg'), fig('layers_loss.svg'),
    '<h2>Attention heads</h2>',
    `<p>Scores are ranked within each KV group (white lines separate the groups of ${m.num_attention_heads / m.num_key_value_heads} query heads)`
      + `${d.axes ? '; crossed-out cells are pruned (all heads of a dropped layer).' : '.'}</p>`,
    fig('heads.svg'),
    ...(d.axes ? [table(['layer', 'new layer', 'heads kept', 'heads dropped', 'dropped heads', 'score kept'],
      d.axes.num_attention_heads.per_layer.map((r) => [r.layer, r.new_layer, r.kept, r.dropped, indexList(r.dropped_heads), pct(r.importance_kept)]))] : []),
    '<h2>MLP neurons</h2>', fig('mlp.svg'),
    ...(d.axes ? [table(['layer', 'new layer', 'neurons kept', 'neurons dropped', 'score kept'],
      d.axes.intermediate_size.per_layer.map((r) => [r.layer, r.new_layer, fmtInt(r.kept), fmtInt(r.dropped), pct(r.importance_kept)]))] : []),
    '<h2>Hidden channels</h2>', fig('hidden.svg'),
    `<p class="muted">Data: ${[{ label: 'report.json', href: 'report.json' }, ...links].map((l) => `<a href="${esc(l.href)}">${esc(l.label)}</a>`).join(', ')}.</p>`,
    '</body></html>',
  );
  return parts.filter((p) => p !== '').join('\n') + '\n';
}

function planSection(d: PruningReportData): string[] {
  const p = d.plan!, ax = d.axes!;
  const b = p.params.before, a = p.params.after;
  const row = (name: string, x: number, y: number) => [name, fmtInt(x), fmtInt(y), x > 0 ? pct(y / x) : '—'];
  const heads = ax.num_attention_heads.per_layer, mlp = ax.intermediate_size.per_layer;
  const mean = (xs: number[]) => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : 1);
  return [
    '<h2>Parameters</h2>',
    table(['component', 'before', 'after', 'after / before'], [
      row('embeddings', b.embeddings, a.embeddings), row('attention', b.attention, a.attention), row('MLP', b.mlp, a.mlp),
      row('norms', b.norms, a.norms), row('lm_head (untied)', b.lmHead, a.lmHead), row('total', b.total, a.total),
      row('total without lm_head', b.total - b.lmHead, a.total - a.lmHead),
    ]),
    `<p>Sizes chosen by ${p.chosen_by === 'params' ? `the --params policy (budget ${fmtInt(p.params_budget ?? 0)}, counted as `
      + `${p.params_convention === 'total' ? 'the total' : 'the total without the lm_head'})` : '--target'}; depth mode ${esc(p.depth)}.</p>`,
    ...roundingSection(p.rounding),
    '<h2>Kept and dropped per axis</h2>',
    table(['axis', 'before', 'after', 'dropped', 'score kept'], [
      ['num_hidden_layers', ax.num_hidden_layers.before, ax.num_hidden_layers.after, indexList(ax.num_hidden_layers.dropped), pct(ax.num_hidden_layers.importance_kept)],
      ['hidden_size', ax.hidden_size.before, ax.hidden_size.after, fmtInt(ax.hidden_size.dropped), pct(ax.hidden_size.importance_kept)],
      ['num_attention_heads', ax.num_attention_heads.before, ax.num_attention_heads.after,
        `${ax.num_attention_heads.before - ax.num_attention_heads.after} per kept layer`, `${pct(mean(heads.map((r) => r.importance_kept)))} (mean)`],
      ['intermediate_size', ax.intermediate_size.before, ax.intermediate_size.after,
        `${fmtInt(ax.intermediate_size.before - ax.intermediate_size.after)} per kept layer`, `${pct(mean(mlp.map((r) => r.importance_kept)))} (mean)`],
    ]),
    '<p class="muted">"score kept": the share of the summed importance scores that the kept entries hold '
      + '(layers: Block Importance; heads and MLP: per kept layer). Kept indices in full: prune_report.json.</p>',
  ];
}

/** The rounding of the widths: multiples, the unrounded choice and its cost, and the notes. */
function roundingSection(r: PruneReport['rounding']): string[] {
  const out: string[] = [];
  if (r.steps.length > 0) {
    out.push(`<p>Rounding (--round-to ${r.round_to}): ${esc(r.steps.map((s) => `${s.axis} to multiples of ${s.multiple}${s.fallback ? ' (fallback)' : ''}`).join(', '))}.`
      + (r.unrounded ? ` Unrounded, the policy would keep ${esc(Object.entries(r.unrounded.sizes).map(([k, v]) => `${k}=${v}`).join(', '))}: `
        + `${fmtInt(r.unrounded.params)} parameters; rounding cost ${fmtInt(r.cost)}.` : '') + '</p>');
  }
  if (r.notes.length > 0) out.push(`<ul>${r.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// where reports go

/** `kompresor score`'s default report folder: the scores path without .json, plus .report. */
export function defaultReportDir(scoresPath: string): string {
  return scoresPath.replace(/\.json$/i, '') + '.report';
}

/** Refuses a report path that exists and is not a folder (checked before any work). */
export function checkReportDir(dir: string, flag = '--report'): void {
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) {
    throw new KompresorError({ code: 'input_invalid', where: `${flag} ${dir}`, rule: 'the report goes into a folder',
      found: 'a file', hint: 'name a new or existing folder, or pass --no-report' });
  }
}
