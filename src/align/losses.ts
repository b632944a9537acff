// The alignment losses as pure functions of sequence log-probabilities, with their gradients
// (spec §1-2; the derivations are in docs/dpo.md). Everything here is float64 scalar maths: the
// model side (log-probs in, d(loss)/d(log-prob) out) is src/align/logprobs.ts.
//
// DPO, per pair (w = chosen, l = rejected; logπ sums over completion tokens, TRL):
//   r_w = logπθ(y_w) - logπref(y_w),  r_l likewise,  Δ = r_w - r_l
//   DPOP penalty  p = max(0, logπref(y_w) - logπθ(y_w))        (Smaug, arXiv 2402.13228)
//   z = β (Δ - λ p)                                              (λ = dpop_lambda, 0 = plain DPO)
//   sigmoid  -(1-ε) logσ(z) - ε logσ(-z)                         (ε = label smoothing: cDPO, TRL's sigmoid)
//   robust   (-(1-ε) logσ(z) + ε logσ(-z)) / (1 - 2ε)            (Chowdhury et al., TRL "robust")
//   hinge    max(0, 1 - z)                                         (SLiC)
//   ipo      (r_w/|y_w| - r_l/|y_l| - 1/(2β))^2                   (TRL: log-ratios normalised by length)
// Gradients: dz/dlogπθ(y_w) = β (1 + λ [logπref(y_w) > logπθ(y_w)]), dz/dlogπθ(y_l) = -β. At
// the switch point itself (policy = reference on y_w) the penalty is inactive: max(0, x) is
// differentiated as 0 at x = 0, as torch's clamp/relu do.
import { KompresorError } from '../errors.ts';

export type DpoLossType = 'sigmoid' | 'robust' | 'hinge' | 'ipo';
export const DPO_LOSS_TYPES: readonly DpoLossType[] = ['sigmoid', 'robust', 'hinge', 'ipo'];

export interface DpoLossOptions {
  /** β: the KL strength; the implicit reward is β log(πθ/πref). TRL's default 0.1. */
  beta: number;
  loss: DpoLossType;
  /** ε in [0, 0.5): sigmoid -> cDPO (conservative DPO), robust -> robust DPO. 0 = off. */
  labelSmoothing: number;
  /** λ >= 0: DPO-Positive penalty weight (sigmoid, robust, hinge). 0 = off. */
  dpopLambda: number;
}

export const DPO_DEFAULTS: Readonly<DpoLossOptions> = { beta: 0.1, loss: 'sigmoid', labelSmoothing: 0, dpopLambda: 0 };

/** Sequence log-probs of one pair under the policy and the reference, and completion lengths (IPO). */
export interface PairLogps {
  chosen: number;
  rejected: number;
  refChosen: number;
  refRejected: number;
  /** Completion tokens of each sequence (used by IPO's length normalisation). */
  chosenTokens: number;
  rejectedTokens: number;
}

export interface PairLoss {
  loss: number;
  /** d loss / d logπθ(y_w) and d loss / d logπθ(y_l). */
  dChosen: number;
  dRejected: number;
  /** β r_w and β r_l: TRL's rewards/chosen and rewards/rejected. */
  rewardChosen: number;
  rewardRejected: number;
  /** Whether the DPOP penalty is active (the policy's chosen log-prob fell below the reference's). */
  penalized: boolean;
}

