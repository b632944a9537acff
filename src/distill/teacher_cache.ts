// Where a distillation run gets the teacher's logits: the teacher model itself (loaded once,
// forward-only arena), or a folder caching them per batch so that repeated runs skip the teacher
// (`kompresor distill --teacher-cache DIR`). The cache is exact: a run reading it computes the
// same losses and gradients, bit for bit, as a run with the live teacher.
//
// Folder layout (docs/training.md, "Teacher cache"):
//   manifest.json   {format: "kompresor-teacher-cache", version: 1, teacher, vocab_size, top_k, ...}
//                   written once, when the folder is created; a run with another teacher (checksum),
//                   vocabulary or top-k is refused.
//   <key>.kptl      one file per batch; key = sha256 of the batch (B, T, ids, positions, document
//                   starts), i.e. of what the teacher reads, so the key follows the data position
//                   and seed exactly and validation batches are cached too.
//
// Entry file (little-endian), written to a temporary name, fsynced and renamed (atomic):
//   0   magic "KPTL"
//   4   u32 version (1)
//   8   u32 H, the byte length of the JSON header
//   12  H bytes of JSON: {teacher, key, B, T, V, k}; k = V means the full rows
//   12+H, padded to a multiple of 4:
//       k < V:  i32 ids[N, k] (each row's teacher top-k ids, ascending), then f32 logits[N, k]
//       k = V:  f32 logits[N, V]
// Top-k rows are served back as full rows with -Infinity outside the kept ids: the KD kernel picks
// exactly those ids again (same set, same order), so the loss is the one of the live teacher.
import fs from 'node:fs';
import nodePath from 'node:path';
import { createHash } from 'node:crypto';
import { KompresorError } from '../errors.ts';
import { openCheckpoint } from '../io/checkpoint.ts';
import { writeAtomic, writeAll } from '../io/safetensors.ts';
import { writeAtomicText } from '../train/run_checkpoint.ts';
import { Decoder } from '../model/decoder.ts';
import { modelFromCheckpoint, type WeightsOption } from '../model/load.ts';
import type { Batch } from '../model/batch.ts';
import { LOGIT_CHUNK } from '../model/activations.ts';
import { teacherChunks, type TeacherChunk } from './kd_head.ts';

/** Serves the teacher's logits for a batch, chunk by chunk (see TeacherChunk in kd_head.ts). */
export interface Teacher {
  chunks(batch: Batch): TeacherChunk;
}

/** The teacher model as a Teacher: one forward pass per batch, logits chunk by chunk. */
export function liveTeacher(model: Decoder): Teacher {
  return { chunks: (batch) => teacherChunks(model, batch) };
}

/**
 * Loads a teacher folder for forward passes only: the weights (as stored by default: a bf16
 * teacher stays bf16) and an activation arena of one layer's buffers (Decoder.forwardOnly).
 * Synchronous, so a cached run can load it on its first miss.
 */
export function loadTeacher(dir: string, weights: WeightsOption = 'auto'): Decoder {
  const model = modelFromCheckpoint(openCheckpoint(dir), weights);
  model.forwardOnly = true;
  return model;
}

/**
 * sha256 of a model folder's config.json and weight files (*.safetensors, by name), read in
 * 16 MiB pieces: what identifies "the same teacher" for a cache without loading it.
 */
export function teacherChecksum(dir: string): string {
  const files = ['config.json', ...fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort()];
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(16 << 20);
  for (const f of files) {
    h.update(`${f}\0`);
    const fd = fs.openSync(nodePath.join(dir, f), 'r');
    try {
      for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) h.update(buf.subarray(0, n));
    } finally {
      fs.closeSync(fd);
    }
  }
  return h.digest('hex');
}

/** The cache key of a batch: sha256 over its shape and everything the teacher reads. */
export function batchKey(batch: Batch): string {
  const h = createHash('sha256').update(`B=${batch.B},T=${batch.T}\0`);
  for (const a of [batch.ids, batch.pos, batch.docStart]) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return h.digest('hex').slice(0, 32);
}

