// GGUF v2/v3 reader: the header (key-values and tensor infos) read through a small refilling
// buffer, and single tensors loaded as float32 (every type gguf_writer.ts writes is decoded). It checks
// what gguf_writer.ts writes and lets `inspect`-style tools look into files from elsewhere.
// The layout is the numbered spec in gguf_writer.ts and docs/gguf.md.
import fs from 'node:fs';
import { KompresorError } from '../errors.ts';
import { kernels } from '../tensor/ops.ts';
import { dequantize, QUANT_BLOCKS, type QuantTypeName } from './gguf_quants.ts';
import { GGUF_DEFAULT_ALIGNMENT, GGUF_TYPE, GGML_TYPES, QK8_0, padTo, type GgufScalarType, type GgmlTypeName } from './gguf_writer.ts';

export type GgufReadValue = number | bigint | boolean | string | Array<number | bigint | boolean | string>;

export interface GgufKv {
  /** gguf_type name of the value; for arrays, 'array' and the item type. */
  type: GgufScalarType | 'array';
  itemType?: GgufScalarType;
  value: GgufReadValue;
}

export interface GgufTensorInfo {
  name: string;
  /** ggml ne, innermost dimension first (the reverse of the HF shape). */
  ne: number[];
  /** ggml_type id, and its name when it is one this reader decodes. */
  typeId: number;
  type: GgmlTypeName | null;
  /** Offset from the start of the data section. */
  offset: number;
}

export interface GgufFile {
  path: string;
  version: number;
  kv: Map<string, GgufKv>;
  tensors: Map<string, GgufTensorInfo>;
  alignment: number;
  /** Absolute file offset of the data section. */
  dataStart: number;
  fileSize: number;
}

const TYPE_NAME = new Map<number, GgufScalarType | 'array'>(Object.entries(GGUF_TYPE).map(([k, v]) => [v, k as GgufScalarType | 'array']));
const GGML_NAME = new Map<number, GgmlTypeName>(Object.entries(GGML_TYPES).map(([k, v]) => [v.id, k as GgmlTypeName]));

// ---------------------------------------------------------------------------------------------
// header

export function readGguf(path: string): GgufFile {
  const r = new FileCursor(path);
  try {
    const magic = new TextDecoder().decode(r.take(4));
    if (magic !== 'GGUF') throw r.corrupt('the file must start with the magic "GGUF"', JSON.stringify(magic));
    const version = r.u32();
    if (version !== 2 && version !== 3) throw r.corrupt('the GGUF version must be 2 or 3', String(version));
    const nTensors = r.count('n_tensors'), nKv = r.count('n_kv');
    const kv = new Map<string, GgufKv>();
    for (let i = 0; i < nKv; i++) {
      const key = r.str();
      kv.set(key, readValue(r));
    }
    const alignment = alignmentOf(r, kv);
    const tensors = new Map<string, GgufTensorInfo>();
    for (let i = 0; i < nTensors; i++) {
      const t = readTensorInfo(r);
      tensors.set(t.name, t);
    }
    const dataStart = padTo(r.position, alignment);
    checkTensorExtents(r, tensors, dataStart);
    return { path, version, kv, tensors, alignment, dataStart, fileSize: r.fileSize };
  } finally {
    r.close();
  }
}

function readValue(r: FileCursor): GgufKv {
  const type = r.type();
  if (type !== 'array') return { type, value: readScalar(r, type) };
  const itemType = r.type();
  if (itemType === 'array') throw r.corrupt('nested arrays are not part of GGUF', 'an array of arrays');
  const n = r.count('array length');
  const values: Array<number | bigint | boolean | string> = [];
  for (let i = 0; i < n; i++) values.push(readScalar(r, itemType));
  return { type, itemType, value: values };
}

