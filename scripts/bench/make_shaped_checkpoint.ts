// Writes a random-weight checkpoint in the exact shape of a published model (SmolLM2-135M up to
// Bielik-11B), for measuring what fits on a machine (bench/fits.ts, scripts/bench/bielik_11b_shaped.sh).
// The numbers of such a model are real (parameter count, bytes, GEMM sizes, vocabulary); its text
// is noise. It writes:
//   config.json                    the model's own config (transformers v4 style: rope_theta, rope_scaling)
//   model.safetensors              or model-0000i-of-0000N.safetensors (<= 5 GB each, HF's split) plus
//                                  model.safetensors.index.json
//   tokenizer.json, tokenizer_config.json, generation_config.json
//                                  the project's Polish BPE (models/polish-teacher, 4096 tokens), its
//                                  vocabulary padded with never-produced tokens up to vocab_size
// Weights are bf16: matrices and embeddings N(0, 0.02) (HF's initializer_range), norms 1, biases 0.
//
//   node --import tsx scripts/bench/make_shaped_checkpoint.ts --shape bielik-11b --out DIR [--dtype bf16] [--seed 1] [--json]
//
// Limits: bf16 only (the dtype of every shape's published weights; --dtype exists so the command
// line says it). Free disk is checked first: the shards still to write must fit, or nothing is written.
// Resumable: a shard whose size and header are already what this run would write is kept, so a
// run stopped after 3 of 5 shards writes only the last 2 (each shard is written to a temporary
// name and renamed, so a stopped write never looks complete).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KompresorError } from '../../src/errors.ts';
import { normalizeConfig } from '../../src/io/hf_config.ts';
import { buildLayout } from '../../src/model/parameters.ts';
import { writeAll } from '../../src/io/safetensors.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TOKENIZER_SOURCE = path.join(ROOT, 'models/polish-teacher');
const MAX_SHARD_BYTES = 5e9;
const BF16_ONE = 0x3f80;

// ---------------------------------------------------------------------------------------------
// the shapes: each from the model's published config.json on the Hugging Face Hub

interface Shape {
  arch: 'LlamaForCausalLM' | 'MistralForCausalLM' | 'Qwen2ForCausalLM';
  vocab: number; hidden: number; layers: number; heads: number; kvHeads: number; headDim: number;
  mlp: number; tie: boolean; ropeTheta: number; maxPos: number; eps: number;
  ropeScaling?: Record<string, unknown>;
  source: string;
}

export const SHAPES: Record<string, Shape> = {
  // HuggingFaceTB/SmolLM2-135M config.json: 576 / 30 layers / 9 heads, 3 KV / MLP 1536 / vocab 49152, tied, theta 1e5, 8192 positions
  'smollm2-135m': { arch: 'LlamaForCausalLM', vocab: 49152, hidden: 576, layers: 30, heads: 9, kvHeads: 3, headDim: 64, mlp: 1536,
    tie: true, ropeTheta: 100000, maxPos: 8192, eps: 1e-5, source: 'HuggingFaceTB/SmolLM2-135M' },
  // Qwen/Qwen2.5-0.5B config.json: 896 / 24 layers / 14 heads, 2 KV / MLP 4864 / vocab 151936, tied, theta 1e6, 32768 positions, q/k/v bias
  'qwen2.5-0.5b': { arch: 'Qwen2ForCausalLM', vocab: 151936, hidden: 896, layers: 24, heads: 14, kvHeads: 2, headDim: 64, mlp: 4864,
    tie: true, ropeTheta: 1000000, maxPos: 32768, eps: 1e-6, source: 'Qwen/Qwen2.5-0.5B' },
  // meta-llama/Llama-3.2-1B config.json: 2048 / 16 layers / 32 heads, 8 KV / MLP 8192 / vocab 128256, tied, theta 5e5,
  // 131072 positions, rope_scaling llama3 (factor 32, low 1, high 4, original 8192)
  'llama-3.2-1b': { arch: 'LlamaForCausalLM', vocab: 128256, hidden: 2048, layers: 16, heads: 32, kvHeads: 8, headDim: 64, mlp: 8192,
    tie: true, ropeTheta: 500000, maxPos: 131072, eps: 1e-5, source: 'meta-llama/Llama-3.2-1B',
    ropeScaling: { rope_type: 'llama3', factor: 32.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192 } },
  // Qwen/Qwen2.5-1.5B config.json: 1536 / 28 layers / 12 heads, 2 KV / MLP 8960 / vocab 151936, tied, theta 1e6, 131072 positions
  'qwen2.5-1.5b': { arch: 'Qwen2ForCausalLM', vocab: 151936, hidden: 1536, layers: 28, heads: 12, kvHeads: 2, headDim: 128, mlp: 8960,
    tie: true, ropeTheta: 1000000, maxPos: 131072, eps: 1e-6, source: 'Qwen/Qwen2.5-1.5B' },
  // mistralai/Mistral-7B-v0.3 config.json: 4096 / 32 layers / 32 heads, 8 KV / MLP 14336 / vocab 32768, untied, theta 1e6,
  // 32768 positions, no sliding window (v0.1 had vocab 32000, theta 1e4 and a 4096 window)
  'mistral-7b': { arch: 'MistralForCausalLM', vocab: 32768, hidden: 4096, layers: 32, heads: 32, kvHeads: 8, headDim: 128, mlp: 14336,
    tie: false, ropeTheta: 1000000, maxPos: 32768, eps: 1e-5, source: 'mistralai/Mistral-7B-v0.3' },
  // speakleash/Bielik-11B-v3.0 (Mistral architecture): 4096 / 50 layers / 32 heads, 8 KV of 128 / MLP 14336 / vocab 32128,
  // untied. Theta 1e6, 32768 positions and eps 1e-5 as Bielik-11B-v2 (not checked against v3.0's file; they do not
  // change any size). 11.17B parameters, 11.04B without the untied lm_head: the seed's convention (11.04B -> 7.35B)
  'bielik-11b': { arch: 'MistralForCausalLM', vocab: 32128, hidden: 4096, layers: 50, heads: 32, kvHeads: 8, headDim: 128, mlp: 14336,
    tie: false, ropeTheta: 1000000, maxPos: 32768, eps: 1e-5, source: 'speakleash/Bielik-11B-v3.0' },
};

