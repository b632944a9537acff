// `kompresor data prepare`: input files -> documents -> exact-match dedup -> train/val split ->
// tokens (+EOS) -> KPTOK shards + manifest.json (docs/data-format.md).
//
// Determinism: documents keep their input order whatever the worker count (results are written
// in the order chunks were sent); a document goes to validation when a hash of (seed, sha256 of
// its text) falls below --val-fraction, so the split does not depend on order or workers either.
// Re-running over the same inputs gives byte-identical shards and manifest.
// Atomicity: shards are written under temp names and renamed to names that carry their sha256;
// manifest.json is replaced last (the commit point), then shards it does not list are deleted.
// A killed run leaves the previous dataset readable. Two runs into one folder at once are not
// supported.
// Limits: dedup keeps 12 bytes of sha256 per distinct document in a Set (~60 bytes per document).
import fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { createHash } from 'node:crypto';
import { KompresorError } from '../errors.ts';
import { loadTokenizer, type LoadedTokenizer } from '../io/tokenizer.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { withPath } from '../io/safetensors.ts';
import { checkOutDir, makeDirs } from '../io/out_guard.ts';
import { expandInputs, readDocuments, type InputFile } from './inputs.ts';
import { ShardWriter, sha256File } from './shards.ts';
import { inlineEncoder, startWorkerPool, type EncodedBatch, type Encoder } from './tokenize_pool.ts';
import { MANIFEST_FORMAT, MANIFEST_VERSION, manifestPath, type ShardInfo, type SplitInfo, type SplitName, type SplitOn, type TokenManifest } from './manifest.ts';

export interface PrepareOptions {
  inputs: string[];
  tokenizerDir: string;
  outDir: string;
  /** Share of documents that go to validation, in [0, 1). Default 0.01. */
  valFraction?: number;
  /** Seeds the train/val split. Default 0. */
  seed?: number;
  /** Tokenising threads; 0 tokenises on the calling thread. Default: available CPUs. */
  workers?: number;
  splitOn?: SplitOn;
  textField?: string;
  /** Token appended to every document; default the model's first end-of-sequence token. */
  eosToken?: string;
  /** A shard is closed once it holds this many tokens (documents are never cut). Default 100M. */
  shardTokens?: number;
  onProgress?: (p: PrepareProgress) => void;
}

export interface PrepareProgress { bytesDone: number; bytesTotal: number; documents: number; tokens: number }

export interface PrepareSummary {
  out: string;
  inputs: number;
  input_bytes: number;
  documents_read: number;
  duplicates_dropped: number;
  empty_dropped: number;
  documents: number;
  train: { documents: number; tokens: number; shards: number };
  val: { documents: number; tokens: number; shards: number };
  tokens: number;
  workers: number;
  seconds: number;
  tokens_per_s: number;
}

const CHUNK_CHARS = 1 << 18;
const CHUNK_DOCS = 4096;
export const SHARD_NAME = /^(train|val)-\d{5}-[0-9a-f]{12}\.kptok$/;

export async function prepareData(o: PrepareOptions): Promise<PrepareSummary> {
  const t0 = performance.now();
  const opts = resolveOptions(o);
  const files = expandInputs(o.inputs);
  const tok = loadTokenizer(o.tokenizerDir);
  const eos = resolveEos(tok, o.eosToken);
  // a folder holding a previous dataset (its manifest.json) is ours to replace; anything else is refused
  checkOutDir(o.outDir, '--out', [...o.inputs, o.tokenizerDir], { mustBeEmpty: true, replaceableIf: 'manifest.json' });
  makeDirs(o.outDir);
  const tokenBytes = tok.vocabSize <= 65536 ? 2 : 4;
  const writer = new DatasetWriter(o.outDir, tokenBytes, eos.id, tok.vocabSize, opts.shardTokens);
  let encoder: Encoder | null = null;
  try {
    encoder = opts.workers === 0 ? inlineEncoder(tok, eos.id) : await startWorkerPool(opts.workers, { tokenizerDir: o.tokenizerDir, eosId: eos.id });
    const stats = await runPipeline(files, opts, encoder, writer, o.onProgress);
    const splits = writer.finish();
    const manifest: TokenManifest = {
      format: MANIFEST_FORMAT, version: MANIFEST_VERSION,
      tokenizer: { name: nodePath.basename(nodePath.resolve(o.tokenizerDir)), vocab_size: tok.vocabSize, eos_id: eos.id, eos_token: eos.token,
        sha256: sha256File(nodePath.join(o.tokenizerDir, 'tokenizer.json')) },
      dtype: tokenBytes === 2 ? 'uint16' : 'uint32',
      seed: opts.seed, val_fraction: opts.valFraction, split_on: opts.splitOn, text_field: opts.textField,
      inputs: files.map((f, i) => ({ path: f.path, bytes: f.bytes, documents: stats.perFile[i] })),
      dedup: { documents_read: stats.read, duplicates_dropped: stats.duplicates, empty_dropped: stats.empty },
      splits,
    };
    writeFileAtomic(manifestPath(o.outDir), JSON.stringify(manifest, null, 2) + '\n');
    removeStaleShards(o.outDir, splits);
    return summarize(o.outDir, files, manifest, opts.workers, (performance.now() - t0) / 1000);
  } catch (e) {
    writer.abort();
    throw e;
  } finally {
    await encoder?.close();
  }
}

