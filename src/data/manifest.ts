// manifest.json of a prepared data folder (docs/data-format.md §3): what was tokenised, with
// which tokenizer, how it was split and deduplicated, and the shards of each split with their
// sha256. Reading validates the structure, opens every shard of a split and checks it against
// the manifest (counts, sizes, sha256), so training never starts on a damaged or foreign folder.
// Limits: sha256 verification reads every byte of the split once (about 1 s per GB).
import fs from 'node:fs';
import nodePath from 'node:path';
import { KompresorError } from '../errors.ts';
import { ShardReader, sha256File } from './shards.ts';

export const MANIFEST_FORMAT = 'kompresor-tokens';
export const MANIFEST_VERSION = 1;
export type SplitName = 'train' | 'val';
export type SplitOn = 'blank-lines' | 'file';

export interface ShardInfo { file: string; documents: number; tokens: number; bytes: number; sha256: string }
export interface SplitInfo { documents: number; tokens: number; shards: ShardInfo[] }

export interface TokenManifest {
  format: typeof MANIFEST_FORMAT;
  version: number;
  tokenizer: { name: string; vocab_size: number; eos_id: number; eos_token: string; sha256: string };
  dtype: 'uint16' | 'uint32';
  seed: number;
  val_fraction: number;
  split_on: SplitOn;
  text_field: string;
  inputs: { path: string; bytes: number; documents: number }[];
  dedup: { documents_read: number; duplicates_dropped: number; empty_dropped: number };
  splits: Record<SplitName, SplitInfo>;
}

export function manifestPath(dir: string): string { return nodePath.join(dir, 'manifest.json'); }

/** Reads and validates DATA_DIR/manifest.json (structure only; shards are checked by openSplit). */
export function readManifest(dir: string): TokenManifest {
  const path = manifestPath(dir);
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) {
    // a raw file given as the data: it is the input of data prepare, never its output
    throw new KompresorError({ code: 'input_invalid', where: dir, rule: 'the data is a folder made by `kompresor data prepare`', found: 'a file',
      hint: `run \`kompresor data prepare --input ${dir} --tokenizer MODEL_DIR --out DATA_DIR\` and pass DATA_DIR` });
  }
  if (!fs.existsSync(path)) {
    throw new KompresorError({ code: 'file_not_found', where: path, rule: 'a prepared data folder holds manifest.json', found: 'no such file',
      hint: `run \`kompresor data prepare --input FILES --tokenizer MODEL_DIR --out ${dir}\` first` });
  }
  let m: unknown;
  try {
    m = JSON.parse(fs.readFileSync(path, 'utf8'));
  } catch (e) {
    throw new KompresorError({ code: 'input_invalid', where: path, rule: 'manifest.json must be valid JSON', found: (e as Error).message });
  }
  validateManifest(m, path);
  return m;
}

function validateManifest(m: unknown, path: string): asserts m is TokenManifest {
  const bad = (key: string, rule: string, found: unknown) => new KompresorError({ code: 'input_invalid', where: `${path}: ${key}`, rule, found: JSON.stringify(found),
    hint: 'the manifest is damaged or from another tool; run `kompresor data prepare` again' });
  const obj = (v: unknown, key: string) => { if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(key, 'must be an object', v); return v as Record<string, unknown>; };
  const int = (v: unknown, key: string) => { if (!Number.isSafeInteger(v) || (v as number) < 0) throw bad(key, 'must be a non-negative integer', v); };
  const str = (v: unknown, key: string) => { if (typeof v !== 'string') throw bad(key, 'must be a string', v); };
  const root = obj(m, '(root)');
  if (root.format !== MANIFEST_FORMAT) throw bad('format', `must be "${MANIFEST_FORMAT}"`, root.format);
  if (root.version !== MANIFEST_VERSION) throw bad('version', `must be ${MANIFEST_VERSION} (the version this kompresor reads)`, root.version);
  const tok = obj(root.tokenizer, 'tokenizer');
  int(tok.vocab_size, 'tokenizer.vocab_size'); int(tok.eos_id, 'tokenizer.eos_id'); str(tok.name, 'tokenizer.name');
  if (root.dtype !== 'uint16' && root.dtype !== 'uint32') throw bad('dtype', 'must be "uint16" or "uint32"', root.dtype);
  const splits = obj(root.splits, 'splits');
  for (const name of ['train', 'val'] as const) {
    const s = obj(splits[name], `splits.${name}`);
    int(s.documents, `splits.${name}.documents`); int(s.tokens, `splits.${name}.tokens`);
    if (!Array.isArray(s.shards)) throw bad(`splits.${name}.shards`, 'must be a list', s.shards);
    s.shards.forEach((x, i) => {
      const k = `splits.${name}.shards[${i}]`;
      const sh = obj(x, k);
      str(sh.file, `${k}.file`); str(sh.sha256, `${k}.sha256`);
      int(sh.documents, `${k}.documents`); int(sh.tokens, `${k}.tokens`); int(sh.bytes, `${k}.bytes`);
      // a file name, never a path: the manifest cannot point outside its folder
      if (nodePath.basename(sh.file as string) !== sh.file) throw bad(`${k}.file`, 'must be a file name inside the data folder', sh.file);
    });
  }
}

