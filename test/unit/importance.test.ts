// Importance statistics: every score against a naive recomputation from the raw activations the
// probe saw, padding that changes nothing, Block Importance 0 for an identity layer, the layer-skip
// loss against models with the layer zeroed out, and the scores file round trip.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadModel } from '../../src/model/load.ts';
import { batchFromDocs, countTargets, type Batch } from '../../src/model/batch.ts';
import type { Decoder, Probe } from '../../src/model/decoder.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { buildCalibration, calibrationBatch } from '../../src/prune/calibration.ts';
import { Importance, scoreInMemory, buildScores, type ScoreRun } from '../../src/prune/importance.ts';
import { saveScores, loadScores, checkScoresMatch } from '../../src/prune/scores.ts';
import { relErr, rng, tempDir } from '../helpers.ts';
import { FIXTURES, tinyModelDir } from './score_fixture.ts';

let tmp: string;
before(() => { tmp = tempDir('kompresor-imp-'); });
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

/** Random ids < 64 (the fixtures' vocabulary), one list per document length. */
function docs(lengths: number[][], seed: number): number[][][] {
  const r = rng(seed);
  return lengths.map((row) => row.map((n) => Array.from({ length: n }, () => Math.floor(r() * 64))));
}

/** Runs a forward pass with an Importance and a recorder of every activation it was shown. */
function observed(model: Decoder, batch: Batch, valid: Int32Array | null) {
  const imp = new Importance(model.cfg);
  imp.setValid(valid);
  const seen = new Map<string, Float32Array>();
  const probe: Probe = {
    names: imp.names,
    observe(name, layer, data, width, b) { seen.set(`${name}/${layer}`, data.slice()); imp.observe(name, layer, data, width, b); },
  };
  model.forward(batch, probe);
  return { imp, seen };
}

// ---------------------------------------------------------------------------------------------
// naive recomputation, written per channel from the formulas in src/prune/scores.ts

function naiveA(x: Float32Array, W: number, T: number, valid: number[]): number[] {
  return Array.from({ length: W }, (_, c) => valid.reduce((acc, n, b) => {
    if (n === 0) return acc;
    let s = 0;
    for (let t = 0; t < n; t++) s += Math.abs(x[(b * T + t) * W + c]);
    return acc + (s / n) ** 2;
  }, 0));
}

function naiveBI(a: Float32Array, y: Float32Array, C: number, T: number, valid: number[]): number {
  const norm = (v: Float32Array, o: number) => Math.hypot(...v.subarray(o, o + C));
  return valid.reduce((acc, n, b) => {
    if (n === 0) return acc;
    let cs = 0;
    for (let t = 0; t < n; t++) {
      const o = (b * T + t) * C;
      let d = 0;
      for (let c = 0; c < C; c++) d += a[o + c] * y[o + c];
      cs += d / (norm(a, o) * norm(y, o));
    }
    return acc + 1 - cs / n;
  }, 0);
}

function naiveScores(model: Decoder, seen: Map<string, Float32Array>, T: number, valid: number[]) {
  const { hiddenSize: C, numLayers: L, numHeads: nH, headDim: hd, intermediateSize: F } = model.cfg;
  const get = (n: string, l: number) => seen.get(`${n}/${l}`)!;
  const hidden = new Array(C).fill(0);
  const heads: number[][] = [], mlp: number[][] = [], layers: number[] = [];
  for (let l = 0; l < L; l++) {
    for (const n of ['input_layernorm', 'post_attention_layernorm']) naiveA(get(n, l), C, T, valid).forEach((a, c) => { hidden[c] += Math.sqrt(a); });
    const att = naiveA(get('attn_pre_o', l), nH * hd, T, valid);
    heads.push(Array.from({ length: nH }, (_, h) => Math.sqrt(att.slice(h * hd, (h + 1) * hd).reduce((s, v) => s + v, 0))));
    mlp.push(naiveA(get('mlp_act', l), F, T, valid).map(Math.sqrt));
    layers.push(naiveBI(get('resid_in', l), get('resid_out', l), C, T, valid));
  }
  return { hidden, heads, mlp, layers };
}

function assertScoresClose(a: ReturnType<Importance['scores']>, b: ReturnType<Importance['scores']>, tol: number, what: string): void {
  assert.ok(relErr(a.hidden, b.hidden) <= tol, `${what}: hidden ${relErr(a.hidden, b.hidden)}`);
  assert.ok(relErr(a.heads.flat(), b.heads.flat()) <= tol, `${what}: heads ${relErr(a.heads.flat(), b.heads.flat())}`);
  assert.ok(relErr(a.mlp.flat(), b.mlp.flat()) <= tol, `${what}: mlp ${relErr(a.mlp.flat(), b.mlp.flat())}`);
  assert.ok(relErr(a.layers, b.layers) <= tol, `${what}: layers ${relErr(a.layers, b.layers)}`);
}

