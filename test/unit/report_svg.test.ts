// The pruning report: svg_bar (bars on the plot area, scaled from 0, highlighted bars), svg_heatmap
// (one cell per value at its grid position, viridis colours, marked cells, KV-group separators,
// legend), the report folder (figures, report.json numbers, index.html with every SVG inline and
// unique ids, deterministic bytes), and the files `kompresor score` and `kompresor prune` write.
// Every SVG and the HTML page go through the strict checker of test/xml_check.ts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { barChart, barSlot } from '../../src/report/svg_bar.ts';
import { heatmap, viridis, cellSize } from '../../src/report/svg_heatmap.ts';
import { writeScoreReport, writePruneReport, defaultReportDir, inlineSvg, type PruningReportData } from '../../src/report/pruning_report.ts';
import { SCORES_FORMAT, SCORES_VERSION, type ImportanceScores } from '../../src/prune/scores.ts';
import { makePlan, scoredShapeOf } from '../../src/prune/plan.ts';
import { prune } from '../../src/prune/apply.ts';
import { saveScores } from '../../src/prune/scores.ts';
import { openCheckpoint } from '../../src/io/checkpoint.ts';
import type { ModelConfig } from '../../src/io/hf_config.ts';
import { assertWellFormed } from '../xml_check.ts';
import { rng, tempDir } from '../helpers.ts';
import { tinyModelDir } from './score_fixture.ts';

