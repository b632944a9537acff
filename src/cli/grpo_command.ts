// `kompresor grpo`: GRPO with verifiable rewards (src/align/grpo*.ts, docs/grpo.md) on the shared
// training loop: G sampled completions per prompt, rewards (built-in or a user's module), group-
// normalised advantages, the clipped objective with an optional k3 KL to the frozen starting model,
// checkpoints, --resume, SIGINT/SIGTERM stops, metrics.jsonl, report/*.svg, RUN_DIR/final/, and a
// held-out evaluation (greedy completions, mean reward) at the start, every --eval-every steps and
// at the end. Registered on the program by registerGrpoCommand.
import fs from 'node:fs';
import nodePath from 'node:path';
import type { Command } from 'commander';
import { KompresorError } from '../errors.ts';
import { parseNumber } from './args.ts';
import { progressBar, formatSeconds } from './progress.ts';
import { loadModel } from '../model/load.ts';
import { Decoder } from '../model/decoder.ts';
import { openCheckpoint } from '../io/checkpoint.ts';
import { loadTokenizer } from '../io/tokenizer.ts';
import { checkOutDir } from '../io/out_guard.ts';
import { train, type TrainResult } from '../train/trainer.ts';
import { TRAIN_DEFAULTS, totalSteps, type TrainOptions } from '../train/options.ts';
import { readTrainState } from '../train/run_checkpoint.ts';
import type { MetricsLine } from '../train/metrics.ts';
import { describeStateMemory } from '../train/memory.ts';
import { addTrainerFlags, parseTrainerFlags, installStopSignals, exitCodeFor, resumeState } from './trainer_flags.ts';
import { GRPO_DEFAULTS, grpoObjective, grpoEvaluate, lossOptions, rolloutOptions, builtinRewardOptions, type GrpoOptions } from '../align/grpo.ts';
import { RolloutSource, SCALE_REWARDS, type ScaleRewards } from '../align/grpo_rollout.ts';
import { stopRewardWorkers, DEFAULT_REWARD_TIMEOUT_S } from '../align/reward_sandbox.ts';
import { LOSS_TYPES, type LossType } from '../align/grpo_loss.ts';
import { loadRewards, answerValue, isModuleSpec, BUILTIN_REWARDS, type Reward } from '../align/rewards.ts';
import { readPromptFile, type PromptRow } from '../align/grpo_data.ts';

/** TRL's trainer defaults where they differ from pretraining's: lr 1e-6, no warmup, no weight decay. */
const GRPO_TRAIN_DEFAULTS: Omit<TrainOptions, 'steps' | 'tokens'> = {
  ...TRAIN_DEFAULTS, microBatch: 8, gradAccum: 1, lr: 1e-6, minLr: 1e-7, warmup: 0, weightDecay: 0, saveEvery: 100, evalEvery: 100, evalBatches: 4,
};

const GRPO_HELP = `
Data (--data, --eval-data): JSON Lines, one object per line with a "prompt" (a string, used as is;
or a list of {role, content} messages, rendered with the chat template and the generation prompt)
and the fields the rewards read (e.g. "answer"). --chat wraps string prompts as a user turn.

Rewards (--reward a,b with --reward-weights 1,0.5; r = sum of weight x reward):
  numeric   1 if the completion's last number equals the row's --answer-field (7,5 = 7.5), else 0
  format    1 if the completion matches --format-regex (default: a single number), else 0
  length    DAPO soft overlong punishment: 0 up to --length-max minus --length-cache tokens, down to -1
  FILE.ts   a module whose default export is (prompts, completions, rows) => number[] (or a Promise)

Batches: --micro-batch counts completions (TRL's per_device_train_batch_size) and must be a multiple
of --num-generations; an optimizer step trains on --grad-accum micro-batches, generated together
every --num-iterations steps. Held-out evaluation: the first --eval-batches x --micro-batch prompts
of --eval-data, greedy; the validation "loss" is -reward.

Run folder (--out): checkpoint-<step>/, latest, metrics.jsonl (reward, reward_std, reward_<name>,
completion_length, truncated, clip_low/high/region, kl; validation lines: held-out reward),
report/*.svg, final/ (the trained model). Ctrl-C/SIGTERM stops with a checkpoint;
kompresor grpo --resume RUN_DIR continues exactly (flags given with it override the saved ones).

Examples:
  kompresor grpo models/sft --data math.jsonl --eval-data math_test.jsonl --reward numeric --out runs/g1 --steps 200
  kompresor grpo models/sft --data math.jsonl --reward numeric,format --reward-weights 1,0.2 --beta 0.04 --out runs/g2 --steps 100
  kompresor grpo models/sft --data tasks.jsonl --reward ./my_reward.ts --num-generations 4 --max-new-tokens 64 --out runs/g3 --steps 50
  kompresor grpo --resume runs/g1`;

