// Harness-style task YAML (lm_eval/config/task.py TaskConfig) over local JSONL data: parsing,
// validation with errors that name the file, line and key, the dataset splits, and the doc_to_*
// resolution rules of ConfigurableTask:
//   doc_to_text / doc_to_target / doc_to_choice are a field name of the docs, a Jinja template
//   (rendered by @huggingface/jinja with the doc's fields as variables, a trailing newline kept as
//   the harness's keep_trailing_newline=True does), or a literal (an int, a list; for choices also
//   a dict, whose values are taken). A rendered target of digits becomes a choice index when the
//   task has choices; a rendered "[...]" is read as a Python list literal; rendered choices must
//   be a list literal ("{{choices}}" renders JSON-like and parses too).
// Supported keys are listed in SUPPORTED below; anything else (process_docs, !function, gen_prefix,
// repeats > 1, groups, ...) is refused by name instead of silently ignored.
//
// Data: dataset_path is a folder (relative to the YAML) holding <split>.jsonl (or .json) per
// split name, or one .jsonl file (the only split: evaluation and few-shot docs both come from
// it), or "json" with dataset_kwargs.data_files {split: file}. A split value ending in .jsonl/.json
// is a file name. `include: base.yaml` merges a base config underneath, as the harness does.
import fs from 'node:fs';
import nodePath from 'node:path';
import YAML from 'yaml';
import { Template } from '@huggingface/jinja';
import { KompresorError } from '../errors.ts';
import { readUtf8File } from '../io/text_file.ts';
import { renderSandboxed } from '../io/template_sandbox.ts';
import { GREEDY, type SamplingOptions } from '../model/sampling.ts';
import { DEFAULT_METRICS, METRICS, type Aggregation, type ExactMatchOptions } from './metrics.ts';
import type { SamplerName } from './fewshot.ts';

export type Doc = Record<string, unknown>;
export type OutputType = 'loglikelihood' | 'loglikelihood_rolling' | 'multiple_choice' | 'generate_until';
const OUTPUT_TYPES: OutputType[] = ['loglikelihood', 'loglikelihood_rolling', 'multiple_choice', 'generate_until'];
const AGGREGATIONS: Aggregation[] = ['mean', 'perplexity', 'weighted_perplexity', 'bits_per_byte'];

/** Keys we read; IGNORED keys are accepted and have no effect here. */
const SUPPORTED = ['task', 'include', 'dataset_path', 'dataset_kwargs', 'test_split', 'validation_split', 'training_split', 'fewshot_split',
  'output_type', 'doc_to_text', 'doc_to_target', 'doc_to_choice', 'description', 'target_delimiter', 'fewshot_delimiter',
  'num_fewshot', 'fewshot_config', 'metric_list', 'generation_kwargs', 'filter_list', 'repeats', 'metadata'];
const IGNORED = ['tag', 'group', 'task_alias', 'dataset_name', 'should_decontaminate', 'doc_to_decontamination_query', 'unsafe_code'];

export interface MetricSpec { name: string; aggregation: Aggregation; higherIsBetter: boolean; exact: ExactMatchOptions }

export type FilterStep =
  | { fn: 'regex'; regex: RegExp; groupSelect: number; fallback: string }
  | { fn: 'take_first' | 'lowercase' | 'uppercase' | 'remove_whitespace' };
export interface FilterPipeline { name: string; steps: FilterStep[] }

export interface GenerationSettings { until: string[]; maxGenToks: number; sampling: SamplingOptions }

type Field =
  | { kind: 'field'; name: string }
  | { kind: 'template'; tpl: Template; src: string }
  | { kind: 'literal'; value: unknown };

const SENTINEL = '\uE000'; // keeps a template's trailing newline through @huggingface/jinja

export class Task {
  readonly name: string;
  readonly file: string;
  readonly outputType: OutputType;
  readonly metrics: MetricSpec[];
  readonly filters: FilterPipeline[];
  readonly generation: GenerationSettings;
  readonly numFewshot: number;
  readonly samplerName: SamplerName;
  readonly fewshotSeed = 1234;
  readonly evalDocs: Doc[];
  /** Few-shot docs (null when none are needed) and whether they come from the evaluation split. */
  readonly fewshotDocs: Doc[] | null;
  readonly fewshotSameSplit: boolean;
  readonly targetDelimiter: string;
  readonly fewshotDelimiter: string;
  readonly fewshotTargetDelimiter: string;
  readonly version: number | string | null;
  private fields: Record<'text' | 'target' | 'choice' | 'description', Field | null>;
  private fewshotFields: Partial<Record<'text' | 'target' | 'choice', Field>>;

