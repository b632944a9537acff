// GGUF v3 writer (the file format of ggml / llama.cpp), streaming: the header is built in memory,
// then each tensor is produced, converted and written one at a time, so a model never has to be
// resident whole. The write is atomic (temp file + rename). docs/gguf.md states the format as a
// numbered spec; in short, every integer little-endian:
//
//   1. magic      4 bytes "GGUF" (0x47 0x47 0x55 0x46)
//   2. version    u32 = 3
//   3. n_tensors  u64
//   4. n_kv       u64
//   5. n_kv key-values: key (string), value type (u32), value; an ARRAY value is
//      item type (u32), count (u64), then the items (no nested arrays here)
//   6. n_tensors tensor infos: name (string), n_dims (u32), ne[n_dims] (u64 each, innermost
//      dimension first, i.e. the reverse of the PyTorch/HF shape), ggml type (u32), offset (u64,
//      from the start of the data section, a multiple of the alignment)
//   7. zero padding to the alignment (general.alignment, default 32), then the data section:
//      each tensor's bytes, each followed by zero padding to the alignment
//
//   string = u64 byte length + UTF-8 bytes (no terminator); bool = 1 byte (0 or 1).
//
// Tensor types written: F32, F16, BF16 and Q8_0 (blocks of 32 values along ne[0]: an f16 scale d
// = max|x| / 127 and 32 int8 q = round(x / d), 34 bytes per block; ggml's quantize_row_q8_0_ref),
// and the block types of ./gguf_quants.ts (Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K).
import { KompresorError } from '../errors.ts';
import { kernels } from '../tensor/ops.ts';
import { writeAtomic, writeAll } from '../io/safetensors.ts';
import { quantizeMatrix, QUANT_BLOCKS, type QuantTypeName } from './gguf_quants.ts';

export const GGUF_MAGIC = 'GGUF';
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** ggml's GGML_MAX_NAME includes the terminating NUL: names have at most 63 bytes. */
export const GGUF_MAX_NAME_BYTES = 63;
export const GGML_MAX_DIMS = 4;
const utf8 = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// value types

/** gguf_type codes (gguf.h). */
export const GGUF_TYPE = {
  u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12,
} as const;
export type GgufScalarType = Exclude<keyof typeof GGUF_TYPE, 'array'>;
type Scalar = number | bigint | boolean | string;

export type GgufValue =
  | { type: GgufScalarType; value: Scalar }
  | { type: 'array'; itemType: GgufScalarType; values: readonly Scalar[] };

/** Constructors for key-value entries, e.g. kv.u32(4096), kv.arr('string', tokens). */
export const kv = {
  u8: (value: number): GgufValue => ({ type: 'u8', value }),
  i8: (value: number): GgufValue => ({ type: 'i8', value }),
  u16: (value: number): GgufValue => ({ type: 'u16', value }),
  i16: (value: number): GgufValue => ({ type: 'i16', value }),
  u32: (value: number): GgufValue => ({ type: 'u32', value }),
  i32: (value: number): GgufValue => ({ type: 'i32', value }),
  u64: (value: number | bigint): GgufValue => ({ type: 'u64', value }),
  i64: (value: number | bigint): GgufValue => ({ type: 'i64', value }),
  f32: (value: number): GgufValue => ({ type: 'f32', value }),
  f64: (value: number): GgufValue => ({ type: 'f64', value }),
  bool: (value: boolean): GgufValue => ({ type: 'bool', value }),
  str: (value: string): GgufValue => ({ type: 'string', value }),
  arr: (itemType: GgufScalarType, values: readonly Scalar[]): GgufValue => ({ type: 'array', itemType, values }),
};

// ---------------------------------------------------------------------------------------------
// tensor types

/** The ggml tensor types this writer produces: id (ggml_type), values per block, bytes per block. */
export const GGML_TYPES = {
  F32: { id: 0, blockSize: 1, typeSize: 4 },
  F16: { id: 1, blockSize: 1, typeSize: 2 },
  Q4_0: { id: 2, ...QUANT_BLOCKS.Q4_0 },
  Q5_0: { id: 6, ...QUANT_BLOCKS.Q5_0 },
  Q5_1: { id: 7, ...QUANT_BLOCKS.Q5_1 },
  Q8_0: { id: 8, blockSize: 32, typeSize: 34 },
  Q4_K: { id: 12, ...QUANT_BLOCKS.Q4_K },
  Q5_K: { id: 13, ...QUANT_BLOCKS.Q5_K },
  Q6_K: { id: 14, ...QUANT_BLOCKS.Q6_K },
  BF16: { id: 30, blockSize: 1, typeSize: 2 },
} as const;
export type GgmlTypeName = keyof typeof GGML_TYPES;