describe('statistics', () => {
  for (const name of ['llama_tied_gqa', 'qwen2_bias', 'llama_head_dim']) {
    test(`${name}: every score equals a naive recomputation from the probed activations (packed rows, padding)`, async () => {
      const { model } = await loadModel(path.join(FIXTURES, name));
      const T = 12, valid = [11, 6, 12];
      const batch = batchFromDocs(docs([[5, 6], [6], [4, 4, 4]], 1), T, 3);
      const { imp, seen } = observed(model, batch, Int32Array.from(valid));
      const want = naiveScores(model, seen, T, valid);
      const got = imp.scores();
      assert.equal(got.heads[0].length, model.cfg.numHeads);
      assertScoresClose(got, want, 1e-12, name);
      assert.ok(got.layers.every((x) => x > 1e-4), 'random layers change the residual stream');
    });
  }

  test('padding changes no score: padded rows = the same rows alone without padding, whatever the pad id', async () => {
    const { model } = await loadModel(path.join(FIXTURES, 'llama_tied_gqa'));
    const rows = docs([[7, 5], [4, 3]], 2);
    const padded = (padId: number) => observed(model, batchFromDocs(rows, 12, padId), Int32Array.from([12, 7])).imp;
    // the same two sequences, one per pass, each exactly as long as its valid tokens
    const alone = new Importance(model.cfg);
    model.forward(batchFromDocs([rows[0]], 12, 0), alone);
    model.forward(batchFromDocs([rows[1]], 7, 0), alone);
    assertScoresClose(padded(0).scores(), alone.scores(), 1e-6, 'pad 0');
    assertScoresClose(padded(50).scores(), alone.scores(), 1e-6, 'pad 50');
    // and the comparison is sensitive: counting the padding as tokens does change the scores
    const counted = observed(model, batchFromDocs(rows, 12, 50), null).imp.scores();
    assert.ok(relErr(counted.mlp.flat(), alone.scores().mlp.flat()) > 1e-3);
    assert.ok(relErr(counted.layers, alone.scores().layers) > 1e-3);
  });

  test('Block Importance of an identity layer (o_proj and down_proj zero) is 0', async () => {
    const { model } = await loadModel(path.join(FIXTURES, 'llama_tied_gqa'));
    model.w.layers[1].oW.fill(0);
    model.w.layers[1].downW.fill(0);
    const { imp } = observed(model, batchFromDocs(docs([[8, 4], [12]], 3), 12, 0), null);
    assert.ok(Math.abs(imp.bi[1]) <= 1e-12, `identity layer BI ${imp.bi[1]}`);
    assert.ok(imp.bi[0] > 1e-3, `layer 0 BI ${imp.bi[0]}`);
  });
});

// ---------------------------------------------------------------------------------------------
// running over a calibration set

describe('over calibration rows', () => {
  let dir: string;
  let text: string;
  before(() => {
    dir = tinyModelDir(path.join(tmp, 'tiny3'), { layers: 3 }).dir;
    const r = rng(5), words = ['alpha', 'beta', 'gamma', 'delta', 'pruning', 'model', 'layer', 'the', 'of', '42'];
    text = Array.from({ length: 40 }, () => Array.from({ length: 5 + Math.floor(r() * 20) }, () => words[Math.floor(r() * words.length)]).join(' ')).join('\n\n');
    fs.writeFileSync(path.join(tmp, 'calib.txt'), text);
  });

  function calib(samples: number, seqLen: number) {
    return buildCalibration([path.join(tmp, 'calib.txt')], loadTokenizer(dir), { samples, seqLen, seed: 1, vocabSize: 259 });
  }

  test('rows per pass do not change the scores', async () => {
    const { model } = await loadModel(dir);
    const set = calib(5, 24);
    const one = scoreInMemory(model, set, { batchRows: 1, layerMetric: 'bi' }).imp.scores();
    const three = scoreInMemory(model, set, { batchRows: 3, layerMetric: 'bi' }).imp.scores();
    assertScoresClose(three, one, 1e-6, 'batch rows 3 vs 1');
  });

  test('layer-skip loss = loss of the model with that layer zeroed out − full loss', async () => {
    const { model } = await loadModel(dir);
    const set = calib(4, 20);
    const run = scoreInMemory(model, set, { batchRows: 3, layerMetric: 'loss' });
    const meanLoss = (m: Decoder) => {
      let sum = 0, n = 0;
      for (let r0 = 0; r0 < set.samples; r0 += 3) {
        const { batch } = calibrationBatch(set, r0, Math.min(set.samples, r0 + 3));
        const c = countTargets(batch);
        sum += m.loss(batch) * c; n += c;
      }
      return sum / n;
    };
    const full = meanLoss(model);
    for (let l = 0; l < model.cfg.numLayers; l++) {
      const { model: cut } = await loadModel(dir);
      cut.w.layers[l].oW.fill(0);
      cut.w.layers[l].downW.fill(0);
      const want = meanLoss(cut) - full;
      assert.ok(Math.abs(run.layersLoss![l] - want) <= 1e-9, `layer ${l}: ${run.layersLoss![l]} vs ${want}`);
      assert.ok(Math.abs(want) > 1e-4, 'skipping a random layer changes the loss');
    }
  });

  test('the scores file validates with loadScores and matches the model', async () => {
    const { model } = await loadModel(dir);
    const set = calib(3, 16);
    const run: ScoreRun = scoreInMemory(model, set, { batchRows: 2, layerMetric: 'loss' });
    const s = buildScores(run, { files: set.files, samples: 3, seq_len: 16, tokens: set.tokens, mode: 'memory', seconds: 0.5 });
    const out = path.join(tmp, 'scores.json');
    saveScores(out, s);
    const back = loadScores(out);
    assert.deepEqual(back, JSON.parse(JSON.stringify(s)));
    checkScoresMatch(back, s.model, out);
    assert.equal(back.model.num_hidden_layers, 3);
    assert.equal(back.layers_loss!.length, 3);
    assert.deepEqual(back.layers, Array.from(run.imp.bi));
  });
});