  constructor(cfg: Record<string, unknown>, file: string, numFewshotOverride?: number) {
    this.file = file;
    const get = <T>(key: string, check: (v: unknown) => v is T, expected: string, dflt: T): T => {
      const v = cfg[key];
      if (v === undefined || v === null) return dflt;
      if (!check(v)) throw bad(file, key, `${key} must be ${expected}`, JSON.stringify(v));
      return v;
    };
    this.name = get('task', isString, 'a string (the task name)', '');
    if (this.name === '') throw bad(file, 'task', 'a task YAML needs `task: NAME`', 'no task key');
    this.outputType = get('output_type', (v): v is OutputType => OUTPUT_TYPES.includes(v as OutputType), OUTPUT_TYPES.join(' | '), 'generate_until');
    this.targetDelimiter = get('target_delimiter', isString, 'a string', ' ');
    this.fewshotDelimiter = get('fewshot_delimiter', isString, 'a string', '\n\n');
    const fsc = get('fewshot_config', isObject, 'a mapping', {} as Record<string, unknown>);
    this.fewshotTargetDelimiter = typeof fsc.target_delimiter === 'string' ? fsc.target_delimiter : this.targetDelimiter;
    const yamlShots = get('num_fewshot', isNonNegInt, 'an integer >= 0', 0);
    this.numFewshot = numFewshotOverride ?? yamlShots;
    const sampler = fsc.sampler ?? 'default';
    if (sampler !== 'default' && sampler !== 'first_n') throw bad(file, 'fewshot_config.sampler', 'the supported samplers are default (seeded random) and first_n', JSON.stringify(sampler));
    this.samplerName = sampler;
    if (get('repeats', isNonNegInt, 'an integer', 1) !== 1) throw bad(file, 'repeats', 'repeats must be 1 (greedy evaluation; majority votes over samples are not supported)', String(cfg.repeats));
    const meta = get('metadata', isObject, 'a mapping', {} as Record<string, unknown>);
    this.version = typeof meta.version === 'number' || typeof meta.version === 'string' ? meta.version : null;
    this.metrics = parseMetrics(cfg.metric_list, this.outputType, file);
    this.filters = parseFilters(cfg.filter_list, file);
    this.generation = parseGeneration(cfg.generation_kwargs, this.fewshotDelimiter, file);

    const data = loadSplits(cfg, file, this.numFewshot > 0 && !Array.isArray(fsc.samples));
    this.evalDocs = data.evalDocs;
    if (Array.isArray(fsc.samples)) {
      if (!fsc.samples.every(isObject)) throw bad(file, 'fewshot_config.samples', 'manual few-shot samples must be a list of docs (mappings)', JSON.stringify(fsc.samples).slice(0, 80));
      this.fewshotDocs = fsc.samples as Doc[];
      this.fewshotSameSplit = false;
    } else {
      this.fewshotDocs = data.fewshotDocs;
      this.fewshotSameSplit = data.sameSplit;
    }
    const features = new Set<string>();
    for (const d of [...this.evalDocs, ...(this.fewshotDocs ?? [])]) for (const k of Object.keys(d)) features.add(k);
    const field = (key: string, v: unknown, where = key) => parseField(v, features, file, where);
    this.fields = {
      text: field('doc_to_text', cfg.doc_to_text),
      target: field('doc_to_target', cfg.doc_to_target),
      choice: field('doc_to_choice', cfg.doc_to_choice),
      description: typeof cfg.description === 'string' && cfg.description !== '' ? parseTemplate(cfg.description, features, file, 'description') : null,
    };
    this.fewshotFields = {};
    for (const k of ['text', 'target', 'choice'] as const) {
      const v = fsc[`doc_to_${k}`];
      if (v !== undefined && v !== null) this.fewshotFields[k] = field(`fewshot_config.doc_to_${k}`, v)!;
    }
    this.checkRequired();
  }

