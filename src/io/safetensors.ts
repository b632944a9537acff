// safetensors reader and writer, file-offset based: shards reach 5 GB and Node buffers stop at
// 4 GiB, so the file is never read whole. Layout (https://github.com/huggingface/safetensors):
//
//   [8 bytes]  N, little-endian u64: length of the JSON header
//   [N bytes]  JSON: {"__metadata__": {str: str}, "<name>": {dtype, shape, data_offsets: [b, e]}}
//   [rest]     data section; a tensor's bytes are data[b..e), row-major, little-endian
//
// Only F32/F16/BF16 load as weights; other dtypes are accepted in the header (tokenizer-free
// checkpoints sometimes carry I64 buffers) but refused by readTensorF32.
import fs from 'node:fs';
import os from 'node:os';
import { KompresorError, ensure } from '../errors.ts';
import { kernels } from '../tensor/ops.ts';

// ---------------------------------------------------------------------------------------------
// types

const ITEMSIZE = {
  F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1,
  I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
} as const;

export type StDtype = keyof typeof ITEMSIZE;
/** The dtypes a weight can be loaded from and written as. */
export type FloatDtype = 'F32' | 'F16' | 'BF16';

export interface TensorInfo {
  dtype: StDtype;
  shape: number[];
  /** Byte offsets relative to the start of the data section (dataStart), end exclusive. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  path: string;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  /** Absolute file offset of the data section: 8 + header length. */
  dataStart: number;
  fileSize: number;
}

export interface TensorToWrite {
  name: string;
  dtype: FloatDtype | 'U8';
  shape: number[];
  /**
   * The values, or a thunk producing them when the writer reaches this tensor (streaming saves).
   * A Uint16Array (BF16/F16) or Uint8Array (U8) is written byte for byte, as stored bit patterns.
   */
  data: Float32Array | Uint16Array | Uint8Array | (() => Float32Array);
}

/** A header larger than this is a corrupt length field, not a real header (HF's limit is 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;
/** Largest single read or write; also keeps each conversion buffer well under the Buffer limit. */
const DEFAULT_CHUNK_BYTES = 1 << 30;

// typed-array views below reinterpret file bytes in host order; safetensors is little-endian
ensure(os.endianness() === 'LE', 'safetensors', () => 'the host must be little-endian');

export function itemSize(dtype: StDtype): number { return ITEMSIZE[dtype]; }

export function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

// ---------------------------------------------------------------------------------------------
// header

