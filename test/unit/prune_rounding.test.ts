// Pruned shapes users can run (src/prune/rounding.ts, plan.ts, search.ts), shape-only: widths
// the --params policy and the search choose are multiples of --round-to (64) and hidden_size a
// multiple of the heads; a width too small for that falls back and says so; what rounding cost
// against the unrounded choice; --target sizes taken as given with a note; --params-convention.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { countIn, normalizeConfig, paramCount, type ModelConfig } from '../../src/io/hf_config.ts';
import { makePlan, parseParamsConvention, sizesOf, withSizes, type AxisSizes, type PrunePlan } from '../../src/prune/plan.ts';
import { parseRoundTo, targetNotes, widthStep } from '../../src/prune/rounding.ts';
import { divisorsFor, searchSpace } from '../../src/prune/search.ts';
import { throwsWith } from '../helpers.ts';

/** Qwen2.5-0.5B's shape: hidden 896, 14 heads / 2 KV of 64, MLP 4864, 24 layers, tied, q/k/v biases. */
const QWEN05 = normalizeConfig({
  architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', vocab_size: 151936, hidden_size: 896, intermediate_size: 4864,
  num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, tie_word_embeddings: true,
}, 'qwen2.5-0.5b');
/** A small Llama: hidden 256, 8 heads / 4 KV of 32, MLP 704, 6 layers, untied. */
const LLAMA = normalizeConfig({
  architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 2048, hidden_size: 256, intermediate_size: 704,
  num_hidden_layers: 6, num_attention_heads: 8, num_key_value_heads: 4, tie_word_embeddings: false,
}, 'small llama');
/** The same with 6 heads / 2 KV of 32 (hidden 192): no multiple of 64 and 6 within the 40% bound. */
const LLAMA6 = normalizeConfig({
  architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 2048, hidden_size: 192, intermediate_size: 512,
  num_hidden_layers: 6, num_attention_heads: 6, num_key_value_heads: 2, tie_word_embeddings: false,
}, 'small llama, 6 heads');
const BIELIK = normalizeConfig({
  architectures: ['MistralForCausalLM'], model_type: 'mistral', vocab_size: 32128, hidden_size: 4096, intermediate_size: 14336,
  num_hidden_layers: 50, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 128, tie_word_embeddings: false,
}, 'bielik');

const count = (cfg: ModelConfig, s: AxisSizes, c: 'total' | 'no-lm-head' = 'total') => countIn(paramCount(withSizes(cfg, s)), c);

/** The plan's sizes obey both rules, and its rounding cost is the unrounded choice's count minus its own. */
function checkRounded(cfg: ModelConfig, plan: PrunePlan, multiple = 64): void {
  for (const a of ['hidden_size', 'intermediate_size'] as const) {
    if (plan.after[a] < plan.before[a]) assert.equal(plan.after[a] % multiple, 0, `${a} ${plan.after[a]} a multiple of ${multiple}`);
  }
  assert.equal(plan.after.hidden_size % plan.after.num_attention_heads, 0, 'hidden_size a multiple of the heads');
  const u = plan.rounding.unrounded!;
  assert.equal(u.params, count(cfg, u.sizes, plan.params_convention));
  assert.equal(plan.rounding.cost, u.params - countIn(plan.params.after, plan.params_convention));
  assert.ok(u.params <= plan.params_budget! && countIn(plan.params.after, plan.params_convention) <= plan.params_budget!);
}

