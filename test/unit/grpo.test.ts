// GRPO (src/align/grpo*.ts): the per-token clipped objective and its gradient in every clipping
// case, k3 and its gradient, the loss head against an independent float64 statement of TRL's loss
// (every aggregation; value and d/dlogits by central differences, within 1e-5), group-normalised
// advantages, μ = 1 (ratio 1), the whole decoder's gradient against finite differences on the
// tiny fixture, and short runs of the shared trainer with rollouts: metrics, and a resume in the
// middle of a generation batch (μ = 2) that is bitwise the uninterrupted run.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { grpoTokenLoss, grpoChunkLoss, aggregationWeights, emptyStats, LOSS_TYPES, type GrpoLossOptions, type LossType } from '../../src/align/grpo_loss.ts';
import { advantages, buildMicroBatch, RolloutSource, type Rollout, type RolloutOptions } from '../../src/align/grpo_rollout.ts';
import { grpoObjective, grpoLoss, grpoLossAndBackward, grpoEvaluate } from '../../src/align/grpo.ts';
import { tokenLogprobs } from '../../src/align/logprobs.ts';
import type { PromptRow } from '../../src/align/grpo_data.ts';
import type { Reward } from '../../src/align/rewards.ts';
import { loadModel } from '../../src/model/load.ts';
import type { Decoder } from '../../src/model/decoder.ts';
import { train } from '../../src/train/trainer.ts';
import { TRAIN_DEFAULTS, type TrainOptions } from '../../src/train/options.ts';
import { readMetrics } from '../../src/train/metrics.ts';
import { readTrainState, latestCheckpoint } from '../../src/train/run_checkpoint.ts';
import { TINY } from '../train_helpers.ts';
import { randn, rng, relErr, tempDir } from '../helpers.ts';
import { lp64 } from '../align_helpers.ts';

const OPTS: GrpoLossOptions = { epsilonLow: 0.2, epsilonHigh: 0.28, beta: 0, temperature: 1 };

/** Central difference of a float64 function of one number. */
function d1(f: (x: number) => number, x: number, h = 1e-6): number {
  return (f(x + h) - f(x - h)) / (2 * h);
}

describe('the per-token objective', () => {
  const cases: [string, number, number, 'zero' | 'rhoA'][] = [
    // label, ratio, advantage, expected gradient of the objective w.r.t. lp
    ['A>0, ρ above 1+ε_high: clipped, zero gradient', 1.5, 0.8, 'zero'],
    ['A<0, ρ below 1-ε_low: clipped, zero gradient', 0.6, -1.3, 'zero'],
    ['A>0, ρ inside the range: A·ρ', 1.1, 0.8, 'rhoA'],
    ['A<0, ρ inside the range: A·ρ', 0.9, -1.3, 'rhoA'],
    ['A>0, ρ below 1-ε_low: the unclipped term is the minimum, A·ρ', 0.5, 0.8, 'rhoA'],
    ['A<0, ρ above 1+ε_high: the unclipped term is the minimum, A·ρ', 1.7, -1.3, 'rhoA'],
  ];
  for (const [label, ratio, A, kind] of cases) {
    test(label, () => {
      const lpOld = -2.3, lp = lpOld + Math.log(ratio);
      const r = grpoTokenLoss(lp, lpOld, NaN, A, OPTS);
      const clip = Math.min(Math.max(ratio, 0.8), 1.28);
      assert.ok(Math.abs(r.loss - -Math.min(ratio * A, clip * A)) < 1e-12, `loss ${r.loss}`);
      const want = kind === 'zero' ? 0 : -ratio * A;
      assert.ok(Math.abs(r.dlp - want) < 1e-12, `dℓ/dlp = ${r.dlp}, expected ${want}`);
      const fd = d1((x) => grpoTokenLoss(x, lpOld, NaN, A, OPTS).loss, lp);
      assert.ok(Math.abs(fd - r.dlp) < 1e-5, `finite differences ${fd} vs ${r.dlp}`);
      assert.equal(r.clippedHigh, ratio > 1.28 && A > 0);
      assert.equal(r.clippedLow, ratio < 0.8 && A < 0);
    });
  }

  test('ε_low and ε_high are separate: ρ = 1.25 is clipped at ε_high = 0.2, not at 0.28', () => {
    const lp = Math.log(1.25);
    assert.equal(grpoTokenLoss(lp, 0, NaN, 1, { ...OPTS, epsilonHigh: 0.2 }).dlp, 0);
    assert.ok(Math.abs(grpoTokenLoss(lp, 0, NaN, 1, OPTS).dlp + 1.25) < 1e-12);
  });

  test('k3 = exp(lp_ref - lp) - (lp_ref - lp) - 1: value, >= 0, 0 at lp = lp_ref, gradient 1 - exp(lp_ref - lp)', () => {
    const o = { ...OPTS, beta: 0.3 };
    for (const [lp, ref] of [[-1.2, -0.7], [-3, -3.9], [-0.4, -0.4], [-6, -1]]) {
      const r = grpoTokenLoss(lp, lp, ref, 0, o); // A = 0: only the KL term
      const k3 = Math.exp(ref - lp) - (ref - lp) - 1;
      assert.ok(Math.abs(r.k3 - k3) < 1e-12 && r.k3 >= 0, `k3 ${r.k3} vs ${k3}`);
      assert.ok(Math.abs(r.loss - 0.3 * k3) < 1e-12);
      assert.ok(Math.abs(r.dlp - 0.3 * (1 - Math.exp(ref - lp))) < 1e-12);
      const fd = d1((x) => grpoTokenLoss(x, lp, ref, 0, o).loss, lp);
      assert.ok(Math.abs(fd - r.dlp) < 1e-5, `finite differences ${fd} vs ${r.dlp}`);
      if (lp === ref) assert.equal(r.k3, 0);
    }
  });
});

