// Runs a recipe's plan step by step, each step a child process of the real CLI
// (node bin/kompresor.mjs <command> ... --json), and keeps RUN_DIR/pipeline_state.json so that a
// finished step is never redone while its inputs are unchanged:
//
//   RUN_DIR/pipeline_state.json     every step: command, argv, status, hash, run id, sessions (atomic)
//   RUN_DIR/steps/<name>/           a finished step: result.json (its JSON), log.txt, its output
//   RUN_DIR/steps/<name>.partial/   a step that is running, stopped or failed
//
// A step's hash covers its command, its resolved argv and the run ids of the earlier steps it
// reads, so a step re-runs when its arguments change or when a step it reads from ran again.
// A step runs in <name>.partial/ and is renamed to <name>/ only once it succeeded; one that was
// stopped (Ctrl-C, kill, a crash) continues with --resume when its command has it and a
// checkpoint exists (the trainers), otherwise it starts again from an empty <name>.partial/.
// Ctrl-C / SIGTERM are forwarded once to the child's process group; the state is written before
// and after each child, atomically, so it is consistent whenever the pipeline stops.
// Live progress: each child gets KOMPRESOR_PROGRESS_FILE=<name>.partial/progress.json, where its
// progress bars (src/cli/progress.ts) keep their state even under --json; the runner shows it in
// the live line on a terminal, as a log line every 30 s elsewhere, and deletes the file (and any
// temp file of it) when the child ends, before <name>.partial/ becomes <name>/.
// Limits: the contents of input files (the teacher, the corpus) are not hashed, only their paths:
// after changing one in place, re-run with --from; one pipeline per RUN_DIR (pipeline.lock).
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { KompresorError } from '../errors.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { machineFingerprint, type MachineFingerprint } from '../tensor/machine.ts';
import { PROGRESS_FILE_ENV, type ProgressState } from '../cli/progress.ts';
import { commandLine, type Plan, type PlannedStep } from './recipe.ts';

export const STATE_FORMAT = 'kompresor-pipeline-state';
export const STATE_FILE = 'pipeline_state.json';
const BIN = fileURLToPath(new URL('../../bin/kompresor.mjs', import.meta.url));

/** 'outdated': finished once, but a step it reads from has run again since, so its results no longer follow from its inputs. */
export type StepStatus = 'pending' | 'running' | 'finished' | 'failed' | 'interrupted' | 'outdated';

export interface Session {
  started: string;
  seconds: number;
  /** Exit code, or null when the child ended by a signal. */
  exit: number | null;
  signal: string | null;
  resumed: boolean;
  /** The machine the session ran on (the step's child inherits this process's environment). */
  machine?: MachineFingerprint;
}

/** One step in pipeline_state.json. */
export interface StepRecord {
  name: string;
  command: string;
  args: PlannedStep['args'];
  argv: string[];
  command_line: string;
  dir: string;
  out: string | null;
  model: string | null;
  deps: string[];
  status: StepStatus;
  /** The hash of the last attempt (its inputs); null while pending. */
  hash: string | null;
  /** A fresh id per successful run: later steps' hashes include it. */
  run_id: string | null;
  /** Wall seconds over all sessions of the last attempt. */
  seconds: number;
  finished_at: string | null;
  sessions: Session[];
  /** The child's pid while it runs. */
  pid: number | null;
  /** The last line of the child's stderr when it failed. */
  error: string | null;
}

export interface PipelineState {
  format: typeof STATE_FORMAT;
  version: 1;
  recipe: { file: string; name: string; teacher: string | null; data: string[]; student: string | null; vars: Plan['vars'] };
  run_dir: string;
  steps: StepRecord[];
}

export interface RunOptions {
  /** Re-run this step and every later one (earlier ones still run when not finished). */
  from?: string;
  /** Run only this step (again); the steps it reads from must have finished. */
  only?: string;
  /** Print what would run, resume or be skipped, and do nothing. */
  dryRun?: boolean;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
  /** A live line redrawn every second on a terminal (default: when stderr is a TTY). */
  live?: boolean;
  /** Off a terminal: the interval of the lines with a running step's progress (default 30000 ms). */
  progressEveryMs?: number;
  /** Extra environment for the children (tests). */
  env?: NodeJS.ProcessEnv;
}

