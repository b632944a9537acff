// Per-document metrics, their aggregation over a task, standard errors and recovery, following
// lm-evaluation-harness (lm_eval/api/task.py process_results, lm_eval/api/metrics.py):
//   multiple_choice  acc       [argmax_k ll_k = gold]
//                    acc_norm  [argmax_k ll_k / len(choice_k) = gold], len in CHARACTERS (code points
//                              in Python; here too, not UTF-16 units) of the choice without delimiter
//                    acc_bytes [argmax_k ll_k / utf8_bytes(choice_k) = gold]
//                    exact_match  is_greedy[gold];  acc_mutual_info  argmax_k ll_k - ll_k(ctx = "")
//   loglikelihood    perplexity (ll per doc, aggregated exp(-mean)), acc = is_greedy
//   loglikelihood_rolling  word_perplexity exp(-Σll/Σwords), byte_perplexity exp(-Σll/Σbytes),
//                    bits_per_byte -Σll/Σbytes/ln 2 (sums over all documents, not means of ratios)
//   generate_until   exact_match of the filtered output against the target
// Standard errors: the sample standard deviation / √n for mean-aggregated metrics, a bootstrap
// (resample documents with replacement, recompute the aggregate, sample std of the replicates) for
// the others; "N/A" for fewer than two documents, as the harness writes.
import { Rng } from '../model/sampling.ts';

/** A per-document value: a number, or (ll, units) pairs for the weighted aggregations. */
export type DocValue = number | [number, number];

export type Aggregation = 'mean' | 'perplexity' | 'weighted_perplexity' | 'bits_per_byte';

export interface MetricInfo { aggregation: Aggregation; higherIsBetter: boolean }

/** The metrics we know, with the harness's default aggregation and direction. */
export const METRICS: Record<string, MetricInfo> = {
  acc: { aggregation: 'mean', higherIsBetter: true },
  acc_norm: { aggregation: 'mean', higherIsBetter: true },
  acc_bytes: { aggregation: 'mean', higherIsBetter: true },
  acc_mutual_info: { aggregation: 'mean', higherIsBetter: true },
  exact_match: { aggregation: 'mean', higherIsBetter: true },
  perplexity: { aggregation: 'perplexity', higherIsBetter: false },
  word_perplexity: { aggregation: 'weighted_perplexity', higherIsBetter: false },
  byte_perplexity: { aggregation: 'weighted_perplexity', higherIsBetter: false },
  bits_per_byte: { aggregation: 'bits_per_byte', higherIsBetter: false },
};

/** The harness's default metric_list per output_type (DEFAULT_METRIC_REGISTRY). */
export const DEFAULT_METRICS: Record<string, string[]> = {
  loglikelihood: ['perplexity', 'acc'],
  loglikelihood_rolling: ['word_perplexity', 'byte_perplexity', 'bits_per_byte'],
  multiple_choice: ['acc', 'acc_norm'],
  generate_until: ['exact_match'],
};

// ---------------------------------------------------------------------------------------------
// per document

/** Python's len(str): code points, so "źdźbło" is 6 (and an emoji 1, not 2 UTF-16 units). */
export function charLength(s: string): number { return [...s].length; }
export function byteLength(s: string): number { return Buffer.byteLength(s, 'utf8'); }
/** lm_eval count_words: len(re.split(r"\s+", text)) (a leading or trailing space adds an empty word). */
export function countWords(s: string): number { return s.split(/\s+/u).length; }

