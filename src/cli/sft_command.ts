// `kompresor sft`: supervised fine-tuning on a JSONL file of conversations (`messages`) or
// prompt/completion pairs, with the shared loop of src/train/trainer.ts and the SFT objective of
// src/align/sft.ts: loss on completion (assistant) tokens only, token mean over the whole
// accumulated batch, examples packed without seeing each other. The run folder, checkpoints,
// resume, signals and metrics are those of `kompresor train`. Registered by registerSftCommand.
import nodePath from 'node:path';
import type { Command } from 'commander';
import { KompresorError } from '../errors.ts';
import { loadTokenizer } from '../io/tokenizer.ts';
import { checkOutDir } from '../io/out_guard.ts';
import { Decoder } from '../model/decoder.ts';
import { loadModel } from '../model/load.ts';
import { train, type TrainResult } from '../train/trainer.ts';
import { TRAIN_DEFAULTS, type TrainOptions } from '../train/options.ts';
import { loadSftData, lossTokens } from '../align/data.ts';
import { SftSource, sftEvalSource } from '../align/sources.ts';
import { sftObjective } from '../align/sft.ts';
import { addTrainerFlags, parseTrainerFlags, installStopSignals, exitCodeFor, trainingProgress, describeResult, resumeState, checkSeqLen } from './trainer_flags.ts';
import { checkModelFolder, checkVocab, describeData, abs, resumeAlignRun } from './align_common.ts';

/** TRL's SFTConfig: lr 2e-5, max_length 1024, no weight decay, no warmup (spec §1). */
export const SFT_DEFAULTS = { ...TRAIN_DEFAULTS, lr: 2e-5, minLr: 2e-6, warmup: 0, weightDecay: 0, seqLen: 1024 };

const SFT_HELP = `
Data (--data, --eval-data): JSONL, one object per line, either
  {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}
      rendered with the model's chat template; loss on the assistant turns, their end-of-turn
      token included. Turns are found by the template's {% generation %} markers, or else by
      rendering the conversation turn by turn (the template must be prefix-preserving);
      otherwise the row is refused.
  {"prompt": "...", "completion": "..."}
      plain text: prompt + completion + EOS, loss on the completion (and EOS);
      "prompt" may be a message list (rendered with add_generation_prompt), "completion"
      then a message list or the assistant's text.
--seq-len is max_length: sequences keep their first --seq-len tokens, and rows hold that many.
A row whose prompt leaves no completion token within it is an error (--drop-long skips and
counts such rows); so are missing fields and empty completions, each naming FILE:LINE.

Loss: next-token cross-entropy on completion tokens, summed over the optimizer step (all
--grad-accum micro-batches) and divided by their number of completion tokens (TRL). Examples
are packed into rows by best-fit decreasing (--no-packing: one per row); packed examples never
attend to or predict each other. Validation lines carry the completion-token loss of
--eval-data (a token mean over all its batches, up to --eval-batches of them).

Run folder (--out): as \`kompresor train\` (checkpoint-<step>/, latest, metrics.jsonl, report/,
final/ = the fine-tuned model with the tokenizer files). Ctrl-C / SIGTERM checkpoint and exit
(130/143); --resume RUN_DIR continues with the same losses as an uninterrupted run (--data and
--eval-data may point to moved copies of the same files).

Examples:
  kompresor sft models/distilled --data sft.jsonl --eval-data sft_val.jsonl --out runs/sft1 --steps 500 --micro-batch 8 --seq-len 1024
  kompresor sft --resume runs/sft1`;

interface SftMeta {
  command: 'sft';
  model: string;
  data: string;
  evalData: string | null;
  tokenizerFrom: string;
  packing: boolean;
  dropLong: boolean;
}

interface SftFlags { data?: string; evalData?: string; out?: string; resume?: string; json?: boolean; packing: boolean; dropLong?: boolean }

export function registerSftCommand(program: Command): void {
  const cmd = program.command('sft')
    .description('Supervised fine-tuning on conversations or prompt/completion pairs (loss on completion tokens only): AdamW, cosine schedule, resumable checkpoints, metrics and plots.')
    .argument('[model_dir]', 'the Hugging Face model folder to fine-tune (with its tokenizer; omit with --resume)')
    .option('--data <file.jsonl>', 'training rows: {"messages": [...]} or {"prompt", "completion"}')
    .option('--eval-data <file.jsonl>', 'held-out rows of the same kinds, for validation')
    .option('--out <run_dir>', 'the run folder (created; must not hold another run)')
    .option('--no-packing', 'one example per row instead of packing several (best-fit decreasing)')
    .option('--drop-long', 'skip (and count) rows whose prompt leaves no completion token within --seq-len, instead of refusing them');
  addTrainerFlags(cmd, SFT_DEFAULTS);
  cmd.addHelpText('after', SFT_HELP)
    .action(async (modelDir: string | undefined, o: SftFlags, c: Command) => {
      const r = o.resume ? await resumeRun(modelDir, o, c) : await startRun(modelDir, o, c);
      if (r.status === 'stopped') process.exitCode = exitCodeFor(r.signal ?? 'SIGINT'); // main() returns it
    });
}