export type StepOutcome = 'ran' | 'resumed' | 'skipped' | 'failed' | 'interrupted' | 'not run';

export interface RunSummary {
  run_dir: string;
  status: 'finished' | 'failed' | 'interrupted';
  /** Exit code for the CLI: 0, 1 (a step failed) or 130/143 (stopped by a signal). */
  exit_code: number;
  seconds: number;
  steps: { name: string; command: string; outcome: StepOutcome; seconds: number }[];
  /** The failed step's error line, with where its log is. */
  error: string | null;
}

// ---------------------------------------------------------------------------------------------
// state

export function statePath(runDir: string): string {
  return nodePath.join(runDir, STATE_FILE);
}

export function readState(runDir: string): PipelineState | null {
  const p = statePath(runDir);
  if (!fs.existsSync(p)) return null;
  let s: PipelineState;
  try {
    s = JSON.parse(fs.readFileSync(p, 'utf8')) as PipelineState;
  } catch (e) {
    throw new KompresorError({ code: 'config_invalid', where: p, rule: 'the pipeline state must be valid JSON', found: (e as Error).message,
      hint: 'it is written atomically, so this file was edited; move it away to start the run again' });
  }
  if (s.format !== STATE_FORMAT || s.version !== 1) {
    throw new KompresorError({ code: 'config_invalid', where: p, rule: `the pipeline state must be ${STATE_FORMAT} version 1`, found: `${String(s.format)} version ${String(s.version)}` });
  }
  return s;
}

export function writeState(runDir: string, s: PipelineState): void {
  writeFileAtomic(statePath(runDir), JSON.stringify(s, null, 1) + '\n');
}

/** The state for this plan: records of steps it still has carried over by name, new ones pending. */
export function mergeState(plan: Plan, old: PipelineState | null): PipelineState {
  const prev = new Map((old?.steps ?? []).map((r) => [r.name, r]));
  return {
    format: STATE_FORMAT, version: 1,
    recipe: { file: plan.file, name: plan.name, teacher: plan.teacher, data: plan.data, student: plan.student, vars: plan.vars },
    run_dir: plan.runDir,
    steps: plan.steps.map((p) => {
      const r = prev.get(p.name);
      const planned = { name: p.name, command: p.command, args: p.args, argv: p.argv, command_line: commandLine(p.argv), dir: p.dir, out: p.out, model: p.model, deps: p.deps };
      return r ? { ...r, ...planned } : { ...planned, status: 'pending', hash: null, run_id: null, seconds: 0, finished_at: null, sessions: [], pid: null, error: null };
    }),
  };
}

/** sha256 over the command, the argv and the run ids of the steps read from. */
export function stepHash(step: PlannedStep, state: PipelineState): string {
  const deps = Object.fromEntries(step.deps.map((d) => [d, state.steps.find((r) => r.name === d)?.run_id ?? null]));
  return createHash('sha256').update(JSON.stringify({ command: step.command, argv: step.argv, deps })).digest('hex');
}

// ---------------------------------------------------------------------------------------------
// what to do with a step

export type StepAction =
  | { kind: 'skip' }
  | { kind: 'resume'; argv: string[]; checkpoint: string }
  | { kind: 'fresh'; argv: string[] };

export function partialDir(step: PlannedStep): string {
  return `${step.dir}.partial`;
}

/**
 * skip: finished with the same hash and its folder is there (unless forced);
 * resume: stopped or failed with the same hash, the command has --resume and a checkpoint exists;
 * fresh: anything else (the argv writes into <name>.partial/).
 */
export function decideAction(step: PlannedStep, rec: StepRecord, hash: string, force: boolean): StepAction {
  if (!force && rec.status === 'finished' && rec.hash === hash && fs.existsSync(step.dir)) return { kind: 'skip' };
  const partial = partialDir(step);
  const runOut = step.out === null ? null : nodePath.join(partial, nodePath.relative(step.dir, step.out));
  const stopped = rec.status === 'running' || rec.status === 'interrupted' || rec.status === 'failed';
  if (!force && stopped && rec.hash === hash && step.resumable && runOut !== null) {
    const ck = latestCheckpointIn(runOut);
    if (ck) return { kind: 'resume', argv: [...step.command.split(' '), '--resume', runOut, '--json'], checkpoint: ck };
  }
  return { kind: 'fresh', argv: step.argv.map((a) => (step.out !== null && a === step.out ? runOut! : a)) };
}

