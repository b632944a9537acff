// GRPO for the shared training loop (src/train/trainer.ts): the Objective that trains on the
// rollouts of grpo_rollout.ts with the loss head of grpo_loss.ts, the held-out evaluation (greedy
// decoding, mean reward), and the options of `kompresor grpo` with their checks.
//
//   train:     forward of prompt + completion rows, the GRPO loss over the completion tokens in
//              the loss (clipped ratio, k3 KL, aggregation), backward; extras: the generation
//              batch's rewards and lengths, clip_low / clip_high / clip_region (token fractions)
//              and kl (mean k3, with β > 0)
//   evaluate:  (the run's own) greedy completions of held-out prompts, their rewards; the line's
//              loss is -reward (lower is better, like a loss), extras reward, reward_<name>,
//              completion_length
import type { Objective, ObjectiveResult } from '../train/objective.ts';
import type { Decoder } from '../model/decoder.ts';
import { generate } from '../model/generate.ts';
import { GREEDY } from '../model/sampling.ts';
import { KompresorError } from '../errors.ts';
import { checkGrpoLossOptions, emptyStats, grpoChunkLoss, LOSS_TYPES, type GrpoLossOptions, type GrpoStats, type LossType } from './grpo_loss.ts';
import { checkRolloutOptions, SCALE_REWARDS, type GrpoBatch, type RolloutOptions, type ScaleRewards } from './grpo_rollout.ts';
import { scoreRewards, DEFAULT_FORMAT_REGEX, type Reward, type BuiltinRewardOptions } from './rewards.ts';
import type { PromptRow } from './grpo_data.ts';

export const GRPO_OBJECTIVE_NAME = 'grpo';

// ---------------------------------------------------------------------------------------------
// options

/** Everything `kompresor grpo` adds to the trainer's options (stored in state.json for resume). */
export interface GrpoOptions {
  numGenerations: number;
  maxNewTokens: number;
  maxPromptLength: number;
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  maskTruncated: boolean;
  scaleRewards: ScaleRewards;
  lossType: LossType;
  epsilon: number;
  /** null: = epsilon. */
  epsilonHigh: number | null;
  beta: number;
  numIterations: number;
  /** Wrap text prompts as a user turn of the chat template. */
  chat: boolean;
  /** Reward specs (built-in names or module paths) and their weights (null: 1 each). */
  rewards: string[];
  rewardWeights: number[] | null;
  answerField: string;
  answerTolerance: number;
  formatRegex: string;
  /** null: = maxNewTokens, and a quarter of it. */
  lengthMax: number | null;
  lengthCache: number | null;
}

/** TRL's defaults at HEAD (spec §3), max_prompt_length as in v0.19. */
export const GRPO_DEFAULTS: GrpoOptions = {
  numGenerations: 8, maxNewTokens: 512, maxPromptLength: 512, temperature: 1, topP: 1, topK: 0, minP: 0, maskTruncated: false,
  scaleRewards: 'group', lossType: 'dapo', epsilon: 0.2, epsilonHigh: null, beta: 0, numIterations: 1, chat: false,
  rewards: [], rewardWeights: null, answerField: 'answer', answerTolerance: 1e-6, formatRegex: DEFAULT_FORMAT_REGEX,
  lengthMax: null, lengthCache: null,
};

export function lossOptions(g: GrpoOptions): GrpoLossOptions {
  return checkGrpoLossOptions({ epsilonLow: g.epsilon, epsilonHigh: g.epsilonHigh ?? g.epsilon, beta: g.beta, temperature: g.temperature });
}

export function rolloutOptions(g: GrpoOptions, t: { microBatch: number; gradAccum: number; seed: number }): RolloutOptions {
  if (!LOSS_TYPES.includes(g.lossType)) {
    throw new KompresorError({ code: 'input_invalid', where: '--loss-type', rule: `--loss-type takes ${LOSS_TYPES.join(', ')}`, found: JSON.stringify(g.lossType) });
  }
  if (!SCALE_REWARDS.includes(g.scaleRewards)) {
    throw new KompresorError({ code: 'input_invalid', where: '--scale-rewards', rule: `--scale-rewards takes ${SCALE_REWARDS.join(', ')}`, found: JSON.stringify(g.scaleRewards) });
  }
  const o: RolloutOptions = {
    numGenerations: g.numGenerations, maxNewTokens: g.maxNewTokens, maskTruncated: g.maskTruncated,
    sampling: { temperature: g.temperature, topK: g.topK, topP: g.topP, minP: g.minP },
    numIterations: g.numIterations, scaleRewards: g.scaleRewards, lossType: g.lossType, beta: g.beta,
    microBatch: t.microBatch, gradAccum: t.gradAccum, seed: t.seed,
  };
  checkRolloutOptions(o);
  return o;
}

