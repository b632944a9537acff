// The report of a pipeline run, built only from what is in RUN_DIR (pipeline_state.json and the
// finished steps' folders), so it can be rebuilt at any time and never invents a number:
//   RUN_DIR/report.json      the numbers (format kompresor-pipeline-report v1)
//   RUN_DIR/report.md        the same as text, figures linked
//   RUN_DIR/report.html      one self-contained page: CSS and every SVG inline, no external assets
//   RUN_DIR/report_figures/  the curves drawn here (the importance charts stay in their steps)
// Where the numbers come from (docs/pipeline.md "The report"):
//   teacher / student parameters   `inspect` steps whose MODEL_DIR is the recipe's teacher / student
//   pruned variants                prune_report.json in each prune / search step's output
//   recovery                       `eval` steps' RESULTS.json (recovery per task and average)
//   speed-up                       `bench --vs` steps' ratios (engine kompresor and llama.cpp)
//   curves                         trainer steps' metrics.jsonl (train, distill, sft, dpo, grpo)
//   quantization                   `export --quality-text` steps' quality (size, bits per byte vs f16, decode speed per GGUF type)
//   importance charts              the SVGs `score` and `prune` wrote beside their outputs
//   made on                        the machine fingerprint of the last session of the step that made the student
// A piece whose step is not in the recipe or has not finished is listed under "missing" and shown
// as missing; nothing is estimated.
import fs from 'node:fs';
import nodePath from 'node:path';
import { ensure } from '../errors.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { readMetrics, type MetricsLine } from '../train/metrics.ts';
import { linePlot, downsample, esc, type Series } from '../report/svg_plot.ts';
import { inlineSvg } from '../report/pruning_report.ts';
import { describeMachine, type MachineFingerprint } from '../tensor/machine.ts';
import { readState, type PipelineState, type StepRecord } from './runner.ts';

export const REPORT_FORMAT = 'kompresor-pipeline-report';
const TRAINERS = ['train', 'distill', 'sft', 'dpo', 'grpo'];
const IMPORTANCE_FIGURES = ['layers.svg', 'layers_loss.svg', 'heads.svg', 'mlp.svg', 'hidden.svg'];
const CURVE_POINTS = 1000;

/** total_no_lm_head: the total without an untied lm_head, the seed's convention (11.04B -> 7.35B). */
export interface Components { embeddings: number; attention: number; mlp: number; norms: number; lm_head: number; total: number; total_no_lm_head: number }
const COMPONENTS: (keyof Components)[] = ['embeddings', 'attention', 'mlp', 'norms', 'lm_head', 'total', 'total_no_lm_head'];

export interface ModelParams { label: string; step: string | null; path: string; components: Components; sizes?: Sizes }
export interface Sizes { num_hidden_layers: number; hidden_size: number; num_attention_heads: number; intermediate_size: number }

export interface RecoveryRow { task: string; metric: string; higher_is_better: boolean | null; student: number | null; teacher: number | null; recovery: number | null }
export interface EvalRow { step: string; model: string; model_label: string; teacher: string | null; average: number | null }
export interface BenchRow {
  step: string; engine: string; model: string; model_label: string; reference: string | null; reference_label: string | null;
  decode_tokens_per_s: number; reference_decode_tokens_per_s: number | null;
  decode: number | null; prefill: number | null; batch_decode: number | null; time_to_first_token: number | null; peak_rss_ratio: number | null;
}
export interface TrainingRow {
  step: string; command: string; start: string | null; start_label: string | null;
  /** The checkpoint folder whose shape the run trains (a distill student, a train --init config's folder), and the run's final model. */
  start_model: string | null; model: string | null;
  steps: number | null; tokens: number | null;
  loss_first: number | null; loss_last: number | null; validation_first: number | null; validation_last: number | null;
  /** GRPO: the mean reward of the first and last training steps, and on the held-out prompts (--eval-data). */
  train_reward_first: number | null; train_reward_last: number | null;
  reward_first: number | null; reward_last: number | null; figures: string[];
}

/**
 * The Minitron papers' two questions, per recovery run (distill, or train from random init): which
 * pruned shape recovers better at the same budget, and distillation against training the same
 * shape from scratch on the same tokens. Validation CE from the run, recovery from an eval step of its model.
 */
export interface ComparisonRow {
  step: string; command: string; start_label: string | null; sizes: Sizes | null; params: number | null; tokens: number | null;
  validation_loss: number | null; eval_step: string | null; recovery_average: number | null;
}

/** One GGUF file of an export step, measured in llama.cpp against f16 (export --quality-text). */
export interface QuantizationRow {
  step: string; dtype: string; weighted: boolean; bytes: number; bits_per_weight: number;
  bits_per_byte: number; vs_f16_percent: number; decode_tokens_per_s: number;
}

