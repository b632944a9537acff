// Structured pruning (src/prune/plan.ts, apply.ts, cli/prune_commands.ts), after ModelOpt's
// test_mcore_gpt_minitron_pruning.py: exact shapes and rewritten config for every axis alone and
// all together on MHA, GQA, MQA, tied/untied and biased fixtures; kept channels in importance
// order; a pruned model computes exactly what the unpruned one computes once the dropped heads,
// neurons and layers are silenced; pruning nothing changes nothing; pruning twice gives the same
// bytes; dtypes, tokenizer files, the --params policy and every refusal's exact text.
// (The pruned checkpoints against the independent PyTorch reference: test/parity/pruned_golden.test.ts.)
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { KompresorError } from '../../src/errors.ts';
import { openCheckpoint } from '../../src/io/checkpoint.ts';
import { normalizeConfig, paramCount, type ModelConfig } from '../../src/io/hf_config.ts';
import { readSafetensorsHeader } from '../../src/io/safetensors.ts';
import { loadModel, saveModel } from '../../src/model/load.ts';
import { Decoder } from '../../src/model/decoder.ts';
import { initWeights } from '../../src/model/init.ts';
import { batchFromRows } from '../../src/model/batch.ts';
import { SCORES_FORMAT, SCORES_VERSION, saveScores, type ImportanceScores } from '../../src/prune/scores.ts';
import {
  makePlan, parseTarget, parseParams, selectChannels, selectHeads, selectLayers, scoredShapeOf, withSizes, sizesOf,
  type AxisSizes, type PruneRequest,
} from '../../src/prune/plan.ts';
import { prune, type PruneReport } from '../../src/prune/apply.ts';
import { rng, relErr, tempDir } from '../helpers.ts';

const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures');
const ROOT = path.join(import.meta.dirname, '..', '..');
const tmp = tempDir('kompresor-prune-');
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let outCount = 0;
const freshDir = (label: string) => path.join(tmp, `${label}-${outCount++}`);

const fixture = (name: string) => path.join(FIXTURES, name);
const configOf = (dir: string): ModelConfig => openCheckpoint(dir).config;
const rawConfigOf = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;

/** Seeded scores on a 0.001 grid for the model in `cfg` (some ties, which the rules must settle). */
function scoresFor(cfg: ModelConfig, seed: number, over: Partial<ImportanceScores> = {}): ImportanceScores {
  const r = rng(seed);
  const vec = (n: number) => Array.from({ length: n }, () => Math.round(r() * 1000) / 1000);
  return {
    format: SCORES_FORMAT, version: SCORES_VERSION, model: scoredShapeOf(cfg),
    calibration: { files: ['synthetic'], samples: 0, seq_len: 0, tokens: 0, mode: 'memory', seconds: 0 },
    hidden: vec(cfg.hiddenSize), heads: Array.from({ length: cfg.numLayers }, () => vec(cfg.numHeads)),
    mlp: Array.from({ length: cfg.numLayers }, () => vec(cfg.intermediateSize)), layers: vec(cfg.numLayers), ...over,
  };
}

function pruneTo(src: string, req: PruneRequest, scores = scoresFor(configOf(src), 7), out = freshDir('out')) {
  const plan = makePlan(configOf(src), req);
  const report = prune(src, plan, scores, out);
  return { plan, report, out, scores };
}

/** Every tensor of a checkpoint folder as float32, by name. */
function tensorsOf(dir: string): Map<string, { shape: number[]; data: Float32Array }> {
  const ck = openCheckpoint(dir);
  return new Map([...ck.tensors].map(([n, t]) => [n, { shape: t.info.shape, data: ck.read(n) }]));
}

/** HF tensor names and shapes a Llama/Qwen2 config implies (written here, not taken from src/). */
function expectedShapes(c: Record<string, any>): Record<string, number[]> {
  const h = c.hidden_size, f = c.intermediate_size, v = c.vocab_size, d = c.head_dim;
  const q = c.num_attention_heads * d, kv = c.num_key_value_heads * d;
  const qkvBias = c.model_type === 'qwen2' || c.attention_bias === true, oBias = c.model_type === 'llama' && c.attention_bias === true;
  const s: Record<string, number[]> = { 'model.embed_tokens.weight': [v, h], 'model.norm.weight': [h] };
  if (!c.tie_word_embeddings) s['lm_head.weight'] = [v, h];
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    Object.assign(s, {
      [p + 'input_layernorm.weight']: [h], [p + 'post_attention_layernorm.weight']: [h],
      [p + 'self_attn.q_proj.weight']: [q, h], [p + 'self_attn.k_proj.weight']: [kv, h], [p + 'self_attn.v_proj.weight']: [kv, h],
      [p + 'self_attn.o_proj.weight']: [h, q],
      [p + 'mlp.gate_proj.weight']: [f, h], [p + 'mlp.up_proj.weight']: [f, h], [p + 'mlp.down_proj.weight']: [h, f],
    });
    if (qkvBias) Object.assign(s, { [p + 'self_attn.q_proj.bias']: [q], [p + 'self_attn.k_proj.bias']: [kv], [p + 'self_attn.v_proj.bias']: [kv] });
    if (oBias) s[p + 'self_attn.o_proj.bias'] = [h];
  }
  return s;
}