describe('widthStep', () => {
  test('--round-to when a multiple lies in the bound, else the largest power of two below it that has one', () => {
    assert.deepEqual(widthStep(4096, 2458, 64, 32), { step: 64, multiple: 64, fallback: false });
    assert.deepEqual(widthStep(64, 39, 64), { step: 16, multiple: 16, fallback: true }, 'hidden 64, 40%: 48');
    assert.deepEqual(widthStep(896, 538, 64, 14), { step: 32, multiple: 224, fallback: true }, '14 heads: lcm(64, 14) = 448 is -50%, lcm(32, 14) = 224 gives 672');
    assert.deepEqual(widthStep(896, 538, 64), { step: 64, multiple: 64, fallback: false });
    assert.deepEqual(widthStep(2, 2, 64), { step: 64, multiple: 64, fallback: false }, 'nothing fits: the axis cannot shrink');
    assert.deepEqual(widthStep(100, 60, 48), { step: 48, multiple: 48, fallback: false }, 'a --round-to that is not a power of two');
  });

  test('--round-to and --params-convention refusals', () => {
    throwsWith(() => parseRoundTo('0'), 'input_invalid', /^--round-to: pruned widths are rounded to a multiple of a positive integer; expected e\.g\. 64 \(the default\), 32, or 1 for no rounding, found "0"\.$/);
    throwsWith(() => parseRoundTo('6.5'), 'input_invalid', /found "6\.5"/);
    assert.equal(parseRoundTo(undefined), 64);
    throwsWith(() => parseParamsConvention('embeddings'), 'invalid_prune_plan',
      /^--params-convention: a parameter count is the total or the total without the untied lm_head; expected total or no-lm-head, found "embeddings"\. Hint: no-lm-head counts as the seed does/);
  });
});

