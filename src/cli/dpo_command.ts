// `kompresor dpo`: preference optimisation (DPO, IPO, hinge, robust/cDPO, and DPO-Positive) on a
// JSONL file of prompt/chosen/rejected rows, with the shared loop of src/train/trainer.ts and the
// objective of src/align/dpo.ts. The reference model is frozen (a forward-only arena) or, with
// --precompute-ref, run once over the data before training and its log-probs kept in
// RUN_DIR/ref_logps.json (a resumed run reads them). The run folder, checkpoints, resume, signals
// and metrics are those of `kompresor train`. Registered by registerDpoCommand.
import nodePath from 'node:path';
import type { Command } from 'commander';
import { KompresorError } from '../errors.ts';
import { openCheckpoint } from '../io/checkpoint.ts';
import { loadTokenizer } from '../io/tokenizer.ts';
import { checkOutDir } from '../io/out_guard.ts';
import { Decoder } from '../model/decoder.ts';
import { loadModel } from '../model/load.ts';
import { train, type TrainResult } from '../train/trainer.ts';
import { TRAIN_DEFAULTS, type TrainOptions } from '../train/options.ts';
import type { MetricsLine } from '../train/metrics.ts';
import { loadTeacher, teacherChecksum } from '../distill/teacher_cache.ts';
import { loadDpoData, lossTokens, type AlignData, type PairExample } from '../align/data.ts';
import { DpoSource, dpoEvalSource } from '../align/sources.ts';
import { dpoObjective, computeRefLogps, cachedRefLogps, REF_CACHE_FILE } from '../align/dpo.ts';
import { dpoLossOptions, DPO_DEFAULTS, DPO_LOSS_TYPES, type DpoLossOptions, type DpoLossType } from '../align/losses.ts';
import { parseNumber } from './args.ts';
import { addTrainerFlags, parseTrainerFlags, installStopSignals, exitCodeFor, trainingProgress, describeResult, resumeState, checkSeqLen } from './trainer_flags.ts';
import { checkModelFolder, checkVocab, describeData, abs, resumeAlignRun } from './align_common.ts';

/** TRL's DPOConfig: lr 1e-6, max_length 1024, no weight decay, no warmup (spec §2). */
export const DPO_TRAIN_DEFAULTS = { ...TRAIN_DEFAULTS, lr: 1e-6, minLr: 1e-7, warmup: 0, weightDecay: 0, seqLen: 1024 };

const DPO_HELP = `
Data (--data, --eval-data): JSONL rows {"prompt": P, "chosen": C, "rejected": R}, all strings
(plain text: prompt + answer + EOS) or P a message list and C, R message lists or the assistant's
text (rendered with the chat template; the answer starts after the prompt rendered with
add_generation_prompt). Each of prompt + chosen and prompt + rejected keeps its first --seq-len
tokens. Missing fields, empty answers and prompts that leave no answer token within --seq-len
are refused naming FILE:LINE (--drop-long skips and counts the last kind).

Batches: --micro-batch counts rows, and a pair takes two (chosen, rejected): --micro-batch 8
trains 4 pairs per micro-batch. logπ(y|x) is the SUM of the answer's token log-probs.

Loss, per pair, with Δ = [logπ(y_w) - logπref(y_w)] - [logπ(y_l) - logπref(y_l)]:
  sigmoid   -logσ(βΔ); with --label-smoothing ε: -(1-ε)logσ(βΔ) - ε·logσ(-βΔ)   (cDPO, as TRL)
  robust    (-(1-ε)logσ(βΔ) + ε·logσ(-βΔ)) / (1-2ε)                           (robust DPO)
  hinge     max(0, 1 - βΔ)
  ipo       (Δ_avg - 1/(2β))², log-ratios divided by the answers' token counts (as TRL)
  --dpop-lambda λ (DPO-Positive, Smaug): βΔ becomes β(Δ - λ·max(0, logπref(y_w) - logπ(y_w))),
  the penalty inside the sigmoid and scaled by β (sigmoid, robust, hinge). Bielik's DPO-P used
  β 0.05-0.1 with λ 2.5.
Metrics: rewards/chosen, rewards/rejected (β·log πθ/πref), rewards/accuracies, rewards/margins,
logps/chosen, logps/rejected, logps/accuracies (the policy alone prefers the chosen answer);
validation lines give them over --eval-data (all of it, up to --eval-batches batches).

Reference: --ref MODEL_DIR (default: the model being trained, as it is at the start), frozen.
--precompute-ref runs it once over --data and --eval-data before training and stores the
log-probs in RUN_DIR/${REF_CACHE_FILE}; then it is not held in memory while training, and a
resumed run reads them instead of loading it.

Run folder (--out): as \`kompresor train\`. Ctrl-C / SIGTERM checkpoint and exit (130/143);
--resume RUN_DIR continues with the same losses as an uninterrupted run (flags given with it,
trainer or DPO, override the saved ones).

Examples:
  kompresor dpo runs/sft1/final --data pairs.jsonl --eval-data pairs_val.jsonl --out runs/dpo1 --steps 300 --beta 0.1 --dpop-lambda 2.5
  kompresor dpo runs/sft1/final --data pairs.jsonl --out runs/dpo2 --steps 300 --loss ipo --precompute-ref
  kompresor dpo --resume runs/dpo1`;