  private checkRequired(): void {
    const need = (k: 'text' | 'target' | 'choice', why: string) => {
      if (!this.fields[k]) throw bad(this.file, `doc_to_${k}`, `${why} needs doc_to_${k}`, 'none');
    };
    if (this.outputType === 'loglikelihood_rolling') need('target', 'loglikelihood_rolling (the text to score)');
    else { need('text', this.outputType); need('target', this.outputType); }
    if (this.outputType === 'multiple_choice') need('choice', 'multiple_choice');
    if (this.evalDocs.length === 0) throw bad(this.file, 'dataset', 'the evaluation split must hold at least one doc', '0 docs');
    if (this.numFewshot > 0 && this.fewshotDocs && this.fewshotDocs.length < this.numFewshot + (this.fewshotSameSplit ? 1 : 0)) {
      const need = this.numFewshot + (this.fewshotSameSplit ? 1 : 0);
      throw new KompresorError({ code: 'config_invalid', where: `${this.file}: num_fewshot`, rule: `${this.numFewshot} shots need enough few-shot docs${this.fewshotSameSplit ? ' (one more, as the evaluated doc is drawn from the same split)' : ''}`,
        expected: `at least ${need} docs`, found: `${this.fewshotDocs.length}` });
    }
  }

  get hasChoices(): boolean { return this.fields.choice !== null; }

  description(doc: Doc): string {
    return this.fields.description ? String(this.resolve(this.fields.description, doc, 'description')) : '';
  }

  docToText(doc: Doc, which: 'eval' | 'fewshot' = 'eval'): string {
    const f = (which === 'fewshot' && this.fewshotFields.text) || this.fields.text!;
    const v = this.resolve(f, doc, 'doc_to_text');
    if (typeof v === 'number' || (f.kind === 'template' && this.hasChoices && /^\d+$/.test(String(v)))) {
      throw this.docError('doc_to_text', doc, 'doc_to_text must give the prompt text (an index into the choices means a multiple-input task such as Winogrande, which is not supported)', String(v));
    }
    return String(v);
  }

  /** A string, a choice index, or a list of them (several acceptable answers). */
  docToTarget(doc: Doc, which: 'eval' | 'fewshot' = 'eval'): string | number | (string | number)[] {
    const f = (which === 'fewshot' && this.fewshotFields.target) || this.fields.target!;
    const v = this.resolve(f, doc, 'doc_to_target');
    if (f.kind === 'template') {
      const s = String(v);
      if (this.hasChoices && /^\d+$/.test(s)) return Number(s);
      if (s.length >= 2 && s.startsWith('[') && s.endsWith(']')) {
        try { return pythonLiteral(s) as (string | number)[]; } catch { return s; }
      }
      return s;
    }
    if (typeof v === 'string' || (typeof v === 'number' && Number.isInteger(v))) return v;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string' || typeof x === 'number')) return v as (string | number)[];
    throw this.docError('doc_to_target', doc, 'doc_to_target must give a string, a choice index or a list of them', JSON.stringify(v));
  }

  docToChoice(doc: Doc, which: 'eval' | 'fewshot' = 'eval'): string[] {
    const f = (which === 'fewshot' && this.fewshotFields.choice) || this.fields.choice;
    if (!f) throw bad(this.file, 'doc_to_choice', 'an int target needs doc_to_choice to index', 'none');
    let v = this.resolve(f, doc, 'doc_to_choice');
    if (f.kind === 'template') {
      try { v = pythonLiteral(String(v)); } catch (e) {
        throw this.docError('doc_to_choice', doc, 'a doc_to_choice template must render a list literal such as ["a", "b"]', `${JSON.stringify(String(v).slice(0, 80))} (${(e as Error).message})`);
      }
    }
    if (isObject(v)) v = Object.values(v);
    if (!Array.isArray(v) || v.length === 0) throw this.docError('doc_to_choice', doc, 'doc_to_choice must give a non-empty list', JSON.stringify(v));
    return v.map((c) => String(c));
  }

