// Reward functions for GRPO (spec alignment-and-eval.md §3, "Rewards"): built-in verifiable
// rewards, a user's TypeScript/JavaScript module, and the weighted sum r_i = Σ_k w_k r_ik.
//
//   numeric  1 when the last number in the completion equals the row's answer (within a
//            tolerance), else 0. Polish decimal commas are read ("7,5" = 7.5).
//   format   1 when the completion matches a regular expression, else 0.
//   length   DAPO's soft overlong punishment over completion tokens (TRL
//            get_soft_overlong_punishment): 0 up to L_max - L_cache tokens, then falling linearly
//            to -1 at L_max, -1 beyond.
//   MODULE   a file whose default export is (prompts, completions, rows, info) => number[] or a
//            Promise of one, loaded with a dynamic import (TypeScript runs through tsx).
//
// Every function gets the batch's prompts (the text the model was given), the completions (decoded
// without special tokens), the data rows (every field of the JSONL line, e.g. `answer`) and
// `info` (completion token ids, the batch's name). A reward that throws, resolves to something
// other than one finite number per completion, or cannot be loaded stops the run with one line
// naming the function and the batch; the trainer's last checkpoint is untouched.
import fs from 'node:fs';
import nodePath from 'node:path';
import { KompresorError } from '../errors.ts';
import { loadSandboxedReward, RewardStopped, DEFAULT_REWARD_TIMEOUT_S } from './reward_sandbox.ts';

export type DataRow = Record<string, unknown>;

export interface RewardInfo {
  /** Token ids of each completion (EOS included when the model produced it). */
  completionIds: number[][];
  /** The batch the call scores, as messages name it: "the generation batch of step 3". */
  batch: string;
}

export type RewardFn = (prompts: string[], completions: string[], rows: DataRow[], info: RewardInfo) => number[] | Promise<number[]>;

export interface Reward {
  /** Metric name: reward_<name> in metrics.jsonl. */
  name: string;
  /** The spec as given (a built-in name or the module path), for messages. */
  source: string;
  weight: number;
  fn: RewardFn;
  /** Fields every data row must have for this reward (checked when the data is read). */
  requiredFields: string[];
}

export interface BuiltinRewardOptions {
  /** numeric: the data field holding the answer. */
  answerField: string;
  /** numeric: |x - answer| <= tolerance · max(1, |answer|). */
  tolerance: number;
  /** format: the pattern a completion must match. */
  formatRegex: string;
  /** length: L_max and L_cache in tokens. */
  lengthMax: number;
  lengthCache: number;
  /** Modules: seconds a load or a call may take (--reward-timeout; default 30). */
  timeoutS?: number;
}

/** The default format: the completion is one number (sign, decimal dot or comma), nothing else. */
export const DEFAULT_FORMAT_REGEX = '^\\s*[-\u2212]?\\d+(?:[.,]\\d+)?\\s*$';

export const BUILTIN_REWARDS = ['numeric', 'format', 'length'] as const;

// ---------------------------------------------------------------------------------------------
// numbers in text

// an optional sign (ASCII hyphen-minus or U+2212) only where it cannot be a binary minus, i.e. not
// right after a letter or digit ("10-3" is 10 and 3, "= -3" is -3); digits with at most one
// decimal separator followed by digits ("7,5" and "7.5" are 7.5, "7." is 7)
const NUMBER_RE = /(?:(?<![\p{L}\p{N}])[-\u2212])?\d+(?:[.,]\d+)?/gu;

/** The last number written in `text`, or null when there is none. */
export function extractLastNumber(text: string): number | null {
  let last: string | null = null;
  for (const m of text.matchAll(NUMBER_RE)) last = m[0];
  return last === null ? null : Number(last.replace('\u2212', '-').replace(',', '.'));
}

/** An answer field as a number: a finite number, or a string holding one (read as extractLastNumber). */
export function answerValue(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v === 'string') return extractLastNumber(v);
  return null;
}

// ---------------------------------------------------------------------------------------------
// built-in rewards

export function numericReward(field: string, tolerance: number): RewardFn {
  return (_prompts, completions, rows) => completions.map((c, i) => {
    const want = answerValue(rows[i][field]), got = extractLastNumber(c);
    if (want === null || got === null) return 0;
    return Math.abs(got - want) <= tolerance * Math.max(1, Math.abs(want)) ? 1 : 0;
  });
}