async function logitsOf(dir: string, rows = [[1, 5, 9, 33, 2, 60, 17, 4, 41], [0, 63, 12, 7, 7, 30, 22, 50, 3]]): Promise<Float32Array> {
  const { model } = await loadModel(dir);
  const batch = batchFromRows(rows);
  const V = model.cfg.vocabSize;
  const out = new Float32Array(batch.B * batch.T * V);
  model.logits(batch, (r0, n, chunk) => out.set(chunk.subarray(0, n * V), r0 * V));
  return out;
}

function refuses(fn: () => unknown, message: string, code = 'invalid_prune_plan'): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof KompresorError, `expected a KompresorError, got ${String(e)}`);
    assert.equal(e.message, message);
    assert.equal(e.code, code);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------
// shapes and config for every axis, alone and together (ModelOpt's parametrised shape test)

const ALL4 = { num_hidden_layers: 1, hidden_size: 24, num_attention_heads: 2, intermediate_size: 12 };
const AXIS_CASES: [fixture: string, target: Partial<AxisSizes>, why: string][] = [
  ['llama_untied', { num_hidden_layers: 1 }, 'MHA, untied: depth alone'],
  ['llama_untied', { hidden_size: 20 }, 'MHA, untied: hidden alone slices embedding AND lm_head columns'],
  ['llama_untied', { intermediate_size: 9 }, 'MHA: MLP alone'],
  ['llama_untied', { num_hidden_layers: 1, hidden_size: 20, intermediate_size: 9 }, 'MHA: every axis it can prune (heads cannot: 4 groups of 1)'],
  ['llama_tied_gqa', { num_hidden_layers: 1 }, 'GQA 4/2, tied: depth alone'],
  ['llama_tied_gqa', { hidden_size: 16 }, 'GQA, tied: hidden alone (no lm_head tensor)'],
  ['llama_tied_gqa', { num_attention_heads: 2 }, 'GQA 4/2 -> 2/2: one query head per KV group'],
  ['llama_tied_gqa', { intermediate_size: 8 }, 'GQA: MLP alone'],
  ['llama_tied_gqa', ALL4, 'GQA, tied: all four axes'],
  ['qwen2_bias', { num_attention_heads: 2 }, 'Qwen2: q bias follows the heads, k/v biases untouched'],
  ['qwen2_bias', ALL4, 'Qwen2 with q/k/v biases: all four axes'],
  ['llama_linear_rope', { num_attention_heads: 1, hidden_size: 24 }, 'MQA 4/1 with o_proj bias (sliced to Hk)'],
  ['llama_head_dim', { num_attention_heads: 3, hidden_size: 40 }, 'explicit head_dim 16 while 40/3 is not an integer'],
];

for (const [name, target, why] of AXIS_CASES) {
  test(`prune ${name} to ${JSON.stringify(target)}: exact shapes, rewritten config, loads (${why})`, async () => {
    const src = fixture(name);
    const { plan, report, out } = pruneTo(src, { target });
    const raw = rawConfigOf(src), cfg = configOf(src);
    const want = { ...raw, ...target, num_key_value_heads: cfg.numKvHeads, head_dim: cfg.headDim };
    assert.deepEqual(rawConfigOf(out), want, 'config.json: the sizes replaced, head_dim and num_key_value_heads explicit, the rest as it was');
    const tensors = tensorsOf(out);
    const shapes = Object.fromEntries([...tensors].map(([n, t]) => [n, t.shape]));
    assert.deepEqual(shapes, expectedShapes(want));
    const { model } = await loadModel(out);
    assert.equal(model.layout.total, plan.params.after.total, 'the plan knew the exact count before slicing');
    assert.equal(report.params.after.total, paramCount(withSizes(cfg, { ...sizesOf(cfg), ...target })).total);
    assert.equal(report.params.before.total, paramCount(cfg).total);
  });
}

