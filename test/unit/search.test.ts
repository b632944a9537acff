// The parameter-budget search (src/prune/search.ts, cli/search_command.ts): the candidate list of
// a small case worked out by hand (bounds, divisors, budget, order, top-k), the default divisors,
// ranking by loss, the winner written as the very checkpoint `prune --target` writes and loadable,
// the distill steps, and the refusals (an unreachable budget names the smallest count reachable).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { normalizeConfig, paramCount, type ModelConfig } from '../../src/io/hf_config.ts';
import { openCheckpoint } from '../../src/io/checkpoint.ts';
import { loadModel } from '../../src/model/load.ts';
import { prepareData } from '../../src/data/prepare.ts';
import { openPackedData } from '../../src/data/packed_source.ts';
import { SCORES_FORMAT, SCORES_VERSION, saveScores, type ImportanceScores } from '../../src/prune/scores.ts';
import { makePlan, scoredShapeOf, sizesOf, type AxisSizes } from '../../src/prune/plan.ts';
import { prune } from '../../src/prune/apply.ts';
import {
  axisChoices, defaultDivisor, divisorsFor, rankByLoss, search, searchSpace, validationLoss,
  SEARCH_REPORT_FILE, type SearchOptions, type SearchReport,
} from '../../src/prune/search.ts';
import { rng, throwsWith, tempDir } from '../helpers.ts';
import { tinyModelDir } from './score_fixture.ts';

