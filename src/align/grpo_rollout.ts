// GRPO rollouts as the trainer's BatchSource (spec alignment-and-eval.md §3 "Rollout", TRL
// _generate_and_score_completions): before the steps that need one, `prepare(step)` makes a
// generation batch with the policy being trained, and `next()` hands it out micro-batch by
// micro-batch to the GRPO objective (grpo.ts).
//
// One generation batch = gradAccum micro-batches of microBatch completions = microBatch/G prompts
// each, every prompt repeated G times consecutively (TRL's RepeatSampler; prompts in a seeded
// order, a new permutation every epoch). It is made every μ = numIterations optimizer steps and
// trained on μ times (TRL's steps_per_generation = gradient accumulation):
//   1. sample G completions per prompt with the KV-cache decoder (temperature, top-k, top-p,
//      min-p); a completion ends at its first EOS (included in the loss) or at maxNewTokens
//      (truncated: no EOS; with maskTruncated its tokens leave the loss);
//   2. score them with the rewards (may be asynchronous: this is why the work sits in prepare);
//   3. advantages per group of G (advantages(), below);
//   4. μ > 1: lp_old = the policy's log-probs of the completion tokens now; β > 0: lp_ref = the
//      frozen reference model's. Both at logits / temperature, from one forward pass each.
//
// The source's state (a checkpoint's `source`) holds the prompt order's position, the sampling
// generator and, when the next step trains on it again (μ > 1), the generation batch itself: a
// resumed run takes exactly the steps of an uninterrupted one.
import type { Decoder } from '../model/decoder.ts';
import { batchFromDocs, IGNORE, type Batch } from '../model/batch.ts';
import { generate } from '../model/generate.ts';
import { Rng, type SamplingOptions } from '../model/sampling.ts';
import type { BatchSource, SourceState } from '../data/source.ts';
import { KompresorError, ensure } from '../errors.ts';
import { tokenLogprobs } from './logprobs.ts';
import { aggregationWeights, type GrpoTokens, type LossType } from './grpo_loss.ts';
import { scoreRewards, type Reward } from './rewards.ts';
import type { PromptRow } from './grpo_data.ts';

export const SCALE_REWARDS = ['group', 'batch', 'none'] as const;
export type ScaleRewards = (typeof SCALE_REWARDS)[number];

/** One micro-batch for the GRPO objective: token rows plus the per-token data of the loss. */
export interface GrpoBatch {
  /** Rows of prompt + completion; targets only at the completion tokens in the loss. */
  batch: Batch;
  tokens: GrpoTokens;
  /** Metrics of the generation batch it belongs to (rewards, lengths), logged with each step. */
  metrics: Record<string, number>;
}

export interface RolloutOptions {
  numGenerations: number;
  maxNewTokens: number;
  sampling: SamplingOptions;
  maskTruncated: boolean;
  numIterations: number;
  scaleRewards: ScaleRewards;
  lossType: LossType;
  /** β (> 0: reference log-probs are needed). */
  beta: number;
  microBatch: number;
  gradAccum: number;
  seed: number;
}

export interface RolloutContext {
  policy: Decoder;
  /** The frozen reference model (β > 0), usually with forwardOnly set. */
  reference: Decoder | null;
  prompts: PromptRow[];
  rewards: Reward[];
  decode: (ids: number[]) => string;
  eosTokenIds: number[];
  padTokenId: number;
  /** Appended to reward errors: what happened to the run and how to resume it. */
  stopHint?: string;
}

/** One sampled completion and what the loss needs of it (JSON-serialisable for checkpoints). */
export interface Rollout {
  /** Index into the prompts. */
  prompt: number;
  completion: number[];
  /** Completion tokens in the loss: all of them (up to and including EOS), or 0 when masked. */
  lossTokens: number;
  truncated: boolean;
  reward: number;
  advantage: number;
  /** Per loss token: the policy's log-prob at generation time (μ > 1) and the reference's (β > 0). */
  lpOld: number[] | null;
  lpRef: number[] | null;
}

// ---------------------------------------------------------------------------------------------
// advantages

/**
 * TRL's group-relative advantages over consecutive groups of G rewards:
 *   A_i = (r_i - mean_g(r)) / (std + 1e-4)
 * with std the group's (scale 'group'), the whole batch's ('batch'), or no division ('none',
 * Dr. GRPO). std is Bessel-corrected (N - 1), as torch.std. Also returns each group's std (for
 * reward_std) and whether it is zero (frac_reward_zero_std).
 */