interface DpoMeta {
  command: 'dpo';
  model: string;
  ref: string;
  refChecksum: string;
  data: string;
  evalData: string | null;
  tokenizerFrom: string;
  dpo: DpoLossOptions;
  precomputeRef: boolean;
  dropLong: boolean;
}

interface DpoFlags {
  data?: string; evalData?: string; out?: string; ref?: string; resume?: string; json?: boolean; dropLong?: boolean; precomputeRef?: boolean;
  beta: string; loss: string; labelSmoothing: string; dpopLambda: string;
}

export function registerDpoCommand(program: Command): void {
  const cmd = program.command('dpo')
    .description('Preference optimisation on prompt/chosen/rejected pairs against a frozen reference: DPO, IPO, hinge, robust/cDPO and DPO-Positive; resumable checkpoints, metrics and plots.')
    .argument('[model_dir]', 'the Hugging Face model folder to train (with its tokenizer; omit with --resume)')
    .option('--data <file.jsonl>', 'training pairs: {"prompt", "chosen", "rejected"}')
    .option('--eval-data <file.jsonl>', 'held-out pairs, for validation (accuracies, margins)')
    .option('--out <run_dir>', 'the run folder (created; must not hold another run)')
    .option('--ref <model_dir>', 'the frozen reference model (default: MODEL_DIR)')
    .option('--precompute-ref', `compute the reference log-probs once before training, cached in RUN_DIR/${REF_CACHE_FILE}`)
    .option('--beta <b>', 'β, the strength of the implicit KL to the reference', String(DPO_DEFAULTS.beta))
    .option('--loss <type>', `the pair loss: ${DPO_LOSS_TYPES.join(' | ')}`, DPO_DEFAULTS.loss)
    .option('--label-smoothing <e>', 'ε in [0, 0.5): sigmoid -> cDPO, robust -> robust DPO', String(DPO_DEFAULTS.labelSmoothing))
    .option('--dpop-lambda <l>', 'λ of DPO-Positive (penalty inside the sigmoid, scaled by β; 0 = off)', String(DPO_DEFAULTS.dpopLambda))
    .option('--drop-long', 'skip (and count) rows whose prompt leaves no answer token within --seq-len, instead of refusing them');
  addTrainerFlags(cmd, DPO_TRAIN_DEFAULTS);
  cmd.addHelpText('after', DPO_HELP)
    .action(async (modelDir: string | undefined, o: DpoFlags, c: Command) => {
      const r = o.resume ? await resumeRun(modelDir, o, c) : await startRun(modelDir, o, c);
      if (r.status === 'stopped') process.exitCode = exitCodeFor(r.signal ?? 'SIGINT'); // main() returns it
    });
}

/** DPO loss options from the flags; with `explicitOnly`, only those given on the command line. */
function parseDpoFlags(o: DpoFlags, c: Command, explicitOnly = false): Partial<DpoLossOptions> {
  const given = (key: string) => !explicitOnly || c.getOptionValueSource(key) === 'cli';
  const out: Partial<DpoLossOptions> = {};
  if (given('beta')) out.beta = parseNumber(o.beta, '--beta', { min: Number.MIN_VALUE });
  if (given('loss')) out.loss = o.loss as DpoLossType; // checked by dpoLossOptions
  if (given('labelSmoothing')) out.labelSmoothing = parseNumber(o.labelSmoothing, '--label-smoothing', { min: 0 });
  if (given('dpopLambda')) out.dpopLambda = parseNumber(o.dpopLambda, '--dpop-lambda', { min: 0 });
  return out;
}

