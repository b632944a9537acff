// Hugging Face checkpoint folders: config.json plus model.safetensors, or shards listed by
// model.safetensors.index.json. Opening reads headers only; tensors load one at a time as F32.
// Saving writes the same layout back (sharded above maxShardBytes), one atomic file at a time.
import fs from 'node:fs';
import nodePath from 'node:path';
import { KompresorError } from '../errors.ts';
import { normalizeConfig, type ModelConfig } from './hf_config.ts';
import { makeDirs } from './out_guard.ts';
import { checkFinite, checkFinite16 } from './finite.ts';
import {
  readSafetensorsHeader, readTensorF32, readTensor16, readTensorRowsF32, writeSafetensors, writeAtomic, writeAll, storedBytes,
  type SafetensorsHeader, type TensorInfo, type TensorToWrite, type FloatDtype,
} from './safetensors.ts';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';
/** Files next to the weights that a saved checkpoint needs to be usable (tokenizer, generation). */
export const TOKENIZER_FILES = [
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json',
  'chat_template.jinja', 'tokenizer.model',
] as const;
const SHARD_RE = /^model-\d{5}-of-\d{5}\.safetensors$/;

export interface CheckpointTensor {
  /** Absolute path of the file holding the tensor. */
  file: string;
  info: TensorInfo;
}

export interface Checkpoint {
  dir: string;
  config: ModelConfig;
  /** config.json as parsed, for writing back with edits. */
  rawConfig: Record<string, unknown>;
  /** Every tensor of the checkpoint, by HF name. */
  tensors: Map<string, CheckpointTensor>;
  /** Loads one tensor as float32 (into `out` when given). */
  read(name: string, out?: Float32Array): Float32Array;
  /** Loads one tensor as 16-bit bit patterns (bf16, or f16 when `f16`); byte for byte when stored so. */
  read16(name: string, out: Uint16Array, f16: boolean): Uint16Array;
  /** Loads rows [row0, row0 + rows) of a tensor's first dimension (e.g. embedding rows). */
  readRows(name: string, row0: number, rows: number, out?: Float32Array): Float32Array;
}

// ---------------------------------------------------------------------------------------------
// opening

export function openCheckpoint(dir: string): Checkpoint {
  const abs = nodePath.resolve(dir);
  if (!fs.existsSync(abs) || !fs.statSync(abs).isDirectory()) {
    throw new KompresorError({ code: 'file_not_found', where: dir, rule: 'the model folder must exist',
      found: fs.existsSync(abs) ? 'a file, not a folder' : 'no such folder',
      hint: 'pass a local Hugging Face model folder holding config.json and model.safetensors' });
  }
  const configPath = nodePath.join(abs, 'config.json');
  const rawConfig = readJson(configPath, 'config_invalid',
    'every Hugging Face model folder has a config.json next to its weights; copy it from the original model');
  const config = normalizeConfig(rawConfig, configPath);
  tokenizerFilesOf(abs); // refused at opening, not after hours of training when final/ copies them
  const headers = new Map<string, SafetensorsHeader>();
  const tensors = listTensors(abs, headers);
  checkSizesAgainstTensors(config, tensors, abs);
  return {
    dir: abs, config, rawConfig, tensors,
    read(name, out) {
      const t = find(name);
      const v = readTensorF32(headers.get(t.file)!, t.info, out);
      checkFinite(v, name, t.file, t.info.shape);
      return v;
    },
    read16(name, out, f16) {
      const t = find(name);
      const v = readTensor16(headers.get(t.file)!, t.info, out, f16);
      checkFinite16(v, f16, name, t.file, t.info.shape);
      return v;
    },
    readRows(name, row0, rows, out) {
      const t = find(name);
      const v = readTensorRowsF32(headers.get(t.file)!, t.info, row0, rows, out);
      checkFinite(v, name, t.file, t.info.shape, row0);
      return v;
    },
  };
  function find(name: string): CheckpointTensor {
    const t = tensors.get(name);
    if (!t) {
      throw new KompresorError({ code: 'checkpoint_missing_tensor', where: `${abs}: tensor "${name}"`,
        rule: 'the tensor must be in the checkpoint', found: `${tensors.size} tensors without it` });
    }
    return t;
  }
}