export interface GgufTensor {
  /** GGUF name, e.g. "blk.0.attn_q.weight". */
  name: string;
  /** PyTorch/HF shape, outermost first; written to the file reversed (ne[0] = last dimension). */
  shape: readonly number[];
  type: GgmlTypeName;
  /** Row-major float32 values, or a thunk called when the writer reaches this tensor. */
  data: Float32Array | (() => Float32Array);
  /**
   * Block types Q4_0..Q6_K: the importance of each input channel (ne[0] values), weighting the
   * rounding error when block scales are chosen (gguf_quants.ts); absent = all 1.
   */
  importance?: Float32Array | null;
}

export interface WriteGgufOptions {
  /** Data alignment in bytes (a power of two); written as general.alignment when not 32. */
  alignment?: number;
  /** Called after each tensor is written (index, tensor, bytes written for it). */
  onTensor?: (index: number, tensor: GgufTensor, bytes: number) => void;
}

export interface WriteGgufResult {
  bytes: number;
  headerBytes: number;
  tensors: number;
}

/** Bytes a tensor takes in the data section, before alignment padding. */
export function ggmlTensorBytes(type: GgmlTypeName, shape: readonly number[]): number {
  const t = GGML_TYPES[type];
  const numel = shape.reduce((a, b) => a * b, 1);
  return (numel / t.blockSize) * t.typeSize;
}

/** Whether a tensor of this shape can be stored as `type` (block types need ne[0] % block == 0). */
export function ggmlTypeFits(type: GgmlTypeName, shape: readonly number[]): boolean {
  const ne0 = shape.length === 0 ? 1 : shape[shape.length - 1];
  return ne0 % GGML_TYPES[type].blockSize === 0;
}

// ---------------------------------------------------------------------------------------------
// writing

/** Writes a complete GGUF file atomically; returns the file size. */
export function writeGguf(path: string, kvs: ReadonlyArray<readonly [string, GgufValue]>, tensors: readonly GgufTensor[],
  o: WriteGgufOptions = {}): WriteGgufResult {
  const alignment = o.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const allKv = alignment === GGUF_DEFAULT_ALIGNMENT ? kvs : [...kvs, ['general.alignment', kv.u32(alignment)] as const];
  const header = buildGgufHeader(path, allKv, tensors, alignment);
  let total = header.length;
  writeAtomic(path, (fd) => {
    writeAll(fd, header);
    tensors.forEach((t, i) => {
      const bytes = encodeTensor(path, t);
      writeAll(fd, bytes);
      const pad = padTo(bytes.length, alignment) - bytes.length;
      if (pad > 0) writeAll(fd, new Uint8Array(pad));
      total += bytes.length + pad;
      o.onTensor?.(i, t, bytes.length);
    });
  });
  return { bytes: total, headerBytes: header.length, tensors: tensors.length };
}

/** Sections 1-7 up to the start of the data section (padding included). */
export function buildGgufHeader(where: string, kvs: ReadonlyArray<readonly [string, GgufValue]>,
  tensors: readonly GgufTensor[], alignment = GGUF_DEFAULT_ALIGNMENT): Uint8Array {
  checkAlignment(where, alignment);
  checkKeys(where, kvs);
  const w = new ByteWriter();
  w.bytes(utf8.encode(GGUF_MAGIC));
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  w.u64(kvs.length);
  for (const [key, value] of kvs) {
    w.str(key);
    writeValue(w, where, key, value);
  }
  const names = new Set<string>();
  let offset = 0;
  for (const t of tensors) {
    checkTensor(where, t, names);
    w.str(t.name);
    w.u32(t.shape.length);
    for (let d = t.shape.length - 1; d >= 0; d--) w.u64(t.shape[d]); // ne: innermost first
    w.u32(GGML_TYPES[t.type].id);
    w.u64(offset);
    offset = padTo(offset + ggmlTensorBytes(t.type, t.shape), alignment);
  }
  w.zeros(padTo(w.length, alignment) - w.length);
  return w.finish();
}

