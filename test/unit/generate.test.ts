// KV-cache generation against the plain full forward pass, and the samplers against the Hugging
// Face warper definitions on hand-computed distributions.
//
// The fixture models are random: with tied embeddings and small weights they just repeat the last
// token, which would make "same tokens" a weak check. Their layer weights are scaled by 5 here so
// the greedy paths wander over the vocabulary; every step's logits are compared as well.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { KompresorError } from '../../src/errors.ts';
import { loadModel } from '../../src/model/load.ts';
import type { Decoder, Probe } from '../../src/model/decoder.ts';
import { batchFromDocs, batchFromRows } from '../../src/model/batch.ts';
import { allocateActivations } from '../../src/model/activations.ts';
import { kernels as K } from '../../src/tensor/ops.ts';
import { generate, prefillArena, type GenerateOptions } from '../../src/model/generate.ts';
import { GREEDY, Rng, argmax, sampleToken, warpedDistribution, type SamplingOptions } from '../../src/model/sampling.ts';
import { relErr } from '../helpers.ts';

const FIXTURES = path.join(import.meta.dirname, '../fixtures');
const LOGITS_TOL = 1e-4;

async function sharpened(name: string): Promise<Decoder> {
  const { model } = await loadModel(path.join(FIXTURES, name));
  for (const s of model.layout.slots) {
    if (!s.name.startsWith('model.layers.') || s.name.endsWith('norm.weight')) continue;
    for (let i = s.offset; i < s.offset + s.size; i++) model.params.set(i, model.params.get(i) * 5);
  }
  return model;
}

/** Logits of the last position of `seq`, from a full forward pass over the whole sequence. */
function lastLogits(model: Decoder, seq: number[]): Float32Array {
  const V = model.cfg.vocabSize;
  let last: Float32Array | null = null;
  model.logits(batchFromRows([seq]), (r0, rows, chunk) => {
    if (r0 + rows === seq.length) last = chunk.slice((rows - 1) * V, rows * V);
  });
  return last!;
}

/** Greedy decoding the slow way: re-run the full forward on the growing sequence, take the argmax. */
function fullForwardGreedy(model: Decoder, prompt: number[], n: number): { tokens: number[]; logits: Float32Array[] } {
  const seq = [...prompt], tokens: number[] = [], logits: Float32Array[] = [];
  for (let i = 0; i < n; i++) {
    const l = lastLogits(model, seq);
    const sorted = [...l].sort((a, b) => b - a);
    assert.ok(sorted[0] - sorted[1] > 1e-4, `setup: step ${i} has a near tie (${sorted[0]} vs ${sorted[1]}), argmax is ill-defined`);
    logits.push(l);
    tokens.push(argmax(l));
    seq.push(tokens[i]);
  }
  return { tokens, logits };
}

/** generate() with every step's (B, V) logits recorded, split per row. */
function generateRecorded(model: Decoder, prompts: number[][], o: Partial<GenerateOptions> & { maxNewTokens: number }) {
  const V = model.cfg.vocabSize;
  const logits: Float32Array[][] = prompts.map(() => []);
  const steps: number[][] = [];
  const res = generate(model, prompts, {
    sampling: GREEDY, seed: 0, eosTokenIds: [], ...o,
    onLogits: (l) => prompts.forEach((_, b) => logits[b].push(l.slice(b * V, (b + 1) * V))),
    onStep: (t) => steps.push([...t]),
  });
  return { ...res, logits, steps };
}

function assertLogitsClose(ours: Float32Array[], ref: Float32Array[], what: string): void {
  assert.ok(ours.length >= ref.length, `${what}: ${ours.length} steps recorded, ${ref.length} expected`);
  ref.forEach((r, i) => {
    const err = relErr(ours[i], r);
    assert.ok(err < LOGITS_TOL, `${what}: step ${i} logits relative error ${err.toExponential(2)}`);
  });
}

const LONG = [3, 17, 42, 9, 11, 25, 60, 7, 33];
const SHORT = [5, 6];
const N = 12;