interface GrpoMeta {
  command: 'grpo';
  model: string;
  data: string;
  evalData: string | null;
  grpo: GrpoOptions;
}

type Flags = Record<string, string | boolean | string[] | undefined>;

// flag, GrpoOptions key, description, default (as shown)
const GRPO_FLAGS: [string, keyof GrpoOptions, string][] = [
  ['--num-generations <g>', 'numGenerations', 'completions sampled per prompt (G >= 2)'],
  ['--max-new-tokens <n>', 'maxNewTokens', 'completion length limit in tokens'],
  ['--max-prompt-length <n>', 'maxPromptLength', 'longest prompt in tokens (longer ones are refused)'],
  ['--temperature <t>', 'temperature', 'sampling temperature (log-probs are of logits / t)'],
  ['--top-p <p>', 'topP', 'nucleus sampling (1 = off)'],
  ['--top-k <k>', 'topK', 'top-k sampling (0 = off)'],
  ['--min-p <p>', 'minP', 'min-p sampling (0 = off)'],
  ['--scale-rewards <s>', 'scaleRewards', `advantage scaling: ${SCALE_REWARDS.join(' | ')}`],
  ['--loss-type <t>', 'lossType', `loss aggregation: ${LOSS_TYPES.join(' | ')}`],
  ['--epsilon <e>', 'epsilon', 'lower clipping range (and the upper one unless --epsilon-high)'],
  ['--epsilon-high <e>', 'epsilonHigh', 'upper clipping range (DAPO: 0.28; default = --epsilon)'],
  ['--beta <b>', 'beta', 'k3 KL weight to the frozen starting model (0 = no reference model)'],
  ['--num-iterations <mu>', 'numIterations', 'optimizer steps per generation batch (mu)'],
  ['--answer-field <name>', 'answerField', 'numeric reward: the data field with the answer'],
  ['--answer-tolerance <x>', 'answerTolerance', 'numeric reward: |x - answer| <= tol * max(1, |answer|)'],
  ['--format-regex <re>', 'formatRegex', 'format reward: the pattern a completion must match'],
  ['--length-max <n>', 'lengthMax', 'length reward: L_max in tokens (default --max-new-tokens)'],
  ['--length-cache <n>', 'lengthCache', 'length reward: the soft zone in tokens (default L_max / 4)'],
];
const INT_KEYS = new Set<keyof GrpoOptions>(['numGenerations', 'maxNewTokens', 'maxPromptLength', 'topK', 'numIterations', 'lengthMax', 'lengthCache']);
const STRING_KEYS = new Set<keyof GrpoOptions>(['scaleRewards', 'lossType', 'answerField', 'formatRegex']);

export function registerGrpoCommand(program: Command): void {
  const cmd = program.command('grpo')
    .description('Reinforce a model with GRPO on verifiable rewards: sampled groups of completions, group-normalised advantages, clipped objective, optional KL to the starting model; resumable checkpoints, metrics and a held-out reward.')
    .argument('[model_dir]', 'the Hugging Face model folder to train (omit with --resume); its tokenizer renders and decodes')
    .option('--data <file.jsonl>', 'training prompts (JSON Lines with "prompt" and the fields the rewards read)')
    .option('--eval-data <file.jsonl>', 'held-out prompts: mean reward of greedy completions at the start, every --eval-every steps and at the end')
    .option('--out <run_dir>', 'the run folder (created; must not hold another run)')
    .option('--reward <names>', `reward functions, comma-separated: ${BUILTIN_REWARDS.join(', ')} or a module path (repeatable)`, (v: string, prev: string[] = []) => [...prev, ...v.split(',').map((s) => s.trim()).filter(Boolean)])
    .option('--reward-weights <list>', 'one weight per reward function, comma-separated (default 1 each)')
    .option('--mask-truncated', 'leave completions that reached --max-new-tokens without EOS out of the loss')
    .option('--chat', 'wrap string prompts as a user turn of the chat template')
    .option('--reward-timeout <s>', 'seconds a reward module may take to load or to score one batch; past it its worker is stopped and so is the run', String(DEFAULT_REWARD_TIMEOUT_S));
  for (const [flag, key, desc] of GRPO_FLAGS) {
    const d = GRPO_DEFAULTS[key];
    if (d === null) cmd.option(flag, desc);
    else cmd.option(flag, desc, String(d));
  }
  addTrainerFlags(cmd, GRPO_TRAIN_DEFAULTS);
  cmd.addHelpText('after', GRPO_HELP)
    .action(async (modelDir: string | undefined, o: Flags, c: Command) => {
      const r = o.resume ? await resumeRun(modelDir, o, c) : await startRun(modelDir, o, c);
      if (r.status === 'stopped') process.exitCode = exitCodeFor(r.signal ?? 'SIGINT'); // main() returns it
    });
}