export function advantages(rewards: number[], G: number, scale: ScaleRewards): { advantages: number[]; groupStd: number[] } {
  ensure(G >= 2 && rewards.length % G === 0, 'advantages', () => `rewards (${rewards.length}) must form groups of G = ${G} >= 2`);
  const groups = rewards.length / G;
  const out = new Array<number>(rewards.length), groupStd: number[] = [];
  const batchStd = std(rewards, 0, rewards.length);
  for (let g = 0; g < groups; g++) {
    const lo = g * G;
    let mean = 0;
    for (let i = lo; i < lo + G; i++) mean += rewards[i];
    mean /= G;
    const gs = std(rewards, lo, lo + G);
    groupStd.push(gs);
    const div = scale === 'group' ? gs + 1e-4 : scale === 'batch' ? batchStd + 1e-4 : 1;
    for (let i = lo; i < lo + G; i++) out[i] = (rewards[i] - mean) / div;
  }
  return { advantages: out, groupStd };
}

/** Sample standard deviation (Bessel, N - 1) of xs[lo, hi), in float64. */
function std(xs: number[], lo: number, hi: number): number {
  const n = hi - lo;
  if (n < 2) return 0;
  let mean = 0;
  for (let i = lo; i < hi; i++) mean += xs[i];
  mean /= n;
  let ss = 0;
  for (let i = lo; i < hi; i++) ss += (xs[i] - mean) ** 2;
  return Math.sqrt(ss / (n - 1));
}

// ---------------------------------------------------------------------------------------------
// micro-batches

/**
 * The GrpoBatch of some rollouts: rows prompt + completion (padded to the longest), targets at
 * the loss tokens only, and per-token advantage, weight, lp_old and lp_ref there.
 */
export function buildMicroBatch(rs: Rollout[], prompts: PromptRow[], weights: number[], padId: number,
  withOld: boolean, withRef: boolean, metrics: Record<string, number> = {}): GrpoBatch {
  const rows = rs.map((r) => [...prompts[r.prompt].ids, ...r.completion]);
  const T = Math.max(...rows.map((x) => x.length));
  const batch = batchFromDocs(rows.map((x) => [x]), T, padId);
  const N = rs.length * T;
  batch.targets.fill(IGNORE);
  const tokens: GrpoTokens = {
    advantage: new Float64Array(N), weight: new Float64Array(N),
    lpOld: withOld ? new Float64Array(N).fill(NaN) : null, lpRef: withRef ? new Float64Array(N).fill(NaN) : null,
  };
  rs.forEach((r, b) => {
    const P = prompts[r.prompt].ids.length;
    for (let j = 0; j < r.lossTokens; j++) {
      const n = b * T + P - 1 + j;                   // the position whose next token is completion[j]
      batch.targets[n] = r.completion[j];
      tokens.advantage[n] = r.advantage;
      tokens.weight[n] = weights[b];
      if (tokens.lpOld) tokens.lpOld[n] = r.lpOld![j];
      if (tokens.lpRef) tokens.lpRef[n] = r.lpRef![j];
    }
  });
  return { batch, tokens, metrics };
}

/** lp at each rollout's loss tokens from per-position log-probs of its micro-batch. */
function gatherLossTokens(lp: Float64Array, rs: Rollout[], prompts: PromptRow[], T: number): number[][] {
  return rs.map((r, b) => {
    const P = prompts[r.prompt].ids.length;
    return Array.from({ length: r.lossTokens }, (_, j) => lp[b * T + P - 1 + j]);
  });
}

// ---------------------------------------------------------------------------------------------
// the source

interface PromptCursor { epoch: number; pos: number }

export class RolloutSource implements BatchSource<GrpoBatch> {
  private readonly rng: Rng;
  private cur: PromptCursor = { epoch: 0, pos: 0 };
  private order: Int32Array;
  private rollouts: Rollout[] | null = null;
  private genMetrics: Record<string, number> = {};
  private micro: GrpoBatch[] = [];
  private cursor = 0;
  private prepared = 0;

  constructor(private readonly ctx: RolloutContext, private readonly o: RolloutOptions) {
    checkRolloutOptions(o);
    this.rng = new Rng(o.seed);
    this.order = this.epochOrder(0);
  }

