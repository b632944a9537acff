// Forward probes: an observer handed chosen intermediate activations of every layer. Each named
// activation is checked against a float64 recomputation from the layer's weights (read from the
// checkpoint by HF name, independently of the parameter arena's fused layout), so a probe that
// showed the wrong buffer, the wrong layer or the wrong width would fail.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { loadModel, type LoadedModel } from '../../src/model/load.ts';
import type { Probe, ProbeName } from '../../src/model/decoder.ts';
import { batchFromRows, type Batch } from '../../src/model/batch.ts';
import { relErr } from '../helpers.ts';

const FIXTURES = path.join(import.meta.dirname, '../fixtures');
const ALL: ProbeName[] = ['resid_in', 'input_layernorm', 'qkv', 'attn_pre_o', 'post_attention_layernorm', 'mlp_act', 'resid_out'];
const TOL = 1e-5;

interface Seen { name: ProbeName; layer: number; width: number; data: Float32Array; batch: Batch }

/** A probe that copies what it is shown (the views are only valid during the call). */
function recorder(names: ProbeName[]): Probe & { seen: Seen[]; get(name: ProbeName, layer: number): Float32Array } {
  const seen: Seen[] = [];
  return {
    names: new Set(names),
    seen,
    observe(name, layer, data, width, batch) { seen.push({ name, layer, width, data: data.slice(), batch }); },
    get(name, layer) {
      const s = seen.find((x) => x.name === name && x.layer === layer);
      assert.ok(s, `no ${name} for layer ${layer}`);
      return s.data;
    },
  };
}

/** y[n, o] = sum_i x[n, i] * W[o, i] (+ b[o]) in float64: a torch Linear. */
function linear(x: ArrayLike<number>, W: Float32Array, N: number, I: number, O: number, b?: Float32Array): Float64Array {
  const y = new Float64Array(N * O);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < I; i++) s += x[n * I + i] * W[o * I + i];
      y[n * O + o] = s;
    }
  }
  return y;
}

/** HF LlamaRMSNorm in float64: w * x / sqrt(mean(x^2) + eps). */
function rmsnorm(x: Float32Array, w: Float32Array, N: number, C: number, eps: number): Float64Array {
  const y = new Float64Array(N * C);
  for (let n = 0; n < N; n++) {
    let ss = 0;
    for (let c = 0; c < C; c++) ss += x[n * C + c] ** 2;
    const r = 1 / Math.sqrt(ss / C + eps);
    for (let c = 0; c < C; c++) y[n * C + c] = w[c] * x[n * C + c] * r;
  }
  return y;
}

// llama_head_dim: C = 48, nH * hd = 64, F = 16, so a probe that mixed up widths cannot pass
const IDS = [[1, 5, 9, 33, 2, 60, 17, 8, 4, 40, 11, 3], [7, 7, 21, 50, 63, 0, 12, 30, 45, 6, 19, 27]];