/**
 * config.json's sizes against the tensor headers, before anything is sized by them: the
 * embedding gives vocab_size x hidden_size, the layer indices num_hidden_layers, layer 0's
 * projections the heads and intermediate_size. (Missing tensors are named later, by the load.)
 */
function checkSizesAgainstTensors(c: ModelConfig, tensors: Map<string, CheckpointTensor>, dir: string): void {
  let layers = 0;
  for (const name of tensors.keys()) {
    const m = /^model\.layers\.(\d+)\./.exec(name);
    if (m) layers = Math.max(layers, Number(m[1]) + 1);
  }
  const checks: [string, string, number[]][] = [
    ['model.embed_tokens.weight', 'vocab_size, hidden_size', [c.vocabSize, c.hiddenSize]],
    ['model.layers.0.self_attn.q_proj.weight', 'num_attention_heads x head_dim, hidden_size', [c.numHeads * c.headDim, c.hiddenSize]],
    ['model.layers.0.self_attn.k_proj.weight', 'num_key_value_heads x head_dim, hidden_size', [c.numKvHeads * c.headDim, c.hiddenSize]],
    ['model.layers.0.mlp.gate_proj.weight', 'intermediate_size, hidden_size', [c.intermediateSize, c.hiddenSize]],
  ];
  const bad = (key: string, expected: string, found: string) => new KompresorError({ code: 'config_invalid', where: `${dir}/config.json: ${key}`,
    rule: 'config.json\'s sizes must match the weights', expected, found, hint: 'the config does not belong to these weights; restore the model\'s own config.json' });
  if (layers > 0 && layers !== c.numLayers) throw bad('num_hidden_layers', `${c.numLayers} layers`, `weights for ${layers} (model.layers.0-${layers - 1})`);
  for (const [name, keys, want] of checks) {
    const shape = tensors.get(name)?.info.shape;
    if (shape && (shape.length !== 2 || shape[0] !== want[0] || shape[1] !== want[1])) {
      throw bad(keys, `${name} of shape ${JSON.stringify(want)}`, JSON.stringify(shape));
    }
  }
}

function readJson(path: string, code: 'config_invalid' | 'checkpoint_index', missingHint: string): Record<string, unknown> {
  if (!fs.existsSync(path)) {
    throw new KompresorError({ code: 'file_not_found', where: path, rule: 'the file must exist', found: 'no such file', hint: missingHint });
  }
  let v: unknown;
  try {
    v = JSON.parse(fs.readFileSync(path, 'utf8'));
  } catch (e) {
    throw new KompresorError({ code, where: path, rule: 'the file must be valid JSON', found: (e as Error).message });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new KompresorError({ code, where: path, rule: 'the file must hold a JSON object', found: Array.isArray(v) ? 'an array' : String(v) });
  }
  return v as Record<string, unknown>;
}

function listTensors(dir: string, headers: Map<string, SafetensorsHeader>): Map<string, CheckpointTensor> {
  const single = nodePath.join(dir, SINGLE_FILE);
  const out = new Map<string, CheckpointTensor>();
  if (fs.existsSync(single)) {
    if (!symlinkAllowed(dir, single)) {
      throw new KompresorError({ code: 'checkpoint_index', where: single, rule: 'weight files must be inside the model folder',
        expected: `a file in ${dir} (or in its hub cache's blobs/)`, found: `a symlink to ${fs.realpathSync(single)}` });
    }
    const h = readSafetensorsHeader(single);
    headers.set(single, h);
    for (const [name, info] of h.tensors) out.set(name, { file: single, info });
    return out;
  }
  const indexPath = nodePath.join(dir, INDEX_FILE);
  if (!fs.existsSync(indexPath)) {
    throw new KompresorError({ code: 'file_not_found', where: dir, rule: `the folder must hold ${SINGLE_FILE} or ${INDEX_FILE}`,
      found: 'neither', hint: 'only safetensors checkpoints are read; convert .bin/.pt weights with transformers save_pretrained' });
  }
  const weightMap = readWeightMap(indexPath);
  for (const [name, fileName] of weightMap) {
    const file = resolveShard(dir, indexPath, fileName);
    let h = headers.get(file);
    if (!h) { h = readSafetensorsHeader(file); headers.set(file, h); }
    const info = h.tensors.get(name);
    if (!info) {
      throw new KompresorError({ code: 'checkpoint_index', where: `${indexPath}: weight_map["${name}"]`,
        rule: 'each tensor in the index must be in the shard it names', expected: `"${name}" in ${fileName}`, found: 'no such tensor there' });
    }
    out.set(name, { file, info });
  }
  return out;
}

