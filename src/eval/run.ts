// The evaluation loop: for each task, build one request per document (per choice for
// multiple_choice) the way ConfigurableTask.construct_requests does, send them all to the model
// at once (so the engine can pack and batch them), score each document, aggregate, and shape the
// results like lm-evaluation-harness's results JSON:
//   {"results": {task: {metric: value, metric_stderr: value}}, "n-shot", "n-samples", "versions",
//    "higher_is_better", "primary_metric"}
// plus, given a teacher, "teacher_results" and "recovery": {task: percent, "average": percent}.
// A task's primary metric, the one recovery uses, is the first of its metric_list (for the default
// lists: acc for multiple_choice, word_perplexity for loglikelihood_rolling, exact_match for
// generate_until, perplexity for loglikelihood).
// With several filter pipelines (generate_until), metrics are keyed "metric,filter" as in the
// harness; with one (or none) the key is the bare metric name.
import type { EvalLM, LoglikelihoodRequest } from './requests.ts';
import { aggregate, stderrOf, multipleChoiceMetrics, rollingMetrics, exactMatch, recoveryPercent, type DocValue } from './metrics.ts';
import { FewshotSampler, fewshotContext } from './fewshot.ts';
import { applyFilters, type Doc, type Task } from './tasks.ts';

export interface EvalOptions {
  /** Evaluate only the first N docs of each task. */
  limit?: number;
  /** Bootstrap replicates for the standard errors of non-mean metrics (the harness uses 100000). */
  bootstrapIters: number;
  /** Seed of the bootstrap and of sampled generation. */
  seed: number;
  /** Progress in requests over all tasks: (done, total). */
  progress?: (done: number, total: number) => void;
}

export type MetricValue = number | 'N/A';

export interface TaskResult {
  metrics: Record<string, MetricValue>;
  higherIsBetter: Record<string, boolean>;
  primary: string;
  nShot: number;
  nSamples: { original: number; effective: number };
  version: number | string | null;
  requests: number;
  seconds: number;
}

export interface EvalResults {
  results: Record<string, Record<string, MetricValue>>;
  'n-shot': Record<string, number>;
  'n-samples': Record<string, { original: number; effective: number }>;
  versions: Record<string, number | string | null>;
  higher_is_better: Record<string, Record<string, boolean>>;
  primary_metric: Record<string, string>;
  /** Requests and wall seconds per task. */
  timing: Record<string, { requests: number; seconds: number }>;
}

/** Number of model requests a task makes (for the progress bar's total). */
export function countRequests(task: Task, limit?: number): number {
  const docs = task.evalDocs.slice(0, limit);
  if (task.outputType !== 'multiple_choice') return docs.length;
  const mi = task.metrics.some((m) => m.name === 'acc_mutual_info') ? 2 : 1;
  return docs.reduce((s, d) => s + mi * task.docToChoice(d).length, 0);
}

export function evaluateTasks(lm: EvalLM, tasks: Task[], o: EvalOptions): EvalResults {
  const total = tasks.reduce((s, t) => s + countRequests(t, o.limit), 0);
  let offset = 0;
  const out: EvalResults = { results: {}, 'n-shot': {}, 'n-samples': {}, versions: {}, higher_is_better: {}, primary_metric: {}, timing: {} };
  for (const task of tasks) {
    const base = offset;
    const r = evaluateTask(lm, task, { ...o, progress: (d) => o.progress?.(base + d, total) });
    offset += r.requests;
    out.results[task.name] = r.metrics;
    out['n-shot'][task.name] = r.nShot;
    out['n-samples'][task.name] = r.nSamples;
    out.versions[task.name] = r.version;
    out.higher_is_better[task.name] = r.higherIsBetter;
    out.primary_metric[task.name] = r.primary;
    out.timing[task.name] = { requests: r.requests, seconds: r.seconds };
  }
  return out;
}

/** Per-document values of each metric key, from the model's answers. */
type PerDoc = Record<string, DocValue[]>;

