// What every trainer command shares (train, distill, later sft/dpo/grpo): the flags of the training
// loop with one spelling everywhere, their parsing into TrainOptions, SIGINT/SIGTERM handling
// (finish the step, checkpoint, exit with a resume hint) and progress/summary output.
import type { Command } from 'commander';
import { KompresorError } from '../errors.ts';
import { parseNumber } from './args.ts';
import { latestCheckpoint, readTrainState, type TrainState } from '../train/run_checkpoint.ts';
import { checkTrainState } from '../train/state_check.ts';
import { progressBar, formatSeconds, type Progress } from './progress.ts';
import { TRAIN_DEFAULTS, totalSteps, validateMemoryOptions, type TrainOptions } from '../train/options.ts';
import type { TrainResult } from '../train/trainer.ts';
import type { MetricsLine } from '../train/metrics.ts';
import { describeStateMemory, type StateMemory } from '../train/memory.ts';
import type { OptimState } from '../train/moments.ts';

type Defaults = Omit<TrainOptions, 'steps' | 'tokens'>;

// flag, option key, description; integer flags first
const INT_FLAGS: [string, keyof Defaults, string][] = [
  ['--micro-batch <n>', 'microBatch', 'rows per micro-batch'],
  ['--seq-len <n>', 'seqLen', 'tokens per row'],
  ['--grad-accum <n>', 'gradAccum', 'micro-batches per optimizer step (gradients averaged)'],
  ['--warmup <n>', 'warmup', 'linear warmup steps'],
  ['--save-every <n>', 'saveEvery', 'checkpoint every N steps (0 = only at the end or on a stop)'],
  ['--eval-every <n>', 'evalEvery', 'validation every N steps, plus at the start and the end (0 = start and end only)'],
  ['--eval-batches <n>', 'evalBatches', 'validation batches per evaluation'],
  ['--keep-checkpoints <n>', 'keepCheckpoints', 'checkpoints kept in the run folder (newest)'],
  ['--seed <n>', 'seed', 'seed of the run (data order, initialisation, sampling)'],
];
const REAL_FLAGS: [string, keyof Defaults, string][] = [
  ['--lr <x>', 'lr', 'peak learning rate'],
  ['--min-lr <x>', 'minLr', 'floor of the cosine decay'],
  ['--weight-decay <x>', 'weightDecay', 'decoupled AdamW weight decay (not on norms and biases)'],
  ['--clip <x>', 'clip', 'global gradient-norm clipping (0 = off)'],
];

/** Adds the shared trainer flags to a command; `defaults` lets a trainer pick its own values. */
export function addTrainerFlags(cmd: Command, defaults: Partial<Defaults> = {}): Command {
  const d = { ...TRAIN_DEFAULTS, ...defaults };
  cmd.option('--steps <n>', 'optimizer steps (the budget; or --tokens)')
    .option('--tokens <n>', 'training tokens, rounded up to whole steps; suffixes k, M, B (e.g. 50M)');
  for (const [flag, key, desc] of [...INT_FLAGS, ...REAL_FLAGS]) cmd.option(flag, desc, String(d[key]));
  cmd.option('--optim-state <dtype>', 'AdamW moments stored as f32 (8 bytes/parameter), bf16 (4) or int8 (2.03, block-wise 8-bit); docs/training.md "Memory"', d.optimState)
    .option('--freeze <parts>', 'keep these parts unchanged, with no gradients and no moments: embeddings, lm_head (comma-separated)')
    .option('--recompute', 'keep only each layer\'s input activations and recompute the rest in backward (same gradients, ~1/3 more compute)');
  return cmd.option('--resume <run_dir>', 'continue a run from its last checkpoint (flags given explicitly override the saved options)')
    .option('--json', 'print the result as JSON on stdout (no progress bar)');
}

/**
 * TrainOptions from parsed flags. With `explicitOnly`, only flags given on the command line
 * (commander's value source 'cli') are returned, for overriding a resumed run's saved options.
 */
export function parseTrainerFlags(cmd: Command, explicitOnly = false): Partial<TrainOptions> {
  const o = cmd.opts() as Record<string, string | undefined>;
  const given = (key: string) => o[key] !== undefined && (!explicitOnly || cmd.getOptionValueSource(key) === 'cli');
  const out: Partial<TrainOptions> = {};
  if (given('steps')) out.steps = parseNumber(o.steps!, '--steps', { min: 1, integer: true });
  if (given('tokens')) out.tokens = parseTokens(o.tokens!);
  for (const [flag, key] of INT_FLAGS) if (given(key)) (out as Record<string, number>)[key] = parseNumber(o[key]!, flag.split(' ')[0], { min: 0, integer: true });
  for (const [flag, key] of REAL_FLAGS) if (given(key)) (out as Record<string, number>)[key] = parseNumber(o[key]!, flag.split(' ')[0], { min: 0 });
  if (given('optimState')) out.optimState = o.optimState as OptimState; // checked by validateTrainOptions
  if (given('freeze')) out.freeze = o.freeze!;
  if (given('recompute')) out.recompute = Boolean(o.recompute);
  if (out.optimState !== undefined || out.freeze !== undefined) validateMemoryOptions(out as TrainOptions);
  if (out.steps !== undefined && out.tokens !== undefined) {
    throw new KompresorError({ code: 'input_invalid', where: '--steps/--tokens', rule: 'give one budget, --steps or --tokens', found: 'both' });
  }
  return out;
}