/**
 * A step that runs again makes every finished step reading from it (directly or through others)
 * outdated, so that a run stopping before they re-run leaves no report built from stale results.
 */
function markOutdated(plan: Plan, state: PipelineState, step: PlannedStep): void {
  const changed = new Set([step.name]);
  for (const later of plan.steps.slice(step.index + 1)) {
    if (!later.deps.some((d) => changed.has(d))) continue;
    changed.add(later.name);
    const rec = state.steps[later.index];
    if (rec.status === 'finished') rec.status = 'outdated';
  }
}

/** The highest checkpoint-<step> folder holding a state.json (as the trainers choose it), or null. */
function latestCheckpointIn(runDir: string): string | null {
  if (!fs.existsSync(runDir)) return null;
  const steps = fs.readdirSync(runDir).map((n) => /^checkpoint-(\d+)$/.exec(n)).filter((m) => m !== null)
    .filter((m) => fs.existsSync(nodePath.join(runDir, m![0], 'state.json'))).map((m) => Number(m![1]));
  return steps.length ? `checkpoint-${Math.max(...steps)}` : null;
}

// ---------------------------------------------------------------------------------------------
// the loop

export async function runPipeline(plan: Plan, o: RunOptions = {}): Promise<RunSummary> {
  const log = o.log ?? ((line: string) => { process.stderr.write(line + '\n'); });
  const names = plan.steps.map((s) => s.name);
  for (const [flag, v] of [['--from', o.from], ['--only', o.only]] as const) {
    if (v !== undefined && !names.includes(v)) {
      throw new KompresorError({ code: 'input_invalid', where: `${flag} ${v}`, rule: `${flag} names a step of ${plan.file}`, expected: `one of ${names.join(', ')}`, found: JSON.stringify(v) });
    }
  }
  if (o.from !== undefined && o.only !== undefined) throw new KompresorError({ code: 'input_invalid', where: '--from/--only', rule: 'give one of --from and --only', found: 'both' });
  if (!o.dryRun) fs.mkdirSync(nodePath.join(plan.runDir, 'steps'), { recursive: true });
  const unlock = o.dryRun ? () => {} : lock(plan.runDir);
  try {
    const state = mergeState(plan, readState(plan.runDir));
    checkNoOrphans(state);
    if (!o.dryRun) writeState(plan.runDir, state);
    return await loop(plan, state, o, log);
  } finally {
    unlock();
  }
}

async function loop(plan: Plan, state: PipelineState, o: RunOptions, log: (line: string) => void): Promise<RunSummary> {
  const t0 = performance.now(), n = plan.steps.length;
  const summary: RunSummary = { run_dir: plan.runDir, status: 'finished', exit_code: 0, seconds: 0, error: null,
    steps: plan.steps.map((s) => ({ name: s.name, command: s.command, outcome: 'not run' as StepOutcome, seconds: 0 })) };
  const fromIndex = o.from !== undefined ? plan.steps.findIndex((s) => s.name === o.from) : Infinity;
  const signals = new SignalRelay();
  try {
    for (const step of plan.steps) {
      if (o.only !== undefined && step.name !== o.only) continue;
      const rec = state.steps[step.index];
      const tag = `[${step.index + 1}/${n}] ${step.name}`;
      if (o.only !== undefined) checkDepsFinished(step, state);
      const hash = stepHash(step, state);
      const action = decideAction(step, rec, hash, o.only !== undefined || step.index >= fromIndex);
      if (action.kind === 'skip') {
        summary.steps[step.index].outcome = 'skipped';
        log(`${tag}: skipped (finished${rec.finished_at ? ` ${rec.finished_at}` : ''} with the same inputs)`);
        continue;
      }
      if (o.dryRun) {
        log(`${tag}: would ${action.kind === 'resume' ? `resume from ${action.checkpoint}` : 'run'}: ${commandLine(action.argv)}`);
        continue;
      }
      if (signals.received) break;
      const r = await runStep(plan, state, step, action, hash, tag, signals, o, log);
      summary.steps[step.index].outcome = r.outcome;
      summary.steps[step.index].seconds = r.seconds;
      if (r.outcome === 'failed') {
        summary.status = 'failed'; summary.exit_code = 1; summary.error = r.error;
        break;
      }
      if (r.outcome === 'interrupted' || signals.received) {
        summary.status = 'interrupted'; summary.exit_code = signals.received === 'SIGTERM' ? 143 : 130;
        break;
      }
    }
  } finally {
    signals.dispose();
  }
  summary.seconds = (performance.now() - t0) / 1000;
  return summary;
}

