// KPTOK token shards: the binary files `kompresor data prepare` writes and the packed sources read.
// One shard holds whole documents (each ending with EOS) as uint16 or uint32 token ids, followed
// by the document offsets. The format is specified in docs/data-format.md; in short:
//
//   [0, 64)            header (little-endian): magic "KPTOK\0\0\0", u32 version = 1,
//                      u32 token_bytes (2|4), u64 n_tokens, u64 n_docs, u64 tokens_offset = 64,
//                      u64 offsets_offset, u32 eos_id, u32 vocab_size, 8 reserved zero bytes
//   [64, ...)          n_tokens ids of token_bytes each, then zeros up to a multiple of 8
//   [offsets_offset,)  n_docs + 1 u64 document offsets (in tokens): 0 = o[0] < o[1] < ... = n_tokens
//
// Limits: little-endian hosts only (typed arrays are used as the file's byte order); readers never
// load the token section whole (reads are by range), but they do hold the offsets (8 bytes per
// document) in memory; writers keep offsets in memory until the shard is finished.
import fs from 'node:fs';
import os from 'node:os';
import { createHash } from 'node:crypto';
import { KompresorError, ensure } from '../errors.ts';

export const KPTOK_MAGIC = Buffer.from('KPTOK\0\0\0', 'latin1');
export const KPTOK_VERSION = 1;
export const KPTOK_HEADER_BYTES = 64;

ensure(os.endianness() === 'LE', 'data/shards', () => 'KPTOK shards are read and written as little-endian typed arrays; this host is big-endian');

export interface ShardHeader {
  version: number;
  tokenBytes: 2 | 4;
  nTokens: number;
  nDocs: number;
  tokensOffset: number;
  offsetsOffset: number;
  eosId: number;
  vocabSize: number;
}

const align8 = (n: number) => Math.ceil(n / 8) * 8;

/** Byte position of the offsets table and the exact file size implied by the counts. */
export function shardLayout(tokenBytes: number, nTokens: number, nDocs: number): { offsetsOffset: number; fileBytes: number } {
  const offsetsOffset = align8(KPTOK_HEADER_BYTES + nTokens * tokenBytes);
  return { offsetsOffset, fileBytes: offsetsOffset + 8 * (nDocs + 1) };
}

export function encodeHeader(h: ShardHeader): Buffer {
  const b = Buffer.alloc(KPTOK_HEADER_BYTES);
  KPTOK_MAGIC.copy(b, 0);
  b.writeUInt32LE(h.version, 8);
  b.writeUInt32LE(h.tokenBytes, 12);
  b.writeBigUInt64LE(BigInt(h.nTokens), 16);
  b.writeBigUInt64LE(BigInt(h.nDocs), 24);
  b.writeBigUInt64LE(BigInt(h.tokensOffset), 32);
  b.writeBigUInt64LE(BigInt(h.offsetsOffset), 40);
  b.writeUInt32LE(h.eosId, 48);
  b.writeUInt32LE(h.vocabSize, 52);
  return b;
}

function corrupt(path: string, rule: string, expected: string | undefined, found: string): KompresorError {
  return new KompresorError({ code: 'input_invalid', where: path, rule, expected, found,
    hint: 'the shard is damaged or not a KPTOK file; run `kompresor data prepare` again' });
}

