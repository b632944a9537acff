// `kompresor data prepare`: tokenises text/JSONL inputs into KPTOK shards + manifest.json
// (src/data/prepare.ts, format in docs/data-format.md), with a progress bar over input bytes and
// a summary (or --json). Registered on the main program by registerDataCommands.
import os from 'node:os';
import { Command, Option } from 'commander';
import { prepareData, type PrepareSummary, type PrepareProgress } from '../data/prepare.ts';
import type { SplitOn } from '../data/manifest.ts';
import { parseNumber } from './args.ts';
import { progressBar, type Progress } from './progress.ts';

const PREPARE_HELP = `
Inputs:
  .jsonl / .ndjson     one JSON object per line; the document is its "text" field (--text-field).
                       A bad line is an error naming file:line.
  .txt / .text / .md   --split-on blank-lines (default): each run of non-blank lines is a document;
                       --split-on file: each whole file is one document (at most 256 MiB).
  folders              expanded to the files above inside them, recursively, in sorted order.

What happens:
  1. documents whose text is exactly equal to an earlier one are dropped (sha256 of the text);
     empty (whitespace-only) documents are dropped;
  2. a document goes to validation when a hash of (--seed, its text) falls below --val-fraction,
     so the split is the same whatever the worker count or input order;
  3. each document is tokenised with the tokenizer's own special tokens and ends with EOS
     (--eos-token; default the model's first end-of-sequence token), so packed documents stay apart;
  4. train-NNNNN-<sha>.kptok and val-NNNNN-<sha>.kptok shards (uint16 ids when the vocabulary fits,
     else uint32) and manifest.json are written atomically; the same inputs give identical files.

Example:
  kompresor data prepare --input corpus/ extra.jsonl --tokenizer models/qwen2.5-0.5b --out data/corpus`;

interface PrepareFlags {
  input: string[]; tokenizer: string; out: string; valFraction: string; seed: string; workers: string;
  splitOn: SplitOn; textField: string; eosToken?: string; shardTokens: string; json?: boolean;
}

export function registerDataCommands(program: Command): void {
  const data = program.command('data').description('Prepare token data for training and distillation (see `data prepare --help`).');
  data.command('prepare')
    .description('Tokenise text/JSONL files into deduplicated train/validation token shards with a manifest.')
    .requiredOption('--input <paths...>', 'input files or folders (.jsonl, .ndjson, .txt, .text, .md)')
    .requiredOption('--tokenizer <model_dir>', 'a model folder with tokenizer.json (the model you will train)')
    .requiredOption('--out <data_dir>', 'output folder (created if missing; a previous dataset there is replaced)')
    .option('--val-fraction <f>', 'share of documents held out for validation, in [0, 1)', '0.01')
    .option('--seed <s>', 'seed of the train/validation split (and the default shuffle seed for training)', '0')
    .option('--workers <n>', 'tokenising worker threads (0 = tokenise on the main thread)', String(os.availableParallelism()))
    .addOption(new Option('--split-on <mode>', 'how .txt files are cut into documents').choices(['blank-lines', 'file']).default('blank-lines'))
    .option('--text-field <name>', 'the JSONL field that holds the text', 'text')
    .option('--eos-token <token>', 'token appended to every document (default: the model\'s first eos token)')
    .option('--shard-tokens <n>', 'start a new shard after this many tokens (documents are never cut)', '100000000')
    .option('--json', 'print the summary as JSON')
    .addHelpText('after', PREPARE_HELP)
    .action(async (o: PrepareFlags) => {
      let bar: Progress | null = null;
      const onProgress = (p: PrepareProgress) => {
        const mib = (n: number) => Number((n / 2 ** 20).toFixed(1));
        bar ??= progressBar('data prepare', mib(p.bytesTotal), 'MiB');
        bar.update(mib(p.bytesDone));
      };
      let r: PrepareSummary;
      try {
        r = await prepareData({
          inputs: o.input, tokenizerDir: o.tokenizer, outDir: o.out,
          valFraction: parseNumber(o.valFraction, '--val-fraction', { min: 0, max: 1 }),
          seed: parseNumber(o.seed, '--seed', { min: 0, integer: true }),
          workers: parseNumber(o.workers, '--workers', { min: 0, max: 256, integer: true }),
          splitOn: o.splitOn, textField: o.textField, eosToken: o.eosToken,
          shardTokens: parseNumber(o.shardTokens, '--shard-tokens', { min: 1, integer: true }),
          onProgress,
        });
      } finally {
        (bar as Progress | null)?.stop();
      }
      console.log(o.json ? JSON.stringify(r) : formatPrepareSummary(r));
    });
}

export function formatPrepareSummary(r: PrepareSummary): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const shards = (k: number) => `${k} shard${k === 1 ? '' : 's'}`;
  const w = Math.max(n(r.train.documents).length, n(r.val.documents).length);
  const t = Math.max(n(r.train.tokens).length, n(r.val.tokens).length);
  return [
    `prepared ${r.out}: ${n(r.documents)} documents from ${n(r.documents_read)} read in ${r.inputs} input${r.inputs === 1 ? '' : 's'} (${n(r.duplicates_dropped)} duplicates and ${n(r.empty_dropped)} empty dropped)`,
    `  train  ${n(r.train.documents).padStart(w)} documents  ${n(r.train.tokens).padStart(t)} tokens  ${shards(r.train.shards)}`,
    `  val    ${n(r.val.documents).padStart(w)} documents  ${n(r.val.tokens).padStart(t)} tokens  ${shards(r.val.shards)}`,
    `  ${r.seconds.toFixed(2)} s, ${n(r.tokens_per_s)} tokens/s with ${r.workers === 0 ? 'no worker threads' : `${r.workers} worker${r.workers === 1 ? '' : 's'}`}`,
  ].join('\n');
}