// ---------------------------------------------------------------------------------------------
// the cache folder

export const CACHE_FORMAT = 'kompresor-teacher-cache';
export const CACHE_VERSION = 1;
const MAGIC = 'KPTL';
const ENTRY_VERSION = 1;

export interface CacheManifest {
  format: string;
  version: number;
  /** teacherChecksum of the teacher folder. */
  teacher: string;
  /** Where the teacher was (informative). */
  teacher_dir: string;
  vocab_size: number;
  /** Logits kept per token: 0 = all of them. */
  top_k: number;
}

/** One batch's teacher logits: k per row (k = V: full rows), ids only when k < V. */
export interface CacheEntry {
  B: number;
  T: number;
  V: number;
  k: number;
  ids: Int32Array | null;   // (N, k)
  logits: Float32Array;     // (N, k)
}

interface EntryHeader { teacher: string; key: string; B: number; T: number; V: number; k: number }

export class TeacherCache {
  hits = 0;
  misses = 0;

  private constructor(readonly dir: string, readonly manifest: CacheManifest) {}

  /**
   * Opens the cache folder for this teacher, vocabulary and top-k, creating it (and its manifest)
   * when absent or empty; refuses a folder made for anything else.
   */
  static open(dir: string, want: { teacher: string; teacherDir: string; vocabSize: number; topK: number }): TeacherCache {
    const where = `--teacher-cache ${dir}`;
    const topK = want.topK >= want.vocabSize ? 0 : want.topK;
    const mine: CacheManifest = { format: CACHE_FORMAT, version: CACHE_VERSION, teacher: want.teacher, teacher_dir: nodePath.resolve(want.teacherDir), vocab_size: want.vocabSize, top_k: topK };
    const file = nodePath.join(dir, 'manifest.json');
    if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) {
      throw new KompresorError({ code: 'input_invalid', where, rule: 'the teacher cache must be a folder', found: 'a file' });
    }
    if (!fs.existsSync(file)) {
      if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0) {
        throw new KompresorError({ code: 'input_invalid', where, rule: 'a new teacher cache needs a new or empty folder', found: 'files but no manifest.json',
          hint: 'choose another --teacher-cache folder' });
      }
      fs.mkdirSync(dir, { recursive: true });
      writeAtomicText(file, JSON.stringify(mine, null, 1) + '\n');
      return new TeacherCache(dir, mine);
    }
    let m: CacheManifest;
    try {
      m = JSON.parse(fs.readFileSync(file, 'utf8')) as CacheManifest;
    } catch (e) {
      throw new KompresorError({ code: 'input_invalid', where: file, rule: 'the cache manifest must be valid JSON', found: (e as Error).message, hint: 'delete the cache folder; it is rebuilt by the next run' });
    }
    if (m.format !== CACHE_FORMAT || m.version !== CACHE_VERSION) {
      throw new KompresorError({ code: 'input_invalid', where: file, rule: `a teacher cache has format "${CACHE_FORMAT}" version ${CACHE_VERSION}`,
        found: `${JSON.stringify(m.format)} version ${JSON.stringify(m.version)}`, hint: 'choose another --teacher-cache folder' });
    }
    const refuse = (what: string, expected: unknown, found: unknown) => new KompresorError({
      code: 'input_invalid', where, rule: `the cache must hold logits of this teacher with the same vocabulary and top-k (${what} differs)`,
      expected: String(expected), found: String(found),
      hint: 'use a new --teacher-cache folder for this teacher/--top-k, or delete this one',
    });
    if (m.teacher !== mine.teacher) throw refuse('teacher checksum', `${mine.teacher.slice(0, 16)}… (${mine.teacher_dir})`, `${String(m.teacher).slice(0, 16)}… (${m.teacher_dir})`);
    if (m.vocab_size !== mine.vocab_size) throw refuse('vocab_size', mine.vocab_size, m.vocab_size);
    if (m.top_k !== mine.top_k) throw refuse('top_k', mine.top_k, m.top_k);
    return new TeacherCache(dir, m);
  }

  private path(key: string): string { return entryPath(this.dir, key); }

  /** Whether an entry for this key exists (not read, not checked). */
  has(key: string): boolean { return fs.existsSync(this.path(key)); }

  /** The entry for this batch key, or null when it is not cached. Damaged or foreign entries are refused. */
  read(key: string, batch: Batch): CacheEntry | null {
    const file = this.path(key);
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    const bad = (rule: string, found: string) => new KompresorError({ code: 'input_invalid', where: file, rule, found,
      hint: 'the cache entry is damaged or was not written for this batch and teacher; delete the cache folder' });
    if (bytes.length < 12 || bytes.toString('latin1', 0, 4) !== MAGIC) throw bad('a cache entry starts with "KPTL"', JSON.stringify(bytes.toString('latin1', 0, 4)));
    if (bytes.readUInt32LE(4) !== ENTRY_VERSION) throw bad(`a cache entry has version ${ENTRY_VERSION}`, String(bytes.readUInt32LE(4)));
    const H = bytes.readUInt32LE(8);
    let h: EntryHeader;
    try {
      h = JSON.parse(bytes.toString('utf8', 12, 12 + H)) as EntryHeader;
    } catch (e) {
      throw bad('the entry header must be valid JSON', (e as Error).message);
    }
    const m = this.manifest, k = m.top_k === 0 ? m.vocab_size : m.top_k;
    const want: EntryHeader = { teacher: m.teacher, key, B: batch.B, T: batch.T, V: m.vocab_size, k };
    for (const f of Object.keys(want) as (keyof EntryHeader)[]) {
      if (h[f] !== want[f]) throw bad(`the entry's ${f} must match the cache and the batch`, `${JSON.stringify(h[f])}, expected ${JSON.stringify(want[f])}`);
    }
    const N = h.B * h.T, off = align4(12 + H), full = k === m.vocab_size;
    const size = off + N * k * 4 * (full ? 1 : 2);
    if (bytes.length !== size) throw bad('the entry must hold exactly the logits its header announces', `${bytes.length} bytes, expected ${size}`);
    // copy out of the Buffer: its byteOffset is not necessarily aligned for typed-array views
    const body = new Uint8Array(bytes.subarray(off)).buffer;
    this.hits++;
    return full
      ? { B: h.B, T: h.T, V: h.V, k, ids: null, logits: new Float32Array(body) }
      : { B: h.B, T: h.T, V: h.V, k, ids: new Int32Array(body, 0, N * k), logits: new Float32Array(body, N * k * 4, N * k) };
  }

  /** Writes an entry atomically (temporary file, fsync, rename). */
  write(key: string, e: CacheEntry): void {
    this.misses++;
    const head: EntryHeader = { teacher: this.manifest.teacher, key, B: e.B, T: e.T, V: e.V, k: e.k };
    const json = Buffer.from(JSON.stringify(head), 'utf8');
    const pre = Buffer.alloc(align4(12 + json.length));
    pre.write(MAGIC, 0, 'latin1');
    pre.writeUInt32LE(ENTRY_VERSION, 4);
    pre.writeUInt32LE(json.length, 8);
    json.copy(pre, 12);
    writeAtomic(this.path(key), (fd) => {
      writeAll(fd, pre);
      if (e.ids) writeAll(fd, new Uint8Array(e.ids.buffer, e.ids.byteOffset, e.ids.byteLength));
      writeAll(fd, new Uint8Array(e.logits.buffer, e.logits.byteOffset, e.logits.byteLength));
    });
  }
}