// -----------------------------------------------------------------------------------------------
// the loss head against TRL's loss in float64

const V = 11;

/** Random prompts/completions over V ids; some completions masked (lossTokens 0). */
function randomRollouts(n: number, seed: number): { prompts: PromptRow[]; rs: Rollout[] } {
  const r = rng(seed);
  const prompts: PromptRow[] = Array.from({ length: n }, (_, i) => ({
    where: `p:${i + 1}`, text: '', row: {}, ids: Array.from({ length: 2 + Math.floor(r() * 4) }, () => Math.floor(r() * V)),
  }));
  const rs = prompts.map((_, i): Rollout => {
    const completion = Array.from({ length: 1 + Math.floor(r() * 6) }, () => Math.floor(r() * V));
    const masked = i === 2;
    return { prompt: i, completion, lossTokens: masked ? 0 : completion.length, truncated: masked, reward: 0,
      advantage: i === 5 ? 0 : (r() - 0.5) * 3, lpOld: null, lpRef: null };
  });
  return { prompts, rs };
}

interface Micro { rs: Rollout[]; logits: Float32Array; T: number }

/**
 * TRL's loss of one optimizer step, summed over its micro-batches as the HF trainer does (grpo,
 * bnpo and dr_grpo divide each micro-batch's loss by GA; dapo by the step's token count only).
 * Written from the spec's table, sequence by sequence, on float64 logits.
 */
function trlStepLoss(micro: Micro[], logits: Float64Array[], prompts: PromptRow[], type: LossType, o: GrpoLossOptions, maxLen: number, lpOld: 'detached' | number[][][]): number {
  const GA = micro.length;
  const nTok = micro.reduce((s, m) => s + m.rs.reduce((t, r) => t + r.lossTokens, 0), 0);
  let total = 0;
  micro.forEach((m, k) => {
    const perSeq: number[][] = m.rs.map((r, b) => {
      const P = prompts[r.prompt].ids.length;
      return Array.from({ length: r.lossTokens }, (_, j) => {
        const row = logits[k].subarray((b * m.T + P - 1 + j) * V, (b * m.T + P + j) * V);
        const lp = lp64(row, r.completion[j], o.temperature);
        const old = lpOld === 'detached' ? lp : lpOld[k][b][j];
        const coef1 = Math.exp(lp - old), coef2 = Math.min(Math.max(coef1, 1 - o.epsilonLow), 1 + o.epsilonHigh);
        let l = -Math.min(coef1 * r.advantage, coef2 * r.advantage);
        if (o.beta !== 0) { const d = r.lpRef![j] - lp; l += o.beta * (Math.exp(d) - d - 1); }
        return l;
      });
    });
    const sum = perSeq.flat().reduce((s, x) => s + x, 0), B = m.rs.length;
    if (type === 'grpo') total += perSeq.reduce((s, ls) => s + ls.reduce((t, x) => t + x, 0) / Math.max(1, ls.length), 0) / B / GA;
    else if (type === 'bnpo') total += sum / Math.max(1, perSeq.flat().length) / GA;
    else if (type === 'dr_grpo') total += sum / (B * maxLen) / GA;
    else total += sum / nTok;
  });
  return total;
}

