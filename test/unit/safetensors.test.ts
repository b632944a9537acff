// safetensors: round trips per dtype, the on-disk layout byte for byte, chunked reads, and one
// error per corruption the header validator must catch (messages checked, not just codes).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { KompresorError } from '../../src/errors.ts';
import { readSafetensorsHeader, readTensorF32, writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.ts';
import { randn, throwsWith, tempDir } from '../helpers.ts';

let tmp: string;
before(() => { tmp = tempDir('kompresor-st-'); });
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

/** A file with an arbitrary header (object or raw text) and data bytes; `len` overrides the length field. */
function rawFile(name: string, header: unknown, data: Uint8Array = new Uint8Array(0), len?: bigint): string {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const h = new TextEncoder().encode(text);
  const buf = new Uint8Array(8 + h.length + data.length);
  new DataView(buf.buffer).setBigUint64(0, len ?? BigInt(h.length), true);
  buf.set(h, 8);
  buf.set(data, 8 + h.length);
  const p = path.join(tmp, name);
  fs.writeFileSync(p, buf);
  return p;
}

function u16Data(...bits: number[]): Uint8Array {
  return new Uint8Array(new Uint16Array(bits).buffer);
}

/** Asserts fn throws a KompresorError with `code` whose message matches every pattern. */

describe('safetensors round trip', () => {
  test('F32, F16, BF16 write -> read; F32 exact, halves within their rounding', () => {
    const a = randn(6 * 5, 1), b = randn(7, 2), c = randn(3 * 4, 3);
    const p = path.join(tmp, 'rt.safetensors');
    writeSafetensors(p, [
      { name: 'z.f32', dtype: 'F32', shape: [6, 5], data: a },
      { name: 'a.f16', dtype: 'F16', shape: [7], data: b },
      { name: 'm.bf16', dtype: 'BF16', shape: [3, 4], data: () => c },
    ], { note: 'hello' });
    const h = readSafetensorsHeader(p);
    assert.deepEqual([...h.tensors.keys()].sort(), ['a.f16', 'm.bf16', 'z.f32']);
    assert.deepEqual(h.metadata, { format: 'pt', note: 'hello' });
    assert.deepEqual(h.tensors.get('m.bf16'), { dtype: 'BF16', shape: [3, 4], begin: 14, end: 38 });
    assert.deepEqual(readTensorF32(h, h.tensors.get('z.f32')!), a);
    const rb = readTensorF32(h, h.tensors.get('a.f16')!);
    // f16 keeps 11 significant bits: relative error <= 2^-11 for normal values
    for (let i = 0; i < b.length; i++) assert.ok(Math.abs(rb[i] - b[i]) <= Math.abs(b[i]) * 2 ** -11, `f16[${i}]`);
    const rc = readTensorF32(h, h.tensors.get('m.bf16')!);
    for (let i = 0; i < c.length; i++) assert.ok(Math.abs(rc[i] - c[i]) <= Math.abs(c[i]) * 2 ** -8, `bf16[${i}]`);
    assert.notDeepEqual(rc, c, 'bf16 must actually round (else the dtype was ignored)');
  });

  test('layout: 8-byte LE length, space-padded header (multiple of 8), sorted names, "format":"pt", contiguous data', () => {
    const p = path.join(tmp, 'layout.safetensors');
    writeSafetensors(p, [
      { name: 'b', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
      { name: 'a', dtype: 'BF16', shape: [3], data: new Float32Array([1, -2, 0.5]) },
    ]);
    const bytes = fs.readFileSync(p);
    const n = Number(bytes.readBigUInt64LE(0));
    assert.equal(n % 8, 0);
    const text = bytes.subarray(8, 8 + n).toString('utf8');
    assert.match(text, /^\{"__metadata__":\{"format":"pt"\},"a":\{"dtype":"BF16","shape":\[3\],"data_offsets":\[0,6\]\},"b":\{"dtype":"F32","shape":\[2\],"data_offsets":\[6,14\]\}\} *$/);
    const data = bytes.subarray(8 + n);
    assert.equal(data.length, 14);
    // bf16 bit patterns of 1, -2, 0.5; then f32 1, 2
    assert.deepEqual([data.readUInt16LE(0), data.readUInt16LE(2), data.readUInt16LE(4)], [0x3f80, 0xc000, 0x3f00]);
    assert.deepEqual([data.readFloatLE(6), data.readFloatLE(10)], [1, 2]);
  });

  test('half dtypes: known bit patterns decode and encode (round to nearest even)', () => {
    const p = rawFile('bits.safetensors', {
      bf: { dtype: 'BF16', shape: [3], data_offsets: [0, 6] },
      hf: { dtype: 'F16', shape: [5], data_offsets: [6, 16] },
    }, new Uint8Array([...u16Data(0x4049, 0xbf80, 0x7f80), ...u16Data(0x3555, 0x0001, 0x7bff, 0xfc00, 0x3c00)]));
    const h = readSafetensorsHeader(p);
    assert.deepEqual([...readTensorF32(h, h.tensors.get('bf')!)], [3.140625, -1, Infinity]);
    assert.deepEqual([...readTensorF32(h, h.tensors.get('hf')!)], [0.333251953125, 2 ** -24, 65504, -Infinity, 1]);
    // 1 + 2^-8 is halfway between bf16 1 and 1 + 2^-7: ties go to the even mantissa (1.0);
    // 1 + 3*2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even)
    const q = path.join(tmp, 'rne.safetensors');
    writeSafetensors(q, [{ name: 'x', dtype: 'BF16', shape: [2], data: new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8]) }]);
    const raw = fs.readFileSync(q);
    const off = 8 + Number(raw.readBigUInt64LE(0));
    assert.deepEqual([raw.readUInt16LE(off), raw.readUInt16LE(off + 2)], [0x3f80, 0x3f82]);
    // f16 encoding of 1, -2, the largest finite half, 1/3 rounded, and the smallest subnormal
    const r = path.join(tmp, 'f16bits.safetensors');
    writeSafetensors(r, [{ name: 'x', dtype: 'F16', shape: [5], data: new Float32Array([1, -2, 65504, 1 / 3, 2 ** -24]) }]);
    const rb = fs.readFileSync(r);
    const o = 8 + Number(rb.readBigUInt64LE(0));
    assert.deepEqual([0, 2, 4, 6, 8].map((k) => rb.readUInt16LE(o + k)), [0x3c00, 0xc000, 0x7bff, 0x3555, 0x0001]);
  });

  test('chunked reads (chunk smaller than the tensor) give the same values for F32 and BF16', () => {
    const x = randn(1001, 4);
    const p = path.join(tmp, 'chunk.safetensors');
    writeSafetensors(p, [{ name: 'f', dtype: 'F32', shape: [1001], data: x }, { name: 'h', dtype: 'BF16', shape: [7, 143], data: x }]);
    const h = readSafetensorsHeader(p);
    assert.deepEqual(readTensorF32(h, h.tensors.get('f')!, undefined, 44), x);
    const whole = readTensorF32(h, h.tensors.get('h')!);
    assert.deepEqual(readTensorF32(h, h.tensors.get('h')!, undefined, 6), whole);
    assert.deepEqual(readTensorF32(h, h.tensors.get('h')!, undefined, 7), whole); // odd chunk size
  });

  test('reads into a caller buffer; a wrong-sized buffer is refused', () => {
    const p = path.join(tmp, 'out.safetensors');
    writeSafetensors(p, [{ name: 'w', dtype: 'F32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) }]);
    const h = readSafetensorsHeader(p);
    const out = new Float32Array(4);
    assert.equal(readTensorF32(h, h.tensors.get('w')!, out), out);
    assert.deepEqual([...out], [1, 2, 3, 4]);
    throwsWith(() => readTensorF32(h, h.tensors.get('w')!, new Float32Array(3)), 'shape_mismatch', /expected 4 floats, found 3 floats/);
  });

  test('writes atomically: a failing write leaves neither the file nor a temp file', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'atomic-'));
    const p = path.join(dir, 'bad.safetensors');
    const bad: TensorToWrite[] = [{ name: 'w', dtype: 'F32', shape: [3], data: new Float32Array(2) }];
    throwsWith(() => writeSafetensors(p, bad), 'shape_mismatch', /tensor "w"/, /expected 3 values for \[3\], found 2 values/);
    assert.deepEqual(fs.readdirSync(dir), []);
    writeSafetensors(p, [{ name: 'w', dtype: 'F32', shape: [2], data: new Float32Array(2) }]);
    assert.deepEqual(fs.readdirSync(dir), ['bad.safetensors']);
  });

  test('duplicate names are refused', () => {
    const t = { name: 'w', dtype: 'F32' as const, shape: [1], data: new Float32Array(1) };
    throwsWith(() => writeSafetensors(path.join(tmp, 'dup.safetensors'), [t, t]), 'input_invalid', /names must be unique/);
  });
});