export interface PipelineReport {
  format: typeof REPORT_FORMAT;
  version: 1;
  name: string;
  recipe: string;
  run_dir: string;
  teacher: { path: string | null; params: number | null; components: Components | null; step: string | null };
  student: { path: string | null; params: number | null; components: Components | null; step: string | null };
  /** ratio and reduction of the totals; without_lm_head: the same without an untied lm_head (the seed's convention). */
  params: { ratio: number | null; reduction_percent: number | null; without_lm_head: { ratio: number | null; reduction_percent: number | null }; models: ModelParams[] };
  recovery: { average: number | null; step: string | null; tasks: RecoveryRow[]; evals: EvalRow[] };
  speedup: { decode: number | null; prefill: number | null; step: string | null; llama_cpp: { decode: number | null; prefill: number | null; step: string } | null; runs: BenchRow[] };
  training: TrainingRow[];
  comparisons: ComparisonRow[];
  quantization: QuantizationRow[];
  /** Figures drawn here, relative to RUN_DIR, with what they show. */
  figures: { file: string; title: string }[];
  importance: { step: string; command: string; figures: string[] }[];
  steps: { name: string; command: string; status: string; seconds: number; sessions: number; command_line: string; error: string | null }[];
  /**
   * The machine that made the student (src/tensor/machine.ts): the last session of the step whose
   * output it is; and the finished steps with a session on a machine of another key, whose
   * results another run on the student's machine would not reproduce bit for bit.
   */
  machine: { step: string | null; made_on: MachineFingerprint | null; other_machines: { step: string; key: string; machine: string }[] };
  missing: string[];
}

// ---------------------------------------------------------------------------------------------
// entry point

/** Builds and writes report.json, report.md, report.html (and report_figures/); returns their paths. */
export function writePipelineReport(runDir: string): { json: string; md: string; html: string; report: PipelineReport } {
  const state = readState(runDir);
  ensure(state !== null, runDir, () => 'a run folder being reported on holds pipeline_state.json');
  const svgs: Figures = new Map();
  const report = buildReport(state, runDir, svgs);
  fs.mkdirSync(nodePath.join(runDir, 'report_figures'), { recursive: true });
  for (const [file, f] of svgs) writeFileAtomic(nodePath.join(runDir, file), f.svg);
  const json = nodePath.join(runDir, 'report.json'), md = nodePath.join(runDir, 'report.md'), html = nodePath.join(runDir, 'report.html');
  writeFileAtomic(json, JSON.stringify(report, null, 1) + '\n');
  writeFileAtomic(md, renderMarkdown(report));
  writeFileAtomic(html, renderHtml(report, runDir, svgs));
  return { json, md, html, report };
}

/** Figures drawn for the report: path relative to RUN_DIR -> title and SVG document. */
export type Figures = Map<string, { title: string; svg: string }>;

/** The report's numbers; `svgs` receives the figures drawn here. */
export function buildReport(state: PipelineState, runDir: string, svgs: Figures): PipelineReport {
  const studentPath = state.recipe.student ?? [...state.steps].reverse().find((s) => s.model !== null)?.model ?? null;
  const ctx = new Context(state, runDir, studentPath);
  const teacher = ctx.inspected('teacher', state.recipe.teacher);
  const student = ctx.inspected('student', studentPath);
  const models: ModelParams[] = [];
  if (teacher.components) models.push({ label: 'teacher', step: teacher.step, path: teacher.path!, components: teacher.components });
  models.push(...ctx.prunedModels());
  if (student.components) models.push({ label: 'student', step: student.step, path: student.path!, components: student.components });
  const ratio = teacher.params && student.params ? student.params / teacher.params : null;
  const ratioNoHead = teacher.components?.total_no_lm_head && student.components ? student.components.total_no_lm_head / teacher.components.total_no_lm_head : null;
  const training = ctx.training(svgs);
  const recovery = ctx.recovery(studentPath);
  return {
    format: REPORT_FORMAT, version: 1, name: state.recipe.name, recipe: state.recipe.file, run_dir: runDir,
    teacher, student,
    params: { ratio, reduction_percent: ratio === null ? null : 100 * (1 - ratio),
      without_lm_head: { ratio: ratioNoHead, reduction_percent: ratioNoHead === null ? null : 100 * (1 - ratioNoHead) }, models },
    recovery,
    speedup: ctx.speedup(studentPath),
    training,
    comparisons: comparisons(models, training, recovery.evals),
    quantization: ctx.quantization(),
    figures: [...svgs].map(([file, f]) => ({ file, title: f.title })),
    importance: ctx.importance(),
    steps: state.steps.map((s) => ({ name: s.name, command: s.command, status: s.status, seconds: round(s.seconds, 1), sessions: s.sessions.length,
      command_line: s.command_line, error: s.error })),
    machine: madeOn(state, studentPath),
    missing: ctx.missing,
  };
}

/** See PipelineReport.machine; runs from before fingerprints were recorded give nulls. */
export function madeOn(state: PipelineState, student: string | null): PipelineReport['machine'] {
  const finished = state.steps.filter((s) => s.status === 'finished');
  const maker = student === null ? undefined
    : finished.find((s) => (s.model !== null && samePath(s.model, student)) || (s.out !== null && samePath(s.out, student)));
  const made = maker?.sessions.at(-1)?.machine ?? null;
  const other_machines = made === null ? [] : finished.flatMap((s) => {
    const m = s.sessions.map((x) => x.machine).find((x) => x !== undefined && x.key !== made.key);
    return m ? [{ step: s.name, key: m.key, machine: describeMachine(m) }] : [];
  });
  return { step: maker?.name ?? null, made_on: made, other_machines };
}

// ---------------------------------------------------------------------------------------------
// reading the steps

class Context {
  missing: string[] = [];
  constructor(private state: PipelineState, private runDir: string, private student: string | null) {}