test('all four axes on Qwen2: the exact parameter count, by hand', () => {
  const { plan } = pruneTo(fixture('qwen2_bias'), { target: ALL4 });
  // V 64, H 24, one layer, 2 heads x d 8 (q 16), 2 KV heads (kv 16), F 12, tied, q/k/v biases
  const embed = 64 * 24, attn = 24 * 16 + 2 * 24 * 16 + 16 * 24 + (16 + 16 + 16), mlp = 3 * 24 * 12, norms = 3 * 24;
  assert.equal(plan.params.after.total, embed + attn + mlp + norms);
  assert.equal(plan.params.after.total, 4056);
  assert.equal(plan.params.before.total, 11552);
});

// ---------------------------------------------------------------------------------------------
// which channels are kept, and where they go

test('kept channels are laid out in importance order (explicit row/column permutations)', () => {
  const src = fixture('qwen2_bias');
  const cfg = configOf(src);   // H 32, 4 heads / 2 KV, d 8, F 16, 2 layers
  const scores = scoresFor(cfg, 1, {
    hidden: Array.from({ length: 32 }, (_, c) => c),               // importance order 31, 30, 29, ...
    heads: [[0.1, 0.9, 0.5, 0.3], [0.4, 0.2, 0.8, 0.6]],           // groups {0,1} {2,3}: keep 1 | 2, then 0 | 2
    mlp: [0, 1].map(() => Array.from({ length: 16 }, (_, f) => (f * 5) % 16)),   // a permutation of 0..15
    layers: [1, 1],
  });
  const { out } = pruneTo(src, { target: { hidden_size: 24, num_attention_heads: 2, intermediate_size: 12 } }, scores);
  const a = tensorsOf(src), b = tensorsOf(out);
  const Hk = Array.from({ length: 24 }, (_, j) => 31 - j);
  const Fk = [3, 6, 9, 12, 15, 2, 5, 8, 11, 14, 1, 4];          // f with (5f mod 16) = 15, 14, 13, ...
  const heads = [[1, 2], [0, 2]];
  const at = (t: { shape: number[]; data: Float32Array }, r: number, c = 0) => t.data[r * (t.shape[1] ?? 1) + c];
  const eq = (name: string, dst: string, bi: number, bj: number, ai: number, aj: number) =>
    assert.equal(at(b.get(dst)!, bi, bj), at(a.get(name)!, ai, aj), `${dst}[${bi}][${bj}] = ${name}[${ai}][${aj}]`);
  for (let j = 0; j < 24; j++) {
    for (const v of [0, 17, 63]) eq('model.embed_tokens.weight', 'model.embed_tokens.weight', v, j, v, Hk[j]);
    eq('model.norm.weight', 'model.norm.weight', j, 0, Hk[j], 0);
  }
  for (const l of [0, 1]) {
    const p = `model.layers.${l}.`;
    const q = (n: string) => p + n;
    for (let j = 0; j < 24; j++) {
      eq(q('input_layernorm.weight'), q('input_layernorm.weight'), j, 0, Hk[j], 0);
      for (let k = 0; k < 8; k++) {
        // q rows: kept head slot s holds original head heads[l][s]; k rows untouched
        for (let s = 0; s < 2; s++) eq(q('self_attn.q_proj.weight'), q('self_attn.q_proj.weight'), s * 8 + k, j, heads[l][s] * 8 + k, Hk[j]);
        eq(q('self_attn.k_proj.weight'), q('self_attn.k_proj.weight'), 8 + k, j, 8 + k, Hk[j]);
        for (let s = 0; s < 2; s++) eq(q('self_attn.o_proj.weight'), q('self_attn.o_proj.weight'), j, s * 8 + k, Hk[j], heads[l][s] * 8 + k);
      }
      for (let i = 0; i < 12; i++) {
        eq(q('mlp.gate_proj.weight'), q('mlp.gate_proj.weight'), i, j, Fk[i], Hk[j]);
        eq(q('mlp.up_proj.weight'), q('mlp.up_proj.weight'), i, j, Fk[i], Hk[j]);
        eq(q('mlp.down_proj.weight'), q('mlp.down_proj.weight'), j, i, Hk[j], Fk[i]);
      }
    }
    for (let s = 0; s < 2; s++) for (let k = 0; k < 8; k++) eq(q('self_attn.q_proj.bias'), q('self_attn.q_proj.bias'), s * 8 + k, 0, heads[l][s] * 8 + k, 0);
    assert.deepEqual(b.get(q('self_attn.v_proj.bias'))!.data, a.get(q('self_attn.v_proj.bias'))!.data);
  }
});