/** GRPO options from the flags; with `explicitOnly`, only those given on the command line. */
function parseGrpoFlags(o: Flags, c: Command, explicitOnly = false): Partial<GrpoOptions> {
  const given = (key: string) => o[key] !== undefined && (!explicitOnly || c.getOptionValueSource(key) === 'cli');
  const out: Record<string, unknown> = {};
  for (const [flag, key] of GRPO_FLAGS) {
    if (!given(key)) continue;
    const name = flag.split(' ')[0], v = String(o[key]);
    if (STRING_KEYS.has(key)) out[key] = v;
    else out[key] = parseNumber(v, name, { min: 0, integer: INT_KEYS.has(key) });
  }
  if (out.scaleRewards !== undefined && !SCALE_REWARDS.includes(out.scaleRewards as ScaleRewards)) {
    throw new KompresorError({ code: 'input_invalid', where: '--scale-rewards', rule: `--scale-rewards takes ${SCALE_REWARDS.join(', ')}`, found: JSON.stringify(out.scaleRewards) });
  }
  if (out.lossType !== undefined && !LOSS_TYPES.includes(out.lossType as LossType)) {
    throw new KompresorError({ code: 'input_invalid', where: '--loss-type', rule: `--loss-type takes ${LOSS_TYPES.join(', ')}`, found: JSON.stringify(out.lossType) });
  }
  if (given('maskTruncated')) out.maskTruncated = Boolean(o.maskTruncated);
  if (given('chat')) out.chat = Boolean(o.chat);
  if (given('reward')) out.rewards = (o.reward as string[]).map((s) => (isModuleSpec(s) ? nodePath.resolve(s) : s));
  if (given('rewardWeights')) out.rewardWeights = String(o.rewardWeights).split(',').map((s) => parseNumber(s, '--reward-weights'));
  return out as Partial<GrpoOptions>;
}

/** The trainer's options: GRPO's defaults, the flags, and the row length GRPO sets itself. */
function trainOptions(base: Partial<TrainOptions>, g: GrpoOptions, c: Command): TrainOptions {
  if (c.getOptionValueSource('seqLen') === 'cli') {
    throw new KompresorError({ code: 'input_invalid', where: '--seq-len', rule: 'GRPO rows are prompt + completion: their length is --max-prompt-length + --max-new-tokens',
      expected: 'no --seq-len', found: `--seq-len ${String(c.opts().seqLen)}`, hint: 'set --max-prompt-length and --max-new-tokens instead' });
  }
  return { ...(base as TrainOptions), seqLen: g.maxPromptLength + g.maxNewTokens };
}

