// DPO (and DPO-Positive) as an Objective of the shared training loop (spec §2; the losses and
// their gradients are in losses.ts, the derivation in docs/dpo.md).
//
// A micro-batch (sources.ts) holds P pairs as 2P rows: chosen sequences, then rejected ones.
//   1. policy forward; rowLogps: logπθ of each row (sum over completion tokens)
//   2. reference log-probs: precomputed with the batch (--precompute-ref), or a forward pass of
//      the frozen reference model (forward-only arena, never trained)
//   3. per pair: loss, d loss / d logπθ(y_w), d loss / d logπθ(y_l)   (dpoPairLoss)
//   4. rowLogpsBackward with coef(row) = d loss / d logπθ(row) / P: the batch loss is the mean
//      over its pairs (micro-batches hold equal numbers of pairs, so the trainer's mean over
//      micro-batches is the mean over the step's pairs)
// Metrics (TRL's names): rewards/chosen, rewards/rejected (β log πθ/πref), rewards/accuracies
// (r_w > r_l), rewards/margins, logps/chosen, logps/rejected, logps/accuracies (πθ itself
// prefers the chosen answer: logπθ(y_w) > logπθ(y_l)), and dpop/active (pairs whose chosen
// log-prob fell below the reference's, with --dpop-lambda).
import fs from 'node:fs';
import nodePath from 'node:path';
import { createHash } from 'node:crypto';
import type { Batch } from '../model/batch.ts';
import type { Decoder } from '../model/decoder.ts';
import type { Objective, ObjectiveResult } from '../train/objective.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { KompresorError, ensure } from '../errors.ts';
import { dpoPairLoss, type DpoLossOptions } from './losses.ts';
import { rowLogps, rowLogpsBackward, rowTokens } from './logprobs.ts';
import { isDpoBatch, pairBatch, type DpoBatch } from './sources.ts';
import type { PairExample } from './data.ts';

export const DPO_OBJECTIVE_NAME = 'dpo';

export interface PairStats extends ObjectiveResult {
  /** d(batch loss)/d logπθ(row), per row. */
  coef: Float64Array;
}

/**
 * The batch loss (mean over its pairs), the per-row coefficients and the metrics, from the
 * policy's and the reference's row log-probs. Pure: no model involved.
 */
export function pairStats(batch: DpoBatch, policy: Float64Array, ref: Float64Array, o: DpoLossOptions): PairStats {
  const P = batch.B / 2, n = batch.pairs, tokens = rowTokens(batch);
  const coef = new Float64Array(batch.B);
  const m = { rc: 0, rr: 0, acc: 0, margin: 0, lc: 0, lr: 0, pacc: 0, active: 0 };
  let loss = 0;
  for (let k = 0; k < n; k++) {
    const r = dpoPairLoss({ chosen: policy[k], rejected: policy[P + k], refChosen: ref[k], refRejected: ref[P + k],
      chosenTokens: tokens[k], rejectedTokens: tokens[P + k] }, o);
    loss += r.loss;
    coef[k] = r.dChosen / n;
    coef[P + k] = r.dRejected / n;
    m.rc += r.rewardChosen; m.rr += r.rewardRejected;
    m.acc += r.rewardChosen > r.rewardRejected ? 1 : 0;
    m.margin += r.rewardChosen - r.rewardRejected;
    m.lc += policy[k]; m.lr += policy[P + k];
    m.pacc += policy[k] > policy[P + k] ? 1 : 0;
    m.active += r.penalized ? 1 : 0;
  }
  const mean = (v: number) => (n > 0 ? v / n : 0);
  const metrics: Record<string, number> = {
    'rewards/chosen': mean(m.rc), 'rewards/rejected': mean(m.rr), 'rewards/accuracies': mean(m.acc), 'rewards/margins': mean(m.margin),
    'logps/chosen': mean(m.lc), 'logps/rejected': mean(m.lr), 'logps/accuracies': mean(m.pacc),
  };
  if (o.dpopLambda > 0) metrics['dpop/active'] = mean(m.active);
  return { loss: mean(loss), metrics, weight: n, coef };
}

/**
 * The DPO objective. `reference` is the frozen reference model (set forwardOnly on it), or null
 * when every batch carries precomputed reference log-probs.
 */