  /** "teacher", "student", "<step> model" or "<step> output" for a path the run knows, else the path. */
  label(path: string): string {
    if (this.state.recipe.teacher !== null && samePath(path, this.state.recipe.teacher)) return 'teacher';
    if (this.student !== null && samePath(path, this.student)) return 'student';
    for (const s of this.state.steps) {
      if (s.model !== null && samePath(path, s.model)) return `${s.name} model`;
      if (s.out !== null && samePath(path, s.out)) return `${s.name} output`;
    }
    return path;
  }

  private finished(command: string | string[]): StepRecord[] {
    const cmds = Array.isArray(command) ? command : [command];
    return this.state.steps.filter((s) => cmds.includes(s.command) && s.status === 'finished' && fs.existsSync(s.dir));
  }

  private result(s: StepRecord): Record<string, any> | null {
    const p = nodePath.join(s.dir, 'result.json');
    return fs.existsSync(p) ? JSON.parse(fs.readFileSync(p, 'utf8')) as Record<string, any> : null;
  }

  /** Why a piece is missing: no such step in the recipe, or the step has not finished. */
  private note(what: string, candidates: StepRecord[], none: string): void {
    const pending = candidates.filter((s) => s.status !== 'finished');
    this.missing.push(pending.length > 0
      ? `${what}: ${pending.length > 1 ? 'steps' : 'step'} ${pending.map((s) => `${s.name} (${s.status})`).join(', ')} ${pending.length > 1 ? 'have' : 'has'} not finished`
      : `${what}: ${none}`);
  }

  inspected(role: 'teacher' | 'student', path: string | null): PipelineReport['teacher'] {
    const empty = { path, params: null, components: null, step: null };
    if (path === null) {
      this.missing.push(`${role} parameters: the recipe names no ${role}${role === 'student' ? ' and no step produces a model' : ''}`);
      return empty;
    }
    const all = this.state.steps.filter((s) => s.command === 'inspect' && samePath(s.args.model_dir, path));
    const s = all.find((x) => x.status === 'finished' && fs.existsSync(x.dir));
    const r = s ? this.result(s) : null;
    if (!s || !r?.params) {
      this.note(`${role} parameters`, all, `no inspect step on ${path}`);
      return empty;
    }
    const c = components(r.params, r.total_params);
    return { path, params: c.total, components: c, step: s.name };
  }

  prunedModels(): ModelParams[] {
    const out: ModelParams[] = [];
    for (const s of this.finished(['prune', 'search'])) {
      const p = nodePath.join(s.out!, 'prune_report.json');
      if (!fs.existsSync(p)) continue;
      const pr = JSON.parse(fs.readFileSync(p, 'utf8')) as Record<string, any>;
      const ax = pr.axes;
      out.push({ label: `${s.name} (pruned)`, step: s.name, path: s.out!, components: components(pr.params.after),
        sizes: { num_hidden_layers: ax.num_hidden_layers.after, hidden_size: ax.hidden_size.after, num_attention_heads: ax.num_attention_heads.after, intermediate_size: ax.intermediate_size.after } });
    }
    return out;
  }

  recovery(student: string | null): PipelineReport['recovery'] {
    const evals: { s: StepRecord; r: Record<string, any> }[] = [];
    for (const s of this.finished('eval')) {
      const r = this.result(s);
      if (r?.results) evals.push({ s, r });
    }
    const rows: EvalRow[] = evals.map(({ s, r }) => ({ step: s.name, model: String(s.args.model_dir), model_label: this.label(String(s.args.model_dir)),
      teacher: typeof s.args.teacher === 'string' ? s.args.teacher : null,
      average: typeof r.recovery?.average === 'number' ? r.recovery.average : null }));
    const withRecovery = evals.filter((e) => e.r.recovery);
    const onStudent = (s: StepRecord) => student !== null && samePath(s.args.model_dir, student);
    const studentEvals = this.state.steps.some((s) => s.command === 'eval' && onStudent(s));
    const main = forStudent(withRecovery, (e) => onStudent(e.s), studentEvals);
    if (!main) {
      this.note('recovery', this.state.steps.filter((s) => s.command === 'eval' && (!studentEvals || onStudent(s))), 'no eval step with --teacher');
      return { average: null, step: null, tasks: [], evals: rows };
    }
    const r = main.r;
    const tasks: RecoveryRow[] = Object.keys(r.results).map((task) => {
      const metric = String(r.primary_metric?.[task] ?? Object.keys(r.results[task])[0]);
      const num = (v: unknown) => (typeof v === 'number' ? v : null);
      return { task, metric, higher_is_better: r.higher_is_better?.[task]?.[metric] ?? null, student: num(r.results[task][metric]),
        teacher: num(r.teacher_results?.[task]?.[metric]), recovery: num(r.recovery?.[task]) };
    });
    return { average: typeof r.recovery.average === 'number' ? r.recovery.average : null, step: main.s.name, tasks, evals: rows };
  }