async function startRun(modelDir: string | undefined, o: Flags, c: Command) {
  const missing = [[modelDir, 'MODEL_DIR'], [o.data, '--data'], [o.out, '--out'], [o.reward, '--reward']].filter(([v]) => !v).map(([, n]) => n);
  if (missing.length > 0) {
    throw new KompresorError({ code: 'input_invalid', where: 'kompresor grpo', rule: 'a new run needs MODEL_DIR, --data, --reward and --out', found: `${missing.join(', ')} missing`,
      hint: 'kompresor grpo MODEL_DIR --data prompts.jsonl --reward numeric --out RUN_DIR --steps N' });
  }
  checkOutDir(String(o.out), '--out', [modelDir!, String(o.data), ...(o.evalData ? [String(o.evalData)] : [])]);
  const grpo: GrpoOptions = { ...GRPO_DEFAULTS, ...parseGrpoFlags(o, c) };
  const options = trainOptions({ ...GRPO_TRAIN_DEFAULTS, ...parseTrainerFlags(c) }, grpo, c);
  const meta: GrpoMeta = {
    command: 'grpo', model: nodePath.resolve(modelDir!), data: nodePath.resolve(String(o.data)),
    evalData: o.evalData ? nodePath.resolve(String(o.evalData)) : null, grpo,
  };
  return runGrpo(String(o.out), meta, options, false, false, Boolean(o.json), rewardTimeout(o));
}

async function resumeRun(modelDir: string | undefined, o: Flags, c: Command) {
  if (modelDir !== undefined || o.out !== undefined) {
    throw new KompresorError({ code: 'input_invalid', where: '--resume', rule: 'a resumed run takes its model and run folder from the checkpoint',
      found: [modelDir, o.out && `--out ${String(o.out)}`].filter(Boolean).join(', '), hint: `run \`kompresor grpo --resume ${String(o.resume)}\` alone (--data and --eval-data may point to moved files)` });
  }
  const runDir = String(o.resume);
  const { dir, state: st } = resumeState(runDir, 'grpo');
  const saved = st.meta as unknown as GrpoMeta;
  const changes = parseTrainerFlags(c, true), grpoChanges = parseGrpoFlags(o, c, true);
  const grpo = { ...saved.grpo, ...grpoChanges };
  const meta: GrpoMeta = {
    ...saved, grpo, data: o.data ? nodePath.resolve(String(o.data)) : saved.data,
    evalData: o.evalData ? nodePath.resolve(String(o.evalData)) : saved.evalData,
  };
  const options = trainOptions({ ...st.options, ...changes }, grpo, c);
  const allow = Object.keys(changes).length > 0 || Object.keys(grpoChanges).length > 0;
  return runGrpo(runDir, meta, options, true, allow, Boolean(o.json), rewardTimeout(o), dir);
}

/** --reward-timeout in seconds (not saved with the run: give it again on --resume). */
function rewardTimeout(o: Flags): number {
  return parseNumber(String(o.rewardTimeout ?? DEFAULT_REWARD_TIMEOUT_S), '--reward-timeout', { min: 0.1, max: 86400 });
}