/** config.json as the model ships it (v4 keys), with the Polish tokenizer's special ids. */
export function shapedConfig(name: string): Record<string, unknown> {
  const s = SHAPES[name];
  const qwen = s.arch === 'Qwen2ForCausalLM';
  const c: Record<string, unknown> = {
    architectures: [s.arch], model_type: qwen ? 'qwen2' : s.arch === 'MistralForCausalLM' ? 'mistral' : 'llama',
    vocab_size: s.vocab, hidden_size: s.hidden, intermediate_size: s.mlp, num_hidden_layers: s.layers,
    num_attention_heads: s.heads, num_key_value_heads: s.kvHeads, head_dim: s.headDim, hidden_act: 'silu',
    max_position_embeddings: s.maxPos, rms_norm_eps: s.eps, rope_theta: s.ropeTheta, rope_scaling: s.ropeScaling ?? null,
    tie_word_embeddings: s.tie, initializer_range: 0.02, torch_dtype: 'bfloat16',
    // the padded Polish tokenizer's specials: <|endoftext|> 4093, <|im_end|> 4095
    bos_token_id: 4093, eos_token_id: 4095, pad_token_id: 4093,
  };
  if (qwen) Object.assign(c, { use_sliding_window: false, sliding_window: null, max_window_layers: s.layers });
  else if (s.arch === 'MistralForCausalLM') c.sliding_window = null;
  else Object.assign(c, { attention_bias: false, mlp_bias: false });
  return c;
}

// ---------------------------------------------------------------------------------------------
// shards

interface PlannedTensor { name: string; shape: number[]; bytes: number; kind: 'normal' | 'one' | 'zero' }
interface PlannedShard { file: string; tensors: PlannedTensor[]; header: Uint8Array; bytes: number }

/** Tensors in layer order, split greedily at 5 GB as transformers' save_pretrained does. */
export function planShards(config: Record<string, unknown>, maxShardBytes = MAX_SHARD_BYTES): PlannedShard[] {
  const layout = buildLayout(normalizeConfig(config, 'config.json'));
  const groups: PlannedTensor[][] = [[]];
  let size = 0;
  for (const s of layout.slots) {
    const kind = s.shape.length === 1 ? (s.name.endsWith('.bias') ? 'zero' : 'one') : 'normal';
    const t: PlannedTensor = { name: s.name, shape: s.shape, bytes: s.size * 2, kind };
    if (size + t.bytes > maxShardBytes && groups[groups.length - 1].length > 0) { groups.push([]); size = 0; }
    groups[groups.length - 1].push(t);
    size += t.bytes;
  }
  const pad5 = (i: number) => String(i).padStart(5, '0');
  return groups.map((ts, i) => {
    const file = groups.length === 1 ? 'model.safetensors' : `model-${pad5(i + 1)}-of-${pad5(groups.length)}.safetensors`;
    const sorted = [...ts].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const header = shardHeader(sorted);
    return { file, tensors: sorted, header, bytes: 8 + header.length + sorted.reduce((a, t) => a + t.bytes, 0) };
  });
}