/** Reads and validates the header only; the data section is not touched. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fd = openOrThrow(path, 'r');
  try {
    const fileSize = fs.fstatSync(fd).size;
    const corrupt = (rule: string, expected?: string, found?: string): KompresorError =>
      new KompresorError({ code: 'safetensors_corrupt', where: path, rule, expected, found,
        hint: 'the file is truncated or not a safetensors file; re-download or re-export it' });
    if (fileSize < 8) throw corrupt('the file must start with an 8-byte header length', 'at least 8 bytes', `${fileSize} bytes`);
    const lenBytes = readExact(fd, path, 0, 8);
    const n64 = new DataView(lenBytes.buffer).getBigUint64(0, true);
    if (n64 > BigInt(MAX_HEADER_BYTES)) throw corrupt('the header length must be at most 100 MB', `<= ${MAX_HEADER_BYTES}`, `${n64}`);
    const n = Number(n64);
    if (8 + n > fileSize) throw corrupt('the header length must fit inside the file', `<= ${fileSize - 8} bytes`, `${n} bytes`);
    const json = parseHeaderJson(readExact(fd, path, 8, n), corrupt);
    const dataStart = 8 + n;
    const { tensors, metadata } = validateEntries(path, json, fileSize - dataStart);
    return { path, tensors, metadata, dataStart, fileSize };
  } finally {
    fs.closeSync(fd);
  }
}

type CorruptFn = (rule: string, expected?: string, found?: string) => KompresorError;

function parseHeaderJson(bytes: Uint8Array, corrupt: CorruptFn): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw corrupt('the header must be UTF-8 JSON', 'a JSON object', `unparseable text (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw corrupt('the header must be a JSON object', 'an object', json === null ? 'null' : Array.isArray(json) ? 'an array' : typeof json);
  }
  return json as Record<string, unknown>;
}

function validateEntries(path: string, json: Record<string, unknown>, dataSize: number):
  { tensors: Map<string, TensorInfo>; metadata: Record<string, string> } {
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(json)) {
    if (name === '__metadata__') metadata = validateMetadata(path, entry);
    else tensors.set(name, validateTensorEntry(path, name, entry, dataSize));
  }
  checkNoOverlap(path, tensors);
  return { tensors, metadata };
}

function validateMetadata(path: string, entry: unknown): Record<string, string> {
  const ok = typeof entry === 'object' && entry !== null && !Array.isArray(entry)
    && Object.values(entry).every((v) => typeof v === 'string');
  if (!ok) {
    throw new KompresorError({ code: 'safetensors_corrupt', where: `${path}: __metadata__`,
      rule: '__metadata__ must map strings to strings', expected: '{"key": "value", ...}', found: JSON.stringify(entry) });
  }
  return { ...(entry as Record<string, string>) };
}

function isNonNegInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

function validateTensorEntry(path: string, name: string, entry: unknown, dataSize: number): TensorInfo {
  const where = `${path}: tensor "${name}"`;
  const fail = (code: 'safetensors_corrupt' | 'safetensors_dtype' | 'safetensors_shape', rule: string, expected: string, found: string) =>
    new KompresorError({ code, where, rule, expected, found });
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    throw fail('safetensors_corrupt', 'each tensor entry must be an object', '{dtype, shape, data_offsets}', JSON.stringify(entry));
  }
  const e = entry as Record<string, unknown>;
  if (typeof e.dtype !== 'string' || !(e.dtype in ITEMSIZE)) {
    throw fail('safetensors_dtype', 'the dtype must be a safetensors dtype', Object.keys(ITEMSIZE).join('/'), JSON.stringify(e.dtype));
  }
  const dtype = e.dtype as StDtype;
  if (!Array.isArray(e.shape) || !e.shape.every(isNonNegInt)) {
    throw fail('safetensors_shape', 'the shape must be an array of non-negative integers', 'e.g. [4096, 4096]', JSON.stringify(e.shape));
  }
  const shape = e.shape as number[];
  const off = e.data_offsets;
  if (!Array.isArray(off) || off.length !== 2 || !isNonNegInt(off[0]) || !isNonNegInt(off[1]) || off[1] < off[0]) {
    throw fail('safetensors_corrupt', 'data_offsets must be [begin, end] integers with begin <= end', '[begin, end]', JSON.stringify(off));
  }
  const [begin, end] = off as [number, number];
  const want = numelOf(shape) * ITEMSIZE[dtype];
  if (end - begin !== want) {
    throw fail('safetensors_shape', `the byte length must equal numel * itemsize for ${dtype} [${shape.join(', ')}]`,
      `${want} bytes`, `${end - begin} bytes`);
  }
  if (end > dataSize) {
    throw fail('safetensors_corrupt', 'data_offsets must lie inside the data section', `end <= ${dataSize}`, `end ${end}`);
  }
  return { dtype, shape, begin, end };
}

function checkNoOverlap(path: string, tensors: Map<string, TensorInfo>): void {
  // sorted by begin, each tensor must start at or after the previous one's end
  const sorted = [...tensors.entries()].sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
  for (let i = 1; i < sorted.length; i++) {
    const [pn, p] = sorted[i - 1], [cn, c] = sorted[i];
    if (c.begin < p.end) {
      throw new KompresorError({ code: 'safetensors_corrupt', where: `${path}: tensor "${cn}"`,
        rule: `tensors must not overlap (it overlaps "${pn}")`, expected: `begin >= ${p.end}`, found: `begin ${c.begin}` });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// reading

/**
 * Loads one tensor as float32 into `out` (allocated when absent). F16/BF16 go through the dtype
 * kernels. Reads at most `chunkBytes` at a time, so tensors beyond the Buffer limit still load.
 */