function readScalar(r: FileCursor, type: GgufScalarType): number | bigint | boolean | string {
  switch (type) {
    case 'string': return r.str();
    case 'bool': return r.take(1)[0] !== 0;
    case 'u8': return r.view(1).getUint8(0);
    case 'i8': return r.view(1).getInt8(0);
    case 'u16': return r.view(2).getUint16(0, true);
    case 'i16': return r.view(2).getInt16(0, true);
    case 'u32': return r.u32();
    case 'i32': return r.view(4).getInt32(0, true);
    case 'f32': return r.view(4).getFloat32(0, true);
    case 'f64': return r.view(8).getFloat64(0, true);
    case 'u64': return r.view(8).getBigUint64(0, true);
    case 'i64': return r.view(8).getBigInt64(0, true);
  }
}

function alignmentOf(r: FileCursor, kv: Map<string, GgufKv>): number {
  const a = kv.get('general.alignment');
  if (!a) return GGUF_DEFAULT_ALIGNMENT;
  const v = a.value;
  if (a.type !== 'u32' || typeof v !== 'number' || v === 0 || (v & (v - 1)) !== 0) {
    throw r.corrupt('general.alignment must be a u32 power of two', JSON.stringify(String(v)));
  }
  return v;
}

function readTensorInfo(r: FileCursor): GgufTensorInfo {
  const name = r.str();
  const nDims = r.u32();
  if (nDims < 1 || nDims > 4) throw r.corrupt(`tensor "${name}" must have 1..4 dimensions`, String(nDims));
  const ne: number[] = [];
  for (let d = 0; d < nDims; d++) ne.push(r.count(`tensor "${name}" ne[${d}]`));
  const typeId = r.u32();
  const offset = r.count(`tensor "${name}" offset`);
  return { name, ne, typeId, type: GGML_NAME.get(typeId) ?? null, offset };
}

function checkTensorExtents(r: FileCursor, tensors: Map<string, GgufTensorInfo>, dataStart: number): void {
  for (const t of tensors.values()) {
    if (!t.type) continue; // a type we do not decode: its size is unknown here
    const end = dataStart + t.offset + tensorBytes(t);
    if (end > r.fileSize) throw r.corrupt(`tensor "${t.name}" must lie inside the file`, `end ${end} > size ${r.fileSize}`);
  }
}

/** Bytes of a tensor of a decodable type (block types pack ne[0] in blocks). */
export function tensorBytes(t: GgufTensorInfo): number {
  const g = GGML_TYPES[t.type!];
  return (t.ne.reduce((a, b) => a * b, 1) / g.blockSize) * g.typeSize;
}

// ---------------------------------------------------------------------------------------------
// tensor data

/** Loads one tensor as float32, row-major in the HF shape (ne reversed). */
export function readGgufTensorF32(file: GgufFile, name: string): Float32Array {
  const t = file.tensors.get(name);
  if (!t) {
    throw new KompresorError({ code: 'checkpoint_missing_tensor', where: `${file.path}: tensor "${name}"`,
      rule: 'the tensor must be in the GGUF file', found: `${file.tensors.size} tensors without it` });
  }
  if (!t.type) {
    throw new KompresorError({ code: 'input_invalid', where: `${file.path}: tensor "${name}"`,
      rule: `only ${Object.keys(GGML_TYPES).join(', ')} tensors can be decoded`, found: `ggml type ${t.typeId}` });
  }
  const bytes = new Uint8Array(tensorBytes(t));
  const fd = fs.openSync(file.path, 'r');
  try {
    for (let got = 0; got < bytes.length;) {
      const k = fs.readSync(fd, bytes, got, Math.min(bytes.length - got, 0x7fff_f000), file.dataStart + t.offset + got);
      if (k === 0) throw new KompresorError({ code: 'input_invalid', where: `${file.path}: tensor "${name}"`, rule: 'the tensor data must be in the file', found: `end after ${got} bytes` });
      got += k;
    }
  } finally {
    fs.closeSync(fd);
  }
  return decodeTensor(t.type, bytes);
}