  /** The gold choice index (or indices) of a multiple-choice doc. */
  goldIndex(doc: Doc, choices: string[]): number | number[] {
    const t = this.docToTarget(doc);
    const one = (g: string | number): number => {
      const i = typeof g === 'number' ? g : choices.indexOf(g);
      if (!(i >= 0 && i < choices.length)) {
        throw this.docError('doc_to_target', doc, 'the target must be a choice index or one of the choices', `${JSON.stringify(g)} with choices ${JSON.stringify(choices)}`);
      }
      return i;
    };
    return Array.isArray(t) ? t.map(one) : one(t);
  }

  private resolve(f: Field, doc: Doc, key: string): unknown {
    if (f.kind === 'literal') return f.value;
    if (f.kind === 'field') return doc[f.name];
    // in the template sandbox: time, memory and size limits (a task comes from elsewhere)
    const r = renderSandboxed(f.src + SENTINEL, doc);
    if ('error' in r) throw this.docError(key, doc, 'the Jinja template must render', r.error);
    return r.out.endsWith(SENTINEL) ? r.out.slice(0, -SENTINEL.length) : r.out;
  }

  private docError(key: string, doc: Doc, rule: string, found: string): KompresorError {
    return new KompresorError({ code: 'input_invalid', where: `${this.file}: ${key} of doc ${JSON.stringify(doc).slice(0, 60)}`, rule, found });
  }
}

// ---------------------------------------------------------------------------------------------
// loading

/** Task YAML files named on the command line: files, or folders searched recursively for *.yaml / *.yml. */
export function findTaskFiles(spec: string): string[] {
  const out: string[] = [];
  for (const p of spec.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    if (!fs.existsSync(p)) throw new KompresorError({ code: 'file_not_found', where: `--tasks ${p}`, rule: 'each task must be a YAML file or a folder of them', found: 'no such file or folder' });
    if (fs.statSync(p).isDirectory()) {
      const found = walk(p).filter((f) => /\.ya?ml$/.test(f)).sort();
      // files without `task:` are bases for `include:`, not tasks
      const tasks = found.filter((f) => /^task\s*:/m.test(fs.readFileSync(f, 'utf8')));
      if (tasks.length === 0) throw new KompresorError({ code: 'file_not_found', where: `--tasks ${p}`, rule: 'a task folder must hold task YAML files (with a `task:` key)', found: `${found.length} YAML files, none with task:` });
      out.push(...tasks);
    } else out.push(p);
  }
  return out;
}

function walk(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = nodePath.join(dir, e.name);
    return e.isDirectory() ? walk(p) : [p];
  });
}

export function loadTask(file: string, numFewshotOverride?: number): Task {
  return new Task(readTaskYaml(file), file, numFewshotOverride);
}

/** Parses one YAML file and its `include:` chain into one mapping (the including file wins). */
export function readTaskYaml(file: string, seen: string[] = []): Record<string, unknown> {
  if (seen.includes(nodePath.resolve(file))) throw bad(file, 'include', 'includes must not form a cycle', [...seen, file].join(' -> '));
  if (!fs.existsSync(file)) throw new KompresorError({ code: 'file_not_found', where: file, rule: 'the task YAML must exist', found: 'no such file' });
  const text = fs.readFileSync(file, 'utf8');
  const doc = YAML.parseDocument(text, { prettyErrors: true, customTags: [{ tag: '!function', resolve: (s: string) => ({ __function: s }) }] });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const pos = e.linePos?.[0];
    throw new KompresorError({ code: 'config_invalid', where: `${file}${pos ? `:${pos.line}:${pos.col}` : ''}`, rule: 'the task file must be valid YAML',
      found: e.message.split(' at line ')[0] });
  }
  const v = doc.toJS() as unknown;
  if (!isObject(v)) throw new KompresorError({ code: 'config_invalid', where: file, rule: 'a task file must hold a YAML mapping', found: v === null ? 'an empty document' : typeof v });
  checkKeys(v, file);
  if (v.include === undefined) return v;
  if (!isString(v.include)) throw bad(file, 'include', 'include must be a file name', JSON.stringify(v.include));
  const base = readTaskYaml(nodePath.resolve(nodePath.dirname(file), v.include), [...seen, nodePath.resolve(file)]);
  const { include: _drop, ...rest } = v;
  return { ...base, ...rest };
}