  speedup(student: string | null): PipelineReport['speedup'] {
    const runs: BenchRow[] = [];
    for (const s of this.finished('bench')) {
      const r = this.result(s);
      if (!r?.models?.length) continue;
      const [a, b] = r.models, q = r.ratios as Record<string, number> | null;
      runs.push({ step: s.name, engine: String(r.engine), model: String(a.path), model_label: this.label(String(a.path)),
        reference: b ? String(b.path) : null, reference_label: b ? this.label(String(b.path)) : null,
        decode_tokens_per_s: a.figures.decode_tokens_per_s, reference_decode_tokens_per_s: b ? b.figures.decode_tokens_per_s : null,
        decode: q?.decode_speedup ?? null, prefill: q?.prefill_speedup ?? null, batch_decode: q?.batch_decode_speedup ?? null,
        time_to_first_token: q?.time_to_first_token_speedup ?? null, peak_rss_ratio: q?.peak_rss_ratio ?? null });
    }
    const pick = (engine: string) => {
      const c = runs.filter((x) => x.engine === engine && x.decode !== null);
      const studentBenches = this.state.steps.some((s) => s.command === 'bench' && (s.args.engine ?? 'kompresor') === engine
        && student !== null && samePath(s.args.model_dir, student));
      return forStudent(c, (x) => student !== null && samePath(x.model, student), studentBenches) ?? null;
    };
    const engine = pick('kompresor'), llama = pick('llama.cpp');
    const benches = this.state.steps.filter((s) => s.command === 'bench');
    if (!engine) this.note('decode speed-up (engine)', benches.filter((s) => s.args.engine !== 'llama.cpp'), 'no bench --vs step on the engine');
    if (!llama) this.note('decode speed-up (llama.cpp)', benches.filter((s) => s.args.engine === 'llama.cpp'), 'no bench --vs step with --engine llama.cpp');
    return { decode: engine?.decode ?? null, prefill: engine?.prefill ?? null, step: engine?.step ?? null,
      llama_cpp: llama ? { decode: llama.decode, prefill: llama.prefill, step: llama.step } : null, runs };
  }

  quantization(): QuantizationRow[] {
    const rows: QuantizationRow[] = [];
    for (const s of this.finished('export')) {
      for (const q of (this.result(s)?.quality?.rows ?? []) as Record<string, any>[]) {
        rows.push({ step: s.name, dtype: String(q.dtype), weighted: q.weighted === true, bytes: q.bytes, bits_per_weight: q.bits_per_weight,
          bits_per_byte: q.bits_per_byte, vs_f16_percent: q.vs_f16_percent, decode_tokens_per_s: q.decode_tokens_per_s });
      }
    }
    return rows;
  }

  training(svgs: Figures): TrainingRow[] {
    const rows: TrainingRow[] = [];
    const compare: Series[] = [];
    for (const s of this.finished(TRAINERS)) {
      const lines = readMetrics(nodePath.join(s.out!, 'metrics.jsonl'));
      if (lines.length === 0) continue;
      const train = lines.filter((l) => l.split === undefined), valid = lines.filter((l) => l.split === 'validation');
      const figures: string[] = [];
      const draw = (key: string, title: string, yLabel: string) => {
        const series = curves(key, train, valid);
        if (series.length === 0) return;
        const file = `report_figures/${s.name}_${key.replace(/[^\w.-]/g, '_')}.svg`;
        svgs.set(file, { title, svg: linePlot({ title, xLabel: 'step', yLabel, series }) });
        figures.push(file);
      };
      // distill: the training loss is the KD term and the validation loss the student's CE, so plot the KL of both
      if (s.command === 'distill') draw('kl', `${s.name} (kompresor distill): KL(teacher ‖ student)`, 'KL (nats/token)');
      else draw('loss', `${s.name} (kompresor ${s.command}): ${lossName(s.command)}`, 'loss');
      if (s.command === 'grpo') draw('reward', `${s.name}: reward`, 'mean reward');
      if (s.command === 'dpo') draw('rewards/margins', `${s.name}: reward margin (chosen − rejected)`, 'β · log-ratio margin');
      const v = valid.filter((l) => typeof l.loss === 'number');
      if (s.command === 'distill' || s.command === 'train') {
        compare.push({ name: s.name, points: downsample(v.map((l) => [Number(l.tokens), Number(l.loss)]), CURVE_POINTS), markers: true });
      }
      const rewards = s.command === 'grpo' ? valid.filter((l) => typeof l.reward === 'number') : [];
      const trainRewards = s.command === 'grpo' ? train.filter((l) => typeof l.reward === 'number') : [];
      const start = startOf(s);
      const num = (l: MetricsLine | undefined, k: string) => (l && typeof l[k] === 'number' ? l[k] as number : null);
      rows.push({ step: s.name, command: s.command, start, start_label: start === null ? null : startLabel(s, start, (p) => this.label(p)),
        start_model: startModel(s), model: s.model,
        steps: num(train.at(-1), 'step'), tokens: num(train.at(-1), 'tokens'),
        loss_first: num(train[0], 'loss'), loss_last: num(train.at(-1), 'loss'),
        validation_first: num(v[0], 'loss'), validation_last: num(v.at(-1), 'loss'),
        train_reward_first: num(trainRewards[0], 'reward'), train_reward_last: num(trainRewards.at(-1), 'reward'),
        reward_first: num(rewards[0], 'reward'), reward_last: num(rewards.at(-1), 'reward'), figures });
    }
    if (compare.length > 0) {
      const file = 'report_figures/recovery_runs.svg', title = 'Validation loss of the distillation and training runs (next-token CE)';
      svgs.set(file, { title, svg: linePlot({ title, xLabel: 'training tokens', yLabel: 'validation loss (nats/token)', series: compare }) });
    }
    if (rows.length === 0) this.note('loss and reward curves', this.state.steps.filter((s) => TRAINERS.includes(s.command)), 'no trainer step in the recipe');
    return rows;
  }