type Resolved = Required<Pick<PrepareOptions, 'valFraction' | 'seed' | 'workers' | 'splitOn' | 'textField' | 'shardTokens'>>;

function resolveOptions(o: PrepareOptions): Resolved {
  const r: Resolved = { valFraction: o.valFraction ?? 0.01, seed: o.seed ?? 0, workers: o.workers ?? os.availableParallelism(),
    splitOn: o.splitOn ?? 'blank-lines', textField: o.textField ?? 'text', shardTokens: o.shardTokens ?? 100_000_000 };
  const bad = (where: string, rule: string, found: unknown) => new KompresorError({ code: 'input_invalid', where, rule, found: JSON.stringify(found) });
  if (!(r.valFraction >= 0 && r.valFraction < 1)) throw bad('--val-fraction', '--val-fraction is a share of documents in [0, 1)', r.valFraction);
  if (!Number.isSafeInteger(r.seed)) throw bad('--seed', '--seed is an integer', r.seed);
  if (!Number.isInteger(r.workers) || r.workers < 0 || r.workers > 256) throw bad('--workers', '--workers is an integer in [0, 256] (0 = this thread)', r.workers);
  if (r.splitOn !== 'blank-lines' && r.splitOn !== 'file') throw bad('--split-on', '--split-on is "blank-lines" or "file"', r.splitOn);
  if (!Number.isSafeInteger(r.shardTokens) || r.shardTokens < 1) throw bad('--shard-tokens', '--shard-tokens is a positive integer', r.shardTokens);
  return r;
}

function resolveEos(tok: LoadedTokenizer, eosToken: string | undefined): { id: number; token: string } {
  if (eosToken !== undefined) {
    const id = tok.tokenToId(eosToken);
    if (id === undefined) {
      throw new KompresorError({ code: 'tokenizer_invalid', where: `--eos-token ${eosToken}`, rule: 'the end-of-document token must be in the tokenizer\'s vocabulary',
        found: 'no such token', hint: 'give a special token of this tokenizer, e.g. <|endoftext|> or </s>' });
    }
    return { id, token: eosToken };
  }
  const id = tok.eosTokenIds[0];
  if (id === undefined) {
    throw new KompresorError({ code: 'tokenizer_invalid', where: tok.dir, rule: 'documents are separated by an end-of-sequence token',
      expected: 'eos_token in tokenizer_config.json or eos_token_id in generation_config.json', found: 'neither', hint: 'name one with --eos-token' });
  }
  return { id, token: tok.idToToken(id) ?? '' };
}

// ---------------------------------------------------------------------------------------------
// the pipeline: read + dedup + split on this thread, tokenise in chunks, write in order

interface Chunk { texts: string[]; splits: SplitName[]; chars: number }
interface InFlight { result: Promise<EncodedBatch>; splits: SplitName[]; bytesDone: number }
interface Stats { read: number; duplicates: number; empty: number; perFile: number[] }

async function runPipeline(files: InputFile[], o: Resolved, encoder: Encoder, writer: DatasetWriter,
  onProgress: PrepareOptions['onProgress']): Promise<Stats> {
  const stats: Stats = { read: 0, duplicates: 0, empty: 0, perFile: files.map(() => 0) };
  const seen = new Set<string>();
  const bytesTotal = files.reduce((a, f) => a + f.bytes, 0);
  const maxInFlight = Math.max(1, 2 * encoder.workers);
  const queue: InFlight[] = [];
  let bytesDone = 0, chunk: Chunk = { texts: [], splits: [], chars: 0 };
  const drainOne = async () => {
    const f = queue.shift()!;
    const r = await f.result;
    let at = 0;
    r.lengths.forEach((n, i) => { writer.add(f.splits[i], r.tokens.subarray(at, at + n)); at += n; });
    onProgress?.({ bytesDone: f.bytesDone, bytesTotal, documents: writer.documents, tokens: writer.tokens });
  };
  const send = async () => {
    if (chunk.texts.length === 0) return;
    const result = encoder.encode(chunk.texts);
    result.catch(() => {}); // a chunk may fail while an earlier one is awaited: it is rethrown when its turn comes
    queue.push({ result, splits: chunk.splits, bytesDone });
    chunk = { texts: [], splits: [], chars: 0 };
    while (queue.length >= maxInFlight) await drainOne();
  };
  const splitSeed = Buffer.from(`kompresor-split/${o.seed}/`);
  for (const [i, file] of files.entries()) {
    for (const text of readDocuments(file, o, (n) => { bytesDone += n; })) {
      stats.read++; stats.perFile[i]++;
      if (text.trim() === '') { stats.empty++; continue; }
      const digest = createHash('sha256').update(text).digest();
      const key = digest.toString('latin1', 0, 12);
      if (seen.has(key)) { stats.duplicates++; continue; }
      seen.add(key);
      chunk.texts.push(text);
      chunk.splits.push(isValidation(splitSeed, digest, o.valFraction) ? 'val' : 'train');
      chunk.chars += text.length;
      if (chunk.chars >= CHUNK_CHARS || chunk.texts.length >= CHUNK_DOCS) await send();
    }
  }
  await send();
  while (queue.length > 0) await drainOne();
  onProgress?.({ bytesDone, bytesTotal, documents: writer.documents, tokens: writer.tokens });
  if (writer.documents === 0) {
    throw new KompresorError({ code: 'input_invalid', where: '--input', rule: 'the inputs must contain at least one non-empty document',
      found: `${stats.read} documents read, ${stats.empty} empty, ${stats.duplicates} duplicates` });
  }
  return stats;
}