function align4(n: number): number { return (n + 3) & ~3; }

/** The file of a batch's entry in a cache folder. */
export function entryPath(dir: string, key: string): string { return nodePath.join(dir, `${key}.kptl`); }

// ---------------------------------------------------------------------------------------------
// a Teacher backed by the cache

/**
 * Serves each batch from the cache; on a miss, runs the teacher (loaded by `load` on the first
 * miss only, so a fully cached run never loads it), stores the entry, and serves it the same way
 * a hit is served.
 */
export function cachedTeacher(cache: TeacherCache, load: () => Decoder): Teacher {
  let model: Decoder | null = null;
  const V = cache.manifest.vocab_size, k = cache.manifest.top_k === 0 ? V : cache.manifest.top_k;
  let rowsBuf = new Float32Array(0);
  return {
    chunks(batch) {
      const key = batchKey(batch);
      let e = cache.read(key, batch);
      if (!e) {
        model ??= load();
        e = entryFromTeacher(model, batch, k);
        cache.write(key, e);
      }
      const entry = e;
      if (!entry.ids) return (r0, rows) => entry.logits.subarray(r0 * V, (r0 + rows) * V);
      return (r0, rows) => {
        if (rowsBuf.length < rows * V) rowsBuf = new Float32Array(rows * V);
        const out = rowsBuf.subarray(0, rows * V).fill(-Infinity);
        for (let i = 0; i < rows; i++) {
          const src = (r0 + i) * k;
          for (let j = 0; j < k; j++) out[i * V + entry.ids![src + j]] = entry.logits[src + j];
        }
        return out;
      };
    },
  };
}