function readWeightMap(indexPath: string): Map<string, string> {
  const index = readJson(indexPath, 'checkpoint_index', '');
  const wm = index.weight_map;
  const ok = typeof wm === 'object' && wm !== null && !Array.isArray(wm) && Object.values(wm).every((v) => typeof v === 'string');
  if (!ok) {
    throw new KompresorError({ code: 'checkpoint_index', where: `${indexPath}: weight_map`,
      rule: 'weight_map must map tensor names to shard file names', expected: '{"name": "model-00001-of-00002.safetensors"}',
      found: JSON.stringify(wm) });
  }
  return new Map(Object.entries(wm as Record<string, string>));
}

/**
 * A shard must be a file inside the model folder: names that are absolute, climb out with `..`,
 * or resolve through a symlink to somewhere else are refused (an index must not read /etc/passwd).
 */
function resolveShard(dir: string, indexPath: string, fileName: string): string {
  const escape = (found: string) => new KompresorError({ code: 'checkpoint_index', where: `${indexPath}: "${fileName}"`,
    rule: 'shard files must be inside the model folder', expected: `a file name relative to ${dir}`, found,
    hint: 'the index is corrupt or malicious; re-download it' });
  if (nodePath.isAbsolute(fileName) || /^[a-zA-Z]:[\\/]/.test(fileName) || fileName.startsWith('\\')) throw escape('an absolute path');
  const file = nodePath.resolve(dir, fileName);
  if (!isInside(dir, file)) throw escape('a path leaving the folder');
  if (!fs.existsSync(file)) {
    throw new KompresorError({ code: 'file_not_found', where: file, rule: `every shard named in ${INDEX_FILE} must exist`,
      found: 'no such file', hint: 'the download is incomplete; fetch the missing shard' });
  }
  if (!symlinkAllowed(dir, file)) throw escape('a symlink leading out of the folder (and not into a hub cache\'s blobs/)');
  return file;
}

/**
 * The symlink rule for every file read from or copied out of a model folder: the file's real
 * path must be inside the folder's real path, or, when the folder is a Hugging Face hub snapshot
 * (<repo>/snapshots/<revision>/, where every file is a symlink to ../../blobs/<hash>), inside that
 * repository's blobs/ folder. Anything else (/etc/passwd, ~/.ssh/id_rsa, another model) is refused.
 */
export function symlinkAllowed(dir: string, file: string): boolean {
  const realFile = fs.realpathSync(file);
  if (isInside(fs.realpathSync(dir), realFile)) return true;
  for (const snapshot of new Set([nodePath.resolve(dir), fs.realpathSync(dir)])) {
    if (nodePath.basename(nodePath.dirname(snapshot)) !== 'snapshots') continue;
    const blobs = nodePath.join(nodePath.dirname(nodePath.dirname(snapshot)), 'blobs');
    if (fs.existsSync(blobs) && isInside(fs.realpathSync(blobs), realFile)) return true;
  }
  return false;
}

function isInside(dir: string, file: string): boolean {
  const rel = nodePath.relative(dir, file);
  return rel !== '' && !rel.startsWith('..') && !nodePath.isAbsolute(rel);
}

// ---------------------------------------------------------------------------------------------
// saving

export interface SaveTensor {
  name: string;
  shape: number[];
  /** Values, or a thunk called when the writer reaches the tensor (keeps one tensor in memory). */
  data: Float32Array | (() => Float32Array);
}

export interface SaveOptions {
  /** Start a new shard when the next tensor would push the current one past this (HF default 5 GB). */
  maxShardBytes?: number;
  /** On-disk dtype of every tensor (default F32). */
  dtype?: FloatDtype;
  /** Copy tokenizer and generation files from this folder when present. */
  tokenizerFrom?: string;
  /** Extra string metadata for each safetensors header. */
  metadata?: Record<string, string>;
}

/**
 * Writes config.json, the weights (model.safetensors, or model-0000i-of-0000N.safetensors plus
 * model.safetensors.index.json) and copies tokenizer files; removes weight files of an older
 * layout left in the folder so openCheckpoint cannot pick them up. Returns the files written.
 */