describe('safetensors corruption', () => {
  const ok = { w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };

  test('file shorter than 8 bytes', () => {
    const p = path.join(tmp, 'short.safetensors');
    fs.writeFileSync(p, Buffer.from([1, 2, 3]));
    throwsWith(() => readSafetensorsHeader(p), 'safetensors_corrupt', /short\.safetensors: /, /8-byte header length/, /expected at least 8 bytes, found 3 bytes/);
  });

  test('header length beyond the file', () => {
    const p = rawFile('beyond.safetensors', ok, new Uint8Array(8), 500n);
    throwsWith(() => readSafetensorsHeader(p), 'safetensors_corrupt', /header length must fit inside the file/, /found 500 bytes/);
  });

  test('absurd header length (> 100 MB)', () => {
    const p = rawFile('absurd.safetensors', ok, new Uint8Array(8), 1n << 40n);
    throwsWith(() => readSafetensorsHeader(p), 'safetensors_corrupt', /at most 100 MB/, /found 1099511627776/);
  });

  test('header not JSON', () => {
    const p = rawFile('notjson.safetensors', '{"w": {dtype', new Uint8Array(8));
    throwsWith(() => readSafetensorsHeader(p), 'safetensors_corrupt', /header must be UTF-8 JSON/, /found unparseable text/);
  });

  test('header JSON but not an object', () => {
    const p = rawFile('array.safetensors', [1, 2], new Uint8Array(8));
    throwsWith(() => readSafetensorsHeader(p), 'safetensors_corrupt', /must be a JSON object/, /found an array/);
  });

  test('unknown dtype', () => {
    const p = rawFile('dtype.safetensors', { w: { dtype: 'F42', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8));
    throwsWith(() => readSafetensorsHeader(p), 'safetensors_dtype', /tensor "w"/, /dtype must be a safetensors dtype/, /expected F64\/F32\/F16\/BF16/, /found "F42"/);
  });

  test('shape not an array of non-negative integers', () => {
    for (const shape of [[2, -1], [2.5], '2', [null]]) {
      const p = rawFile('shape.safetensors', { w: { dtype: 'F32', shape, data_offsets: [0, 8] } }, new Uint8Array(8));
      throwsWith(() => readSafetensorsHeader(p), 'safetensors_shape', /tensor "w"/, /shape must be an array of non-negative integers/,
        new RegExp(`found ${JSON.stringify(shape).replace(/[[\]]/g, '\\$&')}`));
    }
  });

  test('data_offsets not [begin, end] integers', () => {
    for (const off of [[0], [0, '8'], [8, 0], null]) {
      const p = rawFile('off.safetensors', { w: { dtype: 'F32', shape: [2], data_offsets: off } }, new Uint8Array(8));
      throwsWith(() => readSafetensorsHeader(p), 'safetensors_corrupt', /data_offsets must be \[begin, end\] integers/);
    }
  });

  test('byte length disagrees with dtype and shape', () => {
    const p = rawFile('len.safetensors', { w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } }, new Uint8Array(12));
    throwsWith(() => readSafetensorsHeader(p), 'safetensors_shape', /numel \* itemsize for F32 \[2, 2\]/, /expected 16 bytes, found 12 bytes/);
  });

  test('offsets beyond the data section', () => {
    const p = rawFile('past.safetensors', { w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8));
    throwsWith(() => readSafetensorsHeader(p), 'safetensors_corrupt', /inside the data section/, /expected end <= 8, found end 16/);
  });

  test('overlapping tensors', () => {
    const p = rawFile('overlap.safetensors', {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    }, new Uint8Array(12));
    throwsWith(() => readSafetensorsHeader(p), 'safetensors_corrupt', /tensor "b"/, /must not overlap \(it overlaps "a"\)/, /expected begin >= 8, found begin 4/);
  });

  test('__metadata__ with non-string values', () => {
    const p = rawFile('meta.safetensors', { __metadata__: { n: 1 }, ...ok }, new Uint8Array(8));
    throwsWith(() => readSafetensorsHeader(p), 'safetensors_corrupt', /__metadata__ must map strings to strings/);
  });

  test('integer tensors are listed but refused as weights', () => {
    const p = rawFile('int.safetensors', { ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, new Uint8Array(16));
    const h = readSafetensorsHeader(p);
    assert.deepEqual(h.tensors.get('ids'), { dtype: 'I64', shape: [2], begin: 0, end: 16 });
    throwsWith(() => readTensorF32(h, h.tensors.get('ids')!), 'safetensors_dtype', /weights must be stored as a float dtype/, /expected F32, F16 or BF16, found I64/);
  });

  test('a missing file is file_not_found', () => {
    throwsWith(() => readSafetensorsHeader(path.join(tmp, 'nope.safetensors')), 'file_not_found', /nope\.safetensors: the file must exist/);
  });
});