function checkKeys(v: Record<string, unknown>, file: string): void {
  for (const [k, val] of Object.entries(v)) {
    if (isObject(val) && '__function' in val) {
      throw bad(file, k, `${k}: !function ${String(val.__function)} is Python code, which kompresor cannot run`, '!function', 'write a Jinja template or a field name instead (or precompute the field in the JSONL data)');
    }
    if (SUPPORTED.includes(k) || IGNORED.includes(k)) continue;
    const why: Record<string, string> = {
      process_docs: 'precompute the fields in the JSONL data instead',
      process_results: 'use metric_list with the built-in metrics',
      gen_prefix: 'put the prefix at the end of doc_to_text',
      fewshot_as_multiturn: 'chat templates are not applied by kompresor eval',
    };
    throw bad(file, k, `unsupported key "${k}"`, k, why[k] ?? `the supported keys are ${SUPPORTED.join(', ')} (ignored: ${IGNORED.join(', ')})`);
  }
}

interface Splits { evalDocs: Doc[]; fewshotDocs: Doc[] | null; sameSplit: boolean }

function loadSplits(cfg: Record<string, unknown>, file: string, needFewshot: boolean): Splits {
  const dir = nodePath.dirname(file);
  const dp = cfg.dataset_path;
  if (!isString(dp)) throw bad(file, 'dataset_path', 'dataset_path must name the local data (a folder of <split>.jsonl, a .jsonl file, or "json" with dataset_kwargs.data_files)', JSON.stringify(dp));
  const name = (k: string) => (isString(cfg[k]) ? (cfg[k] as string) : null);
  const evalSplit = name('test_split') ?? name('validation_split');
  const fewSplit = name('fewshot_split') ?? name('training_split') ?? name('validation_split') ?? name('test_split');
  let fileOf: (split: string, key: string) => string;
  const single = /\.(jsonl|json)$/.test(dp) ? nodePath.resolve(dir, dp) : null;
  if (single) {
    fileOf = () => single;
  } else if (dp === 'json') {
    const df = isObject(cfg.dataset_kwargs) ? cfg.dataset_kwargs.data_files : undefined;
    if (!isObject(df)) throw bad(file, 'dataset_kwargs.data_files', 'dataset_path "json" needs dataset_kwargs.data_files {split: file}', JSON.stringify(df));
    fileOf = (split, key) => {
      if (!isString(df[split])) throw bad(file, key, `dataset_kwargs.data_files has no file for split "${split}"`, Object.keys(df).join(', '));
      return nodePath.resolve(dir, df[split] as string);
    };
  } else {
    const root = nodePath.resolve(dir, dp);
    fileOf = (split) => {
      if (/\.(jsonl|json)$/.test(split)) return nodePath.resolve(root, split);
      const jsonl = nodePath.join(root, `${split}.jsonl`);
      return fs.existsSync(jsonl) || !fs.existsSync(nodePath.join(root, `${split}.json`)) ? jsonl : nodePath.join(root, `${split}.json`);
    };
  }
  if (!single && evalSplit === null) throw bad(file, 'test_split', 'the task needs test_split (or validation_split) to name the evaluation docs', 'neither');
  const evalFile = fileOf(evalSplit ?? 'test', 'test_split');
  const evalDocs = readDocs(evalFile, file);
  if (!needFewshot) return { evalDocs, fewshotDocs: null, sameSplit: false };
  const fsFile = single ? single : fileOf(fewSplit!, 'fewshot_split');
  const sameSplit = single !== null || fsFile === evalFile;
  return { evalDocs, fewshotDocs: sameSplit ? evalDocs : readDocs(fsFile, file), sameSplit };
}

/** Docs of a .jsonl (one JSON object per line) or .json (a list of objects) file. */
export function readDocs(path: string, taskFile: string): Doc[] {
  if (!fs.existsSync(path)) throw new KompresorError({ code: 'file_not_found', where: `${taskFile}: data ${path}`, rule: 'the split file must exist', found: 'no such file' });
  const text = readUtf8File(path);
  const fail = (where: string, found: string) => new KompresorError({ code: 'input_invalid', where, rule: 'each doc must be a JSON object', found });
  if (path.endsWith('.json')) {
    let v: unknown;
    try { v = JSON.parse(text); } catch (e) { throw fail(path, (e as Error).message); }
    if (!Array.isArray(v) || !v.every(isObject)) throw fail(path, 'not a list of objects');
    return v as Doc[];
  }
  const docs: Doc[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let v: unknown;
    try { v = JSON.parse(line); } catch (e) { throw fail(`${path}:${i + 1}`, (e as Error).message); }
    if (!isObject(v)) throw fail(`${path}:${i + 1}`, JSON.stringify(v).slice(0, 60));
    docs.push(v);
  });
  return docs;
}