/** The safetensors JSON header of sorted tensors, padded with spaces to a multiple of 8. */
function shardHeader(sorted: PlannedTensor[]): Uint8Array {
  const obj: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const t of sorted) { obj[t.name] = { dtype: 'BF16', shape: t.shape, data_offsets: [offset, offset + t.bytes] }; offset += t.bytes; }
  let json = JSON.stringify(obj);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  return new TextEncoder().encode(json);
}

/** A shard already on disk with this run's size and header (written whole, then renamed). */
function shardComplete(dir: string, s: PlannedShard): boolean {
  const p = path.join(dir, s.file);
  if (!fs.existsSync(p) || fs.statSync(p).size !== s.bytes) return false;
  const fd = fs.openSync(p, 'r');
  try {
    const head = Buffer.alloc(8 + s.header.length);
    fs.readSync(fd, head, 0, head.length, 0);
    return head.readBigUInt64LE(0) === BigInt(s.header.length) && head.subarray(8).equals(Buffer.from(s.header));
  } finally { fs.closeSync(fd); }
}

// ---------------------------------------------------------------------------------------------
// random bf16: a table of 65536 N(0, 0.02) draws indexed by 16-bit halves of a xorshift stream,
// so a value costs half a PRNG step and a table load (an 11B model in seconds, not minutes)