test('selectHeads: the best heads of every KV group, groups in their original slots', () => {
  // hpg 4: group 0 = heads 0..3, group 1 = heads 4..7
  assert.deepEqual(selectHeads([0.1, 0.9, 0.5, 0.3, 0.7, 0.2, 0.8, 0.6], 2, 4), [1, 2, 6, 4]);
  assert.deepEqual(selectHeads([0.1, 0.9, 0.5, 0.3, 0.7, 0.2, 0.8, 0.6], 2, 2), [1, 6]);
  assert.deepEqual(selectHeads([0.1, 0.9, 0.5, 0.3, 0.7, 0.2, 0.8, 0.6], 2, 8), [0, 1, 2, 3, 4, 5, 6, 7], 'nothing pruned: original order');
  assert.deepEqual(selectHeads([0.5, 0.5, 0.5, 0.5], 1, 2), [0, 1], 'ties keep the lower index');
});

test('selectLayers: importance drops the lowest BI anywhere, contiguous the cheapest block', () => {
  const bi = [0.5, 0.1, 0.3, 0.05, 0.9];
  assert.deepEqual(selectLayers(bi, 3, 'importance'), [0, 2, 4]);     // drops 3 (0.05) and 1 (0.1)
  assert.deepEqual(selectLayers(bi, 3, 'contiguous'), [0, 1, 4]);     // block sums 0.6 0.4 0.35 0.95 -> drops 2, 3
  assert.deepEqual(selectLayers(bi, 5, 'contiguous'), [0, 1, 2, 3, 4]);
  assert.deepEqual(selectLayers([1, 1, 1, 1], 2, 'importance'), [0, 1], 'ties: the later layers go');
  assert.deepEqual(selectLayers([1, 1, 1, 1], 2, 'contiguous'), [2, 3], 'ties: the earliest block goes');
});

/** A 5-layer Llama written to disk (the fixtures have 2 layers, too few to tell the depth modes apart). */
function fiveLayerModel(): string {
  const raw = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 32, hidden_size: 16, intermediate_size: 8,
    num_hidden_layers: 5, num_attention_heads: 2, num_key_value_heads: 1, rms_norm_eps: 1e-5, tie_word_embeddings: true,
    torch_dtype: 'float32', layer_types: ['a', 'b', 'c', 'd', 'e'],
  };
  const model = new Decoder(normalizeConfig(raw, 'five-layer'));
  initWeights(model, 5);
  const dir = freshDir('five');
  saveModel(model, dir, raw);
  return dir;
}