/** Validates the 64 header bytes against the file size; every field is checked before use. */
export function decodeHeader(b: Buffer, fileBytes: number, path: string): ShardHeader {
  if (fileBytes < KPTOK_HEADER_BYTES) throw corrupt(path, 'a KPTOK shard starts with a 64-byte header', `at least ${KPTOK_HEADER_BYTES} bytes`, `${fileBytes} bytes`);
  if (!b.subarray(0, 8).equals(KPTOK_MAGIC)) throw corrupt(path, 'a KPTOK shard starts with the magic "KPTOK\\0\\0\\0"', undefined, JSON.stringify(b.subarray(0, 8).toString('latin1')));
  const version = b.readUInt32LE(8);
  if (version !== KPTOK_VERSION) {
    throw new KompresorError({ code: 'input_invalid', where: path, rule: 'this kompresor reads KPTOK version 1', expected: `${KPTOK_VERSION}`, found: `${version}`, hint: 'prepare the data again with this version of kompresor' });
  }
  const tokenBytes = b.readUInt32LE(12);
  if (tokenBytes !== 2 && tokenBytes !== 4) throw corrupt(path, 'token_bytes must be 2 (uint16) or 4 (uint32)', '2 or 4', `${tokenBytes}`);
  const u64 = (at: number) => {
    const v = b.readBigUInt64LE(at);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(path, `the u64 at header byte ${at} must be a plausible size`, `<= ${Number.MAX_SAFE_INTEGER}`, `${v}`);
    return Number(v);
  };
  const h: ShardHeader = { version, tokenBytes, nTokens: u64(16), nDocs: u64(24), tokensOffset: u64(32), offsetsOffset: u64(40),
    eosId: b.readUInt32LE(48), vocabSize: b.readUInt32LE(52) };
  if (h.tokensOffset !== KPTOK_HEADER_BYTES) throw corrupt(path, 'tokens_offset must follow the header', `${KPTOK_HEADER_BYTES}`, `${h.tokensOffset}`);
  const layout = shardLayout(tokenBytes, h.nTokens, h.nDocs);
  if (h.offsetsOffset !== layout.offsetsOffset) throw corrupt(path, 'offsets_offset must follow the tokens, 8-byte aligned', `${layout.offsetsOffset}`, `${h.offsetsOffset}`);
  if (fileBytes !== layout.fileBytes) {
    throw corrupt(path, `the file size must match the header (${h.nTokens} tokens, ${h.nDocs} documents)`, `${layout.fileBytes} bytes`, `${fileBytes} bytes`);
  }
  return h;
}

// ---------------------------------------------------------------------------------------------
// writing

const WRITE_BUFFER_BYTES = 1 << 22;

/**
 * Writes one shard to `path` (a temp name; the caller renames it). Documents are appended whole;
 * the header is written last, at byte 0, once the counts are known.
 */
export class ShardWriter {
  readonly path: string;
  private fd: number;
  private buf = Buffer.alloc(WRITE_BUFFER_BYTES);
  private used = 0;
  private offsets: number[] = [0];
  nTokens = 0;

  constructor(path: string, readonly tokenBytes: 2 | 4, readonly eosId: number, readonly vocabSize: number) {
    this.path = path;
    this.fd = fs.openSync(path, 'w');
    fs.writeSync(this.fd, Buffer.alloc(KPTOK_HEADER_BYTES)); // placeholder; finish() fills it in
  }

  get nDocs(): number { return this.offsets.length - 1; }

  /** One document's ids (EOS included), each < vocabSize. */
  appendDoc(ids: Uint32Array): void {
    const bytes = ids.length * this.tokenBytes;
    if (this.used + bytes > this.buf.length) this.flush();
    if (bytes > this.buf.length) {
      fs.writeSync(this.fd, this.encode(ids));
    } else {
      const view = this.tokenBytes === 2 ? new Uint16Array(this.buf.buffer, this.buf.byteOffset + this.used, ids.length)
        : new Uint32Array(this.buf.buffer, this.buf.byteOffset + this.used, ids.length);
      view.set(ids);
      this.used += bytes;
    }
    this.nTokens += ids.length;
    this.offsets.push(this.nTokens);
  }

  private encode(ids: Uint32Array): Uint8Array {
    const a = this.tokenBytes === 2 ? Uint16Array.from(ids) : ids;
    return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  }

  private flush(): void {
    if (this.used > 0) fs.writeSync(this.fd, this.buf, 0, this.used);
    this.used = 0;
  }

  /** Pads, writes the offsets and the header, syncs and closes; returns the file's size and sha256. */
  finish(): { bytes: number; sha256: string } {
    this.flush();
    const { offsetsOffset, fileBytes } = shardLayout(this.tokenBytes, this.nTokens, this.nDocs);
    const pad = offsetsOffset - (KPTOK_HEADER_BYTES + this.nTokens * this.tokenBytes);
    if (pad > 0) fs.writeSync(this.fd, Buffer.alloc(pad));
    for (let i = 0; i < this.offsets.length; i += 1 << 16) {
      const part = BigUint64Array.from(this.offsets.slice(i, i + (1 << 16)), (x) => BigInt(x));
      fs.writeSync(this.fd, new Uint8Array(part.buffer));
    }
    const header = encodeHeader({ version: KPTOK_VERSION, tokenBytes: this.tokenBytes, nTokens: this.nTokens, nDocs: this.nDocs,
      tokensOffset: KPTOK_HEADER_BYTES, offsetsOffset, eosId: this.eosId, vocabSize: this.vocabSize });
    fs.writeSync(this.fd, header, 0, header.length, 0);
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    const bytes = fs.statSync(this.path).size;
    ensure(bytes === fileBytes, 'ShardWriter.finish', () => `wrote ${bytes} bytes, layout says ${fileBytes}`);
    return { bytes, sha256: sha256File(this.path) };
  }