async function startRun(modelDir: string | undefined, o: SftFlags, c: Command) {
  if (!modelDir || !o.data || !o.out) {
    const missing = [!modelDir && 'MODEL_DIR', !o.data && '--data', !o.out && '--out'].filter(Boolean).join(', ');
    throw new KompresorError({ code: 'input_invalid', where: 'kompresor sft', rule: 'a new run needs MODEL_DIR, --data and --out', found: `${missing} missing`,
      hint: 'kompresor sft MODEL_DIR --data FILE.jsonl --out RUN_DIR --steps N' });
  }
  checkModelFolder(modelDir, 'MODEL_DIR');
  checkOutDir(o.out, '--out', [modelDir, o.data, ...(o.evalData ? [o.evalData] : [])]);
  const options = { ...SFT_DEFAULTS, ...parseTrainerFlags(c) } as TrainOptions;
  const meta: SftMeta = {
    command: 'sft', model: nodePath.resolve(modelDir), data: nodePath.resolve(o.data), evalData: abs(o.evalData),
    tokenizerFrom: nodePath.resolve(modelDir), packing: o.packing, dropLong: Boolean(o.dropLong),
  };
  const { model, config } = await loadModel(modelDir);
  return runSft(o.out, model, config, meta, options, false, false, Boolean(o.json));
}

async function resumeRun(modelDir: string | undefined, o: SftFlags, c: Command) {
  if (modelDir !== undefined || o.out !== undefined) {
    throw new KompresorError({ code: 'input_invalid', where: '--resume', rule: 'a resumed run takes its model and run folder from the checkpoint',
      found: [modelDir, o.out && `--out ${o.out}`].filter(Boolean).join(', '), hint: `run \`kompresor sft --resume ${o.resume}\` alone (--data and --eval-data may point to moved files)` });
  }
  const runDir = o.resume!;
  const r = resumeAlignRun<SftMeta>('sft', runDir, o, c);
  return runSft(runDir, r.model, r.config, { ...r.saved, ...r.paths }, { ...r.state.options, ...r.changes }, true, Object.keys(r.changes).length > 0, Boolean(o.json));
}

async function runSft(runDir: string, model: Decoder, config: Record<string, unknown>, meta: SftMeta, options: TrainOptions,
  resume: boolean, allowOptionChanges: boolean, json: boolean): Promise<TrainResult & { signal: NodeJS.Signals | null }> {
  checkSeqLen(options.seqLen, model.cfg.maxPositionEmbeddings);
  const tok = loadTokenizer(meta.tokenizerFrom);
  const dataOpts = { maxLength: options.seqLen, dropLong: meta.dropLong };
  const data = loadSftData(tok, meta.data, dataOpts);
  const evalData = meta.evalData ? loadSftData(tok, meta.evalData, dataOpts) : null;
  for (const d of [data, evalData]) if (d) checkVocab(d.examples, model.cfg.vocabSize, tok);
  const count = (d: typeof data) => d.examples.reduce((s, e) => s + lossTokens(e), 0);
  const summary = { train: { examples: data.examples.length, rows: data.rows, dropped: data.dropped.length, completion_tokens: count(data) },
    eval: evalData ? { examples: evalData.examples.length, rows: evalData.rows, dropped: evalData.dropped.length, completion_tokens: count(evalData) } : null };
  if (!json) {
    console.error(describeData('train', data, 'examples', summary.train.completion_tokens));
    if (evalData) console.error(describeData('eval', evalData, 'examples', summary.eval!.completion_tokens));
  }
  const padId = tok.padTokenId ?? tok.eosTokenId ?? 0;
  const source = new SftSource(data.examples, { seed: options.seed, packing: meta.packing, padId });
  const valid = evalData && evalData.examples.length > 0 ? sftEvalSource(evalData.examples, { packing: meta.packing, padId }) : undefined;
  const signals = installStopSignals();
  const startStep = resume ? resumeState(runDir, 'sft').state.step : 0;
  const progress = trainingProgress('sft', options, startStep, json);
  const resumeCommand = `kompresor sft --resume ${runDir}`;
  let r: TrainResult;
  try {
    r = await train({
      runDir, model, config, tokenizerFrom: meta.tokenizerFrom, train: source, valid, objective: sftObjective(),
      options, resume, allowOptionChanges, meta: meta as unknown as Record<string, unknown>, resumeCommand,
      shouldStop: () => signals.received() !== null, onStart: progress.onStart, onStep: progress.onStep,
    });
  } finally {
    progress.stop();
    signals.dispose();
  }
  console.log(json ? JSON.stringify({ ...r, run_dir: runDir, data: summary }) : describeResult(r, runDir, resumeCommand));
  return { ...r, signal: signals.received() };
}