export function dpoObjective(o: DpoLossOptions, reference: Decoder | null): Objective {
  const refOf = (b: DpoBatch): Float64Array => {
    if (b.refLogps) return b.refLogps;
    if (!reference) {
      throw new KompresorError({ code: 'impl_error', where: 'dpoObjective', rule: 'a batch without precomputed reference log-probs needs a reference model' });
    }
    return rowLogps(reference, b);
  };
  const batchOf = (b: Batch): DpoBatch => {
    ensure(isDpoBatch(b), 'dpoObjective', () => 'DPO batches come from DpoSource / dpoEvalSource (pairs, chosen rows then rejected rows)');
    return b;
  };
  return {
    name: DPO_OBJECTIVE_NAME,
    train(model, batch) {
      const b = batchOf(batch);
      const a = model.forward(b);
      const s = pairStats(b, rowLogps(model, b, a), refOf(b), o);
      if (!Number.isFinite(s.loss)) return { loss: NaN };
      rowLogpsBackward(model, b, a, s.coef);
      return { loss: s.loss, metrics: s.metrics, weight: s.weight };
    },
    evaluate(model, batch) {
      const b = batchOf(batch);
      const s = pairStats(b, rowLogps(model, b), refOf(b), o);
      return { loss: s.loss, metrics: s.metrics, weight: s.weight };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// precomputed reference log-probs

/** [chosen, rejected] log-probs of every pair under `ref` (length 2 x pairs), in batches of B rows of T. */
export function computeRefLogps(ref: Decoder, pairs: PairExample[], B: number, T: number, padId: number, onBatch?: (done: number) => void): Float64Array {
  const out = new Float64Array(2 * pairs.length), P = B / 2;
  for (let i = 0; i < pairs.length; i += P) {
    const idx = Array.from({ length: Math.min(P, pairs.length - i) }, (_, k) => i + k);
    const lp = rowLogps(ref, pairBatch(pairs, idx, P, T, padId, null));
    idx.forEach((p, k) => { out[2 * p] = lp[k]; out[2 * p + 1] = lp[P + k]; });
    onBatch?.(i + idx.length);
  }
  return out;
}

/** sha256 (32 hex) of the tokenized pairs: what the reference log-probs are a function of, with the reference. */
export function pairsDigest(pairs: PairExample[]): string {
  const h = createHash('sha256');
  for (const p of pairs) {
    for (const e of [p.chosen, p.rejected]) h.update(new Uint8Array(e.ids.buffer, e.ids.byteOffset, e.ids.byteLength)).update(e.mask).update('\0');
  }
  return h.digest('hex').slice(0, 32);
}

export const REF_CACHE_FILE = 'ref_logps.json';

interface RefCacheFile { format: 'kompresor-ref-logps'; version: 1; reference: string; splits: Record<string, { digest: string; logps: number[] }> }

/**
 * RUN_DIR/ref_logps.json: the reference's log-probs per split ("train", "eval"), each keyed by
 * the reference checksum and the pairs' digest. A split is read when both match and computed
 * (then the file rewritten atomically) otherwise; so a resumed run never recomputes them.
 */
export function cachedRefLogps(runDir: string, split: string, reference: string, pairs: PairExample[], compute: () => Float64Array): { logps: Float64Array; cached: boolean } {
  const file = nodePath.join(runDir, REF_CACHE_FILE), digest = pairsDigest(pairs);
  let cache: RefCacheFile = { format: 'kompresor-ref-logps', version: 1, reference, splits: {} };
  if (fs.existsSync(file)) {
    try {
      const c = JSON.parse(fs.readFileSync(file, 'utf8')) as RefCacheFile;
      if (c.format === 'kompresor-ref-logps' && c.version === 1 && c.reference === reference) cache = c;
    } catch {
      // a damaged cache is recomputed
    }
  }
  const hit = cache.splits[split];
  if (hit && hit.digest === digest && hit.logps.length === 2 * pairs.length) return { logps: Float64Array.from(hit.logps), cached: true };
  const logps = compute();
  cache.splits[split] = { digest, logps: Array.from(logps) };
  fs.mkdirSync(runDir, { recursive: true });
  writeFileAtomic(file, JSON.stringify(cache));
  return { logps, cached: false };
}