export function readTensorF32(file: SafetensorsHeader, info: TensorInfo, out?: Float32Array,
  chunkBytes = DEFAULT_CHUNK_BYTES): Float32Array {
  const where = `${file.path}: ${describe(info)}`;
  if (info.dtype !== 'F32' && info.dtype !== 'F16' && info.dtype !== 'BF16') {
    throw new KompresorError({ code: 'safetensors_dtype', where, rule: 'weights must be stored as a float dtype',
      expected: 'F32, F16 or BF16', found: info.dtype, hint: 'integer and bool tensors are buffers, not weights; leave them out of the weight list' });
  }
  const n = numelOf(info.shape);
  const dst = out ?? new Float32Array(n);
  if (dst.length !== n) {
    throw new KompresorError({ code: 'shape_mismatch', where, rule: 'the output buffer must hold exactly the tensor',
      expected: `${n} floats`, found: `${dst.length} floats` });
  }
  const fd = openOrThrow(file.path, 'r');
  try {
    if (info.dtype === 'F32') readF32Into(fd, file, info, dst, chunkBytes);
    else readHalfInto(fd, file, info, dst, chunkBytes);
  } finally {
    fs.closeSync(fd);
  }
  return dst;
}

/**
 * Loads one tensor as 16-bit bit patterns (bf16, or f16 when `f16`) into `out`. A tensor stored in
 * that format is read byte for byte (no conversion, no float32 copy); any other float dtype is
 * read as float32, then rounded to nearest even.
 */
export function readTensor16(file: SafetensorsHeader, info: TensorInfo, out: Uint16Array, f16: boolean,
  chunkBytes = DEFAULT_CHUNK_BYTES): Uint16Array {
  const n = numelOf(info.shape);
  if (out.length !== n) {
    throw new KompresorError({ code: 'shape_mismatch', where: `${file.path}: ${describe(info)}`, rule: 'the output buffer must hold exactly the tensor',
      expected: `${n} values`, found: `${out.length} values` });
  }
  if (info.dtype === (f16 ? 'F16' : 'BF16')) {
    const bytes = new Uint8Array(out.buffer, out.byteOffset, n * 2);
    const fd = openOrThrow(file.path, 'r');
    try {
      const step = Math.max(2, chunkBytes - (chunkBytes % 2));
      for (let off = 0; off < bytes.length; off += step) {
        readInto(fd, file.path, file.dataStart + info.begin + off, bytes.subarray(off, Math.min(bytes.length, off + step)));
      }
    } finally {
      fs.closeSync(fd);
    }
    return out;
  }
  const wide = readTensorF32(file, info, undefined, chunkBytes);
  (f16 ? kernels.f32ToF16 : kernels.f32ToBf16)(out, wide, n);
  return out;
}

/**
 * Loads one tensor's stored bytes unconverted into `out`: a Uint8Array for U8/I8, a Uint16Array
 * for BF16/F16 (bit patterns). The dtype's item size must be out's and the lengths must match.
 */