async function startRun(modelDir: string | undefined, o: DpoFlags, c: Command) {
  if (!modelDir || !o.data || !o.out) {
    const missing = [!modelDir && 'MODEL_DIR', !o.data && '--data', !o.out && '--out'].filter(Boolean).join(', ');
    throw new KompresorError({ code: 'input_invalid', where: 'kompresor dpo', rule: 'a new run needs MODEL_DIR, --data and --out', found: `${missing} missing`,
      hint: 'kompresor dpo MODEL_DIR --data PAIRS.jsonl --out RUN_DIR --steps N' });
  }
  checkOutDir(o.out, '--out', [modelDir, o.data, ...(o.evalData ? [o.evalData] : []), ...(o.ref ? [o.ref] : [])]);
  const options = { ...DPO_TRAIN_DEFAULTS, ...parseTrainerFlags(c) } as TrainOptions;
  const dpo = dpoLossOptions(parseDpoFlags(o, c));
  checkModelFolder(modelDir, 'MODEL_DIR');
  const ref = o.ref ?? modelDir;
  if (o.ref) checkModelFolder(o.ref, '--ref', false);
  checkSameVocab(ref, modelDir);
  const meta: DpoMeta = {
    command: 'dpo', model: nodePath.resolve(modelDir), ref: nodePath.resolve(ref), refChecksum: teacherChecksum(ref),
    data: nodePath.resolve(o.data), evalData: abs(o.evalData), tokenizerFrom: nodePath.resolve(modelDir), dpo,
    precomputeRef: Boolean(o.precomputeRef), dropLong: Boolean(o.dropLong),
  };
  const { model, config } = await loadModel(modelDir);
  return runDpo(o.out, model, config, meta, options, false, false, Boolean(o.json));
}

async function resumeRun(modelDir: string | undefined, o: DpoFlags, c: Command) {
  if (modelDir !== undefined || o.out !== undefined || o.ref !== undefined) {
    throw new KompresorError({ code: 'input_invalid', where: '--resume', rule: 'a resumed run takes its model, reference and run folder from the checkpoint',
      found: [modelDir, o.out && `--out ${o.out}`, o.ref && `--ref ${o.ref}`].filter(Boolean).join(', '),
      hint: `run \`kompresor dpo --resume ${o.resume}\` alone (--data and --eval-data may point to moved files)` });
  }
  const runDir = o.resume!;
  const r = resumeAlignRun<DpoMeta>('dpo', runDir, o, c);
  const dpoChanges = parseDpoFlags(o, c, true);
  const meta: DpoMeta = { ...r.saved, dpo: dpoLossOptions({ ...r.saved.dpo, ...dpoChanges }), ...r.paths };
  const allow = Object.keys(r.changes).length > 0 || Object.keys(dpoChanges).length > 0;
  return runDpo(runDir, r.model, r.config, meta, { ...r.state.options, ...r.changes }, true, allow, Boolean(o.json));
}