function checkDepsFinished(step: PlannedStep, state: PipelineState): void {
  for (const d of step.deps) {
    const r = state.steps.find((x) => x.name === d)!;
    if (r.status !== 'finished' || !fs.existsSync(r.dir)) {
      throw new KompresorError({ code: 'input_invalid', where: `--only ${step.name}`, rule: `the steps ${step.name} reads from must have finished`,
        found: `${d} is ${r.status}`, hint: `run the pipeline without --only first (or --only ${d})` });
    }
  }
}

/** Refuses to start while a child of an earlier pipeline (killed with -9) still runs in RUN_DIR. */
function checkNoOrphans(state: PipelineState): void {
  for (const r of state.steps) {
    if (r.status === 'running' && r.pid !== null && alive(r.pid)) {
      throw new KompresorError({ code: 'input_invalid', where: `${state.run_dir} step ${r.name}`, rule: 'a step must not run twice at once',
        found: `its process ${r.pid} from an earlier pipeline is still running`, hint: `wait for it, or stop it with kill -INT -${r.pid}` });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// one step

interface StepRun { outcome: StepOutcome; seconds: number; error: string | null }

async function runStep(plan: Plan, state: PipelineState, step: PlannedStep, action: Exclude<StepAction, { kind: 'skip' }>, hash: string, tag: string,
  signals: SignalRelay, o: RunOptions, log: (line: string) => void): Promise<StepRun> {
  const rec = state.steps[step.index];
  const partial = partialDir(step);
  fs.rmSync(step.dir, { recursive: true, force: true });
  if (action.kind === 'fresh') {
    fs.rmSync(partial, { recursive: true, force: true });
    rec.sessions = []; rec.seconds = 0;
  }
  fs.mkdirSync(partial, { recursive: true });
  const logFile = nodePath.join(partial, 'log.txt');
  fs.appendFileSync(logFile, `# ${new Date().toISOString()} ${commandLine(action.argv)}\n`);
  const session: Session = { started: new Date().toISOString(), seconds: 0, exit: null, signal: null, resumed: action.kind === 'resume', machine: machineFingerprint() };
  Object.assign(rec, { status: 'running', hash, run_id: null, finished_at: null, error: null, pid: null });
  markOutdated(plan, state, step);
  rec.sessions.push(session);
  writeState(plan.runDir, state);
  const what = action.kind === 'resume' ? `resuming from ${action.checkpoint}` : 'running';
  const onTerminal = o.live ?? Boolean(process.stderr.isTTY);
  // on a terminal the live line is the step's one line; elsewhere a line when it starts, its progress
  // every 30 s, and one when it ends
  if (!onTerminal) log(`${tag}: ${what} ${commandLine(action.argv)}`);

  const t0 = performance.now();
  const progressFile = nodePath.resolve(partial, 'progress.json');
  removeProgressFile(progressFile);
  const live = liveLine(`${tag}: ${what}`, onTerminal, t0, { file: progressFile, command: step.command, tag, log, everyMs: o.progressEveryMs ?? 30_000 });
  const env = { ...o.env, [PROGRESS_FILE_ENV]: progressFile };
  let r: ChildResult;
  try {
    r = await runChild(action.argv, logFile, env, signals, (pid) => { rec.pid = pid; writeState(plan.runDir, state); });
  } finally {
    live.stop();
    removeProgressFile(progressFile);
  }
  const seconds = (performance.now() - t0) / 1000;
  Object.assign(session, { seconds, exit: r.code, signal: r.signal });
  rec.seconds += seconds; rec.pid = null;
  const took = `${formatSeconds(seconds)}${rec.sessions.length > 1 ? ` (${formatSeconds(rec.seconds)} over ${rec.sessions.length} sessions)` : ''}`;

  if (r.code === 0) {
    writeResult(step, partial, r.stdout);
    fs.renameSync(partial, step.dir);
    Object.assign(rec, { status: 'finished', run_id: randomBytes(8).toString('hex'), finished_at: new Date().toISOString() });
    writeState(plan.runDir, state);
    log(`${tag}: done in ${took}`);
    return { outcome: action.kind === 'resume' ? 'resumed' : 'ran', seconds, error: null };
  }
  if (r.stdout.trim() !== '') fs.appendFileSync(logFile, r.stdout);
  const stopped = r.signal !== null || r.code === 130 || r.code === 143 || signals.received !== null;
  if (stopped) {
    rec.status = 'interrupted';
    writeState(plan.runDir, state);
    log(`${tag}: stopped after ${took}${step.resumable ? '; the next run resumes it from its checkpoint' : '; the next run starts it again'}`);
    return { outcome: 'interrupted', seconds, error: null };
  }
  rec.status = 'failed';
  rec.error = lastLine(logFile);
  writeState(plan.runDir, state);
  const error = `step ${step.name} failed after ${took} (exit ${r.code}): ${rec.error ?? 'no message'} (log: ${logFile})`;
  log(`${tag}: failed after ${took} (exit ${r.code})`);
  return { outcome: 'failed', seconds, error };
}

/**
 * RESULT.json: the child's JSON output (the last line that parses when stdout holds more), with
 * paths into <name>.partial/ rewritten to <name>/; a command that prints no JSON gets {"stdout": ...}.
 */
function writeResult(step: PlannedStep, partial: string, stdout: string): void {
  let value: unknown;
  try {
    value = JSON.parse(stdout);
  } catch {
    const line = stdout.trim().split('\n').reverse().find((l) => { try { JSON.parse(l); return true; } catch { return false; } });
    value = line !== undefined ? JSON.parse(line) : { stdout };
  }
  const swaps: [string, string][] = [[partial, step.dir], [nodePath.resolve(partial), nodePath.resolve(step.dir)]];
  const fix = (v: unknown): unknown => {
    if (typeof v === 'string') return swaps.reduce((s, [a, b]) => s.split(a).join(b), v);
    if (Array.isArray(v)) return v.map(fix);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fix(x)]));
    return v;
  };
  writeFileAtomic(nodePath.join(partial, 'result.json'), JSON.stringify(fix(value), null, 1) + '\n');
}