export function readTensorRaw(file: SafetensorsHeader, info: TensorInfo, out: Uint8Array | Uint16Array): void {
  const n = numelOf(info.shape);
  if (ITEMSIZE[info.dtype] !== out.BYTES_PER_ELEMENT || out.length !== n) {
    throw new KompresorError({ code: 'shape_mismatch', where: `${file.path}: ${describe(info)}`, rule: 'the output buffer must hold exactly the tensor, in its item size',
      expected: `${n} values of ${ITEMSIZE[info.dtype]} bytes`, found: `${out.length} values of ${out.BYTES_PER_ELEMENT} bytes` });
  }
  const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  const fd = openOrThrow(file.path, 'r');
  try {
    for (let off = 0; off < bytes.length; off += DEFAULT_CHUNK_BYTES) {
      readInto(fd, file.path, file.dataStart + info.begin + off, bytes.subarray(off, Math.min(bytes.length, off + DEFAULT_CHUNK_BYTES)));
    }
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Rows [row0, row0 + rows) of a tensor along its first dimension, as float32 (e.g. a few
 * embedding rows out of a vocabulary too large to load whole). Rows are contiguous on disk, so
 * this is readTensorF32 over a narrower byte range.
 */
export function readTensorRowsF32(file: SafetensorsHeader, info: TensorInfo, row0: number, rows: number,
  out?: Float32Array): Float32Array {
  const total = info.shape[0] ?? 1;
  if (info.shape.length === 0 || !Number.isSafeInteger(row0) || !Number.isSafeInteger(rows) || row0 < 0 || rows < 0 || row0 + rows > total) {
    throw new KompresorError({ code: 'shape_mismatch', where: `${file.path}: ${describe(info)}`,
      rule: 'a row range must lie inside the tensor\'s first dimension', expected: `0 <= row0 <= row0 + rows <= ${total}`,
      found: `row0 ${row0}, rows ${rows}` });
  }
  const rowBytes = numelOf(info.shape.slice(1)) * ITEMSIZE[info.dtype];
  const begin = info.begin + row0 * rowBytes;
  return readTensorF32(file, { dtype: info.dtype, shape: [rows, ...info.shape.slice(1)], begin, end: begin + rows * rowBytes }, out);
}

function describe(info: TensorInfo): string {
  return `${info.dtype} [${info.shape.join(', ')}] at bytes ${info.begin}..${info.end}`;
}

// f32: read straight into the output's memory, no copy
function readF32Into(fd: number, file: SafetensorsHeader, info: TensorInfo, dst: Float32Array, chunkBytes: number): void {
  const bytes = new Uint8Array(dst.buffer, dst.byteOffset, dst.length * 4);
  const step = Math.max(4, chunkBytes - (chunkBytes % 4));
  for (let off = 0; off < bytes.length; off += step) {
    readInto(fd, file.path, file.dataStart + info.begin + off, bytes.subarray(off, Math.min(bytes.length, off + step)));
  }
}

// f16/bf16: a fresh (aligned) chunk buffer viewed as Uint16, converted into the matching slice
function readHalfInto(fd: number, file: SafetensorsHeader, info: TensorInfo, dst: Float32Array, chunkBytes: number): void {
  const convert = info.dtype === 'BF16' ? kernels.bf16ToF32 : kernels.f16ToF32;
  const perChunk = Math.max(1, Math.floor(chunkBytes / 2));
  const buf = new Uint8Array(Math.min(dst.length, perChunk) * 2);
  for (let i = 0; i < dst.length; i += perChunk) {
    const m = Math.min(perChunk, dst.length - i);
    const bytes = buf.subarray(0, m * 2);
    readInto(fd, file.path, file.dataStart + info.begin + i * 2, bytes);
    convert(dst.subarray(i, i + m), new Uint16Array(bytes.buffer, 0, m), m);
  }
}

function readExact(fd: number, path: string, position: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  readInto(fd, path, position, out);
  return out;
}

/** readSync may return short counts; loop until `into` is full, fail on a premature end. */
function readInto(fd: number, path: string, position: number, into: Uint8Array): void {
  let done = 0;
  while (done < into.length) {
    const want = Math.min(into.length - done, 0x7fff_f000); // per-call cap of the OS
    const got = fs.readSync(fd, into, done, want, position + done);
    if (got === 0) {
      throw new KompresorError({ code: 'safetensors_corrupt', where: path, rule: 'the file must hold every byte its header describes',
        expected: `${into.length} bytes at offset ${position}`, found: `end of file after ${done}` });
    }
    done += got;
  }
}

function openOrThrow(path: string, flags: string): number {
  try {
    return fs.openSync(path, flags);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT' && flags === 'r') {
      throw new KompresorError({ code: 'file_not_found', where: path, rule: 'the file must exist', found: 'no such file' });
    }
    if (flags !== 'r') {
      // a write: say which file could not be created, not that it "must exist"
      throw new KompresorError({ code: 'io_error', where: path, rule: 'the output file must be creatable', found: err.message, hint: 'check that the folder exists and is writable' });
    }
    throw new KompresorError({ code: 'io_error', where: path, rule: `the file must be openable (${flags})`, found: err.message });
  }
}

// ---------------------------------------------------------------------------------------------
// writing

/** A file-system error of a write through a descriptor names no file (ENOSPC "write"): give it the path. */
export function withPath(e: unknown, path: string): unknown {
  const err = e as NodeJS.ErrnoException;
  if (err instanceof Error && typeof err.code === 'string' && err.path === undefined) err.path = path;
  return e;
}

/**
 * Writes a file atomically: `path.tmp-<pid>` is written by `body`, fsynced, then renamed over
 * `path`, so a crash never leaves a half-written checkpoint under the real name.
 */
export function writeAtomic(path: string, body: (fd: number) => void): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openOrThrow(tmp, 'w');
  try {
    body(fd);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw withPath(e, path);
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, path);
}