describe('greedy KV-cache decoding equals the argmax of full forward passes', () => {
  for (const [fixture, why] of [['llama_tied_gqa', 'GQA 4/2'], ['mistral_window', 'sliding window 4, prompt of 9, 21 positions']] as const) {
    test(`${fixture} (${why}): tokens and every step's logits`, async () => {
      const model = await sharpened(fixture);
      for (const prompt of [LONG, SHORT]) {
        const ref = fullForwardGreedy(model, prompt, N);
        assert.ok(new Set(ref.tokens).size >= 4, `setup: the greedy path should vary, got ${ref.tokens}`);
        const ours = generateRecorded(model, [prompt], { maxNewTokens: N });
        assert.deepEqual(ours.tokens, [ref.tokens], `prompt of ${prompt.length}`);
        assertLogitsClose(ours.logits[0], ref.logits, `prompt of ${prompt.length}`);
        assert.equal(ours.decodeSteps, N - 1);
      }
    });
  }

  test('llama_head_dim (head_dim 16 != hidden/heads, MQA): tokens and logits', async () => {
    const model = await sharpened('llama_head_dim');
    const ref = fullForwardGreedy(model, LONG, 8);
    const ours = generateRecorded(model, [LONG], { maxNewTokens: 8 });
    assert.deepEqual(ours.tokens, [ref.tokens]);
    assertLogitsClose(ours.logits[0], ref.logits, 'head_dim');
  });
});

describe('batched generation', () => {
  for (const fixture of ['llama_tied_gqa', 'mistral_window']) {
    test(`${fixture}: two prompts of lengths 9 and 2 (left padding) give each one's tokens and logits alone`, async () => {
      const model = await sharpened(fixture);
      const alone = [LONG, SHORT].map((p) => generateRecorded(model, [p], { maxNewTokens: N }));
      const both = generateRecorded(model, [LONG, SHORT], { maxNewTokens: N, padTokenId: 0 });
      assert.deepEqual(both.tokens, [alone[0].tokens[0], alone[1].tokens[0]]);
      assertLogitsClose(both.logits[0], alone[0].logits[0], 'row 0');
      assertLogitsClose(both.logits[1], alone[1].logits[0], 'row 1 (7 pads)');
      // what the pads hold must not matter
      const otherPad = generateRecorded(model, [LONG, SHORT], { maxNewTokens: N, padTokenId: 63 });
      assert.deepEqual(otherPad.tokens, both.tokens);
      assertLogitsClose(otherPad.logits[1], both.logits[1], 'pad id 63 vs 0');
    });
  }

  test('an EOS stops its row only: later steps report -1 for it, the other row runs on', async () => {
    const model = await sharpened('llama_tied_gqa');
    const [s0, s1] = [LONG, SHORT].map((p) => generateRecorded(model, [p], { maxNewTokens: N }).tokens[0]);
    // the first token of row 0 (after step 0) that neither row produced earlier nor row 1 ever produces
    const k = s0.findIndex((t, i) => i >= 1 && !s0.slice(0, i).includes(t) && !s1.includes(t));
    assert.ok(k >= 1, `setup: no usable EOS candidate in ${s0} / ${s1}`);
    const eos = s0[k];
    const r = generateRecorded(model, [LONG, SHORT], { maxNewTokens: N, eosTokenIds: [eos], padTokenId: 0 });
    assert.deepEqual(r.tokens[0], s0.slice(0, k + 1), 'row 0 ends with the EOS, which is included');
    assert.deepEqual(r.tokens[1], s1, 'row 1 is unaffected');
    assert.equal(r.steps.length, N);
    r.steps.forEach((st, i) => assert.deepEqual(st, [i <= k ? s0[i] : -1, s1[i]], `step ${i}`));
  });

  test('when every row has hit an EOS, generation stops early', async () => {
    const model = await sharpened('llama_tied_gqa');
    const [s0, s1] = [LONG, SHORT].map((p) => generateRecorded(model, [p], { maxNewTokens: N }).tokens[0]);
    const eos = [s0[1], s1[2]];
    assert.ok(!eos.includes(s0[0]) && !eos.includes(s1[0]) && !eos.includes(s1[1]), `setup: ${s0} / ${s1}`);
    const r = generateRecorded(model, [LONG, SHORT], { maxNewTokens: N, eosTokenIds: eos, padTokenId: 0 });
    assert.deepEqual(r.tokens, [s0.slice(0, 2), s1.slice(0, 3)]);
    assert.equal(r.steps.length, 3);
    assert.equal(r.decodeSteps, 2);
  });

  test('maxNewTokens below 1, an empty prompt, ids outside the vocabulary and ids beyond int32 are refused', async () => {
    const { model } = await loadModel(path.join(FIXTURES, 'llama_tied_gqa'));
    const base = { sampling: GREEDY, seed: 0, eosTokenIds: [] };
    const refused = (fn: () => unknown, code: string, re: RegExp) => assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof KompresorError, String(e));
      assert.equal(e.code, code);
      assert.match(e.message, re);
      return true;
    });
    refused(() => generate(model, [[1, 2]], { ...base, maxNewTokens: 0 }), 'input_invalid', /^max_new_tokens: generation makes at least one token; expected an integer >= 1, found 0\.$/);
    refused(() => generate(model, [[1, 2], []], { ...base, maxNewTokens: 2 }), 'input_invalid', /^prompt: every prompt needs at least one token; found \[2,0\]\.$/);
    refused(() => generate(model, [[1, 64]], { ...base, maxNewTokens: 2 }), 'ids_out_of_vocab', /^ids\[0\]\[1\]: token ids must index the vocabulary; expected 0 <= id < 64, found 64\./);
    // 2**32 + 5 would wrap to the valid id 5 in the batch's Int32Array
    refused(() => generate(model, [[1, 2 ** 32 + 5]], { ...base, maxNewTokens: 2 }), 'ids_out_of_vocab', /^row 0\[1\]: token ids must index the vocabulary; expected a 32-bit integer, found 4294967301\./);
  });
});