export function builtinRewardOptions(g: GrpoOptions): BuiltinRewardOptions {
  const lengthMax = g.lengthMax ?? g.maxNewTokens;
  return { answerField: g.answerField, tolerance: g.answerTolerance, formatRegex: g.formatRegex, lengthMax, lengthCache: g.lengthCache ?? Math.max(1, Math.floor(lengthMax / 4)) };
}

// ---------------------------------------------------------------------------------------------
// the objective

export function grpoObjective(o: GrpoLossOptions): Objective<GrpoBatch> {
  checkGrpoLossOptions(o);
  return {
    name: GRPO_OBJECTIVE_NAME,
    train(model, gb) {
      const r = grpoLossAndBackward(model, gb, o);
      return { loss: r.loss, metrics: { ...gb.metrics, ...statsMetrics(r.stats, o.beta) } };
    },
    evaluate() {
      throw new KompresorError({ code: 'impl_error', where: 'grpoObjective.evaluate', rule: 'GRPO evaluates with the run\'s own evaluate (rewards of greedy completions), not on token batches' });
    },
  };
}

/**
 * Forward, GRPO loss and backward on one micro-batch: adds d(loss)/d(params) into model.grads.
 * A non-finite loss is returned as NaN (the trainer stops cleanly), not thrown.
 */
export function grpoLossAndBackward(model: Decoder, gb: GrpoBatch, o: GrpoLossOptions): { loss: number; stats: GrpoStats } {
  if (!model.grads) model.zeroGrad();
  const stats = emptyStats();
  const a = model.forward(gb.batch);
  let loss: number;
  try {
    loss = model.headLoss(a, gb.batch, true, grpoChunkLoss(gb.batch.targets, gb.tokens, o, model.cfg.vocabSize, stats)).loss;
  } catch (e) {
    if (e instanceof KompresorError && e.where === 'loss') return { loss: NaN, stats };
    throw e;
  }
  model.backward(a, gb.batch);
  return { loss, stats };
}

/** Forward only: the GRPO loss of the micro-batch (tests, finite differences). */
export function grpoLoss(model: Decoder, gb: GrpoBatch, o: GrpoLossOptions): { loss: number; stats: GrpoStats } {
  const stats = emptyStats();
  const a = model.forward(gb.batch);
  return { loss: model.headLoss(a, gb.batch, false, grpoChunkLoss(gb.batch.targets, gb.tokens, o, model.cfg.vocabSize, stats)).loss, stats };
}

function statsMetrics(s: GrpoStats, beta: number): Record<string, number> {
  const frac = (x: number) => (s.tokens > 0 ? x / s.tokens : 0);
  const m: Record<string, number> = { clip_low: frac(s.clippedLow), clip_high: frac(s.clippedHigh), clip_region: frac(s.clippedLow + s.clippedHigh) };
  if (beta > 0) m.kl = frac(s.k3);
  return m;
}

// ---------------------------------------------------------------------------------------------
// evaluation

export interface EvalContext {
  prompts: PromptRow[];
  rewards: Reward[];
  decode: (ids: number[]) => string;
  eosTokenIds: number[];
  padTokenId: number;
  maxNewTokens: number;
  /** Prompts decoded together. */
  batchSize: number;
}

/**
 * Greedy completions of the held-out prompts and their rewards: loss = -mean reward, extras
 * reward, reward_<name> (unweighted means), completion_length, and the completions themselves
 * (for the caller to show or store).
 */
export async function grpoEvaluate(model: Decoder, c: EvalContext, step: number): Promise<ObjectiveResult & { completions: string[] }> {
  const texts: string[] = [], ids: number[][] = [];
  for (let i = 0; i < c.prompts.length; i += c.batchSize) {
    const ps = c.prompts.slice(i, i + c.batchSize);
    const res = generate(model, ps.map((p) => p.ids), { maxNewTokens: c.maxNewTokens, sampling: GREEDY, seed: 0, eosTokenIds: c.eosTokenIds, padTokenId: c.padTokenId });
    for (const t of res.tokens) { ids.push(t); texts.push(c.decode(t)); }
  }
  const scored = await scoreRewards(c.rewards, c.prompts.map((p) => p.text), texts, c.prompts.map((p) => p.row),
    { completionIds: ids, batch: `the held-out prompts at step ${step}` });
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);
  const metrics: Record<string, number> = { reward: mean(scored.total) };
  c.rewards.forEach((r, k) => { metrics[`reward_${r.name}`] = mean(scored.perFunction[k]); });
  metrics.completion_length = mean(ids.map((t) => t.length));
  return { loss: -metrics.reward, metrics, completions: texts };
}