export function formatReward(pattern: string): RewardFn {
  const re = compileRegex(pattern);
  return (_prompts, completions) => completions.map((c) => (re.test(c) ? 1 : 0));
}

/** DAPO's soft overlong punishment (TRL get_soft_overlong_punishment), by completion tokens. */
export function lengthReward(lengthMax: number, lengthCache: number): RewardFn {
  const free = lengthMax - lengthCache;
  return (_p, _c, _r, info) => info.completionIds.map((ids) => {
    const n = ids.length;
    if (n <= free) return 0;
    if (n <= lengthMax) return (free - n) / lengthCache;
    return -1;
  });
}

function compileRegex(pattern: string): RegExp {
  try {
    return new RegExp(pattern, 'u');
  } catch (e) {
    throw new KompresorError({ code: 'input_invalid', where: '--format-regex', rule: 'the format reward needs a valid regular expression', found: (e as Error).message });
  }
}

// ---------------------------------------------------------------------------------------------
// loading

/**
 * The reward functions of `--reward a,b --reward-weights 1,0.5`: each spec is a built-in name or
 * a module path (anything with a / or a .ts/.mts/.js/.mjs ending). Weights default to 1 each.
 */
export async function loadRewards(specs: string[], weights: number[] | undefined, o: BuiltinRewardOptions): Promise<Reward[]> {
  if (specs.length === 0) {
    throw new KompresorError({ code: 'input_invalid', where: '--reward', rule: 'GRPO needs at least one reward function', found: 'none',
      hint: `give --reward ${BUILTIN_REWARDS.join('|')} or --reward path/to/module.ts` });
  }
  if (weights && weights.length !== specs.length) {
    throw new KompresorError({ code: 'input_invalid', where: '--reward-weights', rule: 'give one weight per reward function',
      expected: `${specs.length} (for ${specs.join(', ')})`, found: `${weights.length}` });
  }
  const out: Reward[] = [];
  for (const [k, spec] of specs.entries()) {
    const r = await loadReward(spec, o);
    const weight = weights ? weights[k] : 1;
    if (!Number.isFinite(weight)) {
      throw new KompresorError({ code: 'input_invalid', where: '--reward-weights', rule: 'weights are finite numbers', found: String(weight) });
    }
    const name = out.some((x) => x.name === r.name) ? `${r.name}_${k}` : r.name;
    out.push({ ...r, name, weight });
  }
  return out;
}

/** A reward spec that names a module file rather than a built-in. */
export function isModuleSpec(spec: string): boolean {
  return spec.includes('/') || spec.includes('\\') || /\.(ts|mts|js|mjs)$/.test(spec);
}

async function loadReward(spec: string, o: BuiltinRewardOptions): Promise<Omit<Reward, 'weight'>> {
  switch (spec) {
    case 'numeric': return { name: 'numeric', source: spec, fn: numericReward(o.answerField, o.tolerance), requiredFields: [o.answerField] };
    case 'format': return { name: 'format', source: spec, fn: formatReward(o.formatRegex), requiredFields: [] };
    case 'length': {
      if (!(Number.isSafeInteger(o.lengthMax) && Number.isSafeInteger(o.lengthCache) && o.lengthCache >= 1 && o.lengthCache <= o.lengthMax)) {
        throw new KompresorError({ code: 'input_invalid', where: '--length-cache', rule: 'the length reward needs integers 1 <= --length-cache <= --length-max',
          found: `--length-cache ${o.lengthCache}, --length-max ${o.lengthMax}` });
      }
      return { name: 'length', source: spec, fn: lengthReward(o.lengthMax, o.lengthCache), requiredFields: [] };
    }
  }
  if (!isModuleSpec(spec)) {
    throw new KompresorError({ code: 'input_invalid', where: `--reward ${spec}`, rule: 'a reward is a built-in name or a module file',
      expected: `${BUILTIN_REWARDS.join(', ')} or a path such as ./my_reward.ts`, found: JSON.stringify(spec) });
  }
  return { name: moduleName(spec), source: spec, fn: await loadRewardModule(spec, o.timeoutS), requiredFields: [] };
}