const ROOT = path.join(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/kompresor.mjs');
const tmp = tempDir('kompresor-report-');
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

type El = { name: string; attrs: Record<string, string> };
const num = (e: El, k: string) => Number(e.attrs[k]);
const byClass = (els: El[], cls: string) => els.filter((e) => (e.attrs.class ?? '').split(' ').includes(cls));

// ---------------------------------------------------------------------------------------------
// the CLI runs start first (child processes), the in-process tests run meanwhile

const model = tinyModelDir(path.join(tmp, 'model'), { layers: 4, heads: 4, kvHeads: 2, hidden: 32, intermediate: 48 }).dir;
const calib = path.join(tmp, 'calib.txt');
{
  const r = rng(5), words = ['a', 'report', 'of', 'the', 'layers', 'heads', 'and', 'neurons', '42'];
  fs.writeFileSync(calib, Array.from({ length: 20 }, () => Array.from({ length: 12 }, () => words[Math.floor(r() * words.length)]).join(' ')).join('\n\n'));
}
const cfg: ModelConfig = openCheckpoint(model).config;
const synthetic = syntheticScores(cfg, 11);
saveScores(path.join(tmp, 'synthetic.json'), synthetic);

interface Run { code: number | null; stdout: string; stderr: string }
function kompresor(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
    delete env.NODE_TEST_CONTEXT;
    execFile(process.execPath, [BIN, ...args], { cwd: ROOT, env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}
const score = ['score', model, '--data', calib, '--samples', '2', '--seq-len', '16'];
const runs = {
  score: kompresor(...score, '--out', path.join(tmp, 'cli.json')),
  scoreNoReport: kompresor(...score, '--out', path.join(tmp, 'quiet.json'), '--no-report', '--json'),
  prune: kompresor('prune', model, '--scores', path.join(tmp, 'synthetic.json'), '--out', path.join(tmp, 'pruned'),
    '--target', 'num_hidden_layers=3,num_attention_heads=2,intermediate_size=32'),
  pruneNoReport: kompresor('prune', model, '--scores', path.join(tmp, 'synthetic.json'), '--out', path.join(tmp, 'pruned_quiet'),
    '--target', 'num_hidden_layers=3', '--no-report', '--json'),
};

function syntheticScores(c: ModelConfig, seed: number): ImportanceScores {
  const r = rng(seed);
  const vec = (n: number) => Array.from({ length: n }, () => Math.round(r() * 1000) / 1000 + 0.001);
  return {
    format: SCORES_FORMAT, version: SCORES_VERSION, model: scoredShapeOf(c),
    calibration: { files: ['synthetic'], samples: 2, seq_len: 16, tokens: 32, mode: 'memory', seconds: 0.5 },
    hidden: vec(c.hiddenSize), heads: Array.from({ length: c.numLayers }, () => vec(c.numHeads)),
    mlp: Array.from({ length: c.numLayers }, () => vec(c.intermediateSize)), layers: vec(c.numLayers),
    layers_loss: vec(c.numLayers).map((x) => x - 0.5),
  };
}

// ---------------------------------------------------------------------------------------------
// svg_bar

test('barChart: one bar per value, scaled from 0 on the plot area, highlighted bars marked, legend only when asked', () => {
  const values = [2, 5, 10, 0, 7.5];
  const svg = barChart({ title: 'BI <per> layer', xLabel: 'layer', yLabel: 'BI', yDomain: [0, 10],
    bars: values.map((v, i) => ({ label: String(i), value: v, highlight: i === 1 || i === 3 })), legend: ['kept', 'dropped'] });
  const els = assertWellFormed(svg);
  const area = byClass(els, 'plot-area')[0];
  const [x, y, w, h] = ['x', 'y', 'width', 'height'].map((k) => num(area, k));
  const bars = byClass(els, 'bar');
  assert.equal(bars.length, 5);
  bars.forEach((b, i) => {
    assert.equal(num(b, 'data-index'), i);
    assert.ok(Math.abs(num(b, 'height') - (h * values[i]) / 10) < 0.01, `bar ${i} height`);
    assert.ok(Math.abs(num(b, 'y') + num(b, 'height') - (y + h)) < 0.01, `bar ${i} stands on y = 0`);
    const slot = barSlot(i, 5, { x, y, width: w, height: h });
    assert.ok(Math.abs(num(b, 'x') - slot.x) < 0.01 && Math.abs(num(b, 'width') - (w / 5) * 0.8) < 0.01);
  });
  assert.deepEqual(byClass(els, 'highlight').map((b) => num(b, 'data-index')), [1, 3]);
  assert.notEqual(bars[1].attrs.fill, bars[0].attrs.fill);
  assert.equal(byClass(els, 'legend').length, 1);
  assert.match(svg, />kept<\/text>/);
  assert.match(svg, /BI &lt;per&gt; layer/);
  const plain = assertWellFormed(barChart({ title: 't', xLabel: 'x', yLabel: 'y', bars: [{ label: '0', value: 1 }] }));
  assert.equal(byClass(plain, 'legend').length, 0);
});

test('barChart: negative values hang below the baseline; many bars get thinned labels; empty and NaN are valid', () => {
  const els = assertWellFormed(barChart({ title: 't', xLabel: 'x', yLabel: 'y', yDomain: [-1, 1],
    bars: [{ label: 'a', value: -0.5 }, { label: 'b', value: 1 }] }));
  const base = byClass(els, 'baseline')[0], area = byClass(els, 'plot-area')[0];
  const y0 = num(base, 'y1');
  assert.equal(y0, num(area, 'y') + num(area, 'height') / 2);
  const [neg, pos] = byClass(els, 'bar');
  assert.equal(num(neg, 'y'), y0);                                  // starts at 0, goes down
  assert.ok(Math.abs(num(neg, 'height') - num(area, 'height') / 4) < 0.01);
  assert.ok(Math.abs(num(pos, 'y') + num(pos, 'height') - y0) < 0.01);
  const many = assertWellFormed(barChart({ title: 't', xLabel: 'x', yLabel: 'y', bars: Array.from({ length: 80 }, (_, i) => ({ label: String(i), value: i })) }));
  assert.equal(byClass(many, 'bar').length, 80);
  assert.ok(byClass(many, 'x-tick').length <= 32);
  assert.doesNotThrow(() => assertWellFormed(barChart({ title: 'e', xLabel: 'x', yLabel: 'y', bars: [] })));
  const nan = barChart({ title: 'n', xLabel: 'x', yLabel: 'y', bars: [{ label: '0', value: NaN }, { label: '1', value: 2 }] });
  assert.equal(num(byClass(assertWellFormed(nan), 'bar')[0], 'height'), 0);
});

// ---------------------------------------------------------------------------------------------
// svg_heatmap

test('heatmap: one cell per value at its grid position, viridis from min to max, marked cells crossed, group lines', () => {
  const values = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]];
  const marked = values.map((row, r) => row.map((_, c) => r === 2 || (r === 0 && c === 1)));
  const svg = heatmap({ title: 'heads & layers', rowLabel: 'layer', colLabel: 'head', values, marked, colGroup: 2, valueLabel: 'score' });
  const els = assertWellFormed(svg);
  const cells = byClass(els, 'cell');
  assert.equal(cells.length, 12);
  const { w, h } = cellSize(3, 4);
  const x0 = num(cells[0], 'x'), y0 = num(cells[0], 'y');
  for (const c of cells) {
    const r = num(c, 'data-row'), k = num(c, 'data-col');
    assert.equal(num(c, 'data-value'), values[r][k]);
    assert.equal(num(c, 'x'), x0 + k * w);
    assert.equal(num(c, 'y'), y0 + r * h);
    assert.equal(c.attrs.fill, viridis(values[r][k] / 11));
  }
  assert.equal(cells[0].attrs.fill, '#440154');
  assert.equal(cells[11].attrs.fill, '#fde725');
  assert.equal(byClass(els, 'mark').length, 5);
  assert.equal(byClass(els, 'group').length, 1, 'one separator between the two groups of two columns');
  assert.equal(byClass(els, 'mark-legend').length, 1);
  assert.match(svg, /<title>layer 0, head 1: 1\.000 \(pruned\)<\/title>/);
  assert.match(svg, /heads &amp; layers/);
  assert.ok(byClass(els, 'legend-tick').length >= 3, 'the colour scale has ticks');
  const plain = assertWellFormed(heatmap({ title: 't', rowLabel: 'r', colLabel: 'c', values: [[1, 1]], valueLabel: 'v' }));
  assert.equal(byClass(plain, 'mark').length + byClass(plain, 'mark-legend').length, 0);
});

test('viridis: the ends and the middle of the scale, clamped outside [0, 1]', () => {
  assert.equal(viridis(0), '#440154');
  assert.equal(viridis(0.5), '#21918c');
  assert.equal(viridis(1), '#fde725');
  assert.equal(viridis(-3), '#440154');
  assert.equal(viridis(7), '#fde725');
  assert.equal(viridis(NaN), '#440154');
});

// ---------------------------------------------------------------------------------------------
// the report folder

function pruneSynthetic(out: string) {
  const plan = makePlan(cfg, { target: { num_hidden_layers: 3, num_attention_heads: 2, intermediate_size: 32, hidden_size: 24 } });
  return prune(model, plan, synthetic, out);
}

test('writePruneReport: figures, report.json numbers, pruned items marked, index.html inlines every figure with unique ids', () => {
  const pr = pruneSynthetic(path.join(tmp, 'lib_pruned'));
  const dir = path.join(tmp, 'lib_report');
  const files = writePruneReport(dir, synthetic, pr, { title: 'Pruning tiny', links: [{ label: 'prune_report.json', href: '../prune_report.json' }] });
  assert.deepEqual(files, ['layers.svg', 'layers_loss.svg', 'heads.svg', 'mlp.svg', 'hidden.svg', 'report.json', 'index.html']);
  const droppedLayer = pr.axes.num_hidden_layers.dropped;
  assert.equal(droppedLayer.length, 1);

  const layers = assertWellFormed(fs.readFileSync(path.join(dir, 'layers.svg'), 'utf8'));
  assert.deepEqual(byClass(layers, 'highlight').map((b) => num(b, 'data-index')), droppedLayer);
  const heads = assertWellFormed(fs.readFileSync(path.join(dir, 'heads.svg'), 'utf8'));
  assert.equal(byClass(heads, 'cell').length, 4 * 4);
  const marks = byClass(heads, 'mark').length;
  assert.equal(marks, 4 + 3 * 2, 'all 4 heads of the dropped layer, 2 in each kept layer');
  for (const f of ['mlp.svg', 'hidden.svg', 'layers_loss.svg']) {
    const svg = fs.readFileSync(path.join(dir, f), 'utf8');
    assertWellFormed(svg);
    if (f !== 'layers_loss.svg') assert.match(svg, f === 'mlp.svg' ? /keep 32 of 48/ : /keep 24 of 32/);
  }

  const data: PruningReportData = JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8'));
  assert.equal(data.kind, 'prune');
  assert.deepEqual(data.layers.filter((l) => l.dropped).map((l) => l.layer), droppedLayer);
  assert.deepEqual(data.plan!.params, pr.params);
  const ax = data.axes!;
  assert.equal(ax.hidden_size.dropped, 8);
  const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0);
  assert.ok(Math.abs(ax.hidden_size.importance_kept - sum(pr.axes.hidden_size.kept.map((c) => synthetic.hidden[c])) / sum(synthetic.hidden)) < 1e-12);
  ax.num_attention_heads.per_layer.forEach((r, i) => {
    assert.equal(r.layer, pr.axes.num_hidden_layers.kept[i]);
    assert.deepEqual(r.dropped_heads, pr.axes.num_attention_heads.dropped[i]);
    const s = synthetic.heads[r.layer];
    assert.ok(Math.abs(r.importance_kept - sum(pr.axes.num_attention_heads.kept[i].map((h) => s[h])) / sum(s)) < 1e-12);
  });
  assert.deepEqual(ax.intermediate_size.per_layer.map((r) => [r.kept, r.dropped]), [[32, 16], [32, 16], [32, 16]]);

  const html = fs.readFileSync(path.join(dir, 'index.html'), 'utf8');
  const page = assertWellFormed(html);
  assert.equal(page.filter((e) => e.name === 'svg').length, 5);
  const ids = page.map((e) => e.attrs.id).filter(Boolean);
  assert.equal(new Set(ids).size, ids.length, 'ids are unique on the page');
  for (const m of html.matchAll(/url\(#([^)]+)\)/g)) assert.ok(ids.includes(m[1]), `url(#${m[1]}) points at an id`);
  assert.equal(page.filter((e) => e.name === 'table').length, 4, 'parameters, axes, heads and MLP tables');
  assert.match(html, /<td class="l">total<\/td><td>[\d,]+<\/td><td>[\d,]+<\/td>/);
  assert.match(html, /href="\.\.\/prune_report\.json"/);
  assert.doesNotMatch(html, new RegExp(tmp.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'no absolute paths');

  const again = path.join(tmp, 'lib_report_again');
  writePruneReport(again, synthetic, pruneSynthetic(path.join(tmp, 'lib_pruned_again')), { title: 'Pruning tiny', links: [{ label: 'prune_report.json', href: '../prune_report.json' }] });
  for (const f of files) assert.ok(fs.readFileSync(path.join(dir, f)).equals(fs.readFileSync(path.join(again, f))), `${f} is byte-identical`);
});

test('writeScoreReport: no plan, nothing marked; defaultReportDir; inlineSvg prefixes ids', () => {
  const { layers_loss: _, ...noLoss } = synthetic;
  const dir = path.join(tmp, 'score_report');
  const files = writeScoreReport(dir, noLoss, { title: 'Scores' });
  assert.deepEqual(files, ['layers.svg', 'heads.svg', 'mlp.svg', 'hidden.svg', 'report.json', 'index.html']);
  const layers = assertWellFormed(fs.readFileSync(path.join(dir, 'layers.svg'), 'utf8'));
  assert.equal(byClass(layers, 'bar').length, 4);
  assert.equal(byClass(layers, 'highlight').length + byClass(layers, 'legend').length, 0);
  const heads = fs.readFileSync(path.join(dir, 'heads.svg'), 'utf8');
  assert.equal(byClass(assertWellFormed(heads), 'mark').length, 0);
  const data: PruningReportData = JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8'));
  assert.equal(data.kind, 'score');
  assert.equal(data.axes, undefined);
  assert.equal(assertWellFormed(fs.readFileSync(path.join(dir, 'index.html'), 'utf8')).filter((e) => e.name === 'table').length, 0);
  assert.equal(defaultReportDir('out/bi.json'), 'out/bi.report');
  assert.equal(defaultReportDir('scores'), 'scores.report');
  assert.equal(inlineSvg('<?xml version="1.0"?>\n<svg><defs><g id="a"/></defs><rect fill="url(#a)"/></svg>\n', 'p'),
    '<svg><defs><g id="p-a"/></defs><rect fill="url(#p-a)"/></svg>');
});

// ---------------------------------------------------------------------------------------------
// the CLI

test('kompresor score writes SCORES.report/ beside the scores; --no-report writes none', async () => {
  const r = await runs.score;
  assert.equal(r.code, 0, r.stderr);
  const dir = path.join(tmp, 'cli.report');
  assert.match(r.stdout, new RegExp(`^report ${path.join(dir, 'index.html').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
  assert.deepEqual(fs.readdirSync(dir).sort(), ['heads.svg', 'hidden.svg', 'index.html', 'layers.svg', 'mlp.svg', 'report.json']);
  for (const f of ['heads.svg', 'layers.svg', 'index.html']) assertWellFormed(fs.readFileSync(path.join(dir, f), 'utf8'));
  assert.match(fs.readFileSync(path.join(dir, 'index.html'), 'utf8'), /href="\.\.\/cli\.json"/);
  const q = await runs.scoreNoReport;
  assert.equal(q.code, 0, q.stderr);
  assert.equal(JSON.parse(q.stdout).report, null);
  assert.ok(!fs.existsSync(path.join(tmp, 'quiet.report')));
});

test('kompresor prune writes OUT_DIR/report/ with the pruned heads marked; --no-report writes none', async () => {
  const r = await runs.prune;
  assert.equal(r.code, 0, r.stderr);
  const dir = path.join(tmp, 'pruned', 'report');
  assert.match(r.stdout, /^report .*pruned\/report\/index\.html$/m);
  const heads = assertWellFormed(fs.readFileSync(path.join(dir, 'heads.svg'), 'utf8'));
  assert.equal(byClass(heads, 'mark').length, 4 + 3 * 2);
  const layers = assertWellFormed(fs.readFileSync(path.join(dir, 'layers.svg'), 'utf8'));
  assert.equal(byClass(layers, 'highlight').length, 1);
  assertWellFormed(fs.readFileSync(path.join(dir, 'index.html'), 'utf8'));
  const q = await runs.pruneNoReport;
  assert.equal(q.code, 0, q.stderr);
  assert.ok(!fs.existsSync(path.join(tmp, 'pruned_quiet', 'report')));
  assert.ok(fs.existsSync(path.join(tmp, 'pruned_quiet', 'prune_report.json')));
});
