// The engine's answers to harness requests against sums computed directly in the test from
// Decoder.logits on each request's own sequence: loglikelihood (whitespace moving, the prefix token
// for an empty context, is_greedy, packing several requests per row), rolling windows on a text
// longer than the context, and generate_until with stop strings.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadModel } from '../../src/model/load.ts';
import { loadTokenizer, type LoadedTokenizer } from '../../src/io/tokenizer.ts';
import { batchFromRows } from '../../src/model/batch.ts';
import { generate } from '../../src/model/generate.ts';
import { GREEDY } from '../../src/model/sampling.ts';
import type { Decoder } from '../../src/model/decoder.ts';
import { EngineLM, encodePair, rollingWindows, packRows, cutAtStops } from '../../src/eval/requests.ts';
import { prefixToken } from '../../src/cli/eval_command.ts';
import { makeByteModel } from '../gguf_helpers.ts';
import { tempDir } from '../helpers.ts';

let tmp: string, model: Decoder, tok: LoadedTokenizer, lm: EngineLM, prefix: number;
const L = 16; // evaluation context (max_length) of these tests

before(async () => {
  tmp = tempDir('kompresor-eval-requests-');
  const dir = path.join(tmp, 'model');
  // merges make " t", "ma" and " ma" single tokens, so whitespace placement changes the tokens
  makeByteModel(dir, 'llama_tied_gqa', {}, 7, [['Ġ', 't'], ['m', 'a'], ['Ġ', 'ma']]);
  ({ model } = await loadModel(dir));
  tok = loadTokenizer(dir);
  prefix = prefixToken(tok);
  lm = new EngineLM(model, tok, { maxLength: L, batchTokens: 40, genBatch: 3, prefixTokenId: prefix });
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** log p(ids[i] | ids[< i]) for i >= 1, from one forward pass over ids (float64 log-softmax). */
function tokenLogProbs(ids: number[]): { lp: number[]; argmax: number[] } {
  const V = model.cfg.vocabSize, logits = new Float32Array(ids.length * V);
  model.logits(batchFromRows([ids]), (r0, n, chunk) => logits.set(chunk.subarray(0, n * V), r0 * V));
  const lp = [0], argmax = [-1];
  for (let t = 1; t < ids.length; t++) {
    const row = logits.subarray((t - 1) * V, t * V);
    let m = -Infinity, a = 0;
    row.forEach((x, v) => { if (x > m) { m = x; a = v; } });
    let s = 0;
    row.forEach((x) => { s += Math.exp(x - m); });
    lp.push(row[ids[t]] - m - Math.log(s));
    argmax.push(a);
  }
  return { lp, argmax };
}

const enc = (s: string) => tok.encode(s, { addSpecialTokens: false });

test('the prefix token is the tokenizer\'s EOS when it has no BOS (HFLM.prefix_token_id)', () => {
  assert.equal(tok.bosTokenId, null);
  assert.equal(prefix, tok.tokenToId('<|im_end|>'));
});

test('encode pair: trailing whitespace of the context moves to the continuation; an empty context is the prefix token', () => {
  const e = encodePair(enc, prefix, 'Ala ma ', 'kota');
  assert.deepEqual(e.ctx, enc('Ala ma'));
  assert.deepEqual(e.cont, enc(' kota'));
  assert.deepEqual(encodePair(enc, prefix, '', ' ma'), { ctx: [prefix], cont: [tok.tokenToId('Ġma')] });
  // the split is at len(enc(ctx)) of enc(ctx + cont): " t" is one token whichever side it came from
  assert.deepEqual(encodePair(enc, prefix, 'a', ' t').cont, [tok.tokenToId('Ġt')]);
});

test('loglikelihood equals the directly computed sum over the continuation, for packed requests of mixed lengths', () => {
  const reqs = [
    { context: 'Ala ma ', continuation: 'kota' },
    { context: 'Pytanie: ile to 2+2?', continuation: ' cztery' },
    { context: '', continuation: 'źdźbło' },
    { context: 'x', continuation: ' t' },
    { context: 'Ala ma ', continuation: 'kota' }, // a duplicate is scored once and answered twice
    { context: 'a very long context that is cut from the left', continuation: ' ma' },
  ];
  const got = lm.loglikelihood(reqs);
  reqs.forEach((r, i) => {
    const { ctx, cont } = encodePair(enc, prefix, r.context, r.continuation);
    const all = ctx.concat(cont).slice(-(L + 1)); // HFLM keeps the last max_length + 1 tokens
    const { lp, argmax } = tokenLogProbs(all);
    const first = all.length - cont.length;
    let want = 0, greedy = true;
    for (let t = first; t < all.length; t++) { want += lp[t]; greedy &&= argmax[t] === all[t]; }
    assert.ok(Math.abs(got[i].ll - want) < 2e-4 * Math.max(1, Math.abs(want)), `request ${i}: ${got[i].ll} vs ${want}`);
    assert.equal(got[i].isGreedy, greedy, `request ${i} is_greedy`);
  });
  assert.deepEqual(got[4], got[0]);
});

test('is_greedy is true exactly when every continuation token is the argmax', () => {
  const ctx = enc('Ala');
  const greedyIds: number[] = [];
  for (let k = 0; k < 3; k++) {
    const seq = ctx.concat(greedyIds);
    greedyIds.push(tokenLogProbs([...seq, 0]).argmax[seq.length]);
  }
  const cont = tok.decode(greedyIds);
  // only when the greedy bytes decode to text that re-encodes to the same ids
  if (JSON.stringify(encodePair(enc, prefix, 'Ala', cont).cont) === JSON.stringify(greedyIds)) {
    assert.equal(lm.loglikelihood([{ context: 'Ala', continuation: cont }])[0].isGreedy, true);
  }
  const other = lm.loglikelihood([{ context: 'Ala', continuation: ' ma kota' }])[0];
  assert.equal(other.isGreedy, false);
});

test('rolling windows (max_seq_len 3, context_len 1) are the harness\'s disjoint windows', () => {
  const P = 99, toks = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  assert.deepEqual(rollingWindows(toks, P, 3), [
    { input: [P, 0, 1], targets: [0, 1, 2] },
    { input: [2, 3, 4], targets: [3, 4, 5] },
    { input: [5, 6, 7], targets: [6, 7, 8] },
    { input: [6, 7, 8], targets: [9] },     // the last, short window reads a full window of context
  ]);
  assert.deepEqual(rollingWindows([5], P, 3), [{ input: [P], targets: [5] }]);
  assert.deepEqual(rollingWindows([], P, 3), []);
});

test('rolling perplexity on a text longer than the context equals the per-token sum computed directly', () => {
  const text = 'Ala ma kota, a kot ma Alę. Źdźbło trawy na łące!';
  const ids = enc(text);
  assert.ok(ids.length > 2 * L + 3, `the text must span several windows (${ids.length} tokens)`);
  // token i's context: window w = floor(i / L) covers [wL, wL + L); the first window starts from the
  // prefix token, a later full window from the token before it, and the last short one from the
  // L - n + 1 tokens before it (a full window of input)
  const nFull = Math.floor(ids.length / L), lastStart = nFull * L;
  let want = 0;
  for (let i = 0; i < ids.length; i++) {
    const w = Math.floor(i / L);
    let ctx: number[];
    if (w === 0) ctx = [prefix, ...ids.slice(0, i)];
    else if (i < lastStart) ctx = ids.slice(w * L - 1, i);
    else ctx = ids.slice(ids.length - L - 1, i);
    want += tokenLogProbs([...ctx, ids[i]]).lp[ctx.length];
  }
  const [got] = lm.loglikelihoodRolling([text]);
  assert.ok(Math.abs(got - want) < 1e-4 * Math.abs(want), `${got} vs ${want}`);
  // and the same text twice in one call gives the same sum (windows of both texts packed together)
  const two = lm.loglikelihoodRolling([text, 'krótki tekst', text]);
  assert.ok(Math.abs(two[0] - got) < 1e-4 * Math.abs(got) && Math.abs(two[2] - got) < 1e-4 * Math.abs(got));
});

test('packRows: first-fit decreasing keeps every item whole within rows of T', () => {
  const lengths = [5, 9, 3, 7, 2, 9, 1];
  const rows = packRows(lengths, 10);
  assert.deepEqual(rows.flat().sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6]);
  for (const r of rows) assert.ok(r.reduce((s, i) => s + lengths[i], 0) <= 10);
  assert.equal(rows.length, 4); // 9+1, 9, 7+3, 5+2
});

test('generate_until stops at the first stop string and cuts there; batches give the same text as one by one', () => {
  const prompt = 'Ala ma';
  // max_gen_toks 8: the context keeps its last max_length - 8 = 8 tokens, all of "Ala ma"
  const full = generate(model, [enc(prompt)], { maxNewTokens: 8, sampling: GREEDY, seed: 0, eosTokenIds: [] }).tokens[0];
  const text = tok.decode(full, { skipSpecialTokens: true });
  // a stop string: the first printable ASCII character after the first character of the greedy text
  const k = [...text].findIndex((c, i) => i > 0 && /[ -~]/.test(c));
  assert.ok(k > 0, `no ASCII character in ${JSON.stringify(text)}`);
  const stop = [...text][k];
  const req = { context: prompt, until: [stop], maxGenToks: 8, sampling: GREEDY, seed: 0 };
  const [out] = lm.generateUntil([req]);
  assert.equal(out, text.split(stop)[0]);
  const many = lm.generateUntil([req, { ...req, context: 'Pytanie' }, req, { ...req, context: 'x' }]);
  assert.equal(many[0], out);
  assert.equal(many[2], out);
  // the stopRow hook ends a row early, as an EOS would
  const three = generate(model, [enc(prompt)], { maxNewTokens: 8, sampling: GREEDY, seed: 0, eosTokenIds: [], stopRow: (_b, ids) => ids.length === 3 });
  assert.deepEqual(three.tokens[0], full.slice(0, 3));
  assert.equal(cutAtStops('a.b,c', ['.', ',']), 'a');
  assert.equal(cutAtStops('a,b.c', ['.', ',']), 'a');
  assert.equal(cutAtStops('abc', ['', 'x']), 'abc');
});