/** Writes all of `bytes` (writeSync may write fewer bytes than asked). */
export function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += fs.writeSync(fd, bytes, done, Math.min(bytes.length - done, 0x7fff_f000));
}

/** Bytes a tensor takes on disk in `dtype`. */
export function storedBytes(dtype: FloatDtype, shape: readonly number[]): number {
  return numelOf(shape) * ITEMSIZE[dtype];
}

/**
 * Writes a safetensors file: names sorted, `__metadata__` always holding {"format": "pt"} (what
 * transformers checks for), header padded with spaces to a multiple of 8 like the Rust writer,
 * tensors written one at a time, atomically.
 */
export function writeSafetensors(path: string, tensors: TensorToWrite[], metadata: Record<string, string> = {}): void {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header = buildHeader(path, sorted, metadata);
  writeAtomic(path, (fd) => {
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(header.length), true);
    writeAll(fd, len);
    writeAll(fd, header);
    for (const t of sorted) writeTensorData(fd, path, t);
  });
}

function buildHeader(path: string, sorted: TensorToWrite[], metadata: Record<string, string>): Uint8Array {
  // "format" stays first and stays "pt": transformers refuses other values when loading
  const obj: Record<string, unknown> = { __metadata__: Object.assign({ format: 'pt' }, metadata, { format: 'pt' }) };
  let offset = 0;
  for (let i = 0; i < sorted.length; i++) {
    const t = sorted[i];
    if (t.name === '__metadata__' || (i > 0 && sorted[i - 1].name === t.name)) {
      throw new KompresorError({ code: 'input_invalid', where: `${path}: tensor "${t.name}"`,
        rule: 'tensor names must be unique and not "__metadata__"', found: `"${t.name}"` });
    }
    const raw = t.data instanceof Uint16Array ? ['F16', 'BF16'] : t.data instanceof Uint8Array ? ['U8'] : ['F32', 'F16', 'BF16'];
    if (!raw.includes(t.dtype) || !t.shape.every(isNonNegInt)) {
      throw new KompresorError({ code: 'input_invalid', where: `${path}: tensor "${t.name}"`,
        rule: 'a written tensor needs a dtype its data can hold (float32 values: F32/F16/BF16; 16-bit patterns: F16/BF16; bytes: U8) and a non-negative integer shape',
        expected: raw.join('/'), found: `${t.dtype} [${t.shape.join(', ')}]` });
    }
    const size = numelOf(t.shape) * ITEMSIZE[t.dtype];
    obj[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  const text = JSON.stringify(obj);
  const raw = new TextEncoder().encode(text);
  const padded = new Uint8Array(Math.ceil(raw.length / 8) * 8).fill(0x20);
  padded.set(raw);
  return padded;
}

function writeTensorData(fd: number, path: string, t: TensorToWrite): void {
  const data = typeof t.data === 'function' ? t.data() : t.data;
  const n = numelOf(t.shape);
  if (data.length !== n) {
    throw new KompresorError({ code: 'shape_mismatch', where: `${path}: tensor "${t.name}"`,
      rule: 'the data length must equal the product of the shape', expected: `${n} values for [${t.shape.join(', ')}]`,
      found: `${data.length} values` });
  }
  if (t.dtype === 'F32' || !(data instanceof Float32Array)) {
    writeAll(fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength)); // as stored
    return;
  }
  // half dtypes: convert a bounded slice at a time (rounding to nearest even, in the kernel)
  const convert = t.dtype === 'BF16' ? kernels.f32ToBf16 : kernels.f32ToF16;
  const per = Math.min(n, 1 << 24);
  const half = new Uint16Array(per);
  for (let i = 0; i < n; i += per) {
    const m = Math.min(per, n - i);
    convert(half, data.subarray(i, i + m), m);
    writeAll(fd, new Uint8Array(half.buffer, 0, m * 2));
  }
}
