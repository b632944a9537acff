// The log-prob heads of src/align/logprobs.ts, shared by GRPO and DPO: one row's
// log_softmax(z / T)[y] and its lse against float64 (max shift included), per-token log-probs of
// a batch against a float64 log-softmax of the model's full logits at two temperatures (NaN
// exactly where there is no target; a forward-only model gives the same numbers; bad
// temperatures refused), sequence log-probs (sums over answer tokens) likewise, the two routes
// agreeing (Σ per-token = per-sequence), tokens per row, and the gather-backward chunk against
// c·(onehot - softmax). The whole-model gradients are checked by finite differences in
// dpo.test.ts and grpo.test.ts.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../src/model/load.ts';
import type { Decoder } from '../../src/model/decoder.ts';
import { targetLogprob, tokenLogprobs, rowLogps, rowTokens, gatherBackwardChunk } from '../../src/align/logprobs.ts';
import { pairBatch, type DpoBatch } from '../../src/align/sources.ts';
import type { TokenExample } from '../../src/align/data.ts';
import { TINY } from '../train_helpers.ts';
import { randn, relErr, throwsWith } from '../helpers.ts';
import { lp64, pairs } from '../align_helpers.ts';

/** The model's full logits of a batch, (N, V) as float64. */
function fullLogits(model: Decoder, b: DpoBatch): Float64Array {
  const V = model.cfg.vocabSize, out = new Float64Array(b.B * b.T * V);
  model.logits(b, (r0, rows, z) => out.set(z.subarray(0, rows * V), r0 * V));
  return out;
}

describe('one row', () => {
  test('targetLogprob (V = 11, T = 1 and 0.7): lp = float64 log_softmax, Σ exp(z/T - lse) = 1', () => {
    for (const temp of [1, 0.7]) {
      const z = randn(11, 3, 3);
      for (let y = 0; y < 11; y++) {
        const { lp, lse } = targetLogprob(z, y, temp);
        assert.ok(Math.abs(lp - lp64(z, y, temp)) < 1e-12, `T ${temp} y ${y}: ${lp} vs ${lp64(z, y, temp)}`);
        let s = 0; for (const v of z) s += Math.exp(v / temp - lse);
        assert.ok(Math.abs(s - 1) < 1e-12, `Σ softmax = ${s}`);
      }
    }
  });

  test('targetLogprob shifts by the row max: logits near 1000 at T = 0.5 stay finite and exact', () => {
    const z = Float32Array.from(randn(11, 5, 3), (v) => v + 1000);
    assert.equal(Math.exp(z[0] / 0.5), Infinity, 'an unshifted exp would overflow');
    const { lp, lse } = targetLogprob(z, 4, 0.5);
    assert.ok(Number.isFinite(lp) && Number.isFinite(lse) && lp < 0, `lp ${lp}, lse ${lse}`);
    assert.ok(Math.abs(lp - lp64(z, 4, 0.5)) < 1e-9, `${lp} vs ${lp64(z, 4, 0.5)}`);
  });
});

describe('per token (GRPO)', () => {
  test('tokenLogprobs = float64 log_softmax(logits / T)[target] of the full logits (T = 1, 0.7); NaN exactly where there is no target', async () => {
    const { model } = await loadModel(TINY);
    const b = pairBatch(pairs(3, 1), [0, 1, 2], 3, 12, 0, null), V = model.cfg.vocabSize;
    const full = fullLogits(model, b);
    for (const temp of [1, 0.7]) {
      const got = tokenLogprobs(model, b, temp), want: number[] = [], have: number[] = [];
      assert.equal(got.length, b.B * b.T);
      for (let n = 0; n < got.length; n++) {
        const y = b.targets[n];
        if (y < 0) { assert.ok(Number.isNaN(got[n]), `position ${n} has no target: ${got[n]}`); continue; }
        have.push(got[n]);
        want.push(lp64(full.subarray(n * V, (n + 1) * V), y, temp));
      }
      assert.ok(have.length > 6 && have.every((v) => v < 0), String(have));
      assert.ok(relErr(have, want) < 1e-6, `T ${temp}: relErr ${relErr(have, want)}`);
    }
  });

  test('a forward-only model (a frozen reference) gives the same numbers', async () => {
    const { model } = await loadModel(TINY), frozen = (await loadModel(TINY)).model;
    frozen.forwardOnly = true;
    const b = pairBatch(pairs(2, 6), [0, 1], 2, 12, 0, null);
    assert.deepEqual(tokenLogprobs(frozen, b, 0.9), tokenLogprobs(model, b, 0.9));
    assert.deepEqual(rowLogps(frozen, b), rowLogps(model, b));
  });

  test('no target: all NaN; a temperature that is not a finite number > 0 is refused', async () => {
    const { model } = await loadModel(TINY);
    const b = pairBatch(pairs(1, 7), [0], 1, 12, 0, null);
    const none = { ...b, targets: new Int32Array(b.targets.length).fill(-100) };
    assert.ok(tokenLogprobs(model, none).every((v) => Number.isNaN(v)));
    for (const temp of [0, -1, NaN, Infinity]) throwsWith(() => tokenLogprobs(model, b, temp), 'input_invalid', /temperature/);
  });
});

