// `kompresor train`: next-token training of a model (or one initialised from a config.json) on a
// folder made by `kompresor data prepare`, with the shared loop of src/train/trainer.ts:
// checkpoints in the run folder, resume with --resume RUN_DIR (also after kill -9), SIGINT/SIGTERM
// stop after the current step with a checkpoint, metrics.jsonl, report/*.svg, and the trained model
// as a Hugging Face checkpoint in RUN_DIR/final/. Registered on the program by registerTrainCommand.
import fs from 'node:fs';
import nodePath from 'node:path';
import type { Command } from 'commander';
import { KompresorError } from '../errors.ts';
import { normalizeConfig } from '../io/hf_config.ts';
import { openCheckpoint } from '../io/checkpoint.ts';
import { checkOutDir } from '../io/out_guard.ts';
import { Decoder } from '../model/decoder.ts';
import { initWeights } from '../model/init.ts';
import { loadModel } from '../model/load.ts';
import { openPackedData } from '../data/packed_source.ts';
import { train, type TrainResult } from '../train/trainer.ts';
import { TRAIN_DEFAULTS, type TrainOptions } from '../train/options.ts';
import { addTrainerFlags, parseTrainerFlags, installStopSignals, exitCodeFor, trainingProgress, describeResult, resumeState, checkSeqLen } from './trainer_flags.ts';

const TRAIN_HELP = `
Run folder (--out):
  checkpoint-<step>/   weights, optimizer state and state.json of the newest checkpoint
  latest               the name of that checkpoint
  metrics.jsonl        one line per step (loss, lr, grad_norm, tokens_per_s...) and per validation
  report/loss.svg      the loss curves
  final/               the trained model: config.json, model.safetensors, tokenizer files

Stopping and resuming:
  Ctrl-C (SIGINT) or SIGTERM finishes the current step, writes a checkpoint and exits (130/143).
  kompresor train --resume RUN_DIR continues from the newest checkpoint, also after kill -9 or a
  crash, and reproduces the losses of an uninterrupted run. Flags given with --resume override the
  saved options (then the run no longer matches an uninterrupted one).

Examples:
  kompresor train models/tiny --data data/corpus --out runs/t1 --steps 2000 --micro-batch 8 --seq-len 512
  kompresor train --init configs/llama-20m.json --data data/corpus --out runs/scratch --tokens 50M --lr 1e-3
  kompresor train --resume runs/t1`;

/** What the run folder records so that `--resume RUN_DIR` alone can rebuild the run. */
interface TrainMeta { command: 'train'; model: string | null; init: string | null; data: string; tokenizerFrom: string | null }

interface TrainFlags { data?: string; out?: string; init?: string; resume?: string; json?: boolean }

export function registerTrainCommand(program: Command): void {
  const cmd = program.command('train')
    .description('Train a model with next-token loss on prepared token data: AdamW, cosine schedule, resumable checkpoints, metrics and plots.')
    .argument('[model_dir]', 'the Hugging Face model folder to train (omit with --init or --resume)')
    .option('--data <data_dir>', 'a folder made by `kompresor data prepare` with this model\'s tokenizer')
    .option('--out <run_dir>', 'the run folder (created; must not hold another run)')
    .option('--init <config.json>', 'train from scratch: random weights for this config (tokenizer files beside it are copied to final/)');
  addTrainerFlags(cmd, { ...TRAIN_DEFAULTS });
  cmd.addHelpText('after', TRAIN_HELP)
    .action(async (modelDir: string | undefined, o: TrainFlags, c: Command) => {
      const r = o.resume ? await resumeRun(modelDir, o, c) : await startRun(modelDir, o, c);
      if (r.status === 'stopped') process.exitCode = exitCodeFor(r.signal ?? 'SIGINT'); // main() returns it
    });
}

