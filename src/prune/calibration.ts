// Calibration data for `kompresor score`: documents from text or JSON Lines files, tokenized with
// the model's own tokenizer, packed into `samples` rows of exactly `seqLen` tokens.
//
// Documents.
//   .txt / .md / other text   one document per block separated by blank lines (txtSplit 'blank-lines'),
//                             or the whole file as one document (txtSplit 'file')
//   .jsonl / .ndjson / .json  one object per line (a .json file may also be one array of objects);
//                             the text is the "text" field, else "content", else "messages"
//                             ([{role, content}]) rendered with the model's chat template, or, for
//                             a model without one, the contents joined by blank lines
// Each document is encoded as the tokenizer does by default (a BOS when the tokenizer adds one);
// chat-template text already holds its special tokens, so it is encoded without adding more.
//
// Packing. Documents are visited in an order shuffled by `seed` (so the same files, seed and sizes
// give the same rows) and packed one after the other into rows; a document that does not fit in
// the rest of a row is cut, its tail starting the next row as a document of its own (positions
// restart at 0). Rows are therefore full: samples × seqLen valid tokens, no padding, no compute
// spent on nothing. Attention never crosses documents (batchFromDocs gives each its own segment).
// Only the documents needed are tokenized, so a large file costs reading, not tokenizing.
import fs from 'node:fs';
import nodePath from 'node:path';
import { KompresorError } from '../errors.ts';
import { notAFile } from '../io/text_file.ts';
import type { LoadedTokenizer } from '../io/tokenizer.ts';
import { batchFromDocs, type Batch } from '../model/batch.ts';
import { Rng } from '../model/sampling.ts';

export type TxtSplit = 'blank-lines' | 'file';

export interface CalibrationOptions {
  samples: number;
  seqLen: number;
  seed: number;
  /** How plain-text files become documents (default 'blank-lines'). */
  txtSplit?: TxtSplit;
  /** Token ids must be below this (the model's vocab_size). */
  vocabSize: number;
}

export interface CalibrationSet {
  files: string[];
  samples: number;
  seqLen: number;
  /** [samples][documents in the row][tokens]; every row holds exactly seqLen tokens. */
  rows: number[][][];
  /** Valid (non-padding) tokens per row: seqLen for every row, kept explicit for the statistics. */
  valid: Int32Array;
  /** Valid tokens in all rows (samples × seqLen). */
  tokens: number;
  /** Documents found in the files, and how many of them were (partly) used. */
  documents: number;
  documentsUsed: number;
}

/** A document before tokenization; `where` is "file:line" for error messages. */
interface Doc { text: string; specials: boolean; where: string }

type Tok = Pick<LoadedTokenizer, 'encode' | 'hasChatTemplate' | 'applyChatTemplate'>;

/** Files larger than this are refused: a JS string tops out near 512 M characters. */
const MAX_FILE_BYTES = 512 * 1024 * 1024;
const JSON_EXT = new Set(['.jsonl', '.ndjson', '.json']);
const BINARY_EXT = new Set(['.parquet', '.arrow', '.gz', '.zst', '.bz2', '.xz', '.zip', '.tar', '.safetensors', '.bin']);

// ---------------------------------------------------------------------------------------------
// building the rows

export function buildCalibration(files: string[], tok: Tok, o: CalibrationOptions): CalibrationSet {
  if (files.length === 0) {
    throw new KompresorError({ code: 'input_invalid', where: '--data', rule: 'calibration needs at least one data file',
      found: 'none', hint: 'pass text or JSON Lines files, e.g. --data corpus.txt' });
  }
  const docs = files.flatMap((f) => readDocuments(f, tok, o.txtSplit ?? 'blank-lines'));
  if (docs.length === 0) {
    throw new KompresorError({ code: 'input_invalid', where: files.join(', '), rule: 'the calibration files must hold at least one non-empty document',
      found: '0 documents', hint: 'check the files (a .txt needs text; a .jsonl needs {"text": ...} lines)' });
  }
  const order = shuffled(docs.length, o.seed);
  const packer = new Packer(o.samples, o.seqLen);
  let used = 0, seen = 0;
  for (const i of order) {
    if (packer.full()) break;
    const ids = tok.encode(docs[i].text, { addSpecialTokens: !docs[i].specials });
    checkIds(ids, o.vocabSize, docs[i].where);
    seen += ids.length;
    if (ids.length > 0) { packer.add(ids); used++; }
  }
  if (!packer.full()) throw notEnough(files, docs.length, seen, o);
  return {
    files, samples: o.samples, seqLen: o.seqLen, rows: packer.rows,
    valid: new Int32Array(o.samples).fill(o.seqLen), tokens: o.samples * o.seqLen,
    documents: docs.length, documentsUsed: used,
  };
}