describe('--params policy, rounded', () => {
  test('Qwen2.5-0.5B shape, 75%: layers then the MLP in multiples of 64, hidden untouched; the cost against step 1', () => {
    const plan = makePlan(QWEN05, { params: 0.75 });
    assert.deepEqual(plan.after, { num_hidden_layers: 20, hidden_size: 896, num_attention_heads: 14, intermediate_size: 3648 });
    assert.ok(count(QWEN05, { ...plan.after, intermediate_size: 3648 + 64 }) > plan.params_budget!, 'the largest multiple of 64 under the budget');
    checkRounded(QWEN05, plan);
    assert.deepEqual(plan.rounding.steps.map((s) => [s.axis, s.multiple, s.fallback]), [['hidden_size', 224, true], ['intermediate_size', 64, false]]);
    // unrounded the MLP takes the largest size under the budget at step 1
    const u = plan.rounding.unrounded!;
    assert.deepEqual({ ...u.sizes, intermediate_size: 0 }, { ...plan.after, intermediate_size: 0 });
    assert.ok(count(QWEN05, { ...u.sizes, intermediate_size: u.sizes.intermediate_size + 1 }) > plan.params_budget!);
    assert.ok(u.sizes.intermediate_size - plan.after.intermediate_size < 64 && plan.rounding.cost > 0);
    assert.deepEqual(plan.rounding.notes, [], 'hidden did not shrink: its fallback goes unmentioned');
  });

  test('Qwen2.5-0.5B shape, 55%: hidden must shrink; 14 heads leave no multiple of 448 in the bound, so 672 (a multiple of 224), said in a note', () => {
    const plan = makePlan(QWEN05, { params: 0.55 });
    assert.deepEqual(plan.after, { num_hidden_layers: 20, hidden_size: 672, num_attention_heads: 14, intermediate_size: 3520 });
    assert.ok(count(QWEN05, { ...plan.after, intermediate_size: 3584 }) > plan.params_budget!, 'the MLP took back what hidden\'s step of 224 left');
    assert.equal(plan.rounding.cost, 105_042, '0.04% of the budget (8.6% if the MLP stayed at its floor, 2944)');
    checkRounded(QWEN05, plan, 32);
    assert.deepEqual(plan.rounding.notes, ['hidden_size 896: no multiple of 64 (lcm of 64 and the 14 heads: 448) lies within the pruning bound, '
      + 'so its pruned sizes are multiples of 32 (lcm of 32 and the 14 heads: 224) instead']);
    assert.notEqual(plan.rounding.unrounded!.sizes.hidden_size % 14, 0, 'unrounded, the policy picks a hidden size transformers refuses');
  });

  test('small Llama (8 heads): hidden and MLP in multiples of 64, hidden divisible by the heads; --round-to 1 keeps the heads rule', () => {
    const plan = makePlan(LLAMA, { params: 0.6 });
    // the MLP goes to its floor (448), hidden to 192, then the MLP takes back what hidden's coarse step left
    assert.deepEqual(plan.after, { num_hidden_layers: 5, hidden_size: 192, num_attention_heads: 8, intermediate_size: 576 });
    assert.ok(count(LLAMA, { ...plan.after, intermediate_size: 640 }) > plan.params_budget!, 'the MLP took back all it could');
    checkRounded(LLAMA, plan);
    assert.deepEqual(plan.rounding.unrounded!.sizes, { ...plan.after, hidden_size: 229, intermediate_size: 426 }, 'unrounded: a hidden size transformers refuses');
    assert.equal(plan.rounding.cost, 98_469);
    const one = makePlan(LLAMA, { params: 0.6, roundTo: 1 });
    assert.deepEqual(one.after, { ...plan.after, hidden_size: 224, intermediate_size: 447 }, '--round-to 1: any MLP size, hidden a multiple of the 8 heads');
    assert.equal(one.rounding.cost, plan.rounding.unrounded!.params - count(LLAMA, one.after));
    assert.ok(one.rounding.cost < plan.rounding.cost);
  });

  test('small Llama with 6 heads: hidden 192 -> 144 (a multiple of lcm(16, 6) = 48), with the fallback note', () => {
    const plan = makePlan(LLAMA6, { params: 0.55 });
    assert.equal(plan.after.hidden_size, 144);
    assert.equal(plan.after.intermediate_size % 64, 0);
    checkRounded(LLAMA6, plan, 16);
    assert.match(plan.rounding.notes[0], /^hidden_size 192: no multiple of 64 \(lcm of 64 and the 6 heads: 192\) lies within the pruning bound, so its pruned sizes are multiples of 16 \(lcm of 16 and the 6 heads: 48\) instead$/);
  });

  test('Bielik: --params 7.35e9 counted as the seed counts (no-lm-head) gives the seed\'s shape; as the total, a smaller MLP', () => {
    const seed = makePlan(BIELIK, { params: 7.35e9, paramsConvention: 'no-lm-head' });
    assert.deepEqual(seed.after, { ...sizesOf(BIELIK), num_hidden_layers: 40, intermediate_size: 11264 });
    assert.equal(seed.params_convention, 'no-lm-head');
    assert.equal(countIn(seed.params.after, 'no-lm-head'), 7_346_130_944);
    // unrounded: 7 more MLP neurons (40 layers x 3 x 4096 = 491,520 parameters each) fit the 3,869,056 left
    assert.deepEqual(seed.rounding.unrounded, { sizes: { ...seed.after, intermediate_size: 11271 }, params: 7_346_130_944 + 7 * 491_520 });
    assert.equal(seed.rounding.cost, 3_440_640);
    const total = makePlan(BIELIK, { params: 7.35e9 });
    assert.equal(total.after.num_hidden_layers, 40);
    assert.ok(total.after.intermediate_size < 11264 && total.after.intermediate_size % 64 === 0);
    assert.equal(total.params_convention, 'total');
  });
});