function writeValue(w: ByteWriter, where: string, key: string, v: GgufValue): void {
  if (v.type === 'array') {
    if (!(v.itemType in GGUF_TYPE) || (v.itemType as string) === 'array') throw badValue(where, key, 'array items must be scalars or strings', v.itemType);
    w.u32(GGUF_TYPE.array);
    w.u32(GGUF_TYPE[v.itemType]);
    w.u64(v.values.length);
    for (const x of v.values) writeScalar(w, where, key, v.itemType, x);
    return;
  }
  if (!(v.type in GGUF_TYPE)) throw badValue(where, key, 'the value type must be a gguf_type', String(v.type));
  w.u32(GGUF_TYPE[v.type]);
  writeScalar(w, where, key, v.type, v.value);
}

const INT_RANGE: Record<string, [number, number]> = {
  u8: [0, 0xff], i8: [-0x80, 0x7f], u16: [0, 0xffff], i16: [-0x8000, 0x7fff], u32: [0, 0xffffffff], i32: [-0x80000000, 0x7fffffff],
};

function writeScalar(w: ByteWriter, where: string, key: string, type: GgufScalarType, x: Scalar): void {
  if (type === 'string') {
    if (typeof x !== 'string') throw badValue(where, key, 'a string value must be a string', typeof x);
    w.str(x);
  } else if (type === 'bool') {
    if (typeof x !== 'boolean') throw badValue(where, key, 'a bool value must be true or false', typeof x);
    w.u8(x ? 1 : 0);
  } else if (type === 'f32' || type === 'f64') {
    if (typeof x !== 'number') throw badValue(where, key, `an ${type} value must be a number`, typeof x);
    if (type === 'f32') w.f32(x); else w.f64(x);
  } else if (type === 'u64' || type === 'i64') {
    const b = typeof x === 'bigint' ? x : typeof x === 'number' && Number.isSafeInteger(x) ? BigInt(x) : null;
    if (b === null || (type === 'u64' && b < 0n)) throw badValue(where, key, `a ${type} value must be an integer in range`, String(x));
    if (type === 'u64') w.u64(b); else w.i64(b);
  } else {
    const [lo, hi] = INT_RANGE[type];
    if (typeof x !== 'number' || !Number.isInteger(x) || x < lo || x > hi) throw badValue(where, key, `a ${type} value must be an integer in [${lo}, ${hi}]`, String(x));
    w.int(type, x);
  }
}

function badValue(where: string, key: string, rule: string, found: string): KompresorError {
  return new KompresorError({ code: 'impl_error', where: `${where}: key "${key}"`, rule, found });
}

function checkAlignment(where: string, alignment: number): void {
  if (!Number.isInteger(alignment) || alignment < 1 || (alignment & (alignment - 1)) !== 0) {
    throw new KompresorError({ code: 'input_invalid', where, rule: 'the GGUF alignment must be a power of two', found: String(alignment) });
  }
}

function checkKeys(where: string, kvs: ReadonlyArray<readonly [string, GgufValue]>): void {
  const seen = new Set<string>();
  for (const [key] of kvs) {
    if (key.length === 0 || seen.has(key)) {
      throw new KompresorError({ code: 'impl_error', where, rule: 'GGUF keys must be non-empty and unique', found: JSON.stringify(key) });
    }
    seen.add(key);
  }
}

function checkTensor(where: string, t: GgufTensor, names: Set<string>): void {
  const fail = (rule: string, found: string) => new KompresorError({ code: 'impl_error', where: `${where}: tensor "${t.name}"`, rule, found });
  if (names.has(t.name)) throw fail('tensor names must be unique', 'a duplicate');
  names.add(t.name);
  const nameBytes = utf8.encode(t.name).length;
  if (nameBytes === 0 || nameBytes > GGUF_MAX_NAME_BYTES) throw fail(`a tensor name must have 1..${GGUF_MAX_NAME_BYTES} bytes`, `${nameBytes} bytes`);
  if (!(t.type in GGML_TYPES)) throw fail(`the tensor type must be one of ${Object.keys(GGML_TYPES).join(', ')}`, String(t.type));
  if (t.shape.length < 1 || t.shape.length > GGML_MAX_DIMS || !t.shape.every((d) => Number.isSafeInteger(d) && d > 0)) {
    throw fail(`the shape must have 1..${GGML_MAX_DIMS} positive dimensions`, JSON.stringify(t.shape));
  }
  if (!ggmlTypeFits(t.type, t.shape)) {
    throw fail(`${t.type} needs the last dimension to be a multiple of ${GGML_TYPES[t.type].blockSize}`, JSON.stringify(t.shape));
  }
}