function gaussianTable(seed: number): Uint16Array {
  let a = seed >>> 0;
  const uniform = () => { a = (a + 0x6d2b79f5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  const table = new Uint16Array(65536);
  for (let i = 0; i < 65536; i++) {
    f[0] = 0.02 * Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
    table[i] = (u[0] + 0x7fff + ((u[0] >>> 16) & 1)) >>> 16; // round to nearest even
  }
  return table;
}

const CHUNK_WORDS = 8 << 20; // 32 MiB per write, reused

function writeTensor(fd: number, t: PlannedTensor, table: Uint16Array, state: { x: number }, buf: Uint32Array): void {
  const fill = t.kind === 'one' ? (BF16_ONE | (BF16_ONE << 16)) >>> 0 : 0;
  let words = t.bytes / 4; // every shape here has an even element count
  if (t.kind !== 'normal') buf.fill(fill);
  while (words > 0) {
    const n = Math.min(words, buf.length);
    if (t.kind === 'normal') {
      let x = state.x;
      for (let i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
        buf[i] = table[x & 0xffff] | (table[x >>> 16 & 0xffff] << 16);
      }
      state.x = x;
    }
    writeAll(fd, new Uint8Array(buf.buffer, 0, n * 4));
    words -= n;
  }
}

function writeShard(dir: string, s: PlannedShard, seed: number, buf: Uint32Array): void {
  const table = gaussianTable(seed);
  const state = { x: (seed * 2654435761) >>> 0 || 1 };
  const final = path.join(dir, s.file), tmp = `${final}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(s.header.length));
    writeAll(fd, len);
    writeAll(fd, s.header);
    for (const t of s.tensors) writeTensor(fd, t, table, state, buf);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, final);
}

// ---------------------------------------------------------------------------------------------
// tokenizer: the Polish BPE with its vocabulary padded to the model's

function writeTokenizer(dir: string, vocab: number): void {
  const tok = JSON.parse(fs.readFileSync(path.join(TOKENIZER_SOURCE, 'tokenizer.json'), 'utf8'));
  const used = new Set<number>([...Object.values(tok.model.vocab as Record<string, number>), ...tok.added_tokens.map((a: { id: number }) => a.id)]);
  // ids the encoder never produces: only their count matters (the tokenizer's size = vocab_size)
  for (let id = 0; id < vocab; id++) if (!used.has(id)) tok.model.vocab[`<|pad_${id}|>`] = id;
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tok));
  for (const f of ['tokenizer_config.json', 'generation_config.json']) fs.copyFileSync(path.join(TOKENIZER_SOURCE, f), path.join(dir, f));
}

// ---------------------------------------------------------------------------------------------
// the command

export interface MakeResult { shape: string; out: string; params: number; bytes: number; shards: number; written: number; kept: number; seconds: number }

function freeBytes(dir: string): number {
  const s = fs.statfsSync(dir);
  return Number(s.bavail) * Number(s.bsize);
}

export function makeShapedCheckpoint(shape: string, out: string, seed = 1, log: (s: string) => void = () => {}): MakeResult {
  if (!SHAPES[shape]) {
    throw new KompresorError({ code: 'input_invalid', where: '--shape', rule: 'the shape must be one of the known models',
      expected: Object.keys(SHAPES).join(', '), found: `"${shape}"` });
  }
  const t0 = Date.now();
  const config = shapedConfig(shape);
  const shards = planShards(config);
  fs.mkdirSync(out, { recursive: true });
  const todo = shards.filter((s) => !shardComplete(out, s));
  const need = todo.reduce((a, s) => a + s.bytes, 0) + 64e6; // plus the tokenizer and slack
  const free = freeBytes(out);
  if (need > free) {
    throw new KompresorError({ code: 'io_error', where: `--out ${out}`, rule: `the disk must hold the ${todo.length} shard(s) still to write`,
      expected: `${fmtGB(need)} (${need} bytes) free`, found: `${fmtGB(free)} (${free} bytes)`, hint: 'free space or pick --out on a larger disk' });
  }
  const buf = new Uint32Array(CHUNK_WORDS);
  for (const s of todo) {
    const i = shards.indexOf(s);
    log(`writing ${s.file} (${fmtGB(s.bytes)}, ${s.tensors.length} tensors)`);
    writeShard(out, s, seed * 1000 + i + 1, buf);
  }
  if (shards.length > 1) writeIndex(out, shards);
  writeTokenizer(out, SHAPES[shape].vocab);
  fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  const params = shards.reduce((a, s) => a + s.tensors.reduce((b, t) => b + t.bytes / 2, 0), 0);
  return { shape, out, params, bytes: shards.reduce((a, s) => a + s.bytes, 0), shards: shards.length,
    written: todo.length, kept: shards.length - todo.length, seconds: (Date.now() - t0) / 1000 };
}

function writeIndex(dir: string, shards: PlannedShard[]): void {
  const weightMap: Record<string, string> = {};
  for (const s of shards) for (const t of s.tensors) weightMap[t.name] = s.file;
  const sorted = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : 1)));
  const total = shards.reduce((a, s) => a + s.tensors.reduce((b, t) => b + t.bytes, 0), 0);
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: sorted }, null, 2) + '\n');
}

function fmtGB(b: number): string { return `${(b / 1e9).toFixed(2)} GB`; }

function parseArgs(argv: string[]): { shape: string; out: string; seed: number; json: boolean } {
  const val = (k: string) => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1] : undefined; };
  const shape = val('--shape'), out = val('--out'), dtype = val('--dtype') ?? 'bf16';
  if (!shape || !out) {
    throw new KompresorError({ code: 'input_invalid', where: 'make_shaped_checkpoint', rule: '--shape and --out are required',
      found: `--shape ${shape ?? 'missing'}, --out ${out ?? 'missing'}`, hint: `--shape one of ${Object.keys(SHAPES).join(', ')} --out DIR` });
  }
  if (dtype !== 'bf16') {
    throw new KompresorError({ code: 'input_invalid', where: '--dtype', rule: 'shaped checkpoints are written in bf16 (as the real ones ship)',
      expected: 'bf16', found: `"${dtype}"` });
  }
  return { shape, out, seed: Number(val('--seed') ?? 1), json: argv.includes('--json') };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const a = parseArgs(process.argv.slice(2));
    const r = makeShapedCheckpoint(a.shape, a.out, a.seed, a.json ? () => {} : (s) => console.error(s));
    if (a.json) console.log(JSON.stringify(r));
    else console.log(`${r.out}: ${a.shape} (${SHAPES[a.shape].source}), ${r.params.toLocaleString('en-US')} parameters, ${fmtGB(r.bytes)} in ${r.shards} shard(s) (${r.written} written, ${r.kept} kept), ${r.seconds.toFixed(1)} s`);
  } catch (e) {
    if (!(e instanceof KompresorError)) throw e;
    console.error(`make_shaped_checkpoint: ${e.message}`);
    process.exit(1);
  }
}