describe('--target sizes are taken as given', () => {
  const DEMO = normalizeConfig({
    architectures: ['MistralForCausalLM'], model_type: 'mistral', vocab_size: 4096, hidden_size: 384, intermediate_size: 1024,
    num_hidden_layers: 8, num_attention_heads: 6, num_key_value_heads: 2, head_dim: 64, tie_word_embeddings: true,
  }, 'polish teacher');

  test('the demo\'s MLP 800 is kept with a note; hidden 320 with 6 heads gets the transformers note; no cost without --params', () => {
    const demo = makePlan(DEMO, { target: { num_hidden_layers: 6, intermediate_size: 800 } });
    assert.equal(demo.after.intermediate_size, 800);
    assert.deepEqual(demo.rounding, { round_to: 64, steps: [], unrounded: null, cost: 0,
      notes: ['intermediate_size 800 is not a multiple of 64 (--round-to): taken as given; GEMMs run on ragged tiles and quantized GGUF rows may fall back to f16'] });
    assert.deepEqual(makePlan(DEMO, { target: { intermediate_size: 800 }, roundTo: 32 }).rounding.notes, [], '800 is a multiple of 32');
    const width = makePlan(DEMO, { target: { hidden_size: 320, intermediate_size: 704 } });
    assert.deepEqual(width.rounding.notes, ['hidden_size 320 is not a multiple of num_attention_heads 6: transformers 5 will not load this config (Llama, Mistral, Qwen2), even with its explicit head_dim']);
    assert.deepEqual(targetNotes(sizesOf(DEMO), { ...sizesOf(DEMO), num_attention_heads: 4, hidden_size: 320 }, 64, ['hidden_size']), []);
    assert.deepEqual(targetNotes(sizesOf(DEMO), { ...sizesOf(DEMO), hidden_size: 320 }, 64, []).length, 1, 'a size the policy chose gets the heads note only');
  });

  test('the demo\'s width search at its budget (66.85%): every candidate a multiple of 64 with hidden divisible by the heads', () => {
    const budget = Math.floor(0.6685 * paramCount(DEMO).total);
    const s = searchSpace(DEMO, { budget, maxWidthPruning: 0.4, maxDepthPruning: 0, divisors: divisorsFor(DEMO), topK: 4 });
    assert.deepEqual(s.choices.hidden_size, [384, 320, 256]);
    assert.equal(s.notDivisible, 2 * 7, 'hidden 320 and 256 with 6 heads, for each of the 7 MLP sizes');
    for (const c of s.candidates) {
      assert.equal(c.sizes.hidden_size % 64, 0);
      assert.equal(c.sizes.intermediate_size % 64, 0);
      assert.equal(c.sizes.hidden_size % c.sizes.num_attention_heads, 0);
    }
    // the search's old winner, hidden 320 with 6 heads, is gone: 320 goes with 4 heads now
    assert.deepEqual(s.candidates.map((c) => [c.sizes.hidden_size, c.sizes.num_attention_heads, c.sizes.intermediate_size]),
      [[320, 4, 768], [256, 4, 1024], [320, 4, 704], [256, 4, 960]]);
  });
});

describe('search, rounded', () => {
  test('Qwen2.5-0.5B shape: hidden and MLP in multiples of 64, each candidate\'s hidden divisible by its heads', () => {
    const s = searchSpace(QWEN05, { budget: Math.floor(0.75 * paramCount(QWEN05).total), maxWidthPruning: 0.4, maxDepthPruning: 0.2, divisors: divisorsFor(QWEN05), topK: 10 });
    assert.deepEqual(s.choices.hidden_size, [896, 832, 768, 704, 640, 576]);
    assert.deepEqual(s.choices.num_attention_heads, [14, 12, 10]);
    assert.ok(s.notDivisible > 0);
    for (const c of s.candidates) {
      for (const a of ['hidden_size', 'intermediate_size'] as const) assert.equal(c.sizes[a] % 64, 0, `${a} ${c.sizes[a]}`);
      assert.equal(c.sizes.hidden_size % c.sizes.num_attention_heads, 0, `${c.sizes.hidden_size} / ${c.sizes.num_attention_heads}`);
    }
  });

  test('--params-convention no-lm-head counts the budget and every candidate without the untied head', () => {
    const o = { maxWidthPruning: 0.4, maxDepthPruning: 0.2, divisors: divisorsFor(LLAMA), topK: 3 };
    const budget = Math.floor(0.7 * countIn(paramCount(LLAMA), 'no-lm-head'));
    const s = searchSpace(LLAMA, { ...o, budget, convention: 'no-lm-head' });
    for (const c of s.candidates) assert.equal(c.params, count(LLAMA, c.sizes, 'no-lm-head'));
    const t = searchSpace(LLAMA, { ...o, budget });
    assert.notDeepEqual(s.candidates[0], t.candidates[0], 'the same number means a larger model without the head');
  });
});