  /** Prompts per generation batch. */
  get promptsPerGeneration(): number { return (this.o.gradAccum * this.o.microBatch) / this.o.numGenerations; }

  async prepare(step: number): Promise<void> {
    if (this.rollouts === null || (step - 1) % this.o.numIterations === 0) await this.generateBatch(step);
    this.prepared = step;
    this.cursor = 0;
  }

  next(B: number): GrpoBatch {
    ensure(B === this.o.microBatch, 'RolloutSource.next', () => `micro-batches of ${this.o.microBatch} completions, asked for ${B}`);
    ensure(this.cursor < this.micro.length, 'RolloutSource.next', () => `at most ${this.o.gradAccum} micro-batches per prepared step`);
    return this.micro[this.cursor++];
  }

  state(): SourceState {
    // the generation batch is saved only when the next step trains on it again
    const reuse = this.rollouts !== null && this.prepared % this.o.numIterations !== 0;
    return {
      epoch: this.cur.epoch, pos: this.cur.pos, rng: this.rng.state, prepared: this.prepared,
      rollouts: reuse ? this.rollouts : null, metrics: reuse ? this.genMetrics : null,
    };
  }

  restore(s: SourceState): void {
    this.cur = { epoch: s.epoch as number, pos: s.pos as number };
    this.order = this.epochOrder(this.cur.epoch);
    this.rng.state = s.rng as number;
    this.prepared = s.prepared as number;
    this.rollouts = (s.rollouts as Rollout[] | null) ?? null;
    this.genMetrics = (s.metrics as Record<string, number> | null) ?? {};
    this.micro = this.rollouts ? this.buildMicroBatches(this.rollouts) : [];
  }

  // -------------------------------------------------------------------------------------------