describe('the prefill runs on a forward-only arena sized for the prompt, not the training arena', () => {
  test('generate() allocates one (B, P) forward-only arena without a head and never asks the decoder for its own', async () => {
    const model = await sharpened('llama_tied_gqa');
    const asked: string[] = [];
    const own = model.activations.bind(model);
    model.activations = (B: number, T: number) => { asked.push(`${B}x${T}`); return own(B, T); };
    const r = generate(model, [LONG, SHORT], { maxNewTokens: 4, sampling: GREEDY, seed: 0, eosTokenIds: [], padTokenId: 0 });
    assert.deepEqual(asked, [], 'the decoder\'s (training) arena was used');
    const B = 2, P = LONG.length, c = model.cfg;
    assert.equal(r.prefillArenaBytes, allocateActivations(c, B, P, true, false).bytes);
    assert.equal(r.prefillArenaBytes, prefillArena(model, B, P).bytes);
    // one layer's buffers (resid: two slots), no backward scratch, no logits chunk or losses
    const QKV = (c.numHeads + 2 * c.numKvHeads) * c.headDim, A = c.numHeads * c.headDim, N = B * P, F = c.intermediateSize, C = c.hiddenSize;
    const floats = 2 * N * C + N * C + N + N * QKV + N * A + B * c.numHeads * P + N * C + N * C + N + N * 2 * F + N * F + N * C + N;
    assert.equal(r.prefillArenaBytes, 4 * floats);
    const training = allocateActivations(c, B, P).bytes;
    assert.ok(r.prefillArenaBytes * c.numLayers < training, `${r.prefillArenaBytes} B against a ${training} B training arena`);
  });

  for (const fixture of ['llama_tied_gqa', 'mistral_window', 'qwen2_bias']) {
    test(`${fixture}: every layer's q|k|v (the cache) and the final norm are bit for bit those of the training arena`, async () => {
      const model = await sharpened(fixture);
      // generate()'s prompt batch: row 1 has 7 one-token pad documents, then its prompt
      const batch = batchFromDocs([[LONG], [...Array.from({ length: 7 }, () => [0]), SHORT]], LONG.length, 0);
      const qkvOf = () => {
        const seen: Float32Array[] = [];
        const probe: Probe = { names: new Set(['qkv']), observe: (_n, l, data) => { seen[l] = data.slice(); } };
        return { seen, probe };
      };
      const full = qkvOf(), small = qkvOf();
      const lnfFull = model.forward(batch, full.probe).buf.lnf.slice();
      const arena = prefillArena(model, batch.B, batch.T);
      const lnfSmall = model.forward(batch, small.probe, arena).buf.lnf.slice();
      assert.equal(full.seen.length, model.cfg.numLayers);
      full.seen.forEach((q, l) => assert.deepEqual(small.seen[l], q, `layer ${l}`));
      assert.deepEqual(lnfSmall, lnfFull);
      // and the first logits generate() hands out are lm_head of those final-norm rows
      const C = model.cfg.hiddenSize, V = model.cfg.vocabSize, P = batch.T;
      const last = new Float32Array(2 * C);
      for (let b = 0; b < 2; b++) last.set(lnfFull.subarray((b * P + P - 1) * C, (b * P + P) * C), b * C);
      const want = new Float32Array(2 * V);
      K.matmulForward(want, last, model.w.lmHead as Float32Array, null, 2, C, V);
      let first: Float32Array | null = null;
      generate(model, [LONG, SHORT], { maxNewTokens: 1, sampling: GREEDY, seed: 0, eosTokenIds: [], padTokenId: 0, onLogits: (l) => { first ??= l.slice(); } });
      assert.deepEqual(first, want);
    });
  }

  test('the arena is checked: a head-less arena refuses the loss head and logitsChunk, another shape refuses forward', async () => {
    const model = await sharpened('llama_tied_gqa');
    const batch = batchFromRows([LONG]);
    const a = model.forward(batch, undefined, prefillArena(model, 1, LONG.length));
    assert.throws(() => model.headLoss(a, batch, false), /\[ImplError\].*no logits chunk/);
    assert.throws(() => model.logitsChunk(a, 0, 1), /\[ImplError\].*no logits chunk/);
    assert.throws(() => model.forward(batch, undefined, prefillArena(model, 1, LONG.length + 1)), /\[ImplError\].*the arena is for \(B 1, T 10\), the batch is \(B 1, T 9\)/);
    assert.throws(() => allocateActivations(model.cfg, 1, 4, false, false), /\[ImplError\].*only a forward-only arena/);
  });
});