  importance(): PipelineReport['importance'] {
    const out: PipelineReport['importance'] = [];
    for (const s of this.finished(['score', 'prune', 'search'])) {
      const dir = s.command === 'score'
        ? (typeof s.args.report === 'string' ? s.args.report : s.out!.replace(/\.json$/i, '') + '.report')
        : nodePath.join(s.out!, 'report');
      const figures = IMPORTANCE_FIGURES.map((f) => nodePath.join(dir, f)).filter((f) => fs.existsSync(f))
        .map((f) => nodePath.relative(this.runDir, f));
      if (figures.length > 0) out.push({ step: s.name, command: s.command, figures });
    }
    if (out.length === 0) this.note('importance charts', this.state.steps.filter((s) => ['score', 'prune', 'search'].includes(s.command)), 'no score or prune step in the recipe');
    return out;
  }
}

function lossName(command: string): string {
  return ({ train: 'next-token loss', sft: 'completion loss', dpo: 'DPO loss', grpo: 'GRPO loss (validation: −reward)' } as Record<string, string>)[command] ?? 'loss';
}

function startLabel(s: StepRecord, start: string, label: (p: string) => string): string {
  if (s.command === 'train' && typeof s.args.init === 'string') return `random init (${label(nodePath.dirname(s.args.init))} config)`;
  return label(start);
}

function curves(key: string, train: MetricsLine[], valid: MetricsLine[]): Series[] {
  const pts = (ls: MetricsLine[]) => ls.filter((l) => typeof l[key] === 'number').map((l) => [Number(l.step), l[key] as number] as [number, number]);
  const t = pts(train), v = pts(valid), out: Series[] = [];
  if (t.length > 0) out.push({ name: `train ${key}`, points: downsample(t, CURVE_POINTS) });
  if (v.length > 0) out.push({ name: `validation ${key}`, points: downsample(v, CURVE_POINTS), markers: true, dashed: true });
  return out;
}

/**
 * The headline's source among finished eval or bench results: the student's own; another model's
 * (the last) only when the recipe has no such step for the student at all, so a student step that
 * has not finished leaves the answer missing instead of borrowing a baseline's number.
 */
function forStudent<T>(rows: T[], isStudent: (r: T) => boolean, recipeHasStudentStep: boolean): T | undefined {
  return rows.find(isStudent) ?? (recipeHasStudentStep ? undefined : rows.at(-1));
}

/** The checkpoint folder a trainer step starts from (for train --init, the folder of the config). */
function startModel(s: StepRecord): string | null {
  const a = s.args;
  if (s.command === 'distill') return typeof a.student === 'string' ? a.student : null;
  if (s.command === 'train' && typeof a.init === 'string') return nodePath.dirname(a.init);
  return typeof a.model_dir === 'string' ? a.model_dir : null;
}

/** The recovery runs (distill, train --init) with their shape, final validation CE and suite recovery. */
function comparisons(models: ModelParams[], training: TrainingRow[], evals: EvalRow[]): ComparisonRow[] {
  return training.filter((t) => t.command === 'distill' || (t.command === 'train' && t.start?.startsWith('random init'))).map((t) => {
    const m = models.find((x) => x.sizes && t.start_model !== null && samePath(x.path, t.start_model));
    const e = evals.find((x) => t.model !== null && samePath(x.model, t.model));
    return { step: t.step, command: t.command, start_label: t.start_label, sizes: m?.sizes ?? null, params: m?.components.total ?? null,
      tokens: t.tokens, validation_loss: t.validation_last, eval_step: e?.step ?? null, recovery_average: e?.average ?? null };
  });
}

function startOf(s: StepRecord): string | null {
  return s.command === 'train' && typeof s.args.init === 'string' ? `random init from ${s.args.init}` : startModel(s);
}

/** inspect's {embeddings, attention, mlp, norms, lm_head} + total, or prune's ParamCount (lmHead, total). */
function components(p: Record<string, number>, total?: number): Components {
  const lmHead = p.lm_head ?? p.lmHead ?? 0, all = total ?? p.total;
  return { embeddings: p.embeddings, attention: p.attention, mlp: p.mlp, norms: p.norms, lm_head: lmHead, total: all, total_no_lm_head: all - lmHead };
}

function samePath(a: unknown, b: string): boolean {
  return typeof a === 'string' && nodePath.resolve(a) === nodePath.resolve(b);
}

function round(x: number, d: number): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

// ---------------------------------------------------------------------------------------------
// formatting shared by the page and the markdown

const int = (n: number) => n.toLocaleString('en-US');
const pct = (x: number | null, d = 1) => (x === null ? '—' : `${x.toFixed(d)}%`);
const times = (x: number | null) => (x === null ? '—' : `${x.toFixed(2)}×`);
const num = (x: number | null) => (x === null ? '—' : Math.abs(x) >= 1000 ? x.toFixed(1) : x.toPrecision(4));

interface Table { head: string[]; rows: string[][] }