async function startRun(modelDir: string | undefined, o: TrainFlags, c: Command) {
  if ((modelDir === undefined) === (o.init === undefined)) {
    throw new KompresorError({ code: 'input_invalid', where: 'kompresor train', rule: 'name the model to train, or give --init CONFIG.json to start from scratch (not both)',
      found: modelDir ? `${modelDir} and --init ${o.init}` : 'neither', hint: 'kompresor train MODEL_DIR --data DATA_DIR --out RUN_DIR --steps N' });
  }
  if (!o.data || !o.out) {
    throw new KompresorError({ code: 'input_invalid', where: o.data ? '--out' : '--data', rule: 'a new run needs --data DATA_DIR and --out RUN_DIR', found: 'missing',
      hint: 'make DATA_DIR with `kompresor data prepare --input FILES --tokenizer MODEL_DIR --out DATA_DIR`' });
  }
  checkOutDir(o.out, '--out', [modelDir, o.init, o.data].filter((p): p is string => p !== undefined));
  const options = { ...TRAIN_DEFAULTS, ...parseTrainerFlags(c) } as TrainOptions;
  const { model, config, tokenizerFrom } = modelDir ? await fromModel(modelDir) : fromConfig(o.init!, options.seed);
  const meta: TrainMeta = { command: 'train', model: abs(modelDir), init: abs(o.init), data: nodePath.resolve(o.data), tokenizerFrom: abs(tokenizerFrom) };
  return runTraining(o.out, model, config, meta, options, false, false, Boolean(o.json));
}

async function resumeRun(modelDir: string | undefined, o: TrainFlags, c: Command) {
  if (modelDir !== undefined || o.init !== undefined || o.out !== undefined) {
    throw new KompresorError({ code: 'input_invalid', where: '--resume', rule: 'a resumed run takes its model and run folder from the checkpoint',
      found: [modelDir, o.init && `--init ${o.init}`, o.out && `--out ${o.out}`].filter(Boolean).join(', '), hint: `run \`kompresor train --resume ${o.resume}\` alone (--data may point to moved data)` });
  }
  const runDir = o.resume!;
  const { dir, state: st } = resumeState(runDir, 'train');
  const meta = st.meta as unknown as TrainMeta;
  const changes = parseTrainerFlags(c, true);
  const ck = openCheckpoint(dir); // headers only: the trainer reads the weights
  const model = new Decoder(ck.config);
  const data = o.data ? { ...meta, data: nodePath.resolve(o.data) } : meta;
  return runTraining(runDir, model, ck.rawConfig, data, { ...st.options, ...changes }, true, Object.keys(changes).length > 0, Boolean(o.json));
}

async function runTraining(runDir: string, model: Decoder, config: Record<string, unknown>, meta: TrainMeta, options: TrainOptions,
  resume: boolean, allowOptionChanges: boolean, json: boolean): Promise<TrainResult & { signal: NodeJS.Signals | null }> {
  const data = openPackedData(meta.data, { seed: options.seed, modelVocabSize: model.cfg.vocabSize });
  try { checkSeqLen(options.seqLen, model.cfg.maxPositionEmbeddings, '--seq-len', data.manifest.splits.train.tokens); } catch (e) { data.close(); throw e; }
  const signals = installStopSignals();
  const startStep = resume ? resumeState(runDir, 'train').state.step : 0;
  const progress = trainingProgress('train', options, startStep, json);
  const resumeCommand = `kompresor train --resume ${runDir}`;
  let r: TrainResult;
  try {
    r = await train({
      runDir, model, config, tokenizerFrom: meta.tokenizerFrom ?? undefined, train: data.train,
      valid: data.manifest.splits.val.documents > 0 ? data.val : undefined, options, resume, allowOptionChanges,
      meta: meta as unknown as Record<string, unknown>, resumeCommand,
      shouldStop: () => signals.received() !== null, onStart: progress.onStart, onStep: progress.onStep,
    });
  } finally {
    progress.stop();
    signals.dispose();
    data.close();
  }
  console.log(json ? JSON.stringify({ ...r, run_dir: runDir }) : describeResult(r, runDir, resumeCommand));
  return { ...r, signal: signals.received() };
}

async function fromModel(dir: string) {
  const { model, config } = await loadModel(dir);
  return { model, config, tokenizerFrom: dir };
}

/** A model with HF-style random weights for the config (initializer_range when it gives one). */
function fromConfig(path: string, seed: number) {
  if (!fs.existsSync(path) || !fs.statSync(path).isFile()) {
    throw new KompresorError({ code: 'file_not_found', where: `--init ${path}`, rule: 'the config must be a config.json file', found: 'no such file' });
  }
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(fs.readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new KompresorError({ code: 'config_invalid', where: path, rule: 'the config must be valid JSON', found: (e as Error).message });
  }
  const model = new Decoder(normalizeConfig(config, path));
  initWeights(model, seed, typeof config.initializer_range === 'number' ? config.initializer_range : 0.02);
  return { model, config, tokenizerFrom: nodePath.dirname(path) };
}

function abs(p: string | undefined): string | null {
  return p === undefined ? null : nodePath.resolve(p);
}