describe('sampled generation', () => {
  let model: Decoder;
  before(async () => { model = await sharpened('llama_tied_gqa'); });
  const run = (sampling: SamplingOptions, seed: number) => generate(model, [LONG, SHORT], { maxNewTokens: N, sampling, seed, eosTokenIds: [] }).tokens;
  const hot: SamplingOptions = { temperature: 3, topK: 0, topP: 1, minP: 0 };

  test('top-k = 1 equals greedy at any temperature and seed', () => {
    const greedy = run(GREEDY, 0);
    for (const seed of [1, 2, 3]) assert.deepEqual(run({ temperature: 5, topK: 1, topP: 1, minP: 0 }, seed), greedy);
  });

  test('a seed reproduces its tokens; another seed gives others', () => {
    const a = run(hot, 42);
    assert.deepEqual(run(hot, 42), a);
    assert.notDeepEqual(run(hot, 43), a);
    assert.notDeepEqual(a, run(GREEDY, 0));
  });
});

// -----------------------------------------------------------------------------------------------
// the samplers on known distributions

/** Logits whose softmax is `probs` (id i has probability probs[i]). */
function logitsOf(probs: number[]): Float32Array {
  return Float32Array.from(probs, (p) => Math.log(p));
}

function dist(logits: Float32Array, o: Partial<SamplingOptions>): Map<number, number> {
  const { ids, probs } = warpedDistribution(logits, { temperature: 1, topK: 0, topP: 1, minP: 0, ...o });
  return new Map(Array.from(ids, (id, i) => [id, probs[i]]));
}

function assertDist(actual: Map<number, number>, expected: Record<number, number>, what: string): void {
  assert.deepEqual([...actual.keys()].sort((a, b) => a - b), Object.keys(expected).map(Number).sort((a, b) => a - b), `${what}: kept ids`);
  for (const [id, p] of Object.entries(expected)) {
    assert.ok(Math.abs(actual.get(Number(id))! - p) < 1e-6, `${what}: p(${id}) = ${actual.get(Number(id))}, expected ${p}`);
  }
}

// ids 0..4 with probabilities 0.1, 0.4, 0.05, 0.3, 0.15 (sorted: 1, 3, 4, 0, 2)
const P = [0.1, 0.4, 0.05, 0.3, 0.15];
const L = logitsOf(P);