// ---------------------------------------------------------------------------------------------
// fields, metrics, filters, generation

function parseField(v: unknown, features: Set<string>, file: string, key: string): Field | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return features.has(v) ? { kind: 'field', name: v } : parseTemplate(v, features, file, key);
  if (typeof v === 'number' || Array.isArray(v) || isObject(v)) return { kind: 'literal', value: v };
  throw bad(file, key, `${key} must be a field name, a Jinja template or a literal`, JSON.stringify(v));
}

const JINJA_NAMES = new Set(['loop', 'range', 'namespace', 'true', 'false', 'none', 'True', 'False', 'None', 'raise_exception']);

/**
 * Compiles a template and checks that every variable it prints ({{ name ...) is a field of the
 * docs or set in the template: the harness's Jinja is strict about undefined variables, ours would
 * print "" for a misspelt field.
 */
function parseTemplate(src: string, features: Set<string>, file: string, key: string): Field {
  let tpl: Template;
  try { tpl = new Template(src + SENTINEL); } catch (e) { throw bad(file, key, 'the Jinja template must parse', `${(e as Error).message} in ${JSON.stringify(src)}`); }
  const local = new Set([...src.matchAll(/\{%-?\s*(?:set|for)\s+([A-Za-z_]\w*)(?:\s*,\s*([A-Za-z_]\w*))?/g)].flatMap((m) => [m[1], m[2]]).filter(Boolean));
  for (const m of src.matchAll(/\{\{-?\s*([A-Za-z_]\w*)/g)) {
    const id = m[1];
    if (!features.has(id) && !local.has(id) && !JINJA_NAMES.has(id)) {
      throw bad(file, key, `the template uses "${id}", which is not a field of the docs`, `fields ${[...features].join(', ') || '(none)'}`);
    }
  }
  return { kind: 'template', tpl, src };
}

function parseMetrics(v: unknown, outputType: OutputType, file: string): MetricSpec[] {
  const allowed: Record<OutputType, string[]> = {
    loglikelihood: ['perplexity', 'acc'],
    loglikelihood_rolling: ['word_perplexity', 'byte_perplexity', 'bits_per_byte'],
    multiple_choice: ['acc', 'acc_norm', 'acc_bytes', 'exact_match', 'acc_mutual_info'],
    generate_until: ['exact_match'],
  };
  const entries: Record<string, unknown>[] = v === undefined || v === null
    ? DEFAULT_METRICS[outputType].map((metric) => ({ metric }))
    : Array.isArray(v) && v.every(isObject) ? v : (() => { throw bad(file, 'metric_list', 'metric_list must be a list of {metric: NAME, ...}', JSON.stringify(v)); })();
  if (entries.length === 0) throw bad(file, 'metric_list', 'metric_list must name at least one metric', '[]');
  return entries.map((e, i) => {
    const name = e.metric;
    if (!isString(name) || !allowed[outputType].includes(name)) {
      throw bad(file, `metric_list[${i}].metric`, `${outputType} tasks support the metrics ${allowed[outputType].join(', ')}`, JSON.stringify(name));
    }
    const agg = e.aggregation ?? METRICS[name].aggregation;
    if (!AGGREGATIONS.includes(agg as Aggregation)) throw bad(file, `metric_list[${i}].aggregation`, `aggregation must be one of ${AGGREGATIONS.join(', ')}`, JSON.stringify(agg));
    const hib = e.higher_is_better ?? METRICS[name].higherIsBetter;
    if (typeof hib !== 'boolean') throw bad(file, `metric_list[${i}].higher_is_better`, 'higher_is_better must be true or false', JSON.stringify(hib));
    const regexes = e.regexes_to_ignore;
    if (regexes !== undefined && !(Array.isArray(regexes) && regexes.every(isString))) throw bad(file, `metric_list[${i}].regexes_to_ignore`, 'regexes_to_ignore must be a list of strings', JSON.stringify(regexes));
    return {
      name, aggregation: agg as Aggregation, higherIsBetter: hib,
      exact: { ignoreCase: e.ignore_case === true, ignorePunctuation: e.ignore_punctuation === true, ignoreNumbers: e.ignore_numbers === true, regexesToIgnore: regexes as string[] | undefined },
    };
  });
}

function parseFilters(v: unknown, file: string): FilterPipeline[] {
  if (v === undefined || v === null) return [{ name: 'none', steps: [{ fn: 'take_first' }] }];
  if (!Array.isArray(v) || v.length === 0) throw bad(file, 'filter_list', 'filter_list must be a non-empty list of {name, filter: [...]}', JSON.stringify(v));
  return v.map((p, i) => {
    if (!isObject(p) || !isString(p.name) || !Array.isArray(p.filter)) throw bad(file, `filter_list[${i}]`, 'each filter pipeline needs a name and a filter list', JSON.stringify(p));
    return { name: p.name, steps: p.filter.map((f, j) => parseFilterStep(f, file, `filter_list[${i}].filter[${j}]`)) };
  });
}

function parseFilterStep(f: unknown, file: string, where: string): FilterStep {
  if (!isObject(f) || !isString(f.function)) throw bad(file, where, 'a filter step needs `function`', JSON.stringify(f));
  const fn = f.function;
  if (fn === 'take_first' || fn === 'lowercase' || fn === 'uppercase' || fn === 'remove_whitespace') return { fn };
  if (fn !== 'regex') throw bad(file, `${where}.function`, 'the supported filters are regex, take_first, lowercase, uppercase and remove_whitespace', JSON.stringify(fn));
  const pattern = f.regex_pattern ?? '#### (\\-?[0-9\\.\\,]+)';
  if (!isString(pattern)) throw bad(file, `${where}.regex_pattern`, 'regex_pattern must be a string', JSON.stringify(pattern));
  const groupSelect = f.group_select ?? 0;
  if (!Number.isInteger(groupSelect)) throw bad(file, `${where}.group_select`, 'group_select must be an integer', JSON.stringify(groupSelect));
  return { fn: 'regex', regex: compileRegex(pattern, file, where), groupSelect: groupSelect as number, fallback: isString(f.fallback) ? f.fallback : '[invalid]' };
}

/** A Python regex as a JavaScript one: Unicode mode when it parses so, else legacy mode (e.g. "\-" outside a class). */
function compileRegex(p: string, file: string, where: string): RegExp {
  try { return new RegExp(p, 'gu'); } catch { /* fall through */ }
  try { return new RegExp(p, 'g'); } catch (e) { throw bad(file, `${where}.regex_pattern`, 'the regex must compile', `${(e as Error).message}`); }
}

/** RegexFilter: re.findall, the group_select-th match (negative counts from the end), the first non-empty group of a tuple, stripped. */
export function applyFilters(resp: string, steps: FilterStep[]): string {
  let s = resp;
  for (const st of steps) {
    if (st.fn === 'take_first') continue; // one response per request (repeats = 1)
    if (st.fn === 'lowercase') s = s.toLowerCase();
    else if (st.fn === 'uppercase') s = s.toUpperCase();
    else if (st.fn === 'remove_whitespace') s = s.replace(/^\s+/u, '');
    else if (st.fn === 'regex') {
      const found = [...s.matchAll(st.regex)].map((m) => (m.length === 1 ? m[0] : m.length === 2 ? (m[1] ?? '') : m.slice(1).map((g) => g ?? '')));
      const k = st.groupSelect < 0 ? found.length + st.groupSelect : st.groupSelect;
      if (found.length === 0 || k < 0 || k >= found.length) { s = st.fallback; continue; }
      const m = found[k];
      const pick = Array.isArray(m) ? m.find((g) => g !== '') : m;
      s = pick === undefined ? st.fallback : pick.trim();
    }
  }
  return s;
}

function parseGeneration(v: unknown, fewshotDelimiter: string, file: string): GenerationSettings {
  if (v === undefined || v === null) return { until: [fewshotDelimiter], maxGenToks: 256, sampling: GREEDY };
  if (!isObject(v)) throw bad(file, 'generation_kwargs', 'generation_kwargs must be a mapping', JSON.stringify(v));
  const known = ['until', 'max_gen_toks', 'do_sample', 'temperature', 'top_k', 'top_p'];
  for (const k of Object.keys(v)) if (!known.includes(k)) throw bad(file, `generation_kwargs.${k}`, `the supported generation_kwargs are ${known.join(', ')}`, k);
  const until = v.until === undefined ? [] : isString(v.until) ? [v.until] : v.until;
  if (!Array.isArray(until) || !until.every(isString)) throw bad(file, 'generation_kwargs.until', 'until must be a string or a list of strings', JSON.stringify(v.until));
  const num = (k: string, dflt: number, ok: (x: number) => boolean, rule: string) => {
    const x = v[k] ?? dflt;
    if (typeof x !== 'number' || !ok(x)) throw bad(file, `generation_kwargs.${k}`, rule, JSON.stringify(v[k]));
    return x;
  };
  const maxGenToks = num('max_gen_toks', 256, (x) => Number.isInteger(x) && x >= 1, 'max_gen_toks must be an integer >= 1');
  const temperature = num('temperature', 0, (x) => x >= 0, 'temperature must be >= 0');
  const sample = v.do_sample === true && temperature > 0; // HFLM: temperature 0 means greedy
  const sampling: SamplingOptions = sample
    ? { temperature, topK: num('top_k', 50, (x) => Number.isInteger(x) && x >= 0, 'top_k must be an integer >= 0'), topP: num('top_p', 1, (x) => x > 0 && x <= 1, 'top_p must be in (0, 1]'), minP: 0 }
    : GREEDY;
  return { until: until as string[], maxGenToks, sampling };
}

// ---------------------------------------------------------------------------------------------
// small helpers

function isString(v: unknown): v is string { return typeof v === 'string'; }
function isNonNegInt(v: unknown): v is number { return typeof v === 'number' && Number.isInteger(v) && v >= 0; }
function isObject(v: unknown): v is Record<string, unknown> { return typeof v === 'object' && v !== null && !Array.isArray(v); }

function bad(file: string, key: string, rule: string, found: string, hint?: string): KompresorError {
  return new KompresorError({ code: 'config_invalid', where: `${file}: ${key}`, rule, found, hint });
}

/**
 * A Python literal as ast.literal_eval reads the ones tasks use: lists (nested), strings in ' or "
 * quotes with backslash escapes, numbers, True/False/None. JSON-like renders of lists parse too.
 */
export function pythonLiteral(s: string): unknown {
  let i = 0;
  const ws = () => { while (i < s.length && /\s/.test(s[i])) i++; };
  const fail = (what: string): never => { throw new Error(`${what} at character ${i}`); };
  const value = (): unknown => {
    ws();
    const c = s[i];
    if (c === '[' || c === '(') {
      const close = c === '[' ? ']' : ')';
      i++;
      const out: unknown[] = [];
      ws();
      while (s[i] !== close) {
        out.push(value());
        ws();
        if (s[i] === ',') { i++; ws(); } else if (s[i] !== close) fail(`expected "," or "${close}"`);
      }
      i++;
      return out;
    }
    if (c === '"' || c === "'") {
      i++;
      let out = '';
      while (i < s.length && s[i] !== c) {
        if (s[i] === '\\') {
          const e = s[i + 1];
          const map: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', '0': '\0' };
          if (e === 'u') { out += String.fromCharCode(parseInt(s.slice(i + 2, i + 6), 16)); i += 6; continue; }
          out += map[e] ?? `\\${e}`;
          i += 2;
        } else out += s[i++];
      }
      if (s[i] !== c) fail('unterminated string');
      i++;
      return out;
    }
    const m = /^(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|True|False|None|true|false|null)/.exec(s.slice(i));
    if (!m) return fail('expected a list, a string or a number');
    i += m[0].length;
    const lit: Record<string, unknown> = { True: true, False: false, None: null, true: true, false: false, null: null };
    return m[0] in lit ? lit[m[0]] : Number(m[0]);
  };
  const v = value();
  ws();
  if (i !== s.length) fail('unexpected text after the literal');
  return v;
}