/** Our step loss and d(step loss)/d(logits) per micro-batch: the chunk loss as headLoss runs it, then the trainer's 1/GA. */
function ourStepLoss(micro: Micro[], prompts: PromptRow[], type: LossType, o: GrpoLossOptions, maxLen: number, withOld: boolean) {
  const GA = micro.length, genTokens = micro.reduce((s, m) => s + m.rs.reduce((t, r) => t + r.lossTokens, 0), 0);
  const stats = emptyStats();
  let loss = 0;
  const grads = micro.map((m) => {
    const w = aggregationWeights(type, { lengths: m.rs.map((r) => r.lossTokens), gradAccum: GA, maxCompletionLength: maxLen, generationTokens: genTokens });
    const gb = buildMicroBatch(m.rs, prompts, w, 0, withOld, o.beta > 0);
    assert.equal(gb.batch.T, m.T);
    const N = gb.batch.B * gb.batch.T, count = gb.batch.targets.filter((t) => t >= 0).length;
    const z = m.logits.slice(), losses = new Float32Array(N);
    grpoChunkLoss(gb.batch.targets, gb.tokens, o, V, stats)(losses, z, 0, N, 1 / count);
    let s = 0;
    for (let n = 0; n < N; n++) if (gb.batch.targets[n] >= 0) s += losses[n];
    loss += s / count / GA;
    return Float64Array.from(z, (x) => x / GA);
  });
  return { loss, grads, stats };
}

function setup(seed: number, o: GrpoLossOptions, withOld: boolean) {
  const { prompts, rs } = randomRollouts(8, seed);
  const r = rng(seed + 1);
  const micro: Micro[] = [rs.slice(0, 4), rs.slice(4)].map((part, k) => {
    const T = Math.max(...part.map((x) => prompts[x.prompt].ids.length + x.completion.length));
    return { rs: part, T, logits: randn(part.length * T * V, seed + 10 + k, 1.5) };
  });
  const logits64 = micro.map((m) => Float64Array.from(m.logits));
  // lp_old and lp_ref near the current lp, so ρ spreads over both sides of the clipping range
  const old = micro.map((m, k) => m.rs.map((x, b) => {
    const P = prompts[x.prompt].ids.length;
    return Array.from({ length: x.lossTokens }, (_, j) => lp64(logits64[k].subarray((b * m.T + P - 1 + j) * V, (b * m.T + P + j) * V), x.completion[j], o.temperature) + (r() - 0.5) * 1.2);
  }));
  micro.forEach((m, k) => m.rs.forEach((x, b) => {
    if (withOld) x.lpOld = old[k][b];
    if (o.beta > 0) x.lpRef = old[k][b].map((v) => v + (r() - 0.5));
  }));
  return { prompts, micro, logits64, old };
}