describe('warpedDistribution (HF order: temperature -> top-k -> top-p -> min-p)', () => {
  test('no warper: the softmax itself', () => {
    assertDist(dist(L, {}), { 0: 0.1, 1: 0.4, 2: 0.05, 3: 0.3, 4: 0.15 }, 'plain');
  });

  test('temperature 2 flattens to p^(1/2), temperature 0.5 sharpens to p^2 (renormalised)', () => {
    for (const T of [2, 0.5]) {
      const w = P.map((p) => p ** (1 / T)), s = w.reduce((a, b) => a + b, 0);
      assertDist(dist(L, { temperature: T }), Object.fromEntries(w.map((x, i) => [i, x / s])), `T=${T}`);
    }
  });

  test('top-k keeps the k most likely and renormalises', () => {
    assertDist(dist(L, { topK: 2 }), { 1: 0.4 / 0.7, 3: 0.3 / 0.7 }, 'k=2');
    assertDist(dist(L, { topK: 1 }), { 1: 1 }, 'k=1');
    assert.equal(dist(L, { topK: 10 }).size, 5, 'k above V keeps all');
  });

  test('top-p keeps the smallest prefix whose mass reaches p (a token is kept iff the mass before it is < p)', () => {
    assertDist(dist(L, { topP: 0.5 }), { 1: 0.4 / 0.7, 3: 0.3 / 0.7 }, 'p=0.5 (0.4 < 0.5, then 0.7)');
    assertDist(dist(L, { topP: 0.75 }), { 1: 0.4 / 0.85, 3: 0.3 / 0.85, 4: 0.15 / 0.85 }, 'p=0.75 (0.7 < 0.75)');
    assertDist(dist(L, { topP: 0.3 }), { 1: 1 }, 'p=0.3 (the first token alone reaches it)');
    assertDist(dist(L, { topP: 0 }), { 1: 1 }, 'p=0 still keeps one token');
    assert.equal(dist(L, { topP: 0.99 }).size, 5, 'p=0.99 needs every token (0.95 < 0.99)');
  });

  test('min-p drops tokens below min_p times the top probability', () => {
    assertDist(dist(L, { minP: 0.5 }), { 1: 0.4 / 0.7, 3: 0.3 / 0.7 }, 'floor 0.2');
    assertDist(dist(L, { minP: 0.3 }), { 1: 0.4 / 0.85, 3: 0.3 / 0.85, 4: 0.15 / 0.85 }, 'floor 0.12');
    assertDist(dist(L, { minP: 1 }), { 1: 1 }, 'floor = top keeps the top');
  });

  test('order matters: top-k renormalises before top-p, top-p before min-p', () => {
    // top-k 2 -> {0.571, 0.429}; top-p 0.55 then stops after the first (applied first, it would keep 2)
    assertDist(dist(L, { topK: 2, topP: 0.55 }), { 1: 1 }, 'top-k then top-p');
    // top-p 0.5 keeps {1, 3}; min-p 0.7 (floor 0.7 * 0.4) keeps both. Min-p first would keep {1, 3}
    // as well, but top-p 0.5 on that renormalised pair {0.571, 0.429} would then keep only 1.
    assertDist(dist(L, { topP: 0.5, minP: 0.7 }), { 1: 0.4 / 0.7, 3: 0.3 / 0.7 }, 'top-p then min-p');
    // temperature applies before top-p: at T = 0.5 the top token has 0.16 / 0.285 = 0.56 >= 0.55
    assertDist(dist(L, { temperature: 0.5, topP: 0.55 }), { 1: 1 }, 'temperature then top-p');
  });

  test('equal logits: the lower id wins the tie (stable order)', () => {
    const flat = new Float32Array([0, 1, 1, 0]);
    assertDist(dist(flat, { topK: 1 }), { 1: 1 }, 'tie');
    assert.equal(argmax(flat), 1);
  });
});

describe('sampleToken', () => {
  test('temperature 0 is the argmax whatever the other warpers say', () => {
    const rng = new Rng(1);
    for (let i = 0; i < 10; i++) assert.equal(sampleToken(L, { temperature: 0, topK: 3, topP: 0.1, minP: 0.9 }, rng), 1);
  });

  test('draws follow the warped distribution (40,000 seeded draws, within 4 sigma) and never leave it', () => {
    for (const o of [{ temperature: 1, topK: 0, topP: 1, minP: 0 }, { temperature: 1.5, topK: 4, topP: 0.9, minP: 0.1 }]) {
      const { ids, probs } = warpedDistribution(L, o);
      const rng = new Rng(7), n = 40_000, count = new Map<number, number>();
      for (let i = 0; i < n; i++) { const t = sampleToken(L, o, rng); count.set(t, (count.get(t) ?? 0) + 1); }
      assert.deepEqual([...count.keys()].sort(), [...ids].sort(), JSON.stringify(o));
      ids.forEach((id, i) => {
        const p = probs[i], f = count.get(id)! / n, sigma = Math.sqrt((p * (1 - p)) / n);
        assert.ok(Math.abs(f - p) < 4 * sigma, `${JSON.stringify(o)}: token ${id} drawn ${f}, p = ${p}`);
      });
    }
  });

  test('Rng: seeded, in [0, 1), its state restarts the sequence', () => {
    const a = new Rng(123), b = new Rng(123);
    const xs = Array.from({ length: 1000 }, () => a.next());
    assert.deepEqual(Array.from({ length: 1000 }, () => b.next()), xs);
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    assert.ok(Math.abs(mean - 0.5) < 0.05, `mean ${mean}`);
    const c = new Rng(123);
    for (let i = 0; i < 10; i++) c.next();
    const d = new Rng(0);
    d.state = c.state;
    assert.deepEqual([d.next(), d.next()], xs.slice(10, 12));
    assert.notEqual(new Rng(124).next(), xs[0]);
  });
});