/** The three questions of the seed, answered from the report or marked missing. */
function headline(r: PipelineReport): Table {
  const signed = (x: number) => `${x >= 0 ? '−' : '+'}${Math.abs(x).toFixed(1)}%`;
  const t = r.teacher.components, s = r.student.components;
  const untied = t !== null && s !== null && (t.lm_head > 0 || s.lm_head > 0);
  const smaller = r.teacher.params !== null && r.student.params !== null
    ? `${int(r.teacher.params)} → ${int(r.student.params)} parameters (${signed(r.params.reduction_percent!)})`
      + (untied ? `; without the lm_head, as the seed counts: ${int(t.total_no_lm_head)} → ${int(s.total_no_lm_head)} (${signed(r.params.without_lm_head.reduction_percent!)})` : '')
    : 'missing';
  const kept = r.recovery.average !== null ? `${pct(r.recovery.average)} of the teacher's average score (${r.recovery.tasks.length} tasks, step ${r.recovery.step})` : 'missing';
  const faster = [r.speedup.decode !== null ? `${times(r.speedup.decode)} decode on the engine` : 'engine: missing',
    r.speedup.llama_cpp ? `${times(r.speedup.llama_cpp.decode)} in llama.cpp` : 'llama.cpp: missing'].join('; ');
  const m = r.machine.made_on;
  const made = m ? `${describeMachine(m)}, step ${r.machine.step}${r.machine.other_machines.length ? `; steps ${r.machine.other_machines.map((o) => o.step).join(', ')} ran on another machine` : ''}` : 'missing';
  return { head: ['question', 'answer'], rows: [['How much smaller?', smaller], ['How much quality is kept?', kept], ['How much faster?', faster], ['Made on?', made]] };
}

function paramsTable(r: PipelineReport): Table {
  const t = r.params.models.find((m) => m.label === 'teacher');
  return {
    head: ['component', ...r.params.models.map((m) => m.label)],
    rows: COMPONENTS.map((c) => [c, ...r.params.models.map((m) => `${int(m.components[c])}${t && m !== t && t.components[c] > 0 ? ` (${(100 * m.components[c] / t.components[c]).toFixed(1)}%)` : ''}`)]),
  };
}

function variantsTable(r: PipelineReport): Table | null {
  const pruned = r.params.models.filter((m) => m.sizes);
  if (pruned.length === 0) return null;
  const t = r.teacher.params;
  const recovered = (path: string) => r.training.filter((x) => x.start !== null && samePath(x.start, path));
  return {
    head: ['variant', 'layers', 'hidden', 'heads', 'MLP', 'parameters', 'of teacher', 'recovered by', 'validation loss after'],
    rows: pruned.map((m) => {
      const runs = recovered(m.path);
      return [m.label, String(m.sizes!.num_hidden_layers), String(m.sizes!.hidden_size), String(m.sizes!.num_attention_heads), String(m.sizes!.intermediate_size),
        int(m.components.total), t ? pct(100 * m.components.total / t) : '—', runs.map((x) => x.step).join(', ') || '—',
        runs.map((x) => num(x.validation_last)).join(', ') || '—'];
    }),
  };
}

const COMPARISON_NOTE = 'The Minitron papers\' two questions in miniature: at the same parameter budget, which pruned shape '
  + 'recovers better (depth+MLP against width), and how distillation from the teacher compares with training the same shape '
  + 'from random weights on the same tokens. Lower validation loss and higher recovery are better.';

function comparisonTable(r: PipelineReport): Table | null {
  if (r.comparisons.length === 0) return null;
  const shape = (z: Sizes | null) => (z ? `${z.num_hidden_layers} / ${z.hidden_size} / ${z.num_attention_heads} / ${z.intermediate_size}` : '—');
  return {
    head: ['run', 'command', 'starts from', 'layers / hidden / heads / MLP', 'parameters', 'tokens', 'validation loss (CE)', 'suite recovery'],
    rows: r.comparisons.map((c) => [c.step, c.command, c.start_label ?? '—', shape(c.sizes), c.params === null ? '—' : int(c.params),
      c.tokens === null ? '—' : int(c.tokens), num(c.validation_loss), c.recovery_average === null ? '—' : `${pct(c.recovery_average)} (${c.eval_step})`]),
  };
}

function recoveryTable(r: PipelineReport): Table {
  return {
    head: ['task', 'metric', 'student', 'teacher', 'recovery'],
    rows: [...r.recovery.tasks.map((t) => [t.task, `${t.metric}${t.higher_is_better === null ? '' : t.higher_is_better ? ' ↑' : ' ↓'}`, num(t.student), num(t.teacher), pct(t.recovery)]),
      ['average', '', '', '', pct(r.recovery.average)]],
  };
}

function benchTable(r: PipelineReport): Table {
  return {
    head: ['step', 'engine', 'model', 'decode tok/s', 'reference', 'reference tok/s', 'decode', 'prefill', `decode (batch)`, 'time to first token', 'peak RSS'],
    rows: r.speedup.runs.map((b) => [b.step, b.engine, b.model_label, num(b.decode_tokens_per_s), b.reference_label ?? '—', num(b.reference_decode_tokens_per_s),
      times(b.decode), times(b.prefill), times(b.batch_decode), times(b.time_to_first_token), b.peak_rss_ratio === null ? '—' : `${(100 * b.peak_rss_ratio).toFixed(0)}%`]),
  };
}

const QUANT_NOTE = 'Each GGUF file of the student in llama.cpp: bits per byte on held-out text against the f16 file, and greedy decode speed (batch 1). ' +
  '"weighted": block scales chosen with the calibration\'s input mean squares (export --calibration), "no": the same type without them.';

