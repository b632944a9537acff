// The alignment losses of src/align/losses.ts: each DPO variant against its formula written out
// naively in float64, its gradient with respect to (logπθ(y_w), logπθ(y_l)) against central
// finite differences (both within 1e-5), the DPO-Positive penalty on both sides of its switch
// (and its (1 + λ) coefficient), IPO's length normalisation, hinge, label smoothing (cDPO and
// robust), the option checks, and SFT's token mean over an accumulated batch.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { dpoPairLoss, dpoLossOptions, logSigmoid, sigmoid, sftTokenMean, type DpoLossOptions, type PairLogps } from '../../src/align/losses.ts';
import { rng, throwsWith } from '../helpers.ts';

const TOL = 1e-5;
const close = (a: number, b: number, what: string, tol = TOL) =>
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

// the naive formulas (spec §2), float64, no shared code with the implementation
const naiveLogSigmoid = (x: number) => Math.log(1 / (1 + Math.exp(-x)));
function naive(p: PairLogps, o: DpoLossOptions): number {
  const rw = p.chosen - p.refChosen, rl = p.rejected - p.refRejected;
  if (o.loss === 'ipo') return (rw / p.chosenTokens - rl / p.rejectedTokens - 1 / (2 * o.beta)) ** 2;
  const z = o.beta * (rw - rl - o.dpopLambda * Math.max(0, p.refChosen - p.chosen));
  const e = o.labelSmoothing;
  if (o.loss === 'hinge') return Math.max(0, 1 - z);
  if (o.loss === 'sigmoid') return -(1 - e) * naiveLogSigmoid(z) - e * naiveLogSigmoid(-z);
  return (-(1 - e) * naiveLogSigmoid(z) + e * naiveLogSigmoid(-z)) / (1 - 2 * e);
}

/** Central differences of the implementation's loss in (chosen, rejected). */
function fd(p: PairLogps, o: DpoLossOptions, h = 1e-6): [number, number] {
  const L = (dc: number, dr: number) => dpoPairLoss({ ...p, chosen: p.chosen + dc, rejected: p.rejected + dr }, o).loss;
  return [(L(h, 0) - L(-h, 0)) / (2 * h), (L(0, h) - L(0, -h)) / (2 * h)];
}

function randomPair(r: () => number): PairLogps {
  const refChosen = -5 - 20 * r(), refRejected = -5 - 20 * r();
  return { chosen: refChosen + 4 * (r() - 0.5), rejected: refRejected + 4 * (r() - 0.5), refChosen, refRejected,
    chosenTokens: 1 + Math.floor(r() * 20), rejectedTokens: 1 + Math.floor(r() * 20) };
}

const CASES: [string, Partial<DpoLossOptions>][] = [
  ['sigmoid, beta 0.1', {}],
  ['sigmoid, beta 0.5, label smoothing 0.1 (cDPO)', { beta: 0.5, labelSmoothing: 0.1 }],
  ['robust, beta 0.3, label smoothing 0.2', { loss: 'robust', beta: 0.3, labelSmoothing: 0.2 }],
  ['hinge, beta 0.7', { loss: 'hinge', beta: 0.7 }],
  ['ipo, beta 0.1', { loss: 'ipo' }],
  ['sigmoid + DPOP, beta 0.1, lambda 50', { dpopLambda: 50 }],
  ['sigmoid + DPOP, beta 0.05, lambda 2.5 (Bielik)', { beta: 0.05, dpopLambda: 2.5 }],
  ['robust + DPOP, beta 0.2, lambda 5, smoothing 0.1', { loss: 'robust', beta: 0.2, dpopLambda: 5, labelSmoothing: 0.1 }],
  ['hinge + DPOP, beta 0.3, lambda 5', { loss: 'hinge', beta: 0.3, dpopLambda: 5 }],
];