test('depth: kept layers renumbered in original order, per mode; layer_types follows them', () => {
  const src = fiveLayerModel();
  const scores = scoresFor(configOf(src), 3, { layers: [0.5, 0.1, 0.3, 0.05, 0.9] });
  const a = tensorsOf(src);
  for (const [depth, kept, dropped] of [['importance', [0, 2, 4], [1, 3]], ['contiguous', [0, 1, 4], [2, 3]]] as const) {
    const { report, out } = pruneTo(src, { target: { num_hidden_layers: 3 }, depth }, scores);
    assert.deepEqual(report.axes.num_hidden_layers.kept, kept);
    assert.deepEqual(report.axes.num_hidden_layers.dropped, dropped);
    assert.deepEqual(rawConfigOf(out).layer_types, kept.map((l) => 'abcde'[l]));
    const b = tensorsOf(out);
    kept.forEach((old, l) => {
      for (const n of ['self_attn.q_proj.weight', 'mlp.down_proj.weight', 'input_layernorm.weight']) {
        assert.deepEqual(b.get(`model.layers.${l}.${n}`)!.data, a.get(`model.layers.${old}.${n}`)!.data, `${depth}: new layer ${l} = old ${old}`);
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------
// what the pruned model computes

/**
 * A copy of `src` in which everything the plan drops contributes exactly zero: o_proj columns of
 * dropped heads, down_proj columns of dropped neurons, o_proj/o bias/down_proj of dropped layers.
 * Pruning it must then leave the logits unchanged (only float summation order differs), which
 * fails if any q/o head, gate/up/down neuron or layer were sliced from the wrong place.
 */
async function silenced(src: string, plan: ReturnType<typeof makePlan>, scores: ImportanceScores): Promise<string> {
  const { model, config } = await loadModel(src);
  const sel = selectChannels(plan, scores);
  const { headDim: d, numHeads: nH, hiddenSize: C, intermediateSize: F } = model.cfg;
  model.w.layers.forEach((w, l) => {
    const i = sel.layers.indexOf(l);
    if (i < 0) { w.oW.fill(0); w.oB?.fill(0); w.downW.fill(0); return; }
    for (let h = 0; h < nH; h++) {
      if (sel.heads[i].includes(h)) continue;
      for (let c = 0; c < C; c++) w.oW.fill(0, c * nH * d + h * d, c * nH * d + h * d + d);
    }
    for (let f = 0; f < F; f++) if (!sel.mlp[i].includes(f)) for (let c = 0; c < C; c++) w.downW[c * F + f] = 0;
  });
  const dir = freshDir('silenced');
  saveModel(model, dir, config);
  return dir;
}

const SILENCE_CASES: [string, Partial<AxisSizes>][] = [
  ['qwen2_bias', { num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 10 }],      // GQA + q/k/v bias
  ['llama_linear_rope', { num_hidden_layers: 1, num_attention_heads: 3, intermediate_size: 9 }], // MQA + o bias
  ['llama_untied', { num_hidden_layers: 1, intermediate_size: 7 }],                               // MHA, untied
];
for (const [name, target] of SILENCE_CASES) {
  test(`${name}: pruning silenced heads, neurons and layers leaves the logits unchanged`, async () => {
    const src = fixture(name);
    const plan = makePlan(configOf(src), { target });
    const scores = scoresFor(configOf(src), 11);
    const quiet = await silenced(src, plan, scores);
    const { out } = pruneTo(quiet, { target }, scores);
    const want = await logitsOf(quiet), got = await logitsOf(out);
    assert.ok(relErr(got, want) < 1e-5, `relative error ${relErr(got, want).toExponential(2)}`);
    assert.ok(relErr(await logitsOf(src), want) > 1e-2, 'silencing changed the model (else the check would be empty)');
  });
}

test('pruning to the model\'s own sizes changes nothing: same tensors, bit-identical logits', async () => {
  for (const name of ['llama_tied_gqa', 'qwen2_bias', 'llama_untied']) {
    const src = fixture(name);
    const { out, report } = pruneTo(src, { target: sizesOf(configOf(src)) });
    assert.deepEqual(report.axes.hidden_size.dropped, []);
    const a = tensorsOf(src), b = tensorsOf(out);
    assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
    for (const [n, t] of a) assert.deepEqual(b.get(n)!.data, t.data, n);
    assert.deepEqual(await logitsOf(out), await logitsOf(src));
  }
});

test('pruning twice from the same scores gives byte-identical folders', () => {
  const src = fixture('qwen2_bias');
  const scores = scoresFor(configOf(src), 5);
  // 0.75: rounded to multiples of 8 (hidden 32, MLP 16), the policy's floor holds 70.3% of the parameters
  for (const req of [{ target: ALL4 }, { params: 0.75 }] as PruneRequest[]) {
    const one = pruneTo(src, req, scores).out, two = pruneTo(src, req, scores).out;
    const files = fs.readdirSync(one).sort();
    assert.deepEqual(fs.readdirSync(two).sort(), files);
    for (const f of files) assert.ok(fs.readFileSync(path.join(one, f)).equals(fs.readFileSync(path.join(two, f))), f);
  }
});

// ---------------------------------------------------------------------------------------------
// files around the weights

test('dtype preserved: BF16 and F16 in, the same out, values sliced exactly', async () => {
  const { model, config } = await loadModel(fixture('llama_tied_gqa'));
  for (const [dtype, torchDtype] of [['BF16', 'bfloat16'], ['F16', 'float16']] as const) {
    const src = freshDir(dtype);
    saveModel(model, src, { ...config, torch_dtype: torchDtype }, { dtype });
    const { out, report } = pruneTo(src, { target: ALL4 });
    assert.equal(report.dtype, dtype);
    assert.equal(rawConfigOf(out).torch_dtype, torchDtype);
    const h = readSafetensorsHeader(path.join(out, 'model.safetensors'));
    assert.deepEqual(new Set([...h.tensors.values()].map((t) => t.dtype)), new Set([dtype]));
    const same = pruneTo(src, { target: sizesOf(configOf(src)) }).out;    // nothing pruned: the same stored values
    const a = tensorsOf(src), b = tensorsOf(same);
    for (const [n, t] of a) assert.deepEqual(b.get(n)!.data, t.data, `${dtype} ${n}`);
  }
});

test('tokenizer and generation files are copied; prune_report.json lists kept and dropped per axis', () => {
  const src = freshDir('with-tokenizer');
  fs.cpSync(fixture('llama_tied_gqa'), src, { recursive: true });
  const extras = { 'tokenizer.json': '{"model":{}}', 'tokenizer_config.json': '{"bos_token":"<s>"}', 'generation_config.json': '{"do_sample":false}' };
  for (const [f, text] of Object.entries(extras)) fs.writeFileSync(path.join(src, f), text);
  const { out, report } = pruneTo(src, { target: ALL4 });
  for (const [f, text] of Object.entries(extras)) assert.equal(fs.readFileSync(path.join(out, f), 'utf8'), text, f);
  const onDisk: PruneReport = JSON.parse(fs.readFileSync(path.join(out, 'prune_report.json'), 'utf8'));
  assert.deepEqual(onDisk, report);
  assert.deepEqual(report.files, ['model.safetensors', 'config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'prune_report.json']);
  const ax = report.axes;
  assert.equal(ax.hidden_size.kept.length + ax.hidden_size.dropped.length, 32);
  assert.deepEqual([...ax.hidden_size.kept, ...ax.hidden_size.dropped].sort((x, y) => x - y), Array.from({ length: 32 }, (_, i) => i));
  assert.equal(ax.num_attention_heads.kept.length, 1, 'one row per kept layer');
  assert.deepEqual(ax.num_attention_heads.kept[0].map((h) => Math.floor(h / 2)), [0, 1], 'one head from each KV group, in group order');
  assert.equal(ax.intermediate_size.kept[0].length, 12);
});

// ---------------------------------------------------------------------------------------------
// --params

/** Bielik-11B-v3.0's shape (Mistral-7B depth-upscaled to 50 layers). */
const BIELIK = normalizeConfig({
  architectures: ['MistralForCausalLM'], model_type: 'mistral', vocab_size: 32128, hidden_size: 4096, intermediate_size: 14336,
  num_hidden_layers: 50, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 128, tie_word_embeddings: false,
}, 'bielik');

test('--params policy on Bielik-11B\'s shape: 50 -> 40 layers first, then the MLP; heads and hidden stay', () => {
  const budget = 7.35e9;
  const plan = makePlan(BIELIK, { params: budget });
  assert.equal(plan.after.num_hidden_layers, 40, 'depth cut by the full 20%');
  assert.equal(plan.after.hidden_size, 4096);
  assert.equal(plan.after.num_attention_heads, 32);
  const F = plan.after.intermediate_size;
  assert.equal(F % 64, 0);
  assert.ok(plan.params.after.total <= budget && F < 14336);
  const bigger = paramCount(withSizes(BIELIK, { ...plan.after, intermediate_size: F + 64 })).total;
  assert.ok(bigger > budget, 'the largest 64-multiple under the budget');
  assert.equal(plan.chosen_by, 'params');
  assert.equal(plan.params_budget, budget);
});

test('--params: depth stops within one layer of the budget and the MLP takes the rest; fractions; fixed axes', () => {
  const count = (s: Partial<AxisSizes>) => paramCount(withSizes(BIELIK, { ...sizesOf(BIELIK), ...s })).total;
  const budget = count({ num_hidden_layers: 45 }) - 1000;
  const plan = makePlan(BIELIK, { params: budget });
  assert.equal(plan.after.num_hidden_layers, 45);
  assert.equal(plan.after.intermediate_size, 14336 - 64, 'one 64-step of MLP covers the 1000 parameters');
  const half = makePlan(BIELIK, { params: 0.9 });
  assert.ok(half.params.after.total <= Math.floor(0.9 * count({})));
  assert.deepEqual(makePlan(BIELIK, { params: 1 }).after, sizesOf(BIELIK), 'the whole model fits a budget of 1.0');
  const fixed = makePlan(BIELIK, { params: budget, target: { num_hidden_layers: 48 } });
  assert.equal(fixed.after.num_hidden_layers, 48, 'an axis in --target is not touched by the policy');
  assert.ok(fixed.after.intermediate_size < 14336 && fixed.params.after.total <= budget);
});

test('--params on a fixture: the pruned folder holds exactly the planned count', async () => {
  const src = fixture('llama_untied');
  const { plan, out } = pruneTo(src, { params: 0.8 });
  assert.equal(plan.after.num_hidden_layers, 2, '20% of 2 layers rounds to none');
  // rounded, the MLP's floor (12) is not enough, hidden 32 -> 24 (a multiple of 8) overshoots,
  // and the MLP takes back all of it
  assert.deepEqual([plan.after.hidden_size, plan.after.intermediate_size], [24, 16]);
  const { model } = await loadModel(out);
  assert.equal(model.layout.total, plan.params.after.total);
  assert.ok(plan.params.after.total <= Math.floor(0.8 * plan.params.before.total));
});

// ---------------------------------------------------------------------------------------------
// refusals, with their exact text

test('--target parsing refusals', () => {
  assert.deepEqual(parseTarget(' num_hidden_layers=40, intermediate_size = 11264 '), { num_hidden_layers: 40, intermediate_size: 11264 });
  refuses(() => parseTarget('hidden_size'), '--target: each entry is axis=size; expected axes num_hidden_layers, hidden_size, num_attention_heads, intermediate_size, found "hidden_size".');
  refuses(() => parseTarget('hidden_size=2.5'), '--target hidden_size: hidden_size must be a positive integer; found "2.5".');
  refuses(() => parseTarget('vocab_size=10'), '--target vocab_size: the prunable axes are num_hidden_layers, hidden_size, num_attention_heads, intermediate_size; found "vocab_size".');
  refuses(() => parseTarget('hidden_size=8,hidden_size=16'), '--target hidden_size: each axis may be given once; found hidden_size twice.');
  refuses(() => parseTarget('num_key_value_heads=1'), '--target num_key_value_heads: num_key_value_heads is never pruned: every key/value head is kept and query heads are pruned evenly within the KV groups. Hint: set num_attention_heads to a multiple of num_key_value_heads instead');
  refuses(() => parseTarget('head_dim=4'), '--target head_dim: head_dim is never pruned: a kept head keeps all of its channels. Hint: prune num_attention_heads or hidden_size; the new config.json states head_dim explicitly');
  refuses(() => parseParams('-3'), '--params: --params takes a parameter count (> 1) or a fraction of the original in (0, 1]; found "-3".');
});

test('plan refusals restate the rule and show the values', () => {
  const gqa = configOf(fixture('llama_tied_gqa')), mha = configOf(fixture('llama_untied'));
  refuses(() => makePlan(gqa, { target: { num_attention_heads: 3 } }),
    '--target num_attention_heads: num_attention_heads (3) must be a multiple of num_key_value_heads (2); expected one of 2, 4. Hint: key/value heads are never pruned, so every KV group keeps the same number of query heads');
  refuses(() => makePlan(mha, { target: { num_attention_heads: 2 } }),
    '--target num_attention_heads: num_attention_heads (2) must be a multiple of num_key_value_heads (4); expected one of 4. Hint: key/value heads are never pruned, so every KV group keeps the same number of query heads');
  refuses(() => makePlan(gqa, { target: { hidden_size: 40 } }), '--target hidden_size: hidden_size (40) must be at most the original hidden_size (32). Hint: pruning only removes');
  refuses(() => makePlan(gqa, { target: { intermediate_size: 0 } }), '--target intermediate_size: intermediate_size must be a positive integer; found 0.');
  refuses(() => makePlan(gqa, {}), 'prune: a plan needs sizes: --target axis=size,... and/or --params N. Hint: e.g. --target num_hidden_layers=40,intermediate_size=11264 or --params 0.67');
  refuses(() => makePlan(gqa, { target: { hidden_size: 16 }, depth: 'middle' as never }), '--depth: the depth mode must be importance or contiguous; expected importance or contiguous, found "middle".');
  refuses(() => makePlan(gqa, { params: 2e6 }), '--params: --params (2,000,000) must be at most the original parameter count (11,424). Hint: pruning only removes');
  refuses(() => makePlan(gqa, { params: 2.5 }), '--params: a parameter count above 1 must be a whole number (fractions of the original are at most 1); found 2.5.');
  refuses(() => makePlan(gqa, { params: 0.3 }),
    '--params: the --params policy drops at most 20% of the layers, then shrinks intermediate_size by at most 40%, then hidden_size by at most 40%, and never prunes attention heads; '
    + 'expected at most 3,427 parameters, found at least 7,992 (num_hidden_layers=2,hidden_size=24,num_attention_heads=4,intermediate_size=12). '
    + 'Hint: give the sizes with --target (alone, or together with --params to fix some axes)');
});

test('prune() refusals: scores of another model, the model folder as output, a plan for another model', () => {
  const src = fixture('llama_tied_gqa');
  const plan = makePlan(configOf(src), { target: ALL4 });
  const other = scoresFor(configOf(fixture('llama_head_dim')), 1);
  refuses(() => prune(src, plan, other, freshDir('x'), { scoresPath: 's.json' }),
    's.json: model.hidden_size: the scores must belong to the model being pruned; expected 32, found 48. Hint: recompute the scores with `kompresor score` on this model', 'input_invalid');
  refuses(() => prune(src, plan, scoresFor(configOf(src), 1), src),
    `--out ${src}: the output folder must differ from the model folder; found the model folder itself. Hint: the source weights are read while the pruned ones are written; pick a new folder`, 'input_invalid');
  const foreign = makePlan(configOf(fixture('llama_head_dim')), { target: { hidden_size: 40 } });
  refuses(() => prune(src, foreign, scoresFor(configOf(src), 1), freshDir('x')),
    `${src}: hidden_size: the plan must be made for this model; expected hidden_size 32, found a plan from hidden_size 48. Hint: make the plan from this model's config`);
});

// ---------------------------------------------------------------------------------------------
// the CLI

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], { cwd: ROOT, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('CLI: --params-convention and --round-to: the budget\'s convention, the rounding and its cost printed and in both reports', () => {
  const src = fixture('llama_untied');
  const scoresPath = path.join(tmp, 'untied.scores.json');
  saveScores(scoresPath, scoresFor(configOf(src), 4));
  const out = freshDir('cli-round');
  const r = cli('prune', src, '--scores', scoresPath, '--out', out, '--params', '0.8', '--params-convention', 'no-lm-head', '--round-to', '8',
    '--target', 'intermediate_size=12');
  assert.equal(r.code, 0, r.stderr);
  const plan = makePlan(configOf(src), { params: 0.8, paramsConvention: 'no-lm-head', roundTo: 8, target: { intermediate_size: 12 } });
  assert.equal(plan.after.hidden_size, 24);
  assert.match(r.stdout, /\n {4}without lm_head\s+13,472\s+[\d,]+\s+[\d.]+% of the original\n/, 'the total without the 2,048-parameter head');
  assert.match(r.stdout, /\n {2}budget 10,777 parameters, counted without the untied lm_head \(--params-convention no-lm-head; the --params policy /);
  assert.match(r.stdout, /\n {2}rounding: hidden_size to multiples of 8 \(--round-to 8\)\n/);
  const u = plan.rounding.unrounded!;
  assert.ok(r.stdout.includes(`unrounded, the policy would keep num_hidden_layers=${u.sizes.num_hidden_layers},hidden_size=${u.sizes.hidden_size},`
    + `num_attention_heads=4,intermediate_size=12: ${u.params.toLocaleString('en-US')} parameters; rounding cost ${plan.rounding.cost.toLocaleString('en-US')} (`));
  assert.ok(u.sizes.hidden_size > 24 && plan.rounding.cost > 0);
  assert.match(r.stdout, /\n {2}note: intermediate_size 12 is not a multiple of 8 \(--round-to\): taken as given; GEMMs run on ragged tiles and quantized GGUF rows may fall back to f16\n/);
  const json = JSON.parse(fs.readFileSync(path.join(out, 'prune_report.json'), 'utf8')) as PruneReport;
  assert.deepEqual([json.params_convention, json.rounding, json.params_budget], ['no-lm-head', plan.rounding, 10_777]);
  const page = JSON.parse(fs.readFileSync(path.join(out, 'report', 'report.json'), 'utf8'));
  assert.deepEqual([page.plan.params_convention, page.plan.rounding], ['no-lm-head', plan.rounding]);
  assert.ok(fs.readFileSync(path.join(out, 'report', 'index.html'), 'utf8').includes('rounding cost'));
  const bad = cli('prune', src, '--scores', scoresPath, '--out', freshDir('cli-round'), '--params', '0.8', '--round-to', '0');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^kompresor: --round-to: pruned widths are rounded to a multiple of a positive integer; expected .*, found "0"\.\n$/);
});

test('CLI: kompresor prune prints the plan and counts, --json the report, refusals in one line, --help explains', () => {
  const src = fixture('qwen2_bias');
  const scoresPath = path.join(tmp, 'qwen2.scores.json');
  saveScores(scoresPath, scoresFor(configOf(src), 9));
  const out = freshDir('cli');
  const text = cli('prune', src, '--scores', scoresPath, '--out', out, '--target', 'num_hidden_layers=1,num_attention_heads=2', '--depth', 'contiguous');
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /num_hidden_layers\s+2\s+1\s+depth contiguous: drop layers [01]\n/);
  assert.match(text.stdout, /num_attention_heads\s+4\s+2\s+num_key_value_heads 2 kept, 1 query head\(s\) per group, head_dim 8\n/);
  assert.match(text.stdout, /parameters\s+11,552\s+5,776\s+50\.00% of the original\n/);
  assert.match(text.stdout, /wrote .*: model\.safetensors, config\.json, prune_report\.json/);

  const json = cli('prune', src, '--scores', scoresPath, '--out', freshDir('cli'), '--params', '0.8', '--json');
  assert.equal(json.code, 0, json.stderr);
  const r: PruneReport = JSON.parse(json.stdout);
  assert.equal(r.chosen_by, 'params');
  assert.ok(r.params.after.total <= 0.8 * 11552);

  const bad = cli('prune', src, '--scores', scoresPath, '--out', freshDir('cli'), '--target', 'num_attention_heads=3');
  assert.equal(bad.code, 1);
  assert.equal(bad.stderr, 'kompresor: --target num_attention_heads: num_attention_heads (3) must be a multiple of num_key_value_heads (2); expected one of 2, 4. Hint: key/value heads are never pruned, so every KV group keeps the same number of query heads\n');

  const help = cli('prune', '--help');
  assert.equal(help.code, 0);
  for (const phrase of ['--target <axes>', '--params <n>', 'num_key_value_heads and head_dim are never pruned', 'contiguous', 'docs/pruning.md',
    '--round-to <n>', '--params-convention <c>', 'default: "total"', 'counts without an untied lm_head']) {
    assert.ok(help.stdout.includes(phrase), `--help mentions ${phrase}`);
  }
});