  private epochOrder(epoch: number): Int32Array {
    const n = this.ctx.prompts.length, order = Int32Array.from({ length: n }, (_, i) => i);
    const r = new Rng((Math.imul(this.o.seed >>> 0, 0x9e3779b1) + epoch) >>> 0);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(r.next() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    return order;
  }

  private takePrompt(): number {
    if (this.cur.pos >= this.order.length) {
      this.cur = { epoch: this.cur.epoch + 1, pos: 0 };
      this.order = this.epochOrder(this.cur.epoch);
    }
    return this.order[this.cur.pos++];
  }

  private async generateBatch(step: number): Promise<void> {
    const { ctx, o } = this, G = o.numGenerations;
    const rollouts: Rollout[] = [];
    for (let k = 0; k < o.gradAccum; k++) {
      const picked = Array.from({ length: o.microBatch / G }, () => this.takePrompt());
      const rowsPrompt = picked.flatMap((p) => Array.from({ length: G }, () => p));
      const seed = Math.floor(this.rng.next() * 4294967296);
      const res = generate(ctx.policy, rowsPrompt.map((p) => ctx.prompts[p].ids), {
        maxNewTokens: o.maxNewTokens, sampling: o.sampling, seed, eosTokenIds: ctx.eosTokenIds, padTokenId: ctx.padTokenId,
      });
      res.tokens.forEach((completion, i) => {
        const truncated = !ctx.eosTokenIds.includes(completion[completion.length - 1]);
        rollouts.push({ prompt: rowsPrompt[i], completion, truncated, lossTokens: truncated && o.maskTruncated ? 0 : completion.length,
          reward: 0, advantage: 0, lpOld: null, lpRef: null });
      });
    }
    const prompts = rollouts.map((r) => ctx.prompts[r.prompt]);
    const distinct = [...new Set(prompts.map((p) => p.where))];
    const batchName = `the generation batch of step ${step} (prompts ${distinct.slice(0, 4).join(', ')}${distinct.length > 4 ? ', ...' : ''})`;
    const scored = await scoreRewards(ctx.rewards, prompts.map((p) => p.text), rollouts.map((r) => ctx.decode(r.completion)),
      prompts.map((p) => p.row), { completionIds: rollouts.map((r) => r.completion), batch: batchName }, ctx.stopHint);
    const adv = advantages(scored.total, G, o.scaleRewards);
    rollouts.forEach((r, i) => { r.reward = scored.total[i]; r.advantage = adv.advantages[i]; });
    this.genMetrics = generationMetrics(rollouts, scored.perFunction, ctx.rewards, adv.groupStd);
    this.scoreLogprobs(rollouts);
    this.rollouts = rollouts;
    this.micro = this.buildMicroBatches(rollouts);
  }

  /** lp_old (μ > 1) and lp_ref (β > 0) of every loss token, micro-batch by micro-batch. */
  private scoreLogprobs(rollouts: Rollout[]): void {
    const { ctx, o } = this;
    const withOld = o.numIterations > 1, withRef = o.beta > 0;
    if (!withOld && !withRef) return;
    for (let k = 0; k < o.gradAccum; k++) {
      const rs = rollouts.slice(k * o.microBatch, (k + 1) * o.microBatch);
      const { batch } = buildMicroBatch(rs, ctx.prompts, rs.map(() => 0), ctx.padTokenId, false, false);
      if (withOld) gatherLossTokens(tokenLogprobs(ctx.policy, batch, o.sampling.temperature), rs, ctx.prompts, batch.T).forEach((lp, i) => { rs[i].lpOld = lp; });
      if (withRef) gatherLossTokens(tokenLogprobs(ctx.reference!, batch, o.sampling.temperature), rs, ctx.prompts, batch.T).forEach((lp, i) => { rs[i].lpRef = lp; });
    }
  }

  private buildMicroBatches(rollouts: Rollout[]): GrpoBatch[] {
    const { o, ctx } = this;
    const generationTokens = rollouts.reduce((s, r) => s + r.lossTokens, 0);
    return Array.from({ length: o.gradAccum }, (_, k) => {
      const rs = rollouts.slice(k * o.microBatch, (k + 1) * o.microBatch);
      const weights = aggregationWeights(o.lossType, {
        lengths: rs.map((r) => r.lossTokens), gradAccum: o.gradAccum, maxCompletionLength: o.maxNewTokens, generationTokens,
      });
      return buildMicroBatch(rs, ctx.prompts, weights, ctx.padTokenId, o.numIterations > 1, o.beta > 0, this.genMetrics);
    });
  }
}

/** reward, reward_std (mean of the groups' std), reward_<name>, frac_reward_zero_std, completion_length, truncated. */
function generationMetrics(rs: Rollout[], perFunction: number[][], rewards: Reward[], groupStd: number[]): Record<string, number> {
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);
  const m: Record<string, number> = {
    reward: mean(rs.map((r) => r.reward)),
    reward_std: mean(groupStd),
  };
  rewards.forEach((r, k) => { m[`reward_${r.name}`] = mean(perFunction[k]); });
  m.frac_reward_zero_std = mean(groupStd.map((s) => (Math.abs(s) < 1e-8 ? 1 : 0)));
  m.completion_length = mean(rs.map((r) => r.completion.length));
  m.truncated = mean(rs.map((r) => (r.truncated ? 1 : 0)));
  return m;
}

export function checkRolloutOptions(o: RolloutOptions): void {
  const bad = (where: string, rule: string, found: string, hint?: string) => new KompresorError({ code: 'input_invalid', where, rule, found, hint });
  if (!Number.isSafeInteger(o.numGenerations) || o.numGenerations < 2) {
    throw bad('--num-generations', 'GRPO compares completions within a group: --num-generations takes an integer >= 2', String(o.numGenerations));
  }
  if (o.microBatch % o.numGenerations !== 0) {
    throw bad('--micro-batch', '--micro-batch counts completions and must be a multiple of --num-generations (whole groups per micro-batch)',
      `--micro-batch ${o.microBatch}, --num-generations ${o.numGenerations}`, `e.g. --micro-batch ${o.numGenerations * Math.max(1, Math.round(o.microBatch / o.numGenerations))}`);
  }
  if (!Number.isSafeInteger(o.numIterations) || o.numIterations < 1) throw bad('--num-iterations', '--num-iterations takes an integer >= 1', String(o.numIterations));
  if (!Number.isSafeInteger(o.maxNewTokens) || o.maxNewTokens < 1) throw bad('--max-new-tokens', '--max-new-tokens takes an integer >= 1', String(o.maxNewTokens));
  if (!(o.sampling.temperature > 0)) throw bad('--temperature', 'GRPO samples its completions: --temperature takes a number > 0', String(o.sampling.temperature));
  if (!SCALE_REWARDS.includes(o.scaleRewards)) throw bad('--scale-rewards', `--scale-rewards takes ${SCALE_REWARDS.join(', ')}`, JSON.stringify(o.scaleRewards));
}