describe('DPO pair losses: value = formula, gradient = finite differences', () => {
  for (const [name, over] of CASES) {
    test(`${name} (40 random pairs)`, () => {
      const o = dpoLossOptions(over), r = rng(name.length * 7919);
      for (let i = 0; i < 40; i++) {
        const p = randomPair(r);
        const got = dpoPairLoss(p, o);
        close(got.loss, naive(p, o), `loss of pair ${i}`);
        if (o.loss === 'hinge') {
          // the kink: finite differences are meaningless within h of z = 1
          const z = o.beta * (p.chosen - p.refChosen - p.rejected + p.refRejected - o.dpopLambda * Math.max(0, p.refChosen - p.chosen));
          if (Math.abs(1 - z) < 1e-4) continue;
        }
        const [gc, gr] = fd(p, o);
        close(got.dChosen, gc, `d/dchosen of pair ${i}`);
        close(got.dRejected, gr, `d/drejected of pair ${i}`);
        close(got.rewardChosen, o.beta * (p.chosen - p.refChosen), 'reward chosen');
        close(got.rewardRejected, o.beta * (p.rejected - p.refRejected), 'reward rejected');
      }
    });
  }

  test('sigmoid: at the reference (Δ = 0) the loss is log 2 and the gradient ±β/2', () => {
    const o = dpoLossOptions({ beta: 0.2 });
    const r = dpoPairLoss({ chosen: -3, rejected: -4, refChosen: -3, refRejected: -4, chosenTokens: 2, rejectedTokens: 2 }, o);
    close(r.loss, Math.log(2), 'loss');
    close(r.dChosen, -0.1, 'dChosen');
    close(r.dRejected, 0.1, 'dRejected');
  });

  test('robust with smoothing 0 is sigmoid; cDPO and robust differ with smoothing', () => {
    const r = rng(3);
    for (let i = 0; i < 10; i++) {
      const p = randomPair(r);
      const s = dpoPairLoss(p, dpoLossOptions({})), rb = dpoPairLoss(p, dpoLossOptions({ loss: 'robust' }));
      close(rb.loss, s.loss, 'loss'); close(rb.dChosen, s.dChosen, 'dChosen');
    }
    const p = randomPair(r);
    assert.notEqual(dpoPairLoss(p, dpoLossOptions({ labelSmoothing: 0.2 })).loss, dpoPairLoss(p, dpoLossOptions({ loss: 'robust', labelSmoothing: 0.2 })).loss);
  });

  test('logσ stays finite and exact far out (x = ±800)', () => {
    assert.equal(Math.abs(logSigmoid(800)), 0);
    close(logSigmoid(-800), -800, 'logσ(-800)');
    assert.equal(sigmoid(-800), 0);
    assert.equal(sigmoid(800), 1);
    const o = dpoLossOptions({ beta: 10 });
    const r = dpoPairLoss({ chosen: -100, rejected: -1, refChosen: -1, refRejected: -100, chosenTokens: 1, rejectedTokens: 1 }, o);
    close(r.loss, 1980, 'loss at z = -1980');
    close(r.dChosen, -10, 'dChosen saturates at -β');
  });
});

describe('DPO-Positive: the penalty switches on only below the reference', () => {
  const lambda = 50, beta = 0.1;
  const o = dpoLossOptions({ beta, dpopLambda: lambda }), plain = dpoLossOptions({ beta });
  const at = (gap: number): PairLogps => ({ chosen: -10 - gap, rejected: -12.5, refChosen: -10, refRejected: -12, chosenTokens: 3, rejectedTokens: 4 });

  test('policy chosen log-prob above the reference (gap -1e-3): the loss and gradient are plain DPO', () => {
    const p = at(-1e-3), r = dpoPairLoss(p, o), q = dpoPairLoss(p, plain);
    assert.equal(r.penalized, false);
    assert.equal(r.loss, q.loss);
    assert.equal(r.dChosen, q.dChosen);
    assert.equal(r.dRejected, q.dRejected);
    const [gc, gr] = fd(p, o, 1e-7);
    close(r.dChosen, gc, 'fd chosen'); close(r.dRejected, gr, 'fd rejected');
  });

  test('policy chosen log-prob below the reference (gap +1e-3): z drops by βλ·gap, d/dchosen gets (1 + λ)', () => {
    const gap = 1e-3, p = at(gap), r = dpoPairLoss(p, o);
    assert.equal(r.penalized, true);
    const z = beta * ((p.chosen - p.refChosen) - (p.rejected - p.refRejected) - lambda * gap);
    close(r.loss, -naiveLogSigmoid(z), 'loss with the penalty inside the sigmoid');
    const dz = -sigmoid(-z); // d(-logσ(z))/dz
    close(r.dChosen, dz * beta * (1 + lambda), 'the (1 + λ) coefficient');
    close(r.dRejected, -dz * beta, 'd/drejected unchanged');
    const [gc, gr] = fd(p, o, 1e-7);
    close(r.dChosen, gc, 'fd chosen'); close(r.dRejected, gr, 'fd rejected');
  });

  test('exactly at the reference the penalty is inactive (max(0, x) differentiated as 0 at 0)', () => {
    assert.equal(dpoPairLoss(at(0), o).penalized, false);
  });

  test('the gradient jumps by λβ·σ(-z) across the switch, the loss is continuous', () => {
    const lo = dpoPairLoss(at(-1e-9), o), hi = dpoPairLoss(at(1e-9), o);
    close(hi.loss, lo.loss, 'continuous', 1e-7);
    close(hi.dChosen / lo.dChosen, 1 + lambda, 'ratio of the chosen coefficients', 1e-6);
  });
});