/** np.argmax: the first index of the maximum. */
export function argmaxOf(xs: number[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}

export interface ChoiceScores {
  lls: number[];
  isGreedy: boolean[];
  /** ll_k of each choice with an empty context, when acc_mutual_info is asked for. */
  unconditional?: number[];
}

/** Multiple-choice metrics of one document; gold is an index or a list of acceptable indices. */
export function multipleChoiceMetrics(s: ChoiceScores, choices: string[], gold: number | number[], wanted: string[]): Record<string, number> {
  const golds = Array.isArray(gold) ? gold : [gold];
  const hit = (k: number) => (golds.includes(k) ? 1 : 0);
  const out: Record<string, number> = {};
  for (const m of wanted) {
    if (m === 'acc') out.acc = hit(argmaxOf(s.lls));
    else if (m === 'acc_norm') out.acc_norm = hit(argmaxOf(s.lls.map((ll, k) => ll / charLength(choices[k]))));
    else if (m === 'acc_bytes') out.acc_bytes = hit(argmaxOf(s.lls.map((ll, k) => ll / byteLength(choices[k]))));
    else if (m === 'exact_match') out.exact_match = golds.some((g) => s.isGreedy[g]) ? 1 : 0;
    else if (m === 'acc_mutual_info') out.acc_mutual_info = hit(argmaxOf(s.lls.map((ll, k) => ll - s.unconditional![k])));
  }
  return out;
}

/** loglikelihood_rolling: the (ll, units) pairs the weighted aggregations sum. */
export function rollingMetrics(ll: number, text: string, wanted: string[]): Record<string, DocValue> {
  const out: Record<string, DocValue> = {};
  for (const m of wanted) {
    if (m === 'word_perplexity') out[m] = [ll, countWords(text)];
    else if (m === 'byte_perplexity' || m === 'bits_per_byte') out[m] = [ll, byteLength(text)];
  }
  return out;
}

export interface ExactMatchOptions { ignoreCase?: boolean; ignorePunctuation?: boolean; ignoreNumbers?: boolean; regexesToIgnore?: string[] }

const PUNCTUATION = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g; // Python's string.punctuation

/** HF evaluate's exact_match for one pair (what the harness's exact_match metric calls). */
export function exactMatch(prediction: string, reference: string, o: ExactMatchOptions = {}): number {
  let p = prediction, r = reference;
  for (const re of o.regexesToIgnore ?? []) { const x = new RegExp(re, 'gu'); p = p.replace(x, ''); r = r.replace(x, ''); }
  if (o.ignoreCase) { p = p.toLowerCase(); r = r.toLowerCase(); }
  if (o.ignorePunctuation) { p = p.replace(PUNCTUATION, ''); r = r.replace(PUNCTUATION, ''); }
  if (o.ignoreNumbers) { p = p.replace(/[0-9]/g, ''); r = r.replace(/[0-9]/g, ''); }
  return p === r ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// aggregation and standard errors

export function aggregate(values: DocValue[], agg: Aggregation): number {
  if (agg === 'mean') return mean(values as number[]);
  if (agg === 'perplexity') return Math.exp(-mean(values as number[]));
  let ll = 0, units = 0;
  for (const [a, b] of values as [number, number][]) { ll += a; units += b; }
  return agg === 'weighted_perplexity' ? Math.exp(-ll / units) : -ll / units / Math.LN2;
}

function mean(xs: number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** Python's sample_stddev: sqrt(Σ(x - mean)^2 / (n - 1)). */
export function sampleStddev(xs: number[]): number {
  const m = mean(xs);
  let s = 0;
  for (const x of xs) s += (x - m) ** 2;
  return Math.sqrt(s / (xs.length - 1));
}

/** mean_stderr: sample std / √n. */
export function meanStderr(xs: number[]): number { return sampleStddev(xs) / Math.sqrt(xs.length); }

/**
 * The harness's bootstrap_stderr: `iters` resamples of the documents with replacement, the
 * aggregate of each, and the sample std of those. Seeded, so a run is repeatable (the harness
 * seeds Python's random per chunk of 1000; the replicates, not the method, differ).
 */
export function bootstrapStderr(values: DocValue[], agg: Aggregation, iters: number, seed: number): number {
  const rng = new Rng(seed);
  const n = values.length, reps = new Array<number>(iters), sample = new Array<DocValue>(n);
  for (let i = 0; i < iters; i++) {
    for (let j = 0; j < n; j++) sample[j] = values[Math.floor(rng.next() * n)];
    reps[i] = aggregate(sample, agg);
  }
  return sampleStddev(reps);
}

/** The harness's stderr_for_metric: mean_stderr for means, a bootstrap otherwise, "N/A" below two documents. */
export function stderrOf(values: DocValue[], agg: Aggregation, bootstrapIters: number, seed: number): number | 'N/A' {
  if (values.length < 2 || bootstrapIters <= 0) return 'N/A';
  return agg === 'mean' ? meanStderr(values as number[]) : bootstrapStderr(values, agg, bootstrapIters, seed);
}

// ---------------------------------------------------------------------------------------------
// recovery

/**
 * The student's score as a percentage of the teacher's on one metric: student / teacher x 100
 * when higher is better (accuracy), teacher / student x 100 when lower is better (perplexity,
 * bits per byte), so 100 means "as good as the teacher" either way and smaller is worse. Null
 * when the ratio is undefined (a zero or non-finite score).
 */
export function recoveryPercent(student: number, teacher: number, higherIsBetter: boolean): number | null {
  const [num, den] = higherIsBetter ? [student, teacher] : [teacher, student];
  const r = (num / den) * 100;
  return Number.isFinite(r) && den !== 0 ? r : null;
}