async function runDpo(runDir: string, model: Decoder, config: Record<string, unknown>, meta: DpoMeta, options: TrainOptions,
  resume: boolean, allowOptionChanges: boolean, json: boolean): Promise<TrainResult & { signal: NodeJS.Signals | null }> {
  checkSeqLen(options.seqLen, model.cfg.maxPositionEmbeddings);
  const tok = loadTokenizer(meta.tokenizerFrom);
  const dataOpts = { maxLength: options.seqLen, dropLong: meta.dropLong };
  const data = loadDpoData(tok, meta.data, dataOpts);
  const evalData = meta.evalData ? loadDpoData(tok, meta.evalData, dataOpts) : null;
  for (const d of [data, evalData]) if (d) checkVocab(d.examples.flatMap((p) => [p.chosen, p.rejected]), model.cfg.vocabSize, tok);
  const say = (line: string) => { if (!json) console.error(line); };
  say(describeData('train', data, 'pairs', answerTokens(data)));
  if (evalData) say(describeData('eval', evalData, 'pairs', answerTokens(evalData)));
  const padId = tok.padTokenId ?? tok.eosTokenId ?? 0;

  // the reference: loaded lazily, so a resumed --precompute-ref run with its cache never loads it
  let reference: Decoder | null = null;
  const refModel = () => {
    if (!reference) {
      const sum = teacherChecksum(meta.ref);
      if (sum !== meta.refChecksum) {
        throw new KompresorError({ code: 'input_invalid', where: `--ref ${meta.ref}`, rule: 'the reference model must not change during a run',
          expected: `checksum ${meta.refChecksum.slice(0, 16)}...`, found: `${sum.slice(0, 16)}...`, hint: 'restore the reference folder the run started with' });
      }
      reference = loadTeacher(meta.ref); // forward-only arena
    }
    return reference;
  };
  let trainRef: Float64Array | null = null, evalRef: Float64Array | null = null;
  if (meta.precomputeRef) {
    const B = options.microBatch, T = options.seqLen;
    const pre = (split: string, d: AlignData<PairExample>) => {
      const r = cachedRefLogps(runDir, split, meta.refChecksum, d.examples, () => {
        say(`reference log-probs of ${d.examples.length} ${split} pairs...`);
        return computeRefLogps(refModel(), d.examples, B, T, padId);
      });
      if (r.cached) say(`reference log-probs of the ${split} pairs read from ${nodePath.join(runDir, REF_CACHE_FILE)}`);
      return r.logps;
    };
    trainRef = pre('train', data);
    if (evalData && evalData.examples.length > 0) evalRef = pre('eval', evalData);
    reference = null; // not needed while training
  }
  const source = new DpoSource(data.examples, { seed: options.seed, padId, refLogps: trainRef });
  const valid = evalData && evalData.examples.length > 0 ? dpoEvalSource(evalData.examples, { padId, refLogps: evalRef }) : undefined;
  const objective = dpoObjective(meta.dpo, meta.precomputeRef ? null : refModel());

  const signals = installStopSignals();
  const startStep = resume ? resumeState(runDir, 'dpo').state.step : 0;
  const progress = trainingProgress('dpo', options, startStep, json);
  const resumeCommand = `kompresor dpo --resume ${runDir}`;
  let lastEval: MetricsLine | null = null, firstEval: MetricsLine | null = null;
  let r: TrainResult;
  try {
    r = await train({
      runDir, model, config, tokenizerFrom: meta.tokenizerFrom, train: source, valid, objective,
      options, resume, allowOptionChanges, meta: meta as unknown as Record<string, unknown>, resumeCommand,
      shouldStop: () => signals.received() !== null, onStart: progress.onStart, onStep: progress.onStep,
      onEval: (l) => { firstEval ??= l; lastEval = l; },
    });
  } finally {
    progress.stop();
    signals.dispose();
  }
  const pick = (l: MetricsLine | null) => l && { step: l.step, loss: l.loss, rewards_accuracies: l['rewards/accuracies'], logps_accuracies: l['logps/accuracies'], rewards_margins: l['rewards/margins'] };
  if (json) console.log(JSON.stringify({ ...r, run_dir: runDir, validation_first: pick(firstEval), validation_last: pick(lastEval) }));
  else {
    console.log(describeResult(r, runDir, resumeCommand));
    const l = lastEval as MetricsLine | null;
    if (l) {
      const f = (k: string) => (l[k] as number).toFixed(3);
      console.log(`validation (step ${l.step}): rewards/accuracies ${f('rewards/accuracies')}, rewards/margins ${f('rewards/margins')}, logps/accuracies ${f('logps/accuracies')}`);
    }
  }
  return { ...r, signal: signals.received() };
}

function answerTokens(d: AlignData<PairExample>): number {
  return d.examples.reduce((s, p) => s + lossTokens(p.chosen) + lossTokens(p.rejected), 0);
}

/** The reference's log-probs are compared with the policy's token by token: same vocabulary. */
function checkSameVocab(refDir: string, modelDir: string): void {
  const r = openCheckpoint(refDir).config.vocabSize, m = openCheckpoint(modelDir).config.vocabSize;
  if (r !== m) {
    throw new KompresorError({ code: 'shape_mismatch', where: `--ref ${refDir}`, rule: 'the reference and the trained model must share the vocabulary',
      expected: `vocab_size ${m}`, found: `vocab_size ${r}`, hint: 'use the model the run starts from (the default) or another with the same tokenizer' });
  }
}