function quantizationTable(r: PipelineReport): Table {
  return {
    head: ['step', 'type', 'weighted', 'size', 'bits/param', 'bits per byte', 'vs f16', 'decode tok/s'],
    rows: r.quantization.map((q) => [q.step, q.dtype, q.dtype.startsWith('q') && q.dtype !== 'q8_0' ? (q.weighted ? 'yes' : 'no') : '—',
      `${(q.bytes / 2 ** 20).toFixed(2)} MiB`, q.bits_per_weight.toFixed(2), q.bits_per_byte.toFixed(4),
      `${q.vs_f16_percent >= 0 ? '+' : ''}${q.vs_f16_percent.toFixed(2)}%`, num(q.decode_tokens_per_s)]),
  };
}

function trainingTable(r: PipelineReport): Table {
  return {
    head: ['step', 'command', 'starts from', 'steps', 'tokens', 'train loss', 'validation loss', 'reward (train; held-out)'],
    rows: r.training.map((t) => [t.step, t.command, t.start_label ?? '—', t.steps === null ? '—' : int(t.steps), t.tokens === null ? '—' : int(t.tokens),
      `${num(t.loss_first)} → ${num(t.loss_last)}`, t.validation_first === null ? '—' : `${num(t.validation_first)} → ${num(t.validation_last)}`,
      [t.train_reward_first === null ? '' : `${num(t.train_reward_first)} → ${num(t.train_reward_last)}`,
        t.reward_first === null ? '' : `held-out ${num(t.reward_first)} → ${num(t.reward_last)}`].filter((x) => x !== '').join('; ') || '—']),
  };
}

function evalsTable(r: PipelineReport): Table {
  return { head: ['eval step', 'model', 'average recovery'], rows: r.recovery.evals.map((e) => [e.step, e.model_label, pct(e.average)]) };
}

function stepsTable(r: PipelineReport): Table {
  return {
    head: ['step', 'status', 'time', 'command'],
    rows: r.steps.map((s) => [s.name, s.status + (s.sessions > 1 ? ` (${s.sessions} sessions)` : ''), s.seconds > 0 ? `${s.seconds.toFixed(1)}\u00a0s` : '—',
      s.command_line + (s.error ? `  # ${s.error}` : '')]),
  };
}

/** The student's machine fingerprint, one row per part that decides its bits (README "Reproducibility"). */
function machineTable(r: PipelineReport): Table | null {
  const m = r.machine.made_on;
  if (!m) return null;
  return {
    head: ['made on', `step ${r.machine.step}`],
    rows: [['CPU', `${m.cpu} (${m.cpus} CPUs, ${m.arch})`], ['SIMD flags', m.cpu_flags.join(' ') || '—'],
      ['BLAS', m.blas ?? 'none (TypeScript kernels)'], ['BLAS core type', m.blas_core ?? '—'],
      ['threads', m.native ? `OpenBLAS ${m.blas_threads}, OpenMP ${m.omp_threads}` : '1 (TypeScript)'],
      ['native addon', m.native ? `${m.addon_flags} (GCC ${m.compiler})` : 'off'], ['Node', m.node],
      ['pinned (KOMPRESOR_PIN=1)', m.pinned ? 'yes' : 'no'], ['fingerprint key', m.key],
      ...r.machine.other_machines.map((o) => [`step ${o.step} ran on`, o.machine])],
  };
}

// ---------------------------------------------------------------------------------------------
// report.md

function mdTable(t: Table): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  return [`| ${t.head.map(cell).join(' | ')} |`, `|${t.head.map(() => '---').join('|')}|`, ...t.rows.map((r) => `| ${r.map(cell).join(' | ')} |`)].join('\n');
}

