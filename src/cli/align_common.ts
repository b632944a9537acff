// What `kompresor sft` and `kompresor dpo` share besides the trainer flags: checks of the model
// folder and of the token ids against its vocabulary, the saved state of a run being resumed,
// and the data summary line. (Resuming a run: resumeState in trainer_flags.ts.)
import fs from 'node:fs';
import nodePath from 'node:path';
import { KompresorError } from '../errors.ts';
import type { LoadedTokenizer } from '../io/tokenizer.ts';
import type { AlignData, TokenExample } from '../align/data.ts';
import type { Command } from 'commander';
import { openCheckpoint } from '../io/checkpoint.ts';
import { Decoder } from '../model/decoder.ts';
import { parseTrainerFlags, resumeState } from './trainer_flags.ts';

export function checkModelFolder(dir: string, flag: string, tokenizer = true): void {
  if (!fs.existsSync(nodePath.join(dir, 'config.json'))) {
    throw new KompresorError({ code: 'file_not_found', where: `${flag} ${dir}`, rule: 'the model folder must exist and hold config.json and safetensors weights',
      found: fs.existsSync(dir) ? 'no config.json in it' : 'no such folder', hint: 'pass a local Hugging Face model folder' });
  }
  if (tokenizer && !fs.existsSync(nodePath.join(dir, 'tokenizer.json'))) {
    throw new KompresorError({ code: 'file_not_found', where: `${flag} ${dir}`, rule: 'alignment data is tokenized with the model\'s own tokenizer: the folder must hold tokenizer.json',
      found: 'no tokenizer.json', hint: 'copy the tokenizer files of the model it came from into the folder' });
  }
}


/** Every token id must index the model's embedding: refused up front, naming the row. */
export function checkVocab(examples: Iterable<TokenExample>, vocabSize: number, tok: LoadedTokenizer): void {
  for (const e of examples) {
    for (const id of e.ids) {
      if (id >= vocabSize) {
        throw new KompresorError({ code: 'ids_out_of_vocab', where: e.where, rule: 'token ids must index the model\'s vocabulary',
          expected: `ids < vocab_size ${vocabSize}`, found: `id ${id} (${JSON.stringify(tok.idToToken(id))})`, hint: 'use the tokenizer the model was trained with' });
      }
    }
  }
}

/** "train: 980 examples from 1000 rows (20 dropped: data.jsonl:17, ...), 12,345 completion tokens" */
export function describeData<T>(label: string, d: AlignData<T>, what: string, tokens: number): string {
  const drop = d.dropped.length > 0 ? ` (${d.dropped.length} dropped with --drop-long: ${d.dropped.slice(0, 3).join(', ')}${d.dropped.length > 3 ? ', ...' : ''})` : '';
  return `${label}: ${d.examples.length.toLocaleString('en-US')} ${what} from ${d.rows.toLocaleString('en-US')} rows${drop}, ${tokens.toLocaleString('en-US')} completion tokens`;
}

export function abs(p: string | undefined): string | null {
  return p === undefined ? null : nodePath.resolve(p);
}

/**
 * The part of resuming an SFT or DPO run the two share: the checkpoint and saved state, the
 * trainer flags given again (they override the saved options), the data paths (which may have
 * moved), and the row length, which must stay: SFT and DPO pack (or cut) examples into rows of
 * --seq-len tokens and a checkpoint's data position counts those rows, so another length is
 * refused here, naming the flag, rather than later as a data-position mismatch that seems to
 * blame the data file.
 */
export function resumeAlignRun<M extends { data: string; evalData: string | null }>(command: 'sft' | 'dpo', runDir: string,
  o: { data?: string; evalData?: string }, c: Command) {
  const { dir, state } = resumeState(runDir, command);
  const changes = parseTrainerFlags(c, true);
  const saved = state.options.seqLen;
  if (changes.seqLen !== undefined && changes.seqLen !== saved) {
    throw new KompresorError({ code: 'input_invalid', where: '--seq-len', rule: `a resumed ${command} run keeps the row length it started with (its saved data position counts rows of that length)`,
      expected: `${saved} (or no --seq-len)`, found: `${changes.seqLen}`,
      hint: `resume with \`kompresor ${command} --resume ${runDir}\` and no --seq-len; another length needs a new run (--out) from a model folder` });
  }
  const meta = state.meta as unknown as M;
  const paths = { data: o.data ? nodePath.resolve(o.data) : meta.data, evalData: o.evalData ? nodePath.resolve(o.evalData) : meta.evalData };
  const ck = openCheckpoint(dir); // headers only: the trainer reads the weights
  return { state, saved: meta, paths, changes, model: new Decoder(ck.config), config: ck.rawConfig };
}