/** A document is in validation when sha256(seed prefix ++ sha256(text)), read as a fraction in [0, 1), is below valFraction. */
export function isValidation(splitSeed: Buffer, textDigest: Buffer, valFraction: number): boolean {
  const h = createHash('sha256').update(splitSeed).update(textDigest).digest();
  return h.readUIntBE(0, 6) / 2 ** 48 < valFraction;
}

// ---------------------------------------------------------------------------------------------
// shards of both splits

class DatasetWriter {
  private open: Partial<Record<SplitName, ShardWriter>> = {};
  private done: Record<SplitName, ShardInfo[]> = { train: [], val: [] };
  private finalPaths: string[] = [];
  documents = 0;
  tokens = 0;

  constructor(private dir: string, private tokenBytes: 2 | 4, private eosId: number, private vocabSize: number, private shardTokens: number) {}

  add(split: SplitName, ids: Uint32Array): void {
    let w = this.open[split];
    if (w && w.nTokens > 0 && w.nTokens + ids.length > this.shardTokens) { this.close(split); w = undefined; }
    if (!w) {
      const tmp = nodePath.join(this.dir, `${split}-${String(this.done[split].length).padStart(5, '0')}.kptok.tmp-${process.pid}`);
      try {
        w = this.open[split] = new ShardWriter(tmp, this.tokenBytes, this.eosId, this.vocabSize);
      } catch (e) {
        fs.rmSync(tmp, { force: true }); // created, then its header did not fit on the disk
        throw withPath(e, tmp);
      }
    }
    try { w.appendDoc(ids); } catch (e) { throw withPath(e, w.path); }
    this.documents++;
    this.tokens += ids.length;
  }

  private close(split: SplitName): void {
    const w = this.open[split]!;
    let r: { bytes: number; sha256: string };
    // still in this.open while it can fail, so abort() removes its temp file (a full disk left it)
    try { r = w.finish(); } catch (e) { throw withPath(e, w.path); }
    delete this.open[split];
    const { bytes, sha256 } = r;
    const file = `${split}-${String(this.done[split].length).padStart(5, '0')}-${sha256.slice(0, 12)}.kptok`;
    fs.renameSync(w.path, nodePath.join(this.dir, file));
    this.finalPaths.push(nodePath.join(this.dir, file));
    this.done[split].push({ file, documents: w.nDocs, tokens: w.nTokens, bytes, sha256 });
  }

  finish(): Record<SplitName, SplitInfo> {
    for (const s of ['train', 'val'] as const) if (this.open[s]) this.close(s);
    const info = (s: ShardInfo[]): SplitInfo => ({ documents: s.reduce((a, x) => a + x.documents, 0), tokens: s.reduce((a, x) => a + x.tokens, 0), shards: s });
    return { train: info(this.done.train), val: info(this.done.val) };
  }

  /** Removes this run's unfinished shards (finished ones are harmless: no manifest lists them yet). */
  abort(): void {
    for (const s of ['train', 'val'] as const) this.open[s]?.abort();
    this.open = {};
  }
}

/** After the new manifest is in place: shards and temp files it does not list go. */
function removeStaleShards(dir: string, splits: Record<SplitName, SplitInfo>): void {
  const keep = new Set([...splits.train.shards, ...splits.val.shards].map((s) => s.file));
  for (const f of fs.readdirSync(dir)) {
    if ((SHARD_NAME.test(f) && !keep.has(f)) || /\.kptok\.tmp-\d+$/.test(f)) fs.rmSync(nodePath.join(dir, f), { force: true });
  }
}

function summarize(out: string, files: InputFile[], m: TokenManifest, workers: number, seconds: number): PrepareSummary {
  const split = (s: SplitInfo) => ({ documents: s.documents, tokens: s.tokens, shards: s.shards.length });
  const tokens = m.splits.train.tokens + m.splits.val.tokens;
  return {
    out, inputs: files.length, input_bytes: files.reduce((a, f) => a + f.bytes, 0),
    documents_read: m.dedup.documents_read, duplicates_dropped: m.dedup.duplicates_dropped, empty_dropped: m.dedup.empty_dropped,
    documents: m.splits.train.documents + m.splits.val.documents,
    train: split(m.splits.train), val: split(m.splits.val), tokens, workers,
    seconds: Number(seconds.toFixed(3)), tokens_per_s: Math.round(tokens / Math.max(seconds, 1e-9)),
  };
}