/** Rows [r0, r1) as a decoder batch, and their valid-token counts. */
export function calibrationBatch(set: CalibrationSet, r0: number, r1: number, padId = 0): { batch: Batch; valid: Int32Array } {
  return { batch: batchFromDocs(set.rows.slice(r0, r1), set.seqLen, padId), valid: set.valid.slice(r0, r1) };
}

/** Fills rows in order; a document that overflows the current row is cut and continues in the next. */
class Packer {
  readonly rows: number[][][] = [];
  private used = 0;
  constructor(private readonly samples: number, private readonly seqLen: number) {}

  full(): boolean { return this.rows.length === this.samples && this.used === this.seqLen; }

  add(ids: number[]): void {
    let at = 0;
    while (at < ids.length && !this.full()) {
      if (this.rows.length === 0 || this.used === this.seqLen) { this.rows.push([]); this.used = 0; }
      const take = Math.min(ids.length - at, this.seqLen - this.used);
      this.rows[this.rows.length - 1].push(ids.slice(at, at + take));
      this.used += take;
      at += take;
    }
  }
}

/** A permutation of 0..n-1 (Fisher-Yates with the project's seeded generator). */
function shuffled(n: number, seed: number): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  const rng = new Rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    const t = p[i]; p[i] = p[j]; p[j] = t;
  }
  return p;
}

function checkIds(ids: number[], vocabSize: number, where: string): void {
  for (const id of ids) {
    if (id < 0 || id >= vocabSize) {
      throw new KompresorError({ code: 'ids_out_of_vocab', where, rule: 'the tokenizer\'s ids must index the model\'s vocabulary',
        expected: `0 <= id < ${vocabSize}`, found: `${id}`, hint: 'the tokenizer.json in the model folder does not belong to this model' });
    }
  }
}

function notEnough(files: string[], documents: number, found: number, o: CalibrationOptions): KompresorError {
  const need = o.samples * o.seqLen;
  const fits = Math.floor(found / o.seqLen);
  return new KompresorError({
    code: 'input_invalid', where: files.join(', '), rule: `--samples ${o.samples} × --seq-len ${o.seqLen} needs that many tokens of calibration data`,
    expected: `${need} tokens`, found: `${found} tokens in ${documents} documents`,
    hint: fits > 0 ? `add data, or lower --samples to ${fits} (or --seq-len)` : 'add data, or lower --seq-len',
  });
}

// ---------------------------------------------------------------------------------------------
// reading documents

/** The documents of one file, in file order. */
export function readDocuments(file: string, tok: Tok, txtSplit: TxtSplit): Doc[] {
  const text = readText(file);
  const ext = nodePath.extname(file).toLowerCase();
  if (JSON_EXT.has(ext)) return jsonDocuments(file, text, tok);
  if (txtSplit === 'file') return text.trim() ? [{ text, specials: false, where: file }] : [];
  const docs: Doc[] = [];
  let line = 1;
  // blocks separated by lines that are empty or whitespace only
  for (const part of text.split(/(\r?\n[ \t]*\r?\n)/)) {
    const lead = (part.match(/^\s*/)![0].match(/\n/g) ?? []).length;
    if (part.trim()) docs.push({ text: part.trim(), specials: false, where: `${file}:${line + lead}` });
    line += (part.match(/\n/g) ?? []).length;
  }
  return docs;
}