describe('the GRPO loss head against TRL\'s loss in float64 (value and d/dlogits by finite differences, 1e-5)', () => {
  const o: GrpoLossOptions = { epsilonLow: 0.2, epsilonHigh: 0.28, beta: 0.04, temperature: 0.7 };
  for (const type of LOSS_TYPES) {
    test(`loss_type ${type} (2 micro-batches of 4, ρ on both sides of the range, β = 0.04, T = 0.7)`, () => {
      const { prompts, micro, logits64, old } = setup(5, o, true);
      const maxLen = 8;
      const ref = (l: Float64Array[]) => trlStepLoss(micro, l, prompts, type, o, maxLen, old);
      const ours = ourStepLoss(micro, prompts, type, o, maxLen, true);
      const want = ref(logits64);
      assert.ok(Math.abs(ours.loss - want) <= 1e-5 * Math.max(1, Math.abs(want)), `loss ${ours.loss} vs TRL ${want}`);
      assert.ok(ours.stats.clippedLow > 0 && ours.stats.clippedHigh > 0, `both clipping cases occur: ${JSON.stringify(ours.stats)}`);
      micro.forEach((_, k) => {
        const fd = new Float64Array(logits64[k].length);
        for (let i = 0; i < fd.length; i++) {
          const x = logits64[k][i], h = 1e-6;
          logits64[k][i] = x + h; const fp = ref(logits64);
          logits64[k][i] = x - h; const fm = ref(logits64);
          logits64[k][i] = x;
          fd[i] = (fp - fm) / (2 * h);
        }
        const e = relErr(ours.grads[k], fd);
        assert.ok(e < 1e-5, `micro-batch ${k}: relative error of d/dlogits ${e}`);
      });
    });
  }

  test('μ = 1 (no lp_old): ρ = 1 everywhere, nothing clipped, gradient -w·A·(onehot - softmax)/T', () => {
    const o1 = { ...o, beta: 0 };
    const { prompts, micro, logits64 } = setup(9, o1, false);
    const ours = ourStepLoss(micro, prompts, 'dapo', o1, 8, false);
    assert.equal(ours.stats.ratio, ours.stats.tokens, 'every ratio is exactly 1');
    assert.equal(ours.stats.clippedLow + ours.stats.clippedHigh, 0);
    const want = trlStepLoss(micro, logits64, prompts, 'dapo', o1, 8, 'detached');
    assert.ok(Math.abs(ours.loss - want) < 1e-6, `loss ${ours.loss} vs ${want}`);
    // the gradient of -A·exp(lp - sg(lp)) is -A·dlp
    const m = micro[0], tokens = micro.reduce((s, mm) => s + mm.rs.reduce((t, r) => t + r.lossTokens, 0), 0);
    const x = m.rs[0], P = prompts[x.prompt].ids.length, row = P - 1;
    const z = logits64[0].subarray(row * V, (row + 1) * V);
    const lse = Math.log(z.reduce((s, v) => s + Math.exp(v / o1.temperature), 0));
    for (let j = 0; j < V; j++) {
      const p = Math.exp(z[j] / o1.temperature - lse);
      const g = -(x.advantage / tokens) * ((j === x.completion[0] ? 1 : 0) - p) / o1.temperature;
      assert.ok(Math.abs(ours.grads[0][row * V + j] - g) < 1e-7, `dlogits[${j}] ${ours.grads[0][row * V + j]} vs ${g}`);
    }
  });
});

describe('advantages', () => {
  test('a group of identical rewards gets advantage 0 (every scaling)', () => {
    for (const s of ['group', 'batch', 'none'] as const) {
      const a = advantages([1, 1, 1, 1, 0, 1, 0, 1], 4, s);
      assert.deepEqual(a.advantages.slice(0, 4), [0, 0, 0, 0], s);
      assert.equal(a.groupStd[0], 0);
    }
  });

  test('group: (r - mean_g) / (std_g + 1e-4) with Bessel-corrected std; batch: the whole batch\'s std; none: r - mean_g', () => {
    const r = [0, 1, 1, 1, 2, 0, 0.5, 4];
    const std = (xs: number[]) => { const m = xs.reduce((s, x) => s + x, 0) / xs.length; return Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1)); };
    const g0 = r.slice(0, 4), g1 = r.slice(4), m0 = 0.75, m1 = 1.625;
    const close = (a: number[], b: number[]) => a.forEach((x, i) => assert.ok(Math.abs(x - b[i]) < 1e-12, `${a} vs ${b}`));
    close(advantages(r, 4, 'group').advantages, [...g0.map((x) => (x - m0) / (std(g0) + 1e-4)), ...g1.map((x) => (x - m1) / (std(g1) + 1e-4))]);
    close(advantages(r, 4, 'batch').advantages, r.map((x, i) => (x - (i < 4 ? m0 : m1)) / (std(r) + 1e-4)));
    close(advantages(r, 4, 'none').advantages, r.map((x, i) => x - (i < 4 ? m0 : m1)));
    assert.ok(Math.abs(std(g0) - 0.5) < 1e-15, 'Bessel: the std of 0,1,1,1 is 0.5 (population std would be 0.433)');
  });
});

// -----------------------------------------------------------------------------------------------
// through the decoder

/** The fixture's vocabulary is 64 ids, EOS 2. Prompts of 3..6 ids avoiding EOS. */
function fixturePrompts(n: number, seed: number): PromptRow[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => ({
    where: `prompts.jsonl:${i + 1}`, text: `p${i}`, row: { k: i }, ids: Array.from({ length: 3 + Math.floor(r() * 4) }, () => 3 + Math.floor(r() * 61)),
  }));
}

/** Reward: the fraction of completion ids below 32 (learnable, not trivial). */
const LOW: Reward = {
  name: 'low', source: 'low', weight: 1, requiredFields: [],
  fn: (_p, completions) => completions.map((c) => { const ids = c.split(' ').map(Number); return ids.filter((x) => x < 32).length / ids.length; }),
};

function perturbed(model: Decoder, seed: number, scale: number): Decoder {
  const noise = randn(model.params.length, seed, scale);
  for (let i = 0; i < model.params.length; i++) model.params.set(i, model.params.get(i) + noise[i]);
  return model;
}