function lastLine(file: string): string | null {
  const lines = fs.readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('# '));
  return lines.at(-1) ?? null;
}

// ---------------------------------------------------------------------------------------------
// child processes and signals

/**
 * Forwards the first SIGINT/SIGTERM (and any later one) to the running child's process group.
 * The child runs detached, in its own group, so a Ctrl-C in the terminal reaches it only through
 * here, once: the trainers take a second signal as "quit at once".
 */
class SignalRelay {
  received: NodeJS.Signals | null = null;
  private child: number | null = null;
  private readonly handler = (sig: NodeJS.Signals) => {
    this.received ??= sig;
    if (this.child !== null) {
      try { process.kill(-this.child, sig); } catch { /* already gone */ }
    }
  };

  constructor() {
    process.on('SIGINT', this.handler);
    process.on('SIGTERM', this.handler);
  }

  attach(pid: number | null): void { this.child = pid; }

  dispose(): void {
    process.off('SIGINT', this.handler);
    process.off('SIGTERM', this.handler);
  }
}

interface ChildResult { code: number | null; signal: NodeJS.Signals | null; stdout: string }

function runChild(argv: string[], logFile: string, env: NodeJS.ProcessEnv | undefined, signals: SignalRelay, onPid: (pid: number) => void): Promise<ChildResult> {
  const fd = fs.openSync(logFile, 'a');
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete childEnv.NODE_TEST_CONTEXT;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...argv], { stdio: ['ignore', 'pipe', fd], detached: true, env: childEnv });
    let stdout = '';
    child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.on('error', (e) => { fs.closeSync(fd); reject(e); });
    if (child.pid !== undefined) { signals.attach(child.pid); onPid(child.pid); }
    // a signal that arrived just before the child existed
    if (signals.received && child.pid !== undefined) { try { process.kill(-child.pid, signals.received); } catch { /* gone */ } }
    child.on('close', (code, signal) => {
      signals.attach(null);
      fs.closeSync(fd);
      resolve({ code, signal, stdout });
    });
  });
}