async function runGrpo(runDir: string, meta: GrpoMeta, options: TrainOptions, resume: boolean, allowOptionChanges: boolean, json: boolean,
  timeoutS: number, checkpoint?: string): Promise<TrainResult & { signal: NodeJS.Signals | null }> {
  const g = meta.grpo;
  const lossOpts = lossOptions(g);
  const ro = rolloutOptions(g, options);
  // everything that can be refused is checked before the model loads
  const rewards = await loadRewards(g.rewards, g.rewardWeights ?? undefined, { ...builtinRewardOptions(g), timeoutS });
  if (!fs.existsSync(nodePath.join(meta.model, 'config.json'))) {
    throw new KompresorError({ code: 'file_not_found', where: meta.model, rule: 'the model folder must hold config.json, safetensors weights and tokenizer.json', found: 'no config.json' });
  }
  const tok = loadTokenizer(meta.model);
  const readPrompts = (file: string) => readPromptFile(file, tok, {
    maxPromptLength: g.maxPromptLength, chat: g.chat, requiredFields: [...new Set(rewards.flatMap((r) => r.requiredFields))],
    checkField: (f, v) => (rewards.some((r) => r.name === 'numeric') && f === g.answerField && answerValue(v) === null ? 'the numeric reward needs an answer that is a number (or a string holding one)' : null),
  });
  const prompts = readPrompts(meta.data);
  const held = meta.evalData ? readPrompts(meta.evalData).slice(0, options.evalBatches * options.microBatch) : [];

  // (no checkSeqLen: prompt + completion is a bound GRPO rows rarely reach, and the demo's recipe
  // sets it a little above a tiny teacher's context)
  const model = resume ? new Decoder(openCheckpoint(checkpoint!).config) : (await loadModel(meta.model)).model;
  const config = resume ? openCheckpoint(checkpoint!).rawConfig : JSON.parse(fs.readFileSync(nodePath.join(meta.model, 'config.json'), 'utf8')) as Record<string, unknown>;
  let reference: Decoder | null = null;
  if (g.beta > 0) {
    reference = (await loadModel(meta.model)).model;
    reference.forwardOnly = true;
  }
  const eosTokenIds = tok.eosTokenIds.length > 0 ? tok.eosTokenIds : model.cfg.eosTokenIds;
  const padTokenId = tok.padTokenId ?? eosTokenIds[0] ?? 0;
  const decode = (ids: number[]) => tok.decode(ids, { skipSpecialTokens: true });
  const resumeCommand = `kompresor grpo --resume ${runDir}`;
  const source = new RolloutSource({
    policy: model, reference, prompts, rewards, decode, eosTokenIds, padTokenId,
    stopHint: `the run stopped; checkpoints already written are intact (fix the reward, then \`${resumeCommand}\`)`,
  }, ro);

  // a signal also ends a reward call in flight (its worker), so a stuck reward cannot hold the run
  const signals = installStopSignals(undefined, (sig) => stopRewardWorkers(sig));
  const startStep = resume ? readTrainState(checkpoint!).step : 0;
  const progress = grpoProgress(options, startStep, json);
  const evals: MetricsLine[] = [];
  let r: TrainResult;
  try {
    r = await train({
      runDir, model, config, tokenizerFrom: meta.model, train: source, objective: grpoObjective(lossOpts), options, resume, allowOptionChanges,
      evaluate: held.length > 0 ? (m, step) => grpoEvaluate(m, { prompts: held, rewards, decode, eosTokenIds, padTokenId, maxNewTokens: g.maxNewTokens, batchSize: options.microBatch }, step) : undefined,
      meta: meta as unknown as Record<string, unknown>, resumeCommand,
      shouldStop: () => signals.received() !== null, onStep: progress.onStep, onEval: (l) => evals.push(l),
      onStart: (m) => { if (!json) console.error(describeStateMemory(m)); },
    });
  } catch (e) {
    const sig = signals.received();
    if (sig) process.exitCode = exitCodeFor(sig); // stopped by the signal mid-step: 130/143 with the reason
    throw e;
  } finally {
    progress.stop();
    signals.dispose();
  }
  const first = evals[0]?.reward as number | undefined, last = evals.at(-1)?.reward as number | undefined;
  if (json) console.log(JSON.stringify({ ...r, run_dir: runDir, eval_reward_first: first ?? null, eval_reward_last: last ?? null }));
  else console.log(describe(r, runDir, resumeCommand, rewards, evals));
  return { ...r, signal: signals.received() };
}

function grpoProgress(o: TrainOptions, startStep: number, json: boolean) {
  const bar = progressBar('grpo', totalSteps(o), 'steps', 'reward {reward} | len {len} | loss {loss}', { start: startStep, hidden: json });
  return {
    onStep: (l: MetricsLine) => bar?.update(l.step as number, {
      reward: (l.reward as number).toFixed(3), len: (l.completion_length as number).toFixed(1), loss: (l.loss as number).toFixed(4),
    }),
    stop: () => bar?.stop(),
  };
}

function describe(r: TrainResult, runDir: string, resumeCommand: string, rewards: Reward[], evals: MetricsLine[]): string {
  const rate = r.sessionSteps > 0 ? ` in ${formatSeconds(r.sessionSeconds)}` : '';
  if (r.status === 'stopped') return `stopped at step ${r.step} of ${r.totalSteps}${rate}; checkpoint saved in ${r.checkpoint}\nresume with: ${resumeCommand}`;
  const names = rewards.map((x) => (x.weight === 1 ? x.name : `${x.weight} x ${x.name}`)).join(' + ');
  const held = evals.length > 0
    ? `; held-out reward (${names}, greedy, ${evals.length} evaluations): ${(evals[0].reward as number).toFixed(4)} at step ${evals[0].step} -> ${(evals.at(-1)!.reward as number).toFixed(4)} at step ${evals.at(-1)!.step}`
    : '';
  return `finished ${r.totalSteps} steps${rate}${held}\nmodel: ${r.final} (Hugging Face checkpoint); metrics: ${runDir}/metrics.jsonl; plots: ${runDir}/report/`;
}