const ROOT = path.join(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/kompresor.mjs');
const tmp = tempDir('kompresor-search-');
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const at = (...p: string[]) => path.join(tmp, ...p);

const sizes = (L: number, H: number, nH: number, F: number): AxisSizes =>
  ({ num_hidden_layers: L, hidden_size: H, num_attention_heads: nH, intermediate_size: F });

// ---------------------------------------------------------------------------------------------
// the search space, by hand

// L 5, H 64, 4 heads in 2 KV groups of head_dim 16, F 96, vocabulary 100, tied, no biases:
//   params = V·H + L·(2·H·q + 2·H·kv + 3·H·F + 2·H) + H,   q = 16·heads, kv = 32
// With width <= 50%, depth <= 20% and steps layers 1, hidden 16, heads 2, MLP 32 the sizes are
//   layers {5, 4} (>= 4), hidden {64, 48, 32} (>= 32), heads {4, 2} (>= 2), MLP {96, 64} (>= 48):
// 24 candidates, the original (160,704) the largest and (4, 32, 2, 64) = 44,448 the smallest.
const HAND: ModelConfig = normalizeConfig({
  architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 100, hidden_size: 64, intermediate_size: 96,
  num_hidden_layers: 5, num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: true,
}, 'hand');
const HAND_OPTS = { maxWidthPruning: 0.5, maxDepthPruning: 0.2, divisors: sizes(1, 16, 2, 32) };
const byHand = (L: number, H: number, nH: number, F: number) => 100 * H + L * (2 * H * 16 * nH + 2 * H * 32 + 3 * H * F + 2 * H) + H;

describe('the search space', () => {
  test('hand-worked case: the 24 combinations, the 18 within 110,000 params, the largest 4 in order', () => {
    const s = searchSpace(HAND, { ...HAND_OPTS, budget: 110_000, topK: 4 });
    assert.deepEqual(s.choices, { num_hidden_layers: [5, 4], hidden_size: [64, 48, 32], num_attention_heads: [4, 2], intermediate_size: [96, 64] });
    assert.equal(s.enumerated, 24);
    assert.equal(s.withinBudget, 18);
    assert.deepEqual(s.candidates, [
      { sizes: sizes(5, 64, 2, 64), params: 109_504 },
      { sizes: sizes(4, 64, 4, 64), params: 105_280 },
      { sizes: sizes(5, 48, 2, 96), params: 105_168 },
      { sizes: sizes(5, 48, 4, 64), params: 97_488 },
    ]);
    for (const c of s.candidates) {
      const { num_hidden_layers: L, hidden_size: H, num_attention_heads: nH, intermediate_size: F } = c.sizes;
      assert.equal(c.params, byHand(L, H, nH, F), 'the formula above');
      assert.equal(c.params, paramCount({ ...HAND, numLayers: L, hiddenSize: H, numHeads: nH, intermediateSize: F }).total);
    }
    assert.equal(byHand(5, 64, 4, 96), paramCount(HAND).total);
  });

  test('a budget at the original keeps it as the first candidate; top-k larger than the list gives the list', () => {
    const s = searchSpace(HAND, { ...HAND_OPTS, budget: paramCount(HAND).total, topK: 100 });
    assert.equal(s.candidates.length, 24);
    assert.deepEqual(s.candidates[0], { sizes: sizesOf(HAND), params: 160_704 });
    assert.deepEqual(s.candidates.at(-1), { sizes: sizes(4, 32, 2, 64), params: 44_448 });
    for (let i = 1; i < s.candidates.length; i++) assert.ok(s.candidates[i - 1].params >= s.candidates[i].params, 'params descending');
  });

  test('the bounds and divisors of a real shape (Llama-3-8B: hidden 4096, 32 heads / 8 KV, MLP 14336, 32 layers)', () => {
    const cfg = normalizeConfig({
      architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 128256, hidden_size: 4096, intermediate_size: 14336,
      num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, tie_word_embeddings: false,
    }, 'llama3-8b');
    const div = divisorsFor(cfg);
    assert.deepEqual(div, sizes(1, 64, 8, 64));
    const s = searchSpace(cfg, { maxWidthPruning: 0.4, maxDepthPruning: 0.2, divisors: div, budget: 6e9, topK: 10 });
    assert.deepEqual(s.choices.num_hidden_layers, [32, 31, 30, 29, 28, 27, 26]);          // >= 25.6
    assert.deepEqual(s.choices.num_attention_heads, [32, 24]);                             // multiples of 8, >= 19.2
    assert.equal(s.choices.hidden_size.at(-1), 2496);                                      // first multiple of 64 >= 2457.6
    assert.equal(s.choices.intermediate_size.length, 90);                                  // 14336 ... 8640
    assert.equal(s.enumerated, 7 * 26 * 2 * 90);
    assert.equal(s.candidates.length, 10);
    for (const c of s.candidates) {
      assert.ok(c.params <= 6e9);
      for (const a of ['hidden_size', 'intermediate_size'] as const) assert.equal(c.sizes[a] % 64, 0);
      assert.equal(c.sizes.num_attention_heads % 8, 0);
    }
  });

  test('default divisors: layers 1, heads = KV heads, widths --round-to (64) or the largest power of two below it with a size in the 40% bound', () => {
    const w = (n: number) => defaultDivisor('hidden_size', n, 8);
    // 64: no multiple of 64 or 32 in [38.4, 64), 48 of 16; 32: 24 of 8; 31: 24 of 8; 8: 6 of 2
    assert.deepEqual([4096, 1024, 1023, 896, 512, 64, 32, 31, 8].map(w), [64, 64, 64, 64, 64, 16, 8, 8, 2]);
    assert.deepEqual([4096, 896, 64].map((n) => defaultDivisor('hidden_size', n, 8, 32)), [32, 32, 16], '--round-to 32');
    assert.equal(defaultDivisor('hidden_size', 64, 8, 64, 0.5), 32, 'a 50% bound lets 32 in');
    assert.equal(defaultDivisor('intermediate_size', 14336, 8), 64);
    assert.equal(defaultDivisor('num_hidden_layers', 50, 8), 1);
    assert.equal(defaultDivisor('num_attention_heads', 32, 8), 8);
    assert.deepEqual(axisChoices(100, 16, 0.4), [100, 96, 80, 64], 'the original even when it is not a multiple');
    assert.deepEqual(axisChoices(3, 1, 0.2), [3], 'a 20% bound on three layers allows none to go');
    assert.deepEqual(axisChoices(5, 1, 0), [5]);
  });

  test('refusals: an unreachable budget states the smallest reachable count; bad divisors and ratios', () => {
    throwsWith(() => searchSpace(HAND, { ...HAND_OPTS, budget: 44_447, topK: 4 }), 'invalid_prune_plan',
      /^--params: the search prunes at most 50% of each width axis and 20% of the layers; expected at most 44,447 parameters, found the smallest candidate has 44,448 \(num_hidden_layers=4,hidden_size=32,num_attention_heads=2,intermediate_size=64; the original has 160,704\)\. Hint: raise --params, or allow more pruning with --max-width-pruning \/ --max-depth-pruning$/);
    assert.equal(searchSpace(HAND, { ...HAND_OPTS, budget: 44_448, topK: 4 }).candidates.length, 1, 'the smallest count itself is reachable');
    throwsWith(() => divisorsFor(HAND, { num_attention_heads: 3 }), 'input_invalid', /the heads divisor \(3\) must be a multiple of num_key_value_heads \(2\)/);
    throwsWith(() => divisorsFor(HAND, { hidden_size: 0 }), 'input_invalid', /--divisors hidden_size: a divisor is a positive integer/);
    throwsWith(() => searchSpace(HAND, { ...HAND_OPTS, maxWidthPruning: 1, budget: 1e5, topK: 4 }), 'input_invalid', /--max-width-pruning .* in \[0, 1\)/);
  });

  test('rank by loss: lowest first, ties to the larger candidate, NaN last', () => {
    assert.deepEqual(rankByLoss([3, 1, NaN, 1, 2]), [4, 1, 5, 2, 3]);
  });
});

// ---------------------------------------------------------------------------------------------
// the search on a model

/** Seeded synthetic scores for the model (the search only needs a valid scores file). */
function scoresFor(cfg: ModelConfig, seed: number): ImportanceScores {
  const r = rng(seed);
  const vec = (n: number) => Array.from({ length: n }, () => r());
  return {
    format: SCORES_FORMAT, version: SCORES_VERSION, model: scoredShapeOf(cfg),
    calibration: { files: ['synthetic'], samples: 0, seq_len: 0, tokens: 0, mode: 'memory', seconds: 0 },
    hidden: vec(cfg.hiddenSize), heads: Array.from({ length: cfg.numLayers }, () => vec(cfg.numHeads)),
    mlp: Array.from({ length: cfg.numLayers }, () => vec(cfg.intermediateSize)), layers: vec(cfg.numLayers),
  };
}

const MODEL = at('model'), SCORES = at('scores.json'), DATA = at('data');
let cfg: ModelConfig;

before(async () => {
  // the hand-worked shape, with the byte tokenizer's vocabulary (259)
  tinyModelDir(MODEL, { layers: 5, hidden: 64, heads: 4, kvHeads: 2, intermediate: 96, seed: 3 });
  cfg = openCheckpoint(MODEL).config;
  saveScores(SCORES, scoresFor(cfg, 5));
  const r = rng(9), words = ['search', 'the', 'pruned', 'model', 'budget', 'loss', 'of', 'a', 'layer', 'head'];
  fs.writeFileSync(at('corpus.txt'), Array.from({ length: 120 }, () =>
    Array.from({ length: 6 + Math.floor(r() * 20) }, () => words[Math.floor(r() * words.length)]).join(' ')).join('\n\n'));
  await prepareData({ inputs: [at('corpus.txt')], tokenizerDir: MODEL, outDir: DATA, valFraction: 0.2, workers: 0 });
});

const base = (out: string, over: Partial<SearchOptions> = {}): SearchOptions => ({
  modelDir: MODEL, scoresPath: SCORES, params: 120_176, dataDir: DATA, outDir: out, topK: 4,
  maxWidthPruning: 0.5, maxDepthPruning: 0.2, divisors: { hidden_size: 16, intermediate_size: 32 }, depth: 'importance',
  valTokens: 1024, seqLen: 32, microBatch: 4, distillSteps: 0, distillLr: 1e-3, seed: 0, ...over,
});

function checkRanks(r: SearchReport, key: 'loss_pruned' | 'loss_distilled'): void {
  const byRank = [...r.candidates].sort((a, b) => a.rank - b.rank);
  for (let i = 1; i < byRank.length; i++) assert.ok(byRank[i - 1][key]! <= byRank[i][key]!, `rank ${i} has the lower ${key}`);
  assert.equal(r.candidates[r.winner - 1].rank, 1);
  assert.deepEqual(r.candidates.map((c) => c.rank).sort(), [1, 2, 3, 4]);
}

describe('search', () => {
  let report: SearchReport;
  const out = at('best');
  before(async () => { report = await search(base(out)); });

  test('candidates are the hand-worked list (vocabulary 259: 159 x hidden more parameters each), measured in that order and ranked by the loss right after pruning', () => {
    assert.deepEqual(report.candidates.map((c) => c.sizes), [sizes(5, 64, 2, 64), sizes(4, 64, 4, 64), sizes(5, 48, 2, 96), sizes(5, 48, 4, 64)]);
    assert.deepEqual(report.candidates.map((c) => c.params), [109_504, 105_280, 105_168, 97_488].map((p, i) => p + 159 * [64, 64, 48, 48][i]));
    assert.equal(report.ranked_by, 'loss_pruned');
    assert.equal(report.distill, null);
    for (const c of report.candidates) {
      assert.ok(Number.isFinite(c.loss_pruned));
      assert.equal(c.loss_distilled, null);
    }
    checkRanks(report, 'loss_pruned');
    assert.equal(report.enumerated, 24);
    assert.equal(report.not_divisible, 0);
    assert.equal(report.within_budget, 18);
    assert.equal(report.params_convention, 'total');
    assert.deepEqual(report.rounding, { round_to: 64, notes: [], budget_unused: 120_176 - 119_680 }, 'explicit divisors: no fallback note');
    assert.ok(report.validation.tokens > 900 && report.validation.tokens <= 1024, `${report.validation.tokens} validation targets`);
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(out, SEARCH_REPORT_FILE), 'utf8')), report);
  });

  test('the winner is OUT_DIR: the same bytes `prune --target` writes, loadable, with the reported loss', async () => {
    const w = report.candidates[report.winner - 1];
    const again = at('again');
    prune(MODEL, makePlan(cfg, { target: w.sizes }), scoresFor(cfg, 5), again);
    for (const f of ['model.safetensors', 'config.json', 'prune_report.json', 'tokenizer.json']) {
      assert.ok(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(again, f))), f);
    }
    const { model } = await loadModel(out);
    assert.deepEqual(sizesOf(model.cfg), w.sizes);
    const data = openPackedData(DATA, { seed: 0 });
    try {
      const batches = data.val.batches(4, 32, report.validation.batches);
      assert.equal(validationLoss(model, batches).loss, w.loss_pruned);
    } finally { data.close(); }
    assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.includes('.search-')), [], 'no work folder left');
  });

  test('--distill-steps: every candidate distilled from the original on the same batches, ranked after it; OUT_DIR keeps the pruned weights', async () => {
    const d = await search(base(at('best-distilled'), { distillSteps: 2 }));
    assert.equal(d.ranked_by, 'loss_distilled');
    assert.deepEqual(d.candidates.map((c) => c.loss_pruned), report.candidates.map((c) => c.loss_pruned), 'the same losses before distilling');
    for (const c of d.candidates) {
      assert.equal(c.distill_kd.length, 2);
      assert.ok(c.distill_kd.every((x) => Number.isFinite(x) && x > 0));
      assert.ok(Number.isFinite(c.loss_distilled!) && c.loss_distilled !== c.loss_pruned, 'the steps changed the model');
    }
    checkRanks(d, 'loss_distilled');
    const w = d.candidates[d.winner - 1];
    const again = at('again-distilled');
    prune(MODEL, makePlan(cfg, { target: w.sizes }), scoresFor(cfg, 5), again);
    assert.ok(fs.readFileSync(path.join(at('best-distilled'), 'model.safetensors')).equals(fs.readFileSync(path.join(again, 'model.safetensors'))));
  });

  test('refusals come before any work: unreachable budget, a used output folder, scores of another model', async () => {
    await assert.rejects(search(base(at('never'), { params: 0.2 })), (e: Error) => {
      assert.match(e.message, /^--params: .* expected at most 34,176 parameters, found the smallest candidate has 49,536 \(num_hidden_layers=4,hidden_size=32,num_attention_heads=2,intermediate_size=64; the original has 170,880\)/);
      return true;
    });
    fs.mkdirSync(at('used'));
    fs.writeFileSync(at('used', 'x'), '');
    await assert.rejects(search(base(at('used'))), /--out .*used: the output folder must be new or empty; found 1 entry \(x\)/);
    const other = at('other-scores.json');
    saveScores(other, scoresFor({ ...cfg, hiddenSize: 32 }, 1));
    await assert.rejects(search(base(at('never'), { scoresPath: other })), /model\.hidden_size: the scores must belong to the model being pruned; expected 64, found 32/);
    assert.ok(!fs.existsSync(at('never')));
    assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.includes('.search-')), []);
  });
});