/** The teacher's logits for a batch, reduced to each row's top-k (all rows, valid or not). */
export function entryFromTeacher(model: Decoder, batch: Batch, k: number): CacheEntry {
  return entryFromChunks(teacherChunks(model, batch), batch.B, batch.T, model.cfg.vocabSize, k);
}

/**
 * A cache entry from a batch's logits served chunk by chunk (`chunkRows` rows at a time: the
 * teacher's own chunking, or the layer-streamed build's, src/distill/cache_build.ts).
 */
export function entryFromChunks(chunk: TeacherChunk, B: number, T: number, V: number, k: number, chunkRows = LOGIT_CHUNK): CacheEntry {
  const N = B * T, full = k >= V;
  const logits = new Float32Array(N * (full ? V : k)), ids = full ? null : new Int32Array(N * k);
  const scratch = new Float32Array(V);
  for (let r0 = 0; r0 < N;) {
    const rows = Math.min(chunkRows, N - r0);
    const u = chunk(r0, rows);
    if (full) logits.set(u, r0 * V);
    else for (let i = 0; i < rows; i++) topKRow(ids!, logits, (r0 + i) * k, u.subarray(i * V, (i + 1) * V), k, scratch);
    r0 += rows;
  }
  return { B, T, V, k: full ? V : k, ids, logits };
}

/**
 * The row's k largest logits and their ids, ascending by id, with the KD kernel's rule for ties
 * at the k-th value (the lower ids win; topKIds in src/tensor/kernels/kd_loss.ts). A row with a
 * NaN keeps a NaN, so the loss of that row is NaN as with the live teacher.
 */
export function topKRow(ids: Int32Array, vals: Float32Array, at: number, u: Float32Array, k: number, scratch: Float32Array): void {
  const V = u.length;
  let nan = false;
  for (let j = 0; j < V; j++) if (u[j] !== u[j]) { nan = true; break; }
  if (nan) {
    for (let i = 0; i < k; i++) { ids[at + i] = i; vals[at + i] = NaN; }
    return;
  }
  scratch.set(u);
  const thr = kthLargest(scratch, V, k);
  let need = k;
  for (let j = 0; j < V; j++) if (u[j] > thr) need--;
  let i = 0;
  for (let j = 0; j < V && i < k; j++) {
    if (u[j] > thr || (u[j] === thr && need-- > 0)) { ids[at + i] = j; vals[at + i] = u[j]; i++; }
  }
}

/** The k-th largest of a[0..n) (Hoare quickselect, middle pivot; reorders a). */
function kthLargest(a: Float32Array, n: number, k: number): number {
  const target = n - k; // index in ascending order
  let lo = 0, hi = n - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1];
    let i = lo, j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) { const t = a[i]; a[i] = a[j]; a[j] = t; i++; j--; }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else break;
  }
  return a[target];
}