test('decoder end to end (llama_tied_gqa, μ = 2, β = 0.1, dapo): d(loss)/d(params) matches finite differences; the loss equals the float64 statement on full logits', async () => {
  const policy = (await loadModel(TINY)).model, ref = perturbed((await loadModel(TINY)).model, 31, 0.05);
  ref.forwardOnly = true;
  // the policy's log-probs at generation time: those of a slightly different policy
  const old = perturbed((await loadModel(TINY)).model, 32, 0.05);
  const prompts = fixturePrompts(4, 33), r = rng(34);
  const rs: Rollout[] = prompts.map((_, i) => {
    const completion = Array.from({ length: 2 + i }, () => Math.floor(r() * 64));
    return { prompt: i, completion, lossTokens: completion.length, truncated: false, reward: 0, advantage: [1.2, -0.7, 0.4, -1.1][i], lpOld: null, lpRef: null };
  });
  const o: GrpoLossOptions = { epsilonLow: 0.2, epsilonHigh: 0.2, beta: 0.1, temperature: 0.9 };
  const probe = buildMicroBatch(rs, prompts, rs.map(() => 0), 0, false, false).batch;
  const lpOf = (m: Decoder) => tokenLogprobs(m, probe, o.temperature);
  const lpOld = lpOf(old), lpRef = lpOf(ref);
  rs.forEach((x, b) => {
    const P = prompts[x.prompt].ids.length;
    x.lpOld = x.completion.map((_, j) => lpOld[b * probe.T + P - 1 + j]);
    x.lpRef = x.completion.map((_, j) => lpRef[b * probe.T + P - 1 + j]);
  });
  const tokens = rs.reduce((s, x) => s + x.lossTokens, 0);
  const w = aggregationWeights('dapo', { lengths: rs.map((x) => x.lossTokens), gradAccum: 1, maxCompletionLength: 8, generationTokens: tokens });
  const gb = buildMicroBatch(rs, prompts, w, 0, true, true);

  // the value against the float64 statement on the policy's full logits
  const full = new Float64Array(gb.batch.B * gb.batch.T * 64);
  policy.logits(gb.batch, (r0, rows, z) => full.set(z.subarray(0, rows * 64), r0 * 64));
  let want = 0;
  rs.forEach((x, b) => {
    const P = prompts[x.prompt].ids.length;
    x.completion.forEach((y, j) => {
      const n = b * gb.batch.T + P - 1 + j;
      const lp = lp64(full.subarray(n * 64, (n + 1) * 64), y, o.temperature);
      want += grpoTokenLoss(lp, x.lpOld![j], x.lpRef![j], x.advantage, o).loss / tokens;
    });
  });
  policy.zeroGrad();
  const got = grpoLossAndBackward(policy, gb, o);
  assert.ok(Math.abs(got.loss - want) < 1e-5, `loss ${got.loss} vs ${want}`);
  assert.ok(got.stats.k3 > 0 && got.stats.tokens === tokens);

  // the gradient against central differences of the forward-only loss
  const names = ['model.embed_tokens.weight', 'model.layers.0.self_attn.q_proj.weight', 'model.layers.1.mlp.down_proj.weight', 'model.norm.weight'];
  for (const name of names) {
    const s = policy.layout.byName.get(name)!;
    let i = s.offset;
    for (let k = s.offset; k < s.offset + s.size; k++) if (Math.abs(policy.grads!.get(k)) > Math.abs(policy.grads!.get(i))) i = k;
    const g = policy.grads!.get(i), x = policy.params.get(i), h = 1e-2;
    policy.params.set(i, x + h); const fp = grpoLoss(policy, gb, o).loss;
    policy.params.set(i, x - h); const fm = grpoLoss(policy, gb, o).loss;
    policy.params.set(i, x);
    const fd = (fp - fm) / (Math.fround(x + h) - Math.fround(x - h));
    assert.ok(Math.abs(fd - g) <= 2e-2 * Math.abs(g) + 1e-6, `d loss / d ${name}[${i - s.offset}] = ${g}, finite differences ${fd}`);
  }
});

// -----------------------------------------------------------------------------------------------
// runs of the shared trainer

const tmp = () => tempDir('kompresor-grpo-');