describe('per sequence (DPO)', () => {
  test('rowLogps = Σ over answer tokens of a float64 log-softmax of the full logits', async () => {
    const { model } = await loadModel(TINY);
    const ps = pairs(3, 1), b = pairBatch(ps, [0, 1, 2], 3, 12, 0, null);
    const got = rowLogps(model, b), want = new Float64Array(b.B), V = model.cfg.vocabSize;
    model.logits(b, (r0, rows, logits) => {
      for (let i = 0; i < rows; i++) {
        const n = r0 + i, t = b.targets[n];
        if (t < 0) continue;
        const x = logits.subarray(i * V, (i + 1) * V);
        let m = -Infinity; for (const v of x) m = Math.max(m, v);
        let s = 0; for (const v of x) s += Math.exp(v - m);
        want[Math.floor(n / b.T)] += x[t] - m - Math.log(s);
      }
    });
    assert.ok(relErr(got, want) < 1e-6, `relErr ${relErr(got, want)}`);
    // the answer lengths are the masks: chosen rows first, then rejected rows
    assert.ok(got.every((v, k) => v < 0 && Number.isFinite(v)), String(got));
  });

  test('the two routes agree: rowLogps(row) = Σ tokenLogprobs(T = 1) over the row; rowTokens = the answer lengths', async () => {
    const { model } = await loadModel(TINY);
    const ps = pairs(4, 8), b = pairBatch(ps, [0, 1, 2, 3], 4, 12, 0, null);
    const perToken = tokenLogprobs(model, b), sums = new Float64Array(b.B);
    perToken.forEach((v, n) => { if (!Number.isNaN(v)) sums[Math.floor(n / b.T)] += v; });
    const perRow = rowLogps(model, b);
    assert.ok(relErr(perRow, sums) < 1e-6, `relErr ${relErr(perRow, sums)}: ${perRow} vs ${sums}`);
    const answer = (e: TokenExample) => e.mask.reduce((s, v) => s + v, 0);
    assert.deepEqual(Array.from(rowTokens(b)), [...ps.map((p) => answer(p.chosen)), ...ps.map((p) => answer(p.rejected))]);
  });

  test('gather backward (rows=3, V=11): dlogits = c_row · (onehot - softmax), 0 for ignored tokens', () => {
    const V = 11, T = 3, logits = randn(3 * V, 4, 3), x = Float64Array.from(logits);
    const batch = { B: 1, T, ids: new Int32Array(3), pos: new Int32Array(3), docStart: new Int32Array(3), targets: Int32Array.from([4, -100, 10]) };
    gatherBackwardChunk(batch, V, Float64Array.from([-0.7]))(new Float32Array(3), logits, 0, 3, 1);
    for (let n = 0; n < 3; n++) {
      const row = x.subarray(n * V, (n + 1) * V), t = batch.targets[n];
      const m = Math.max(...row), s = row.reduce((u, v) => u + Math.exp(v - m), 0);
      for (let j = 0; j < V; j++) {
        const want = t < 0 ? 0 : -0.7 * ((j === t ? 1 : 0) - Math.exp(row[j] - m) / s);
        assert.ok(Math.abs(logits[n * V + j] - want) < 1e-6, `row ${n} j ${j}: ${logits[n * V + j]} vs ${want}`);
      }
    }
  });
});