/** reward_<name> for a module: its file name without extension, lower-case, [a-z0-9_]. */
function moduleName(spec: string): string {
  const base = nodePath.basename(spec).replace(/\.(ts|mts|js|mjs)$/, '').toLowerCase().replace(/[^a-z0-9_]+/g, '_');
  return base || 'module';
}

/**
 * The module's default export, which must be a function, running in its own worker thread
 * (reward_sandbox.ts): a call that does not return within `timeoutS` seconds, or a stop signal,
 * ends it and stops the run with one line.
 */
export async function loadRewardModule(spec: string, timeoutS = DEFAULT_REWARD_TIMEOUT_S): Promise<RewardFn> {
  const path = nodePath.resolve(spec);
  const where = `reward module ${spec}`;
  if (!fs.existsSync(path) || !fs.statSync(path).isFile()) {
    throw new KompresorError({ code: 'file_not_found', where, rule: 'the reward module must be a file', found: 'no such file' });
  }
  let r: Awaited<ReturnType<typeof loadSandboxedReward>>;
  try {
    r = await loadSandboxedReward(path, timeoutS);
  } catch (e) {
    const s = e instanceof RewardStopped ? e : new RewardStopped('the reward module must load', firstLine(e));
    throw new KompresorError({ code: 'input_invalid', where, rule: s.rule, found: s.found, hint: 'a module\'s top level must finish; raise --reward-timeout if it is only slow' });
  }
  if ('failure' in r) throw new KompresorError({ code: 'input_invalid', where, ...r.failure });
  return r.fn as RewardFn;
}

// ---------------------------------------------------------------------------------------------
// scoring

export interface ScoredBatch {
  /** r_i = Σ_k w_k r_ik. */
  total: number[];
  /** r_ik, unweighted, one array per function. */
  perFunction: number[][];
}

/**
 * Calls every reward on the batch and checks what comes back. `stopHint` says what happened to
 * the run (e.g. that its last checkpoint is intact and how to resume).
 */
export async function scoreRewards(rewards: Reward[], prompts: string[], completions: string[], rows: DataRow[], info: RewardInfo,
  stopHint?: string): Promise<ScoredBatch> {
  const n = completions.length;
  const perFunction: number[][] = [];
  for (const r of rewards) {
    const where = r.source === r.name && BUILTIN_REWARDS.includes(r.name as never) ? `reward ${r.name}` : `reward module ${r.source}`;
    let got: unknown;
    try {
      got = await r.fn(prompts, completions, rows, info);
    } catch (e) {
      if (e instanceof RewardStopped) throw new KompresorError({ code: 'input_invalid', where, rule: `${e.rule} (${info.batch})`, found: e.found, hint: stopHint });
      throw new KompresorError({ code: 'input_invalid', where, rule: `the reward function must score ${info.batch}`, found: `it threw: ${firstLine(e)}`, hint: stopHint });
    }
    const uncopyable = (got as { uncopyable?: string } | null)?.uncopyable; // what the worker could not send back
    if (!Array.isArray(got) && !ArrayBuffer.isView(got)) {
      throw new KompresorError({ code: 'input_invalid', where, rule: `the reward function must return one number per completion for ${info.batch}`,
        expected: `an array of ${n} numbers`, found: uncopyable ?? describe(got), hint: stopHint });
    }
    const arr = Array.from(got as ArrayLike<unknown>);
    if (arr.length !== n) {
      throw new KompresorError({ code: 'input_invalid', where, rule: `the reward function must return one number per completion for ${info.batch}`,
        expected: `${n} numbers`, found: `${arr.length}`, hint: stopHint });
    }
    const bad = arr.findIndex((v) => typeof v !== 'number' || !Number.isFinite(v));
    if (bad >= 0) {
      throw new KompresorError({ code: 'input_invalid', where, rule: `every reward must be a finite number (${info.batch})`,
        found: `${describe(arr[bad])} for completion ${bad} (${JSON.stringify(completions[bad].slice(0, 40))})`, hint: stopHint });
    }
    perFunction.push(arr as number[]);
  }
  const total = Array.from({ length: n }, (_, i) => rewards.reduce((s, r, k) => s + r.weight * perFunction[k][i], 0));
  return { total, perFunction };
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'number') return String(v);
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`;
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(e);
  return msg.split('\n')[0];
}