// ---------------------------------------------------------------------------------------------
// the command line

function kompresor(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  delete env.NODE_TEST_CONTEXT;
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: ROOT, env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

describe('kompresor search', () => {
  const common = ['--scores', SCORES, '--data', DATA, '--top-k', '3', '--max-width-pruning', '0.5', '--seq-len', '32', '--val-tokens', '512'];
  test('the table, the winner folder, --json, and one-line refusals', async () => {
    const [table, json, bad] = await Promise.all([
      kompresor(['search', MODEL, ...common, '--params', '0.7', '--out', at('cli-table')]),
      kompresor(['search', MODEL, ...common, '--params', '0.7', '--out', at('cli-json'), '--json']),
      kompresor(['search', MODEL, ...common, '--params', '0.2', '--out', at('cli-bad')]),
    ]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trimEnd().split('\n');
    // rounded: hidden 64 has no multiple of 64 in [32, 64), so it steps by 32 (and says so); MLP 96 by 64
    assert.match(lines[0], /^search: 16 architectures within the bounds \(width <= 50\.0%, depth <= 20\.0%; sizes per axis: layers 2 \(step 1\), hidden 2 \(step 32\), heads 2 \(step 2\), MLP 2 \(step 64\)\); 10 fit 119,615 parameters; evaluating the 3 largest$/);
    assert.match(table.stdout, /\nnote: hidden_size 64: no multiple of 64 lies within the pruning bound, so its pruned sizes are multiples of 32 instead\n/);
    assert.match(lines[1], /^\s+#\s+layers\s+hidden\s+heads\s+intermediate\s+parameters\s+of orig\.\s+loss pruned\s+loss distilled\s+rank$/);
    assert.equal(lines.filter((l) => /^\s+\d\s+\d+\s+\d+\s+\d+\s+\d+\s+[\d,]+\s+[\d.]+%\s+[\d.]+\s+-\s+\d( \*)?$/.test(l)).length, 3);
    assert.match(table.stdout, /; winner: candidate \d \(num_hidden_layers=\d,hidden_size=\d+,num_attention_heads=\d,intermediate_size=\d+\), [\d,]+ parameters\n/);
    assert.equal(json.code, 0, json.stderr);
    const r = JSON.parse(json.stdout) as SearchReport;
    assert.equal(json.stderr, '', '--json is silent on stderr');
    assert.deepEqual(r, JSON.parse(fs.readFileSync(at('cli-json', SEARCH_REPORT_FILE), 'utf8')));
    assert.deepEqual(sizesOf(openCheckpoint(at('cli-json')).config), r.candidates[r.winner - 1].sizes);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr.trimEnd().split('\n').length, 1, bad.stderr);
    assert.match(bad.stderr, /^kompresor: --params: the search prunes at most 50% of each width axis and 20% of the layers; expected at most 34,176 parameters, found the smallest candidate has 49,536 /);
  });
});