/** Fills in the defaults and checks the combination; errors name the CLI flag. */
export function dpoLossOptions(o: Partial<DpoLossOptions>): DpoLossOptions {
  const r = { ...DPO_DEFAULTS, ...o };
  const bad = (flag: string, rule: string, found: unknown, hint?: string) => new KompresorError({ code: 'input_invalid', where: flag, rule, found: String(found), hint });
  if (!(r.beta > 0 && Number.isFinite(r.beta))) throw bad('--beta', '--beta takes a finite number > 0', r.beta);
  if (!DPO_LOSS_TYPES.includes(r.loss)) throw bad('--loss', `--loss takes one of ${DPO_LOSS_TYPES.join(', ')}`, r.loss);
  if (!(r.labelSmoothing >= 0 && r.labelSmoothing < 0.5)) throw bad('--label-smoothing', '--label-smoothing takes a number in [0, 0.5)', r.labelSmoothing);
  if (!(r.dpopLambda >= 0 && Number.isFinite(r.dpopLambda))) throw bad('--dpop-lambda', '--dpop-lambda takes a finite number >= 0', r.dpopLambda);
  if (r.labelSmoothing > 0 && (r.loss === 'hinge' || r.loss === 'ipo')) {
    throw bad('--label-smoothing', 'label smoothing applies to the sigmoid (cDPO) and robust losses', `--loss ${r.loss}`);
  }
  if (r.dpopLambda > 0 && r.loss === 'ipo') {
    throw bad('--dpop-lambda', 'the DPO-Positive penalty applies to the sigmoid, robust and hinge losses (it shifts their logit z)', '--loss ipo');
  }
  return r;
}

/** log σ(x) = -softplus(-x), stable for any x: min(x, 0) - log1p(exp(-|x|)). */
export function logSigmoid(x: number): number {
  return Math.min(x, 0) - Math.log1p(Math.exp(-Math.abs(x)));
}

/** σ(x) without overflow. */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** One pair's loss and its gradient with respect to the policy's two sequence log-probs. */
export function dpoPairLoss(p: PairLogps, o: DpoLossOptions): PairLoss {
  const { beta, labelSmoothing: eps, dpopLambda: lambda } = o;
  const rw = p.chosen - p.refChosen, rl = p.rejected - p.refRejected;
  const rewards = { rewardChosen: beta * rw, rewardRejected: beta * rl };
  if (o.loss === 'ipo') {
    // (Δ_avg - 1/(2β))^2 with Δ_avg = r_w/|y_w| - r_l/|y_l|
    const nw = Math.max(1, p.chosenTokens), nl = Math.max(1, p.rejectedTokens);
    const d = rw / nw - rl / nl - 1 / (2 * beta);
    return { loss: d * d, dChosen: (2 * d) / nw, dRejected: (-2 * d) / nl, ...rewards, penalized: false };
  }
  const penalized = lambda > 0 && p.refChosen > p.chosen;
  const z = beta * (rw - rl - (penalized ? lambda * (p.refChosen - p.chosen) : 0));
  let loss: number, dz: number; // dz = d loss / d z
  if (o.loss === 'hinge') {
    loss = Math.max(0, 1 - z);
    dz = z < 1 ? -1 : 0;
  } else if (o.loss === 'sigmoid') {
    // -(1-ε) logσ(z) - ε logσ(-z);  d/dz logσ(z) = σ(-z), d/dz logσ(-z) = -σ(z)
    loss = -(1 - eps) * logSigmoid(z) - eps * logSigmoid(-z);
    dz = -(1 - eps) * sigmoid(-z) + eps * sigmoid(z);
  } else {
    const k = 1 / (1 - 2 * eps);
    loss = k * (-(1 - eps) * logSigmoid(z) + eps * logSigmoid(-z));
    dz = k * (-(1 - eps) * sigmoid(-z) - eps * sigmoid(z));
  }
  return { loss, dChosen: dz * beta * (penalized ? 1 + lambda : 1), dRejected: -dz * beta, ...rewards, penalized };
}

/**
 * SFT's loss over a whole accumulated batch: Σ over valid targets of -logp / nItems, where
 * nItems counts the valid targets of every micro-batch of the step (TRL's num_items_in_batch),
 * so micro-batches with more completion tokens weigh more. Returns the loss and the per-token
 * gradient scale 1/nItems (the same for every valid token).
 */
export function sftTokenMean(tokenNll: ArrayLike<number>, targets: ArrayLike<number>, nItems: number): { loss: number; dscale: number } {
  let sum = 0;
  for (let i = 0; i < targets.length; i++) if (targets[i] >= 0) sum += tokenNll[i];
  return nItems > 0 ? { loss: sum / nItems, dscale: 1 / nItems } : { loss: 0, dscale: 0 };
}