export function saveCheckpoint(dir: string, config: Record<string, unknown>, tensors: Iterable<SaveTensor>,
  opts: SaveOptions = {}): string[] {
  const dtype = opts.dtype ?? 'F32';
  const list = [...tensors];
  const tokenizerFiles = opts.tokenizerFrom ? tokenizerFilesOf(opts.tokenizerFrom) : [];
  makeDirs(dir);
  const shards = planShards(list, dtype, opts.maxShardBytes ?? 5e9);
  const written: string[] = [];
  const toWrite = (ts: SaveTensor[]): TensorToWrite[] => ts.map((t) => ({ ...t, dtype }));
  if (shards.length === 1) {
    writeSafetensors(nodePath.join(dir, SINGLE_FILE), toWrite(shards[0]), opts.metadata);
    written.push(SINGLE_FILE);
  } else {
    const weightMap: Record<string, string> = {};
    shards.forEach((ts, i) => {
      const name = `model-${pad5(i + 1)}-of-${pad5(shards.length)}.safetensors`;
      writeSafetensors(nodePath.join(dir, name), toWrite(ts), opts.metadata);
      for (const t of ts) weightMap[t.name] = name;
      written.push(name);
    });
    const totalSize = list.reduce((s, t) => s + storedBytes(dtype, t.shape), 0);
    writeJsonAtomic(nodePath.join(dir, INDEX_FILE), { metadata: { total_size: totalSize }, weight_map: sortKeys(weightMap) });
    written.push(INDEX_FILE);
  }
  removeStaleWeights(dir, new Set(written));
  writeJsonAtomic(nodePath.join(dir, 'config.json'), config);
  written.push('config.json');
  if (opts.tokenizerFrom) written.push(...copyTokenizerFiles(opts.tokenizerFrom, dir, tokenizerFiles));
  return written;
}

/** Greedy in the given order (layers stay together), like transformers' shard splitting. */
function planShards(list: SaveTensor[], dtype: FloatDtype, maxShardBytes: number): SaveTensor[][] {
  const shards: SaveTensor[][] = [[]];
  let size = 0;
  for (const t of list) {
    const bytes = storedBytes(dtype, t.shape);
    if (size + bytes > maxShardBytes && shards[shards.length - 1].length > 0) { shards.push([]); size = 0; }
    shards[shards.length - 1].push(t);
    size += bytes;
  }
  return shards;
}

function pad5(i: number): string { return String(i).padStart(5, '0'); }

function sortKeys(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function writeJsonAtomic(path: string, value: unknown): void {
  const bytes = new TextEncoder().encode(JSON.stringify(value, null, 2) + '\n');
  writeAtomic(path, (fd) => writeAll(fd, bytes));
}

function removeStaleWeights(dir: string, keep: Set<string>): void {
  for (const f of fs.readdirSync(dir)) {
    const isWeights = f === SINGLE_FILE || f === INDEX_FILE || SHARD_RE.test(f);
    if (isWeights && !keep.has(f)) fs.rmSync(nodePath.join(dir, f), { force: true });
  }
}

/** The tokenizer files of `from` that exist, each checked by the symlink rule (before anything is written). */
function tokenizerFilesOf(from: string): string[] {
  const found = TOKENIZER_FILES.filter((f) => fs.existsSync(nodePath.join(from, f)));
  for (const f of found) {
    if (!symlinkAllowed(from, nodePath.join(from, f))) {
      throw new KompresorError({ code: 'tokenizer_invalid', where: nodePath.join(from, f), rule: 'files copied out of a model folder must be inside it',
        expected: `a file in ${from} (or in its hub cache's blobs/)`, found: `a symlink to ${fs.realpathSync(nodePath.join(from, f))}`,
        hint: 'outputs get published; replace the symlink with the real file, or remove it' });
    }
  }
  return found;
}

function copyTokenizerFiles(from: string, to: string, files: string[]): string[] {
  if (nodePath.resolve(from) === nodePath.resolve(to)) return [];
  const copied: string[] = [];
  for (const f of files) {
    const src = nodePath.join(from, f);
    const bytes = fs.readFileSync(src);
    writeAtomic(nodePath.join(to, f), (fd) => writeAll(fd, bytes));
    copied.push(f);
  }
  return copied;
}