export function decodeTensor(type: GgmlTypeName, bytes: Uint8Array): Float32Array {
  if (type === 'F32') return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4).slice();
  if (type === 'Q8_0') return dequantizeQ8_0(bytes);
  if (type in QUANT_BLOCKS) {
    const q = QUANT_BLOCKS[type as QuantTypeName];
    return dequantize(type as QuantTypeName, bytes, (bytes.length / q.typeSize) * q.blockSize);
  }
  const n = bytes.length / 2;
  const half = new Uint16Array(bytes.slice().buffer, 0, n);
  const out = new Float32Array(n);
  (type === 'BF16' ? kernels.bf16ToF32 : kernels.f16ToF32)(out, half, n);
  return out;
}

/** x = d * q per block (ggml's dequantize_row_q8_0). */
export function dequantizeQ8_0(bytes: Uint8Array): Float32Array {
  const nb = bytes.length / 34;
  const dBits = new Uint16Array(nb);
  for (let b = 0; b < nb; b++) dBits[b] = bytes[b * 34] | (bytes[b * 34 + 1] << 8);
  const d = new Float32Array(nb);
  kernels.f16ToF32(d, dBits, nb);
  const q = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  const out = new Float32Array(nb * QK8_0);
  for (let b = 0; b < nb; b++) {
    for (let j = 0; j < QK8_0; j++) out[b * QK8_0 + j] = Math.fround(d[b] * q[b * 34 + 2 + j]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// cursor

/** Sequential reads from a file through a refilling buffer (headers can hold megabytes of vocab). */
class FileCursor {
  private fd: number;
  readonly fileSize: number;
  private buf = new Uint8Array(1 << 20);
  private bufStart = 0;
  private bufEnd = 0;
  position = 0;

  constructor(readonly path: string) {
    try {
      this.fd = fs.openSync(path, 'r');
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new KompresorError({ code: err.code === 'ENOENT' ? 'file_not_found' : 'io_error', where: path,
        rule: 'the GGUF file must exist and be readable', found: err.message });
    }
    this.fileSize = fs.fstatSync(this.fd).size;
  }

  close(): void { fs.closeSync(this.fd); }

  corrupt(rule: string, found: string): KompresorError {
    return new KompresorError({ code: 'input_invalid', where: `${this.path} at byte ${this.position}`, rule, found,
      hint: 'the file is truncated or not a GGUF file' });
  }

  take(n: number): Uint8Array {
    if (this.position + n > this.fileSize) throw this.corrupt('the header must fit inside the file', `${n} bytes wanted past the end`);
    if (this.position + n > this.bufEnd) this.fill(n);
    const at = this.position - this.bufStart;
    this.position += n;
    return this.buf.subarray(at, at + n);
  }

  view(n: number): DataView {
    const b = this.take(n);
    return new DataView(b.buffer, b.byteOffset, n);
  }

  u32(): number { return this.view(4).getUint32(0, true); }

  /** A u64 used as a count, size or offset: it must fit a safe integer. */
  count(what: string): number {
    const v = this.view(8).getBigUint64(0, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.corrupt(`${what} must be a plausible size`, String(v));
    return Number(v);
  }

  str(): string {
    const n = this.count('a string length');
    return new TextDecoder('utf-8').decode(this.take(n));
  }

  type(): GgufScalarType | 'array' {
    const id = this.u32();
    const t = TYPE_NAME.get(id);
    if (t === undefined) throw this.corrupt('a value type must be a gguf_type (0..12)', String(id));
    return t;
  }

  /** Refills from the current position with at least n bytes (take() has checked they exist). */
  private fill(n: number): void {
    if (n > this.buf.length) this.buf = new Uint8Array(n);
    const want = Math.min(this.buf.length, this.fileSize - this.position);
    let got = 0;
    while (got < n) {
      const k = fs.readSync(this.fd, this.buf, got, want - got, this.position + got);
      if (k === 0) throw this.corrupt('the file must not shrink while it is read', `end after ${got} bytes`);
      got += k;
    }
    this.bufStart = this.position;
    this.bufEnd = this.position + got;
  }
}