export function padTo(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

// ---------------------------------------------------------------------------------------------
// tensor data

/** The tensor's bytes in its ggml type (F32 is a view of the values, no copy). */
export function encodeTensor(where: string, t: GgufTensor): Uint8Array {
  const data = typeof t.data === 'function' ? t.data() : t.data;
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (data.length !== n) {
    throw new KompresorError({ code: 'shape_mismatch', where: `${where}: tensor "${t.name}"`,
      rule: 'the data length must equal the product of the shape', expected: `${n} values for [${t.shape.join(', ')}]`, found: `${data.length}` });
  }
  if (t.type === 'F32') return new Uint8Array(data.buffer, data.byteOffset, n * 4);
  if (t.type === 'Q8_0') return quantizeQ8_0(data);
  if (t.type in QUANT_BLOCKS) return quantizeMatrix(t.type as QuantTypeName, data, t.shape[t.shape.length - 1], t.importance ?? null);
  const half = new Uint16Array(n);
  (t.type === 'BF16' ? kernels.f32ToBf16 : kernels.f32ToF16)(half, data, n);
  return new Uint8Array(half.buffer);
}

export const QK8_0 = 32;

/**
 * Q8_0 blocks of 32 consecutive values (x.length must be a multiple of 32), as ggml's
 * quantize_row_q8_0_ref: d = amax / 127 in float32, stored as f16 (round to nearest even);
 * q = roundf(x * (1/d)) with the product in float32 and roundf rounding halves away from zero.
 * Block bytes: d (u16 little-endian) then q[0..31] (int8).
 */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  const nb = x.length / QK8_0;
  if (!Number.isInteger(nb)) {
    throw new KompresorError({ code: 'impl_error', where: 'quantizeQ8_0', rule: 'Q8_0 needs a multiple of 32 values', found: String(x.length) });
  }
  const f32 = Math.fround;
  const d = new Float32Array(nb), id = new Float32Array(nb);
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    for (let j = b * QK8_0; j < (b + 1) * QK8_0; j++) amax = Math.max(amax, Math.abs(x[j]));
    d[b] = f32(amax / 127);
    id[b] = d[b] !== 0 ? f32(1 / d[b]) : 0;
  }
  const dBits = new Uint16Array(nb);
  kernels.f32ToF16(dBits, d, nb);
  const out = new Uint8Array(nb * 34);
  const q = new Int8Array(out.buffer);
  for (let b = 0; b < nb; b++) {
    const o = b * 34;
    out[o] = dBits[b] & 0xff;
    out[o + 1] = dBits[b] >>> 8;
    for (let j = 0; j < QK8_0; j++) {
      const v = f32(x[b * QK8_0 + j] * id[b]);
      q[o + 2 + j] = v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// byte buffer

/** A growable little-endian byte buffer for the header. */
class ByteWriter {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): number {
    if (this.length + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  u8(x: number): void {
    const at = this.reserve(1);
    this.buf[at] = x;
  }
  // reserve() may replace buf and view, so it always runs before they are read
  u32(x: number): void { const at = this.reserve(4); this.view.setUint32(at, x, true); }
  u64(x: number | bigint): void { const at = this.reserve(8); this.view.setBigUint64(at, BigInt(x), true); }
  i64(x: bigint): void { const at = this.reserve(8); this.view.setBigInt64(at, x, true); }
  f32(x: number): void { const at = this.reserve(4); this.view.setFloat32(at, x, true); }
  f64(x: number): void { const at = this.reserve(8); this.view.setFloat64(at, x, true); }
  int(type: string, x: number): void {
    const at = this.reserve(type === 'u8' || type === 'i8' ? 1 : type === 'u16' || type === 'i16' ? 2 : 4);
    if (type === 'u8') this.view.setUint8(at, x);
    else if (type === 'i8') this.view.setInt8(at, x);
    else if (type === 'u16') this.view.setUint16(at, x, true);
    else if (type === 'i16') this.view.setInt16(at, x, true);
    else if (type === 'u32') this.view.setUint32(at, x, true);
    else this.view.setInt32(at, x, true);
  }
  bytes(b: Uint8Array): void {
    const at = this.reserve(b.length); // may replace this.buf: reserve first
    this.buf.set(b, at);
  }
  str(s: string): void {
    const b = utf8.encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  zeros(n: number): void { this.reserve(n); /* fresh bytes of a grown buffer are already zero */ }
  finish(): Uint8Array { return this.buf.slice(0, this.length); }
}