describe('IPO and hinge', () => {
  test('IPO normalises each log-ratio by its answer length', () => {
    const o = dpoLossOptions({ loss: 'ipo', beta: 0.25 });
    const p: PairLogps = { chosen: -6, rejected: -9, refChosen: -8, refRejected: -7, chosenTokens: 4, rejectedTokens: 2 };
    const d = (-6 + 8) / 4 - (-9 + 7) / 2 - 1 / 0.5; // 0.5 + 1 - 2 = -0.5
    const r = dpoPairLoss(p, o);
    close(r.loss, d * d, 'loss');
    close(r.dChosen, (2 * d) / 4, 'dChosen');
    close(r.dRejected, (-2 * d) / 2, 'dRejected');
    // doubling the chosen length halves the chosen term
    const longer = dpoPairLoss({ ...p, chosenTokens: 8 }, o);
    close(longer.loss, ((-6 + 8) / 8 + 1 - 2) ** 2, 'loss with |y_w| = 8');
  });

  test('hinge: gradient -β on each side while βΔ < 1, zero beyond the margin', () => {
    const o = dpoLossOptions({ loss: 'hinge', beta: 0.5 });
    const inside = dpoPairLoss({ chosen: -5, rejected: -5, refChosen: -5, refRejected: -5, chosenTokens: 1, rejectedTokens: 1 }, o);
    assert.deepEqual([inside.loss, inside.dChosen, inside.dRejected], [1, -0.5, 0.5]);
    const beyond = dpoPairLoss({ chosen: -1, rejected: -9, refChosen: -5, refRejected: -5, chosenTokens: 1, rejectedTokens: 1 }, o);
    assert.deepEqual([beyond.loss, beyond.dChosen, beyond.dRejected === 0 ? 0 : beyond.dRejected], [0, 0, 0]);
  });
});

describe('options', () => {
  test('defaults are TRL\'s: sigmoid, beta 0.1, no smoothing, no DPOP', () => {
    assert.deepEqual(dpoLossOptions({}), { beta: 0.1, loss: 'sigmoid', labelSmoothing: 0, dpopLambda: 0 });
  });
  test('refusals name the flag', () => {
    throwsWith(() => dpoLossOptions({ beta: 0 }), 'input_invalid', /--beta/);
    throwsWith(() => dpoLossOptions({ loss: 'kto' as never }), 'input_invalid', /--loss takes one of sigmoid, robust, hinge, ipo/);
    throwsWith(() => dpoLossOptions({ labelSmoothing: 0.5 }), 'input_invalid', /--label-smoothing takes a number in \[0, 0\.5\)/);
    throwsWith(() => dpoLossOptions({ loss: 'hinge', labelSmoothing: 0.1 }), 'input_invalid', /label smoothing applies to the sigmoid \(cDPO\) and robust/);
    throwsWith(() => dpoLossOptions({ loss: 'ipo', dpopLambda: 1 }), 'input_invalid', /--dpop-lambda.*sigmoid, robust and hinge/);
    throwsWith(() => dpoLossOptions({ dpopLambda: -1 }), 'input_invalid', /--dpop-lambda takes a finite number >= 0/);
  });
});

describe('SFT token mean', () => {
  test('Σ over valid targets / the accumulated batch\'s item count; -100 ignored', () => {
    const nll = [1, 2, 3, 4, 5], targets = [7, -100, 3, -100, 9];
    const r = sftTokenMean(nll, targets, 6); // 3 valid here, 3 more in another micro-batch
    close(r.loss, (1 + 3 + 5) / 6, 'loss');
    close(r.dscale, 1 / 6, 'dscale');
    assert.deepEqual(sftTokenMean(nll, targets, 0), { loss: 0, dscale: 0 });
  });
  test('two micro-batches: the sum of their parts is the token mean of the whole step (not the mean of means)', () => {
    const a = sftTokenMean([1, 1], [1, 1], 5), b = sftTokenMean([4, 4, 4], [1, 1, 1], 5);
    close(a.loss + b.loss, (2 + 12) / 5, 'token mean');
    assert.notEqual(a.loss + b.loss, (1 + 4) / 2);
  });
});