export function evaluateTask(lm: EvalLM, task: Task, o: Omit<EvalOptions, 'progress'> & { progress?: (done: number) => void }): TaskResult {
  const t0 = performance.now();
  const docs = task.evalDocs.slice(0, o.limit);
  const sampler = task.numFewshot > 0 && task.fewshotDocs
    ? new FewshotSampler(task.fewshotDocs, task.samplerName, task.fewshotSeed, task.fewshotSameSplit) : null;
  const wanted = task.metrics.map((m) => m.name);
  const perDoc: PerDoc = {};
  const push = (key: string, v: DocValue) => { (perDoc[key] ??= []).push(v); };
  let requests = 0;

  if (task.outputType === 'loglikelihood_rolling') {
    const texts = docs.map((d) => String(task.docToTarget(d)));
    const lls = lm.loglikelihoodRolling(texts, o.progress);
    requests = texts.length;
    texts.forEach((t, i) => { for (const [k, v] of Object.entries(rollingMetrics(lls[i], t, wanted))) push(k, v); });
  } else if (task.outputType === 'generate_until') {
    const g = task.generation;
    const reqs = docs.map((d) => ({ context: fewshotContext(task, d, task.numFewshot, sampler), until: g.until, maxGenToks: g.maxGenToks, sampling: g.sampling, seed: o.seed }));
    const outs = lm.generateUntil(reqs, o.progress);
    requests = reqs.length;
    docs.forEach((d, i) => scoreGeneration(task, d, outs[i], push));
  } else {
    const reqs: LoglikelihoodRequest[] = [];
    const spans: { first: number; choices: string[] }[] = [];
    const mutualInfo = wanted.includes('acc_mutual_info');
    for (const d of docs) {
      const ctx = fewshotContext(task, d, task.numFewshot, sampler);
      const choices = task.outputType === 'multiple_choice' ? task.docToChoice(d) : [targetText(task, d)];
      spans.push({ first: reqs.length, choices });
      // multiple_choice continuations start with target_delimiter; a loglikelihood task's target is used as it is
      const delim = task.outputType === 'multiple_choice' ? task.targetDelimiter : '';
      for (const c of choices) reqs.push({ context: ctx, continuation: delim + c });
      // acc_mutual_info: the same continuations without the prompt
      if (mutualInfo) for (const c of choices) reqs.push({ context: '', continuation: task.targetDelimiter + c });
    }
    const res = lm.loglikelihood(reqs, o.progress);
    requests = reqs.length;
    docs.forEach((d, i) => {
      const { first, choices } = spans[i], K = choices.length;
      const part = res.slice(first, first + K);
      if (task.outputType === 'loglikelihood') {
        if (wanted.includes('perplexity')) push('perplexity', part[0].ll);
        if (wanted.includes('acc')) push('acc', part[0].isGreedy ? 1 : 0);
        return;
      }
      const scores = { lls: part.map((r) => r.ll), isGreedy: part.map((r) => r.isGreedy), unconditional: mutualInfo ? res.slice(first + K, first + 2 * K).map((r) => r.ll) : undefined };
      for (const [k, v] of Object.entries(multipleChoiceMetrics(scores, choices, task.goldIndex(d, choices), wanted))) push(k, v);
    });
  }

  const metrics: Record<string, MetricValue> = {}, higherIsBetter: Record<string, boolean> = {};
  const keys = metricKeys(task);
  keys.forEach(({ key, spec }) => {
    const values = perDoc[key] ?? [];
    metrics[key] = values.length > 0 ? aggregate(values, spec.aggregation) : 'N/A';
    metrics[`${stderrKey(key)}`] = stderrOf(values, spec.aggregation, o.bootstrapIters, o.seed);
    higherIsBetter[key] = spec.higherIsBetter;
  });
  return {
    metrics, higherIsBetter, primary: keys[0].key, nShot: task.numFewshot,
    nSamples: { original: task.evalDocs.length, effective: docs.length }, version: task.version,
    requests, seconds: (performance.now() - t0) / 1000,
  };
}

/** "acc" -> "acc_stderr"; "exact_match,strict" -> "exact_match_stderr,strict" (the harness's naming). */
export function stderrKey(key: string): string {
  const [m, f] = key.split(',');
  return f === undefined ? `${m}_stderr` : `${m}_stderr,${f}`;
}

function metricKeys(task: Task): { key: string; spec: Task['metrics'][number] }[] {
  const several = task.outputType === 'generate_until' && task.filters.length > 1;
  return task.filters.slice(0, several ? undefined : 1).flatMap((f) =>
    task.metrics.map((spec) => ({ key: several ? `${spec.name},${f.name}` : spec.name, spec })));
}

/** A loglikelihood task's continuation: the target text (a choice when the target is an index). */
function targetText(task: Task, d: Doc): string {
  const t = task.docToTarget(d);
  const one = Array.isArray(t) ? t[0] : t;
  return typeof one === 'number' ? task.docToChoice(d)[one] : one;
}

/** generate_until: each filter pipeline's answer against the target (any of several targets). */
function scoreGeneration(task: Task, d: Doc, output: string, push: (key: string, v: DocValue) => void): void {
  const t = task.docToTarget(d);
  const golds = (Array.isArray(t) ? t : [t]).map((g) => (typeof g === 'number' && task.hasChoices ? task.docToChoice(d)[g] : String(g)));
  const several = task.filters.length > 1;
  for (const f of task.filters) {
    const answer = applyFilters(output, f.steps);
    for (const m of task.metrics) {
      const v = Math.max(...golds.map((g) => exactMatch(answer, g, m.exact)));
      push(several ? `${m.name},${f.name}` : m.name, v);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// recovery

export interface Recovery { [task: string]: number | null }

/**
 * Per task, the student's primary metric as a percentage of the teacher's (metrics.ts
 * recoveryPercent: s/t for higher-is-better, t/s for lower-is-better), and "average", the mean
 * over the tasks where it is defined.
 */
export function computeRecovery(student: EvalResults, teacher: EvalResults): Recovery {
  const out: Recovery = {};
  const defined: number[] = [];
  for (const task of Object.keys(student.results)) {
    const key = student.primary_metric[task];
    const s = student.results[task][key], t = teacher.results[task]?.[key];
    const r = typeof s === 'number' && typeof t === 'number' ? recoveryPercent(s, t, student.higher_is_better[task][key]) : null;
    out[task] = r;
    if (r !== null) defined.push(r);
  }
  out.average = defined.length > 0 ? defined.reduce((a, b) => a + b, 0) / defined.length : null;
  return out;
}