describe('forward probes (llama_head_dim: C=48, attention width 64, F=16)', () => {
  let lm: LoadedModel;
  let batch: Batch;
  let rec: ReturnType<typeof recorder>;
  before(async () => {
    lm = await loadModel(path.join(FIXTURES, 'llama_head_dim'));
    batch = batchFromRows(IDS);
    rec = recorder(ALL);
    lm.model.forward(batch, rec);
  });
  const N = IDS.length * IDS[0].length;
  const w = (name: string) => lm.checkpoint.read(name);

  test('every named activation of every layer arrives once, in forward order, with its width and N rows', () => {
    const c = lm.model.cfg;
    const width: Record<ProbeName, number> = {
      resid_in: c.hiddenSize, resid_out: c.hiddenSize, input_layernorm: c.hiddenSize, post_attention_layernorm: c.hiddenSize,
      attn_pre_o: c.numHeads * c.headDim, mlp_act: c.intermediateSize, qkv: (c.numHeads + 2 * c.numKvHeads) * c.headDim,
    };
    assert.deepEqual([width.resid_in, width.attn_pre_o, width.mlp_act], [48, 64, 16]);
    const expected = Array.from({ length: c.numLayers }, (_, l) => ALL.map((name) => `${l}:${name}:${width[name]}`)).flat();
    assert.deepEqual(rec.seen.map((s) => `${s.layer}:${s.name}:${s.width}`), expected);
    for (const s of rec.seen) {
      assert.equal(s.data.length, N * s.width, `${s.name} layer ${s.layer}`);
      assert.equal(s.batch, batch);
    }
  });

  test('only the requested names are observed', () => {
    const some = recorder(['mlp_act']);
    lm.model.forward(batch, some);
    assert.deepEqual(some.seen.map((s) => `${s.layer}:${s.name}`), ['0:mlp_act', '1:mlp_act']);
    assert.deepEqual(some.get('mlp_act', 1), rec.get('mlp_act', 1));
  });

  test('resid_in of layer 0 is the embedding; resid_out of layer l is resid_in of layer l+1', () => {
    const C = lm.model.cfg.hiddenSize, wte = w('model.embed_tokens.weight');
    const emb = new Float32Array(N * C);
    IDS.flat().forEach((id, n) => emb.set(wte.subarray(id * C, (id + 1) * C), n * C));
    assert.deepEqual(rec.get('resid_in', 0), emb);
    for (let l = 0; l + 1 < lm.model.cfg.numLayers; l++) assert.deepEqual(rec.get('resid_in', l + 1), rec.get('resid_out', l), `layer ${l}`);
  });

  test('the norm outputs are RMSNorm(resid) and RMSNorm(resid + o_proj(attn_pre_o)) with the layer\'s weights', () => {
    const c = lm.model.cfg, C = c.hiddenSize, A = c.numHeads * c.headDim;
    for (let l = 0; l < c.numLayers; l++) {
      const p = `model.layers.${l}.`;
      const x = rec.get('resid_in', l);
      const ln1 = rmsnorm(x, w(p + 'input_layernorm.weight'), N, C, c.rmsNormEps);
      assert.ok(relErr(rec.get('input_layernorm', l), ln1) < TOL, `layer ${l} input_layernorm`);
      const o = linear(rec.get('attn_pre_o', l), w(p + 'self_attn.o_proj.weight'), N, A, C);
      const mid = Float32Array.from(x, (v, i) => v + o[i]);
      const ln2 = rmsnorm(mid, w(p + 'post_attention_layernorm.weight'), N, C, c.rmsNormEps);
      assert.ok(relErr(rec.get('post_attention_layernorm', l), ln2) < TOL, `layer ${l} post_attention_layernorm`);
    }
  });

  test('mlp_act is silu(gate_proj(x)) * up_proj(x) of the post-attention norm output', () => {
    const c = lm.model.cfg, C = c.hiddenSize, F = c.intermediateSize;
    for (let l = 0; l < c.numLayers; l++) {
      const p = `model.layers.${l}.mlp.`;
      const x = rec.get('post_attention_layernorm', l);
      const gate = linear(x, w(p + 'gate_proj.weight'), N, C, F), up = linear(x, w(p + 'up_proj.weight'), N, C, F);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
      const err = relErr(rec.get('mlp_act', l), act);
      assert.ok(err < TOL, `layer ${l} mlp_act relative error ${err.toExponential(2)}`);
      // and swapping gate and up would not pass: silu(up) * gate is a different thing
      const swapped = up.map((u, i) => (u / (1 + Math.exp(-u))) * gate[i]);
      assert.ok(relErr(rec.get('mlp_act', l), swapped) > 1e-2);
    }
  });

  test('resid_out is resid_in + o_proj(attn_pre_o) + down_proj(mlp_act)', () => {
    const c = lm.model.cfg, C = c.hiddenSize, A = c.numHeads * c.headDim, F = c.intermediateSize;
    for (let l = 0; l < c.numLayers; l++) {
      const p = `model.layers.${l}.`;
      const o = linear(rec.get('attn_pre_o', l), w(p + 'self_attn.o_proj.weight'), N, A, C);
      const d = linear(rec.get('mlp_act', l), w(p + 'mlp.down_proj.weight'), N, F, C);
      const x = rec.get('resid_in', l);
      const y = x.map((v, i) => v + o[i] + d[i]);
      assert.ok(relErr(rec.get('resid_out', l), y) < TOL, `layer ${l}`);
    }
  });

  test('attn_pre_o of the first token is its own value vector (causal attention over one key)', () => {
    // at t = 0 the softmax has a single entry, so each head's output is v_proj(input_layernorm) of
    // its kv head: checks attn_pre_o is the attention output and not, e.g., q or the o_proj result
    const c = lm.model.cfg, C = c.hiddenSize, hd = c.headDim, A = c.numHeads * hd, KV = c.numKvHeads * hd;
    const T = IDS[0].length, group = c.numHeads / c.numKvHeads;
    const ln1 = rec.get('input_layernorm', 0), att = rec.get('attn_pre_o', 0);
    const v = linear(ln1, w('model.layers.0.self_attn.v_proj.weight'), N, C, KV);
    for (let b = 0; b < IDS.length; b++) {
      const n = b * T;
      const want = Array.from({ length: A }, (_, j) => v[n * KV + Math.floor(Math.floor(j / hd) / group) * hd + (j % hd)]);
      assert.ok(relErr(att.subarray(n * A, (n + 1) * A), want) < TOL, `row ${b}`);
    }
  });

  test('qkv is q|k|v of the input norm output, v as projected, q and k rotated (RoPE keeps each pair\'s norm)', () => {
    const c = lm.model.cfg, C = c.hiddenSize, hd = c.headDim, A = c.numHeads * hd, KV = c.numKvHeads * hd, QKV = A + 2 * KV;
    for (let l = 0; l < c.numLayers; l++) {
      const p = `model.layers.${l}.self_attn.`, ln1 = rec.get('input_layernorm', l), qkv = rec.get('qkv', l);
      const cols = (from: number, width: number) => Float32Array.from({ length: N * width }, (_, i) => qkv[Math.floor(i / width) * QKV + from + (i % width)]);
      assert.ok(relErr(cols(A + KV, KV), linear(ln1, w(p + 'v_proj.weight'), N, C, KV)) < TOL, `layer ${l} v`);
      for (const [name, from, width] of [['q', 0, A], ['k', A, KV]] as const) {
        const plain = linear(ln1, w(p + `${name}_proj.weight`), N, C, width), rotated = cols(from, width);
        // rotate_half pairs dimension i with i + hd/2 within a head
        const pairNorms = (x: ArrayLike<number>) => Array.from({ length: N * width / 2 }, (_, k) => {
          const head = Math.floor(k / (hd / 2)), i = head * hd + (k % (hd / 2));
          return Math.hypot(x[i], x[i + hd / 2]);
        });
        assert.ok(relErr(pairNorms(rotated), pairNorms(plain)) < TOL, `layer ${l} ${name}: pair norms`);
        assert.ok(relErr(rotated, plain) > 1e-3, `layer ${l} ${name}: rotated (positions above 0)`);
      }
    }
  });

  test('attaching a probe changes no logits (bit for bit)', () => {
    const V = lm.model.cfg.vocabSize;
    const logits = () => {
      const out = new Float32Array(N * V);
      lm.model.logits(batch, (r0, rows, chunk) => out.set(chunk.subarray(0, rows * V), r0 * V));
      return out;
    };
    const before = logits();
    // the logits are lm_head(final norm output): that output is the same with and without a probe
    const lnfPlain = lm.model.forward(batch).buf.lnf.slice();
    const lnfProbed = lm.model.forward(batch, recorder(ALL)).buf.lnf.slice();
    assert.deepEqual(lnfProbed, lnfPlain);
    assert.deepEqual(logits(), before);
  });
});