/** 2.34 -> "2.3s", 75 -> "1m15s", 4000 -> "1h6m40s" (as the CLI's progress lines). */
function formatSeconds(sec: number): string {
  if (sec < 9.95) return `${Math.max(0, sec).toFixed(1)}s`;
  const s = Math.round(sec), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h > 0 ? `${h}h${m}m${r}s` : m > 0 ? `${m}m${r}s` : `${r}s`;
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** RUN_DIR/pipeline.lock holds the pid of the pipeline using the folder; a stale one is taken over. */
function lock(runDir: string): () => void {
  const p = nodePath.join(runDir, 'pipeline.lock');
  if (fs.existsSync(p)) {
    const pid = Number(fs.readFileSync(p, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
      throw new KompresorError({ code: 'input_invalid', where: runDir, rule: 'one pipeline at a time per run folder', found: `pipeline ${pid} is running in it`,
        hint: 'wait for it, or choose another folder with --out' });
    }
  }
  writeFileAtomic(p, `${process.pid}\n`);
  return () => { fs.rmSync(p, { force: true }); };
}

// ---------------------------------------------------------------------------------------------
// live progress

interface ProgressSource { file: string; command: string; tag: string; log: (line: string) => void; everyMs: number }

/**
 * On a terminal: "[6/16] distill: running: 1m2s | 45/98 steps | 0.9 steps/s | ETA 58s | loss 0.0229"
 * redrawn every second (cut to the terminal's width); elsewhere "[6/16] distill: 1m2s | 45/98 ..."
 * through `log` every `everyMs`, while the step's progress file has a state.
 */
function liveLine(title: string, on: boolean, t0: number, p: ProgressSource): { stop(): void } {
  const elapsed = () => formatSeconds((performance.now() - t0) / 1000);
  const withProgress = (head: string) => {
    const s = readProgress(p.file);
    return s ? `${head} | ${progressText(s, p.command)}` : null;
  };
  if (!on) {
    const timer = setInterval(() => { const line = withProgress(`${p.tag}: ${elapsed()}`); if (line !== null) p.log(line); }, p.everyMs);
    return { stop() { clearInterval(timer); } };
  }
  const draw = () => {
    const head = `${title}: ${elapsed()}`;
    const line = withProgress(head) ?? head, width = process.stderr.columns;
    process.stderr.write(`\r\x1b[K${width ? line.slice(0, width - 1) : line}`);
  };
  draw();
  const timer = setInterval(draw, 1000);
  return { stop() { clearInterval(timer); process.stderr.write('\r\x1b[K'); } };
}

/** The state in a step's progress file, or null while there is none (or it is not one, yet). */
export function readProgress(file: string): ProgressState | null {
  try {
    const s = JSON.parse(fs.readFileSync(file, 'utf8')) as ProgressState;
    return s && typeof s.done === 'number' && typeof s.total === 'number' ? s : null;
  } catch {
    return null;
  }
}

/** "45/98 steps | 0.9 steps/s | ETA 58s | loss 0.0229", after the bar's label when it is not the step's command. */
export function progressText(s: ProgressState, command: string): string {
  const rate = s.rate_per_s === null ? '-' : String(s.rate_per_s < 100 ? Number(s.rate_per_s.toPrecision(2)) : Math.round(s.rate_per_s));
  const parts = [`${s.label && s.label !== command ? `${s.label} ` : ''}${s.done}/${s.total} ${s.unit}`, `${rate} ${s.unit}/s`,
    `ETA ${s.eta_s === null ? '-' : formatSeconds(s.eta_s)}`];
  if (s.extra) parts.push(s.extra);
  return parts.join(' | ');
}

/** Removes a step's progress file and temp files of it a killed child may have left. */
function removeProgressFile(file: string): void {
  const dir = nodePath.dirname(file), base = nodePath.basename(file);
  let names: string[] = [];
  try { names = fs.readdirSync(dir); } catch { return; }
  for (const n of names) if (n === base || n.startsWith(`${base}.tmp-`)) fs.rmSync(nodePath.join(dir, n), { force: true });
}