/**
 * Refuses data whose token ids may not index the model's embedding. A model's vocab_size may be
 * larger than its tokenizer's (embeddings padded to a multiple of 64 or 128), never smaller.
 */
export function checkVocab(manifest: TokenManifest, modelVocabSize: number, where = 'manifest.json'): void {
  if (manifest.tokenizer.vocab_size > modelVocabSize) {
    throw new KompresorError({ code: 'ids_out_of_vocab', where: `${where}: tokenizer.vocab_size`,
      rule: 'the data\'s tokenizer vocabulary must fit in the model\'s embedding',
      expected: `at most ${modelVocabSize} (the model's vocab_size)`, found: `${manifest.tokenizer.vocab_size} (tokenizer "${manifest.tokenizer.name}")`,
      hint: 'prepare the data with the model\'s own tokenizer (--tokenizer MODEL_DIR)' });
  }
}

// ---------------------------------------------------------------------------------------------
// an opened split: its shards as one list of documents

export class TokenSplit {
  /** firstDoc[i]: global index of shard i's first document; firstDoc[shards.length] = nDocs. */
  private readonly firstDoc: number[];

  constructor(readonly name: SplitName, readonly shards: ShardReader[], readonly eosId: number, readonly vocabSize: number) {
    this.firstDoc = [0];
    for (const s of shards) this.firstDoc.push(this.firstDoc[this.firstDoc.length - 1] + s.nDocs);
  }

  get nDocs(): number { return this.firstDoc[this.firstDoc.length - 1]; }
  get nTokens(): number { return this.shards.reduce((a, s) => a + s.nTokens, 0); }

  /** (shard, local document) of global document d, by binary search over the shards. */
  private locate(d: number): [ShardReader, number] {
    let lo = 0, hi = this.shards.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.firstDoc[mid] <= d) lo = mid; else hi = mid - 1;
    }
    return [this.shards[lo], d - this.firstDoc[lo]];
  }

  docLength(d: number): number {
    const [s, i] = this.locate(d);
    return s.docLength(i);
  }

  /** Tokens [from, from + count) of document d. */
  readDoc(d: number, from = 0, count?: number): Uint32Array {
    const [s, i] = this.locate(d);
    const n = count ?? s.docLength(i) - from;
    return s.readTokens(s.offsets[i] + from, n);
  }

  close(): void { for (const s of this.shards) s.close(); }
}

/**
 * Opens one split of a prepared folder. Each shard's header must agree with the manifest, and
 * with verify (the default) its sha256 too.
 */
export function openSplit(dir: string, manifest: TokenManifest, name: SplitName, opts: { verify?: boolean } = {}): TokenSplit {
  const readers: ShardReader[] = [];
  try {
    for (const info of manifest.splits[name].shards) readers.push(openCheckedShard(dir, manifest, info, opts.verify ?? true));
  } catch (e) {
    for (const r of readers) r.close();
    throw e;
  }
  return new TokenSplit(name, readers, manifest.tokenizer.eos_id, manifest.tokenizer.vocab_size);
}

function openCheckedShard(dir: string, manifest: TokenManifest, info: ShardInfo, verify: boolean): ShardReader {
  const path = nodePath.join(dir, info.file);
  const r = ShardReader.open(path);
  const h = r.header;
  const mismatch = (rule: string, expected: unknown, found: unknown) => {
    r.close();
    return new KompresorError({ code: 'input_invalid', where: path, rule, expected: String(expected), found: String(found),
      hint: 'the file changed after `data prepare` (damage or a partial copy); restore it or prepare the data again' });
  };
  if (h.nTokens !== info.tokens || h.nDocs !== info.documents) {
    throw mismatch('the shard must hold the documents and tokens manifest.json lists', `${info.documents} documents, ${info.tokens} tokens`, `${h.nDocs} documents, ${h.nTokens} tokens`);
  }
  if (h.tokenBytes !== (manifest.dtype === 'uint16' ? 2 : 4) || h.eosId !== manifest.tokenizer.eos_id || h.vocabSize !== manifest.tokenizer.vocab_size) {
    throw mismatch('the shard header must match manifest.json (dtype, eos_id, vocab_size)', `${manifest.dtype}, ${manifest.tokenizer.eos_id}, ${manifest.tokenizer.vocab_size}`,
      `uint${h.tokenBytes * 8}, ${h.eosId}, ${h.vocabSize}`);
  }
  if (verify) {
    const sha = sha256File(path);
    if (sha !== info.sha256) throw mismatch('the shard\'s sha256 must match manifest.json', info.sha256, sha);
  }
  return r;
}