/** "50M" -> 50_000_000; k, M, B (G) suffixes, case-insensitive. */
export function parseTokens(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmbg]?)\s*$/i.exec(text);
  const mult = m ? { '': 1, k: 1e3, m: 1e6, b: 1e9, g: 1e9 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'b' | 'g'] : NaN;
  const v = m ? Math.round(Number(m[1]) * mult) : NaN;
  if (!Number.isSafeInteger(v) || v < 1) {
    throw new KompresorError({ code: 'input_invalid', where: '--tokens', rule: '--tokens takes a positive count, optionally with k, M or B', expected: '"2000000" or "2M"', found: JSON.stringify(text) });
  }
  return v;
}

/**
 * A row of --seq-len tokens must fit the model's positions and, for prepared data, the training
 * tokens there are: both were accepted, and --seq-len 1000000 on a 2048-position model with 136k
 * tokens allocated 6 GB before its first step (score refused them already).
 */
export function checkSeqLen(seqLen: number, maxPositions: number, flag = '--seq-len', trainTokens?: number): void {
  if (seqLen > maxPositions) {
    throw new KompresorError({ code: 'input_invalid', where: flag, rule: 'training rows must fit the model\'s context',
      expected: `at most max_position_embeddings = ${maxPositions}`, found: `${seqLen}`, hint: `give ${flag} ${maxPositions} or less` });
  }
  if (trainTokens !== undefined && seqLen > trainTokens) {
    throw new KompresorError({ code: 'input_invalid', where: flag, rule: 'one training row needs at least --seq-len tokens of data',
      expected: `at most the ${trainTokens} training tokens`, found: `${seqLen}`, hint: 'prepare more data, or use a shorter --seq-len' });
  }
}

// ---------------------------------------------------------------------------------------------
// signals

export interface StopSignals {
  /** The first signal received, or null. */
  received(): NodeJS.Signals | null;
  dispose(): void;
}

/**
 * First SIGINT/SIGTERM: ask the loop to stop after the current step (it checkpoints and returns).
 * Second: quit at once (the last checkpoint is intact, the step in flight is lost).
 */
export function installStopSignals(say: (line: string) => void = (l) => console.error(l), onFirst?: (sig: NodeJS.Signals) => void): StopSignals {
  let first: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    if (first) {
      say(`kompresor: ${sig} again; quitting now (the last checkpoint is intact)`);
      process.exit(exitCodeFor(sig));
    }
    first = sig;
    say(`kompresor: ${sig} received; stopping after the current step and writing a checkpoint (send it again to quit at once)`);
    onFirst?.(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    received: () => first,
    dispose() { process.off('SIGINT', onSignal); process.off('SIGTERM', onSignal); },
  };
}

/** The shell convention: 128 + signal number. */
export function exitCodeFor(sig: NodeJS.Signals): number {
  return sig === 'SIGTERM' ? 143 : 130;
}

// ---------------------------------------------------------------------------------------------
// output

/**
 * A progress bar fed by the trainer's onStep (with --json only the progress file, if set), and
 * the start line saying what the training state costs (stderr; with --json it is the result's
 * "memory" object instead).
 */
export function trainingProgress(label: string, o: TrainOptions, startStep: number, json: boolean): { onStart: (m: StateMemory) => void; onStep: (l: MetricsLine) => void; stop(): void } {
  const bar: Progress | null = progressBar(label, totalSteps(o), 'steps', '{tps} tok/s | loss {loss} | lr {lr}', { start: startStep, hidden: json });
  return {
    onStart: (m) => { if (!json) console.error(describeStateMemory(m)); },
    onStep: (l) => bar?.update(l.step as number, {
      tps: Math.round(l.tokens_per_s as number), loss: (l.loss as number).toFixed(4), lr: (l.lr as number).toExponential(2),
    }),
    stop: () => bar?.stop(),
  };
}

/** The closing lines of a trainer command. */
export function describeResult(r: TrainResult, runDir: string, resumeCommand: string): string {
  const tail = r.validLoss !== undefined ? `, validation loss ${r.validLoss.toFixed(4)}` : '';
  const rate = r.sessionSeconds > 0 && r.sessionSteps > 0 ? ` in ${formatSeconds(r.sessionSeconds)}` : '';
  if (r.status === 'stopped') {
    return `stopped at step ${r.step} of ${r.totalSteps}${rate}; checkpoint saved in ${r.checkpoint}\nresume with: ${resumeCommand}`;
  }
  return `finished ${r.totalSteps} steps (${r.tokens.toLocaleString('en-US')} tokens)${rate}; loss ${r.loss.toFixed(4)}${tail}\n` +
    `model: ${r.final} (Hugging Face checkpoint); metrics: ${runDir}/metrics.jsonl; plots: ${runDir}/report/`;
}

/** The newest checkpoint's state of a run started by `command`; one-line errors otherwise. */
export function resumeState(runDir: string, command: string): { dir: string; state: TrainState } {
  const dir = latestCheckpoint(runDir);
  if (!dir) {
    throw new KompresorError({ code: 'file_not_found', where: runDir, rule: 'a resumed run needs a checkpoint-<step> folder in the run folder', found: 'none',
      hint: 'the run stopped before its first checkpoint (or this is not a run folder); start it again' });
  }
  const state = readTrainState(dir);
  checkTrainState(state, dir);
  const saved = String((state.meta as { command?: unknown }).command);
  if (saved !== command) {
    throw new KompresorError({ code: 'input_invalid', where: `${dir}/state.json`, rule: `kompresor ${command} resumes runs it started`, found: `a run of "${saved}"`,
      hint: `resume it with \`kompresor ${saved} --resume ${runDir}\`` });
  }
  return { dir, state };
}