function readText(file: string): string {
  const ext = nodePath.extname(file).toLowerCase();
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) {
    throw new KompresorError({ code: 'file_not_found', where: file, rule: 'each --data file must exist',
      found: notAFile(file), hint: 'pass .txt or .jsonl files' });
  }
  if (BINARY_EXT.has(ext)) {
    throw new KompresorError({ code: 'input_invalid', where: file, rule: 'calibration files must be text or JSON Lines',
      expected: '.txt, .md, .jsonl or .json', found: ext, hint: 'export a sample as JSON Lines with a "text" field per line' });
  }
  const size = fs.statSync(file).size;
  if (size > MAX_FILE_BYTES) {
    throw new KompresorError({ code: 'input_invalid', where: file, rule: 'a calibration file must be at most 512 MiB',
      found: `${(size / 2 ** 20).toFixed(0)} MiB`, hint: 'calibration needs only samples × seq-len tokens; pass a sample, e.g. `head -n 20000 big.jsonl > calib.jsonl`' });
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(fs.readFileSync(file));
  } catch {
    throw new KompresorError({ code: 'input_invalid', where: file, rule: 'calibration files must be UTF-8 text', found: 'bytes that are not UTF-8',
      hint: 'convert the file to UTF-8, or pass a text export of the data' });
  }
}

function jsonDocuments(file: string, text: string, tok: Tok): Doc[] {
  const trimmed = text.trimStart();
  if (trimmed.startsWith('[')) {
    let arr: unknown;
    try { arr = JSON.parse(trimmed); } catch (e) {
      throw new KompresorError({ code: 'input_invalid', where: file, rule: 'a .json file must be one JSON array or JSON Lines', found: (e as Error).message });
    }
    return (arr as unknown[]).flatMap((v, i) => docOf(v, `${file}[${i}]`, tok));
  }
  const docs: Doc[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    const where = `${file}:${i + 1}`;
    let v: unknown;
    try { v = JSON.parse(line); } catch (e) {
      throw new KompresorError({ code: 'input_invalid', where, rule: 'each line of a JSON Lines file must be one JSON object',
        found: (e as Error).message, hint: 'use one {"text": "..."} object per line' });
    }
    docs.push(...docOf(v, where, tok));
  });
  return docs;
}

/** The document of one JSON record: "text", else "content", else "messages"; [] when empty. */
function docOf(v: unknown, where: string, tok: Tok): Doc[] {
  const bad = (found: string) => new KompresorError({ code: 'input_invalid', where,
    rule: 'each record must hold its text in "text" (or "content", or chat "messages")', expected: '{"text": "..."}', found,
    hint: 'convert the records so every line has a "text" string' });
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(Array.isArray(v) ? 'an array' : JSON.stringify(v));
  const r = v as Record<string, unknown>;
  for (const key of ['text', 'content']) {
    if (key in r) {
      if (typeof r[key] !== 'string') throw bad(`"${key}" of type ${typeof r[key]}`);
      return (r[key] as string).trim() ? [{ text: r[key] as string, specials: false, where }] : [];
    }
  }
  if ('messages' in r) return messagesDoc(r.messages, where, tok, bad);
  throw bad(`keys ${JSON.stringify(Object.keys(r))}`);
}

function messagesDoc(m: unknown, where: string, tok: Tok, bad: (found: string) => KompresorError): Doc[] {
  const ok = Array.isArray(m) && m.every((x) => typeof x === 'object' && x !== null
    && typeof (x as Record<string, unknown>).role === 'string' && typeof (x as Record<string, unknown>).content === 'string');
  if (!ok) throw bad('"messages" that is not a list of {role, content} strings');
  const msgs = m as { role: string; content: string }[];
  if (msgs.length === 0) return [];
  if (tok.hasChatTemplate) return [{ text: tok.applyChatTemplate(msgs), specials: true, where }];
  const text = msgs.map((x) => x.content).join('\n\n');
  return text.trim() ? [{ text, specials: false, where }] : [];
}
