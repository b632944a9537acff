// GGUF writer, reader and HF -> GGUF mapping, without llama.cpp (test/parity/gguf_llamacpp.test.ts
// runs the files in llama.cpp itself): the header byte for byte for a hand-built file, every value
// type read back, tensors per type, Q8_0 against a naive statement of ggml's reference quantizer,
// the RoPE row permutation, the tensor/key map per architecture and the tokenizer key-values.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { KompresorError } from '../../src/errors.ts';
import { reference } from '../../src/tensor/ops.ts';
import { writeGguf, kv, quantizeQ8_0, type GgufTensor, type GgufValue } from '../../src/export/gguf_writer.ts';
import { readGguf, readGgufTensorF32, dequantizeQ8_0 } from '../../src/export/gguf_reader.ts';
import { exportGguf, permuteRope, tensorMap, chooseArch, llama3RopeFreqs } from '../../src/export/gguf_export.ts';
import { vocabKv } from '../../src/export/gguf_vocab.ts';
import { normalizeConfig } from '../../src/io/hf_config.ts';
import { randn, tempDir } from '../helpers.ts';
import { makeByteModel, FIXTURES } from '../gguf_helpers.ts';

let tmp: string;
before(() => { tmp = tempDir('kompresor-gguf-'); });
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

function throwsWith(fn: () => unknown, code: string, ...patterns: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof KompresorError, `expected KompresorError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

// little-endian pieces for the hand-assembled expected file
const u32 = (x: number) => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, x, true); return [...b]; };
const u64 = (x: number) => { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(x), true); return [...b]; };
const str = (s: string) => [...u64(Buffer.byteLength(s)), ...Buffer.from(s, 'utf8')];

describe('GGUF writer', () => {
  test('header, key-values, tensor infos and data byte for byte (hand-built file)', () => {
    const p = path.join(tmp, 'hand.gguf');
    const data = Float32Array.from([0, 1, 2, 3, 4, 5]);
    writeGguf(p, [['general.architecture', kv.str('llama')], ['test.u32', kv.u32(7)], ['test.arr', kv.arr('i32', [1, -2])]],
      [{ name: 't', shape: [2, 3], type: 'F32', data }]);
    const header = [
      ...Buffer.from('GGUF'), ...u32(3), ...u64(1), ...u64(3),
      ...str('general.architecture'), ...u32(8), ...str('llama'),
      ...str('test.u32'), ...u32(4), ...u32(7),
      ...str('test.arr'), ...u32(9), ...u32(5), ...u64(2), ...u32(1), ...u32(0xfffffffe),
      ...str('t'), ...u32(2), ...u64(3), ...u64(2), ...u32(0), ...u64(0), // ne reversed: [3, 2]; F32; offset 0
    ];
    const padded = [...header, ...new Array((32 - (header.length % 32)) % 32).fill(0)];
    const expected = [...padded, ...new Uint8Array(data.buffer), ...new Array(8).fill(0)]; // 24 data bytes + pad to 32
    assert.deepEqual([...fs.readFileSync(p)], expected);
  });

  test('every value type and array type reads back', () => {
    const p = path.join(tmp, 'kv.gguf');
    const kvs: Array<[string, GgufValue]> = [
      ['a.u8', kv.u8(255)], ['a.i8', kv.i8(-128)], ['a.u16', kv.u16(65535)], ['a.i16', kv.i16(-32768)],
      ['a.u32', kv.u32(4294967295)], ['a.i32', kv.i32(-2147483648)], ['a.f32', kv.f32(1e-5)], ['a.f64', kv.f64(Math.PI)],
      ['a.bool', kv.bool(true)], ['a.str', kv.str('héllo 世界 🙂')], ['a.u64', kv.u64(2n ** 63n)], ['a.i64', kv.i64(-(2n ** 62n))],
      ['b.strs', kv.arr('string', ['', 'Ġthe', '<|im_end|>'])], ['b.i32', kv.arr('i32', [1, 3, 5])],
      ['b.f32', kv.arr('f32', [0.5, -2])], ['b.bool', kv.arr('bool', [true, false])], ['b.empty', kv.arr('u8', [])],
    ];
    writeGguf(p, kvs, []);
    const f = readGguf(p);
    assert.equal(f.version, 3);
    assert.equal(f.tensors.size, 0);
    const got = Object.fromEntries([...f.kv].map(([k, v]) => [k, v.value]));
    assert.deepEqual(got, {
      'a.u8': 255, 'a.i8': -128, 'a.u16': 65535, 'a.i16': -32768, 'a.u32': 4294967295, 'a.i32': -2147483648,
      'a.f32': Math.fround(1e-5), 'a.f64': Math.PI, 'a.bool': true, 'a.str': 'héllo 世界 🙂', 'a.u64': 2n ** 63n, 'a.i64': -(2n ** 62n),
      'b.strs': ['', 'Ġthe', '<|im_end|>'], 'b.i32': [1, 3, 5], 'b.f32': [0.5, -2], 'b.bool': [true, false], 'b.empty': [],
    });
    assert.equal(f.kv.get('b.strs')!.itemType, 'string');
  });

  test('tensors per type round trip at aligned offsets (F32 exact, F16/BF16 as the dtype kernels, Q8_0 within d/2 + f16 scale error)', () => {
    const p = path.join(tmp, 'tensors.gguf');
    const x = randn(3 * 64, 11, 0.7);
    const v = randn(5, 12);
    const tensors: GgufTensor[] = [
      { name: 'v', shape: [5], type: 'F32', data: v },
      { name: 'f32', shape: [3, 64], type: 'F32', data: x },
      { name: 'f16', shape: [3, 64], type: 'F16', data: () => x },
      { name: 'bf16', shape: [3, 64], type: 'BF16', data: x },
      { name: 'q8', shape: [3, 64], type: 'Q8_0', data: x },
      { name: 'three_d', shape: [2, 3, 32], type: 'F16', data: x.subarray(0, 192) },
    ];
    const res = writeGguf(p, [['general.architecture', kv.str('llama')]], tensors);
    assert.equal(res.bytes, fs.statSync(p).size);
    const f = readGguf(p);
    for (const t of f.tensors.values()) assert.equal(t.offset % 32, 0, `${t.name} offset ${t.offset}`);
    assert.deepEqual(f.tensors.get('three_d')!.ne, [32, 3, 2]);
    assert.deepEqual(readGgufTensorF32(f, 'v'), v);
    assert.deepEqual(readGgufTensorF32(f, 'f32'), x);
    const viaKernels = (to: 'f32ToF16' | 'f32ToBf16', back: 'f16ToF32' | 'bf16ToF32') => {
      const h = new Uint16Array(x.length), out = new Float32Array(x.length);
      reference[to](h, x, x.length);
      reference[back](out, h, x.length);
      return out;
    };
    assert.deepEqual(readGgufTensorF32(f, 'f16'), viaKernels('f32ToF16', 'f16ToF32'));
    assert.deepEqual(readGgufTensorF32(f, 'bf16'), viaKernels('f32ToBf16', 'bf16ToF32'));
    const q = readGgufTensorF32(f, 'q8');
    for (let b = 0; b < x.length / 32; b++) {
      const block = x.subarray(b * 32, b * 32 + 32);
      const d = Math.max(...block.map(Math.abs)) / 127;
      // rounding to the grid costs d/2; storing d as f16 (relative error <= 2^-11) up to 127 d 2^-11 more
      const bound = d * (0.5 + 127 * 2 ** -11) + 1e-7;
      for (let j = 0; j < 32; j++) assert.ok(Math.abs(q[b * 32 + j] - block[j]) <= bound, `q8 block ${b} value ${j}`);
    }
  });

  test('Q8_0 packing equals a naive statement of ggml quantize_row_q8_0_ref', () => {
    // edge blocks: all zero; halves that must round away from zero; a block whose max is negative
    const halves = new Float32Array(32).map((_, j) => (j - 16) + 0.5);
    halves[31] = 127; // amax 127 -> d = 1, so q = roundf(x) exactly
    const negMax = randn(32, 3, 0.1);
    negMax[5] = -9;
    const x = Float32Array.from([...new Float32Array(32), ...halves, ...negMax, ...randn(32 * 8, 4, 2)]);
    const got = quantizeQ8_0(x);
    assert.deepEqual(got, naiveQ8_0(x));
    const q = new Int8Array(got.buffer);
    assert.deepEqual([...q.subarray(34 + 2, 34 + 2 + 4)], [-16, -15, -14, -13]); // -15.5 -> -16, -14.5 -> -15, ...
    assert.equal(q[34 + 2 + 16], 1); // 0.5 -> 1
    assert.equal(q[2 * 34 + 2 + 5], -127);
    assert.deepEqual(dequantizeQ8_0(got).subarray(0, 32), new Float32Array(32));
  });

  test('refuses bad input, leaving no file behind', () => {
    const p = path.join(tmp, 'bad.gguf');
    const t = (o: Partial<GgufTensor>): GgufTensor => ({ name: 'w', shape: [2, 48], type: 'F32', data: new Float32Array(96), ...o });
    throwsWith(() => writeGguf(p, [['a', kv.u32(1)], ['a', kv.u32(2)]], []), 'impl_error', /keys must be non-empty and unique/);
    throwsWith(() => writeGguf(p, [['a', kv.u32(-1)]], []), 'impl_error', /key "a".*u32 value must be an integer/);
    throwsWith(() => writeGguf(p, [], [t({ type: 'Q8_0' })]), 'impl_error', /Q8_0 needs the last dimension to be a multiple of 32.*\[2,48\]/);
    throwsWith(() => writeGguf(p, [], [t({ name: 'x'.repeat(64) })]), 'impl_error', /1\.\.63 bytes/);
    throwsWith(() => writeGguf(p, [], [t({}), t({})]), 'impl_error', /unique/);
    throwsWith(() => writeGguf(p, [], [t({ data: new Float32Array(95) })]), 'shape_mismatch', /expected 96 values/);
    throwsWith(() => writeGguf(p, [], [], { alignment: 24 }), 'input_invalid', /power of two/);
    assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.startsWith('bad.gguf')), []);
  });

  test('a custom alignment is written as general.alignment and honoured by the reader', () => {
    const p = path.join(tmp, 'align.gguf');
    writeGguf(p, [], [{ name: 'a', shape: [3], type: 'F32', data: Float32Array.from([1, 2, 3]) },
      { name: 'b', shape: [2], type: 'F32', data: Float32Array.from([4, 5]) }], { alignment: 64 });
    const f = readGguf(p);
    assert.equal(f.kv.get('general.alignment')!.value, 64);
    assert.equal(f.dataStart % 64, 0);
    assert.equal(f.tensors.get('b')!.offset, 64);
    assert.deepEqual(readGgufTensorF32(f, 'b'), Float32Array.from([4, 5]));
  });

  test('the reader refuses files that are not GGUF or are cut short', () => {
    const p = path.join(tmp, 'not.gguf');
    fs.writeFileSync(p, 'GGML and more bytes');
    throwsWith(() => readGguf(p), 'input_invalid', /magic "GGUF"/);
    writeGguf(p, [['k', kv.arr('string', ['a', 'b'])]], []);
    fs.truncateSync(p, 40);
    throwsWith(() => readGguf(p), 'input_invalid', /fit inside the file/);
  });
});

/** ggml's reference quantizer, spelled out: d = amax/127, id = 1/d, q = roundf(x*id), in float32. */
function naiveQ8_0(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / 32) * 34);
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
    const d = Math.fround(amax / 127), id = d === 0 ? 0 : Math.fround(1 / d);
    const h = new Uint16Array(1);
    reference.f32ToF16(h, Float32Array.of(d), 1);
    out[b * 34] = h[0] & 0xff;
    out[b * 34 + 1] = h[0] >> 8;
    for (let j = 0; j < 32; j++) {
      const v = Math.fround(x[b * 32 + j] * id);
      const r = Math.sign(v) * Math.floor(Math.abs(v) + 0.5); // C roundf: halves away from zero
      out[b * 34 + 2 + j] = r & 0xff;
    }
  }
  return out;
}

describe('HF -> GGUF mapping', () => {
  test('permuteRope(heads=2, hd=4) interleaves each head\'s halves: rows [0,2,1,3 | 4,6,5,7] of HF', () => {
    const x = Float32Array.from({ length: 8 * 2 }, (_, i) => Math.floor(i / 2) * 10 + (i % 2)); // row r = [10r, 10r+1]
    const y = permuteRope(x, 2, [8, 2]);
    const rows = Array.from({ length: 8 }, (_, r) => y[r * 2] / 10);
    assert.deepEqual(rows, [0, 2, 1, 3, 4, 6, 5, 7]);
    assert.deepEqual(permuteRope(Float32Array.from([0, 1, 2, 3]), 1, [4]), Float32Array.from([0, 2, 1, 3])); // a bias
  });

  test('tensor map: names, shapes and permutation per architecture', () => {
    const cfg = (fixture: string, extra: Record<string, unknown> = {}) =>
      normalizeConfig({ ...JSON.parse(fs.readFileSync(path.join(FIXTURES, fixture, 'config.json'), 'utf8')), ...extra }, fixture);
    const tied = tensorMap(cfg('llama_tied_gqa'), 'llama');
    assert.equal(tied.length, 1 + 2 * 9 + 1);
    assert.deepEqual(tied.slice(0, 4).map((m) => [m.gguf, m.hf, m.shape.join('x'), m.permuteHeads]), [
      ['token_embd.weight', 'model.embed_tokens.weight', '64x32', 0],
      ['blk.0.attn_norm.weight', 'model.layers.0.input_layernorm.weight', '32', 0],
      ['blk.0.attn_q.weight', 'model.layers.0.self_attn.q_proj.weight', '32x32', 4],
      ['blk.0.attn_k.weight', 'model.layers.0.self_attn.k_proj.weight', '16x32', 2],
    ]);
    assert.ok(!tied.some((m) => m.gguf === 'output.weight'));
    assert.equal(tensorMap(cfg('llama_untied'), 'llama').at(-1)!.gguf, 'output.weight');
    const qwen = tensorMap(cfg('qwen2_bias'), 'qwen2');
    assert.ok(qwen.every((m) => m.permuteHeads === 0), 'qwen2 (NeoX RoPE) is not permuted');
    assert.deepEqual(qwen.filter((m) => m.gguf.startsWith('blk.0.attn_') && m.gguf.endsWith('.bias')).map((m) => m.gguf),
      ['blk.0.attn_q.bias', 'blk.0.attn_k.bias', 'blk.0.attn_v.bias']);
    const linear = tensorMap(cfg('llama_linear_rope'), 'llama');
    assert.equal(linear.find((m) => m.gguf === 'blk.1.attn_q.bias')!.permuteHeads, 4);
    assert.ok(linear.some((m) => m.gguf === 'blk.1.attn_output.bias'));
    assert.equal(tensorMap(cfg('llama3_rope'), 'llama')[0].gguf, 'rope_freqs.weight');
    assert.equal(chooseArch(cfg('qwen2_bias')), 'qwen2');
    const notes: string[] = [];
    assert.equal(chooseArch(cfg('qwen2_bias', { head_dim: 16 }), notes), 'llama');
    assert.match(notes[0], /num_attention_heads \* head_dim \(64\) != hidden_size \(32\)/);
  });

  test('llama3 rope_freqs: 1 for short wavelengths, factor for long ones, the transformers ratio between', () => {
    const c = normalizeConfig(JSON.parse(fs.readFileSync(path.join(FIXTURES, 'llama3_rope', 'config.json'), 'utf8')), 'llama3');
    const f = llama3RopeFreqs(c);
    assert.equal(f.length, c.headDim / 2);
    assert.equal(f[0], 1);
    assert.equal(f.at(-1), 8);
    const mid = [...f].filter((x) => x !== 1 && x !== 8);
    assert.ok(mid.length > 0 && mid.every((x) => x > 1 && x < 8), `middle band ${mid}`);
  });

  test('export writes the keys llama.cpp reads and the permuted/converted tensors', () => {
    const dir = path.join(tmp, 'model_head_dim');
    const model = makeByteModel(dir, 'llama_head_dim');
    const out = path.join(tmp, 'head_dim.gguf');
    const progress: string[] = [];
    const s = exportGguf(dir, out, { dtype: 'f32', onTensor: (done, total, name) => progress.push(`${done}/${total} ${name}`) });
    assert.equal(s.tensors, 20);
    assert.equal(progress.length, 20);
    assert.equal(progress[19], '20/20 output_norm.weight');
    assert.equal(s.bytes, fs.statSync(out).size);
    const f = readGguf(out);
    const val = (k: string) => f.kv.get(k)?.value;
    assert.equal(val('general.architecture'), 'llama');
    assert.equal(val('general.file_type'), 0);
    assert.equal(val('llama.embedding_length'), 48);
    assert.equal(val('llama.attention.head_count'), 4);
    assert.equal(val('llama.attention.head_count_kv'), 1);
    assert.equal(val('llama.attention.key_length'), 16);
    assert.equal(val('llama.rope.dimension_count'), 16);
    assert.equal(val('llama.attention.layer_norm_rms_epsilon'), Math.fround(1e-5));
    assert.equal((val('tokenizer.ggml.tokens') as string[]).length, 259);
    const q = model.params.view('model.layers.1.self_attn.q_proj.weight');
    assert.deepEqual(readGgufTensorF32(f, 'blk.1.attn_q.weight'), permuteRope(q.slice(0, 64 * 48), 4, [64, 48]));
    assert.deepEqual(f.tensors.get('blk.1.attn_q.weight')!.ne, [48, 64]);
    const down = model.layout.byName.get('model.layers.0.mlp.down_proj.weight')!;
    assert.deepEqual(readGgufTensorF32(f, 'blk.0.ffn_down.weight'), model.params.view(down).slice());
  });

  test('q8_0 export: norms stay F32, rows not a multiple of 32 fall back to F16, with a note', () => {
    const dir = path.join(tmp, 'model_q8');
    makeByteModel(dir, 'llama_untied');
    const s = exportGguf(dir, path.join(tmp, 'q8.gguf'), { dtype: 'q8_0' });
    // 2 layers x 7 matrices + token_embd + output; the 2 ffn_down rows are intermediate_size 16 long
    assert.deepEqual(s.types, { Q8_0: 14, F32: 5, F16: 2 });
    assert.match(s.notes.join(' '), /2 matrices whose rows do not divide the block size were stored in a fallback type: blk\.0\.ffn_down\.weight Q8_0 -> F16, blk\.1\.ffn_down\.weight Q8_0 -> F16/);
    assert.equal(readGguf(path.join(tmp, 'q8.gguf')).kv.get('general.file_type')!.value, 7);
  });

  test('a sliding window shorter than the context is reported with the length up to which outputs agree', () => {
    const dir = path.join(tmp, 'model_mistral');
    makeByteModel(dir, 'mistral_window');
    const s = exportGguf(dir, path.join(tmp, 'mistral.gguf'), { dtype: 'f16' });
    assert.equal(s.gguf_arch, 'llama');
    assert.match(s.warnings.join(' '), /sliding_window 4: .*at most 4 tokens/);
  });
});

describe('tokenizer key-values', () => {
  test('byte-level BPE: gpt2 model, qwen2 split, token types, special ids, chat template, padding rows', () => {
    const dir = path.join(tmp, 'vocab');
    makeByteModel(dir, 'llama_tied_gqa');
    const v = vocabKv(dir, 262, { eos_token_id: 258 });
    const m = new Map(v.kv);
    const get = (k: string) => { const x = m.get(k) as { value?: unknown; values?: unknown[] }; return x.value ?? x.values; };
    assert.equal(get('tokenizer.ggml.model'), 'gpt2');
    assert.equal(get('tokenizer.ggml.pre'), 'qwen2');
    const tokens = get('tokenizer.ggml.tokens') as string[], types = get('tokenizer.ggml.token_type') as number[];
    assert.equal(tokens.length, 262);
    assert.deepEqual([tokens[0], tokens[33], tokens[32], tokens[256], tokens[258], tokens[261]], ['Ā', '!', 'Ġ', '<|endoftext|>', '<|im_end|>', '[PAD261]']);
    assert.deepEqual([types[0], types[256], types[258], types[261]], [1, 3, 3, 5]);
    assert.equal(get('tokenizer.ggml.eos_token_id'), 258);
    assert.equal(get('tokenizer.ggml.padding_token_id'), 256);
    assert.equal(m.has('tokenizer.ggml.bos_token_id'), false);
    assert.equal(get('tokenizer.ggml.add_bos_token'), false);
    assert.match(get('tokenizer.chat_template') as string, /<\|im_start\|>/);
    assert.deepEqual(get('tokenizer.ggml.merges'), []);
  });

  test('SentencePiece-style BPE: llama tokenizer, scores from merge ranks, byte/unknown/control types, space prefix', () => {
    const dir = path.join(tmp, 'vocab_spm');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({
      model: { type: 'BPE', byte_fallback: true, unk_token: '<unk>', merges: ['▁ a', 'b c', '▁a bc'],
        vocab: { '<unk>': 0, '<s>': 1, '</s>': 2, '<0x41>': 3, '▁': 4, 'a': 5, 'b': 6, 'c': 7, '▁a': 8, 'bc': 9, '▁abc': 10, 'zz': 11 } },
      normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
      added_tokens: [{ id: 0, content: '<unk>', special: true }, { id: 1, content: '<s>', special: true }, { id: 2, content: '</s>', special: true },
        { id: 12, content: '<tool>', special: false }],
    }));
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', add_bos_token: true }));
    const v = vocabKv(dir, 14, {});
    const m = new Map(v.kv);
    const get = (k: string) => { const x = m.get(k)!; return x.type === 'array' ? x.values : x.value; };
    assert.equal(v.model, 'llama');
    assert.equal(get('tokenizer.ggml.model'), 'llama');
    assert.equal(m.has('tokenizer.ggml.merges'), false);
    assert.deepEqual(get('tokenizer.ggml.tokens'), ['<unk>', '<s>', '</s>', '<0x41>', '▁', 'a', 'b', 'c', '▁a', 'bc', '▁abc', 'zz', '<tool>', '[PAD13]']);
    // merged tokens score -rank; tokens no merge makes score below every merge; padding 0
    assert.deepEqual(get('tokenizer.ggml.scores'), [-4, -4, -4, -4, -4, -4, -4, -4, -0, -1, -2, -4, -4, 0]);
    assert.deepEqual(get('tokenizer.ggml.token_type'), [2, 3, 3, 6, 1, 1, 1, 1, 1, 1, 1, 1, 4, 5]);
    assert.equal(get('tokenizer.ggml.add_space_prefix'), true);
    assert.equal(get('tokenizer.ggml.bos_token_id'), 1);
    assert.equal(get('tokenizer.ggml.unknown_token_id'), 0);
    assert.equal(get('tokenizer.ggml.add_bos_token'), true);
  });

  test('refuses a Unigram tokenizer, a BPE llama.cpp cannot reproduce, and a tokenizer larger than the embedding', () => {
    const dir = path.join(tmp, 'vocab_unigram');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'Unigram', vocab: [['<unk>', 0]] } }));
    throwsWith(() => vocabKv(dir, 2, {}), 'config_unsupported', /supports BPE tokenizers.*found a Unigram tokenizer/, /convert_hf_to_gguf\.py/);
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'BPE', vocab: { a: 0 }, merges: [] }, pre_tokenizer: { type: 'Whitespace' } }));
    throwsWith(() => vocabKv(dir, 2, {}), 'config_unsupported', /neither a ByteLevel pre-tokenizer nor byte_fallback/);
    const bytes = path.join(tmp, 'vocab');
    throwsWith(() => vocabKv(bytes, 64, {}), 'tokenizer_invalid', /every token id must be a row of the embedding.*vocab_size 64/);
    throwsWith(() => vocabKv(path.join(FIXTURES, 'llama_tied_gqa'), 64, {}), 'file_not_found', /needs the model's tokenizer\.json/);
  });
});