function runOptions(over: Partial<TrainOptions> = {}): TrainOptions {
  return { ...TRAIN_DEFAULTS, steps: 4, microBatch: 4, seqLen: 16, gradAccum: 2, lr: 1e-2, minLr: 1e-3, warmup: 0, weightDecay: 0,
    saveEvery: 2, evalEvery: 2, evalBatches: 1, seed: 5, ...over };
}

async function grpoRun(runDir: string, o: TrainOptions, resume = false, stopAfter?: number) {
  const policy = (await loadModel(TINY)).model, reference = (await loadModel(TINY)).model;
  reference.forwardOnly = true;
  const prompts = fixturePrompts(6, 40), held = fixturePrompts(3, 41);
  const decode = (ids: number[]) => ids.join(' ');
  const ro: RolloutOptions = {
    numGenerations: 2, maxNewTokens: 5, sampling: { temperature: 1, topK: 0, topP: 1, minP: 0 }, maskTruncated: false,
    numIterations: 2, scaleRewards: 'group', lossType: 'dapo', beta: 0.05, microBatch: o.microBatch, gradAccum: o.gradAccum, seed: o.seed,
  };
  const source = new RolloutSource({ policy, reference, prompts, rewards: [LOW], decode, eosTokenIds: [2], padTokenId: 0 }, ro);
  const lossOpts: GrpoLossOptions = { epsilonLow: 0.2, epsilonHigh: 0.28, beta: 0.05, temperature: 1 };
  let steps = 0;
  return train({
    runDir, model: policy, config: JSON.parse(fs.readFileSync(path.join(TINY, 'config.json'), 'utf8')), train: source,
    objective: grpoObjective(lossOpts), options: o, resume,
    evaluate: (m, step) => grpoEvaluate(m, { prompts: held, rewards: [LOW], decode, eosTokenIds: [2], padTokenId: 0, maxNewTokens: 5, batchSize: 4 }, step),
    shouldStop: () => stopAfter !== undefined && ++steps >= stopAfter,
  });
}

describe('GRPO runs of the shared trainer (llama_tied_gqa, G = 2, μ = 2, β = 0.05)', () => {
  test('metrics: rewards, lengths, clip fractions and KL on every step; held-out greedy reward at 0, 2, 4', async () => {
    const dir = tmp();
    const r = await grpoRun(dir, runOptions());
    assert.equal(r.status, 'finished');
    const lines = readMetrics(path.join(dir, 'metrics.jsonl'));
    const train = lines.filter((l) => l.split === undefined), valid = lines.filter((l) => l.split === 'validation');
    assert.equal(train.length, 4);
    assert.deepEqual(valid.map((l) => l.step), [0, 2, 4]);
    for (const l of train) {
      for (const k of ['reward', 'reward_std', 'reward_low', 'frac_reward_zero_std', 'completion_length', 'truncated', 'clip_low', 'clip_high', 'clip_region', 'kl']) {
        assert.equal(typeof l[k], 'number', `${k} in ${JSON.stringify(l)}`);
      }
      assert.ok((l.completion_length as number) >= 1 && (l.completion_length as number) <= 5);
    }
    // μ = 2: steps 1-2 train on one generation batch, 3-4 on the next
    assert.equal(train[0].reward, train[1].reward);
    assert.equal(train[2].reward, train[3].reward);
    assert.equal(train[0].clip_region, 0, 'the first pass over a generation batch has ρ = 1 up to float32 rounding');
    for (const l of valid) assert.ok(Math.abs((l.loss as number) + (l.reward as number)) < 1e-12, 'the validation loss is -reward');
  });

  test('stopped after step 3 (inside a generation batch) and resumed: bitwise the uninterrupted run', async () => {
    const full = tmp(), cut = tmp();
    await grpoRun(full, runOptions());
    const stopped = await grpoRun(cut, runOptions({ saveEvery: 0 }), false, 3);
    assert.equal(stopped.status, 'stopped');
    const st = readTrainState(latestCheckpoint(cut)!);
    assert.equal(st.step, 3);
    assert.ok(Array.isArray(st.source.rollouts), 'the generation batch of steps 3-4 is in the checkpoint');
    await grpoRun(cut, runOptions({ saveEvery: 0 }), true);
    const curve = (d: string) => readMetrics(path.join(d, 'metrics.jsonl')).map((l) => { const { seconds: _s, tokens_per_s: _t, ...rest } = l; return JSON.stringify(rest); });
    assert.deepEqual(curve(cut), curve(full));
    assert.deepEqual(fs.readFileSync(path.join(cut, 'final/model.safetensors')), fs.readFileSync(path.join(full, 'final/model.safetensors')));
  });
});