export function renderMarkdown(r: PipelineReport): string {
  const out = [`# ${r.name}`, '', `Run folder \`${r.run_dir}\`, recipe \`${r.recipe}\`; teacher \`${r.teacher.path ?? '—'}\`, student \`${r.student.path ?? '—'}\`.`, '',
    mdTable(headline(r)), '', '## Parameters', ''];
  out.push(r.params.models.length ? mdTable(paramsTable(r)) : '*missing*', '');
  const variants = variantsTable(r);
  if (variants) out.push('### Pruned variants', '', mdTable(variants), '');
  out.push('## Quality: recovery on the evaluation suite', '', r.recovery.step ? mdTable(recoveryTable(r)) : '*missing*', '');
  if (r.recovery.evals.length > 1) out.push(mdTable(evalsTable(r)), '');
  const cmp = comparisonTable(r);
  if (cmp) out.push('## Minitron comparisons', '', COMPARISON_NOTE, '', mdTable(cmp), '');
  out.push('## Speed', '', r.speedup.runs.length ? mdTable(benchTable(r)) : '*missing*', '');
  if (r.quantization.length) out.push('## Quantization', '', QUANT_NOTE, '', mdTable(quantizationTable(r)), '');
  out.push('## Training', '', r.training.length ? mdTable(trainingTable(r)) : '*missing*', '');
  for (const f of r.figures) out.push(`![${f.title}](${f.file})`, '');
  out.push('## Importance', '');
  if (r.importance.length === 0) out.push('*missing*', '');
  for (const g of r.importance) out.push(`${g.step} (${g.command}): ${g.figures.map((f) => `[${nodePath.basename(f)}](${f})`).join(', ')}`, '');
  out.push('## Commands', '', mdTable(stepsTable(r)), '');
  const machine = machineTable(r);
  out.push('## Machine', '', machine ? mdTable(machine) : '*missing*', '');
  if (r.missing.length) out.push('## Missing', '', ...r.missing.map((m) => `- ${m}`), '');
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// report.html

const CSS = `body{font-family:sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;color:#222}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}td.cmd{text-align:left;font-family:monospace;font-size:12px;word-break:break-all}
table.headline td,table.headline th{text-align:left;font-size:16px}figure{margin:8px 0 24px}svg{max-width:100%;height:auto}
.missing{color:#b00;font-style:italic}.muted{color:#777}summary{cursor:pointer;margin:8px 0}`;

function htmlTable(t: Table, cls = '', monoCol = -1): string {
  const row = (cells: string[], tag: string) => `<tr>${cells.map((c, i) => `<${tag}${i === monoCol && tag === 'td' ? ' class="cmd"' : ''}>${esc(c)}</${tag}>`).join('')}</tr>`;
  return `<table${cls ? ` class="${cls}"` : ''}>${row(t.head, 'th')}\n${t.rows.map((r) => row(r, 'td')).join('\n')}</table>`;
}

const missing = (what: string) => `<p class="missing">missing: ${esc(what)}</p>`;

function figure(svg: string, id: string, caption: string): string {
  return `<figure>${inlineSvg(svg, id)}<figcaption class="muted">${esc(caption)}</figcaption></figure>`;
}

export function renderHtml(r: PipelineReport, runDir: string, svgs: Figures): string {
  const why = (prefix: string) => r.missing.find((m) => m.startsWith(prefix)) ?? prefix;
  const fig = (file: string, n: number) => (svgs.has(file) ? figure(svgs.get(file)!.svg, `f${n}`, svgs.get(file)!.title) : '');
  let n = 0;
  const parts = [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8"/>',
    `<title>${esc(r.name)}: pipeline report</title><style>${CSS}</style></head><body>`,
    `<h1>${esc(r.name)}</h1>`,
    `<p class="muted">Run folder ${esc(r.run_dir)}, recipe ${esc(r.recipe)}. Teacher ${esc(r.teacher.path ?? '—')}; student ${esc(r.student.path ?? '—')}.</p>`,
    htmlTable(headline(r), 'headline'),
    '<h2>Parameters</h2>',
    r.params.models.length ? htmlTable(paramsTable(r)) : missing(why('teacher parameters')),
  ];
  if (r.params.models.length && r.student.params === null) parts.push(missing(why('student parameters')));
  const variants = variantsTable(r);
  if (variants) parts.push('<h3>Pruned variants (depth vs width)</h3>', htmlTable(variants));
  parts.push('<h2>Quality: recovery on the evaluation suite</h2>',
    r.recovery.step ? htmlTable(recoveryTable(r)) : missing(why('recovery')),
    '<p class="muted">Recovery is the student\'s primary metric as a percentage of the teacher\'s (teacher / student when lower is better).</p>');
  if (r.recovery.evals.length > 1) parts.push(htmlTable(evalsTable(r)));
  const cmp = comparisonTable(r);
  if (cmp) parts.push('<h2>Minitron comparisons</h2>', `<p>${esc(COMPARISON_NOTE)}</p>`, htmlTable(cmp));
  if (svgs.has('report_figures/recovery_runs.svg')) parts.push(fig('report_figures/recovery_runs.svg', n++));
  parts.push('<h2>Speed</h2>', r.speedup.runs.length ? htmlTable(benchTable(r)) : missing(why('decode speed-up')),
    '<p class="muted">Ratios are the model over its reference (--vs): above 1 means faster; peak RSS as a fraction. Both measured in the same run.</p>');
  if (r.speedup.runs.length && !r.speedup.llama_cpp) parts.push(missing(why('decode speed-up (llama.cpp)')));
  if (r.quantization.length) parts.push('<h2>Quantization</h2>', htmlTable(quantizationTable(r)), `<p class="muted">${esc(QUANT_NOTE)}</p>`);
  parts.push('<h2>Training</h2>', r.training.length ? htmlTable(trainingTable(r)) : missing(why('loss and reward curves')));
  for (const t of r.training) for (const f of t.figures) parts.push(fig(f, n++));
  parts.push('<h2>Importance</h2>');
  if (r.importance.length === 0) parts.push(missing(why('importance charts')));
  const unfolded = r.importance.find((g) => g.command !== 'score') ?? r.importance[0];
  for (const g of r.importance) {
    parts.push(`<details${g === unfolded ? ' open="open"' : ''}><summary>${esc(`${g.step} (kompresor ${g.command})`)}</summary>`);
    for (const f of g.figures) parts.push(figure(fs.readFileSync(nodePath.join(runDir, f), 'utf8'), `f${n++}`, f));
    parts.push('</details>');
  }
  parts.push('<h2>Commands</h2>', htmlTable(stepsTable(r), '', 3));
  const machine = machineTable(r);
  parts.push('<h2>Machine</h2>', machine ? htmlTable(machine) : missing('the machine that made the student'),
    '<p class="muted">Another run gives a byte-identical student only on a machine with the same fingerprint key (README, "Reproducibility").</p>');
  if (r.missing.length) parts.push('<h2>Missing</h2>', `<ul>${r.missing.map((m) => `<li class="missing">${esc(m)}</li>`).join('')}</ul>`);
  parts.push('<p class="muted">The numbers: report.json; each step\'s JSON: steps/&lt;name&gt;/result.json.</p>', '</body></html>');
  return parts.filter((p) => p !== '').join('\n') + '\n';
}