  /** Closes and deletes a shard that will not be finished (error paths). */
  abort(): void {
    try { fs.closeSync(this.fd); } catch { /* already closed */ }
    fs.rmSync(this.path, { force: true });
  }
}

/** sha256 of a file, read in 4 MiB chunks. */
export function sha256File(path: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(path, 'r');
  try {
    const chunk = Buffer.alloc(1 << 22);
    for (let n; (n = fs.readSync(fd, chunk, 0, chunk.length, null)) > 0;) h.update(chunk.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

// ---------------------------------------------------------------------------------------------
// reading

/** An open shard: header and document offsets in memory, tokens read by range from the file. */
export class ShardReader {
  readonly path: string;
  readonly header: ShardHeader;
  /** offsets[d] .. offsets[d + 1]: the tokens of document d. */
  readonly offsets: Float64Array;
  private fd: number;

  private constructor(path: string, fd: number, header: ShardHeader, offsets: Float64Array) {
    this.path = path; this.fd = fd; this.header = header; this.offsets = offsets;
  }

  static open(path: string): ShardReader {
    if (!fs.existsSync(path)) {
      throw new KompresorError({ code: 'file_not_found', where: path, rule: 'every shard listed in manifest.json must exist', found: 'no such file',
        hint: 'copy the whole data folder, or run `kompresor data prepare` again' });
    }
    const fd = fs.openSync(path, 'r');
    try {
      const head = Buffer.alloc(KPTOK_HEADER_BYTES);
      fs.readSync(fd, head, 0, KPTOK_HEADER_BYTES, 0);
      const header = decodeHeader(head, fs.fstatSync(fd).size, path);
      return new ShardReader(path, fd, header, readOffsets(fd, header, path));
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  get nDocs(): number { return this.header.nDocs; }
  get nTokens(): number { return this.header.nTokens; }
  docLength(d: number): number { return this.offsets[d + 1] - this.offsets[d]; }

  /** `count` tokens from token index `start` (shard-wide), widened to uint32. */
  readTokens(start: number, count: number): Uint32Array {
    ensure(start >= 0 && count >= 0 && start + count <= this.header.nTokens, 'ShardReader.readTokens',
      () => `range [${start}, ${start + count}) outside ${this.header.nTokens} tokens of ${this.path}`);
    const tb = this.header.tokenBytes;
    const raw = new Uint8Array(count * tb); // a fresh ArrayBuffer: aligned for the typed views below
    const n = fs.readSync(this.fd, raw, 0, raw.length, KPTOK_HEADER_BYTES + start * tb);
    if (n !== raw.length) throw corrupt(this.path, 'the token range must be readable', `${raw.length} bytes`, `${n} bytes (the file shrank while open)`);
    return tb === 4 ? new Uint32Array(raw.buffer) : Uint32Array.from(new Uint16Array(raw.buffer));
  }

  /** The tokens of document d. */
  readDoc(d: number): Uint32Array { return this.readTokens(this.offsets[d], this.docLength(d)); }

  close(): void { fs.closeSync(this.fd); }
}

function readOffsets(fd: number, h: ShardHeader, path: string): Float64Array {
  const raw = new Uint8Array(8 * (h.nDocs + 1));
  fs.readSync(fd, raw, 0, raw.length, h.offsetsOffset);
  const big = new BigUint64Array(raw.buffer);
  const out = new Float64Array(big.length);
  for (let i = 0; i < big.length; i++) {
    out[i] = Number(big[i]);
    const ok = i === 0 ? out[0] === 0 : out[i] > out[i - 1] && out[i] <= h.nTokens;
    if (!ok) {
      const expected = i === 0 ? '0' : `a value in (${out[i - 1]}, ${h.nTokens}]`;
      throw corrupt(path, `document offset ${i} must keep the offsets strictly increasing from 0 to n_tokens`, expected, `${big[i]}`);
    }
  }
  if (out[h.nDocs] !== h.nTokens) throw corrupt(path, 'the last document offset must equal n_tokens', `${h.nTokens}`, `${out[h.nDocs]}`);
  return out;
}
