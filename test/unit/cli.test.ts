// The real `kompresor` executable (node bin/kompresor.mjs, as a user runs it) on fixture
// checkpoints copied into a temp folder: inspect counts, logits and gradients against the PyTorch
// golden dumps, generate on a hand-wired byte-level model whose output is known in advance, and
// one clear line on stderr with exit code 1 for every kind of bad input.
// Child processes start concurrently (two at a time) when the file starts; each test awaits its own.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { readSafetensorsHeader, readTensorF32, writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.ts';
import { openCheckpoint } from '../../src/io/checkpoint.ts';
import { byteLevelTokenizer } from '../../src/io/byte_tokenizer.ts';
import { normalizeConfig } from '../../src/io/hf_config.ts';
import { Decoder } from '../../src/model/decoder.ts';
import { initWeights } from '../../src/model/init.ts';
import { saveModel } from '../../src/model/load.ts';
import { generateCommand } from '../../src/cli/engine_commands.ts';
import { relErr, tempDir } from '../helpers.ts';

const ROOT = path.join(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/kompresor.mjs');
const FIXTURES = path.join(ROOT, 'test/fixtures');
const LOGITS_TOL = 1e-4;
const GRAD_TOL = 1e-3;
const CONCURRENCY = 2;

interface Golden { ids: number[][]; loss: number }
const golden = (name: string): Golden => JSON.parse(fs.readFileSync(path.join(FIXTURES, name, 'golden.json'), 'utf8'));
const goldenTensor = (name: string, tensor: string): Float32Array => {
  const h = readSafetensorsHeader(path.join(FIXTURES, name, 'golden.safetensors'));
  return readTensorF32(h, h.tensors.get(tensor)!);
};
const idsFlag = (rows: number[][]) => rows.map((r) => r.join(',')).join(';');

// -----------------------------------------------------------------------------------------------
// running the CLI

interface Run { args: string[]; code: number | null; signal: string | null; stdout: string; stderr: string }

const queue: (() => void)[] = [];
let running = 0;
function release(): void {
  running--;
  queue.shift()?.();
}

/** Runs `node bin/kompresor.mjs ...args` from the repo root; never rejects (the result says what happened). */
function kompresor(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const start = () => {
      running++;
      const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
      delete env.NODE_TEST_CONTEXT;
      execFile(process.execPath, [BIN, ...args], { cwd: ROOT, env, timeout: 60_000, maxBuffer: 1 << 26 }, (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: number | string; signal?: string }) | null;
        release();
        resolve({ args, code: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal: e?.signal ?? null, stdout, stderr });
      });
    };
    if (running < CONCURRENCY) start();
    else queue.push(start);
  });
}

/** Exit code 1, nothing on stdout, exactly one line on stderr that starts "kompresor: " and matches every pattern. */
function assertOneLineError(r: Run, ...patterns: RegExp[]): void {
  const what = `kompresor ${r.args.join(' ')}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  assert.equal(r.signal, null, `killed (hang?): ${what}`);
  assert.equal(r.code, 1, `exit code: ${what}`);
  assert.equal(r.stdout, '', `stdout must be empty: ${what}`);
  assert.ok(r.stderr.endsWith('\n'), what);
  const lines = r.stderr.slice(0, -1).split('\n');
  assert.equal(lines.length, 1, `one line expected: ${what}`);
  assert.match(lines[0], /^kompresor: \S/);
  assert.doesNotMatch(lines[0], /\[ImplError\]|\bat .*\.ts:\d+/);
  for (const p of patterns) assert.match(lines[0], p);
}

function assertOk(r: Run): void {
  assert.equal(r.signal, null, `killed: ${r.args.join(' ')}`);
  assert.equal(r.code, 0, `kompresor ${r.args.join(' ')} failed:\n${r.stderr}`);
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// -----------------------------------------------------------------------------------------------
// model folders

let tmp: string;
const dirs: Record<string, string> = {};

function copyFixture(name: string, as: string): string {
  const dir = path.join(tmp, as);
  fs.mkdirSync(dir);
  for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(FIXTURES, name, f), path.join(dir, f));
  return dir;
}

function editConfig(dir: string, edit: (c: Record<string, unknown>) => void): void {
  const p = path.join(dir, 'config.json');
  const c = JSON.parse(fs.readFileSync(p, 'utf8'));
  edit(c);
  fs.writeFileSync(p, JSON.stringify(c));
}

/** Rewrites model.safetensors with `edit` applied to its tensor list. */
function editTensors(dir: string, edit: (ts: TensorToWrite[]) => TensorToWrite[]): void {
  const ck = openCheckpoint(dir);
  const ts = [...ck.tensors].map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.info.shape, data: ck.read(name) }));
  writeSafetensors(path.join(dir, 'model.safetensors'), edit(ts));
}

// The hand-wired generation model: byte-level tokenizer (259 ids), one Llama layer whose o_proj and
// down_proj are zero, so the residual stream is the token's embedding and the next token depends
// only on the current one. Embedding rows are one-hot per chain token and lm_head rows point back
// at the predecessor, which makes greedy decoding walk a fixed chain:
//   "A" -> 0xC3 -> 0xA9 -> "!" -> <|im_end|>      (0xC3 0xA9 is "é": one character, two tokens)
//   "\n" (end of the chat prompt) -> "O" -> "K" -> <|im_end|>
const tf = byteLevelTokenizer();
const EOS = tf.specialIds['<|im_end|>'];
const CHAIN: [number, number][] = [[65, 0xc3], [0xc3, 0xa9], [0xa9, 0x21], [0x21, EOS], [10, 79], [79, 75], [75, EOS]];

function chainModel(dir: string): void {
  const C = 16;
  const raw = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: tf.vocabSize, hidden_size: C,
    intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, hidden_act: 'silu',
    max_position_embeddings: 256, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false,
    torch_dtype: 'float32', eos_token_id: EOS, pad_token_id: tf.specialIds['<|endoftext|>'],
  };
  const m = new Decoder(normalizeConfig(raw, 'chain config'));
  initWeights(m, 5);
  const slot = (name: string) => m.layout.byName.get(name)!;
  const zero = (name: string) => { const s = slot(name); m.params.view(s).fill(0); };
  zero('model.embed_tokens.weight');
  zero('lm_head.weight');
  zero('model.layers.0.self_attn.o_proj.weight');
  zero('model.layers.0.mlp.down_proj.weight');
  const wte = slot('model.embed_tokens.weight').offset, head = slot('lm_head.weight').offset;
  CHAIN.forEach(([from, to], k) => {
    m.params.set(wte + from * C + k, 1);
    m.params.set(head + to * C + k, 10);
  });
  fs.mkdirSync(dir);
  saveModel(m, dir, raw);
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tf.tokenizerJson));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tf.tokenizerConfig));
}

// -----------------------------------------------------------------------------------------------
// every run, started up front

const runs: Record<string, Promise<Run>> = {};
const out = (f: string) => path.join(tmp, 'out', f);

before(() => {
  tmp = tempDir('kompresor-cli-');
  fs.mkdirSync(path.join(tmp, 'out'));
  dirs.untied = copyFixture('llama_untied', 'untied');
  dirs.tied = copyFixture('llama_tied_gqa', 'tied');
  dirs.chain = path.join(tmp, 'chain');
  chainModel(dirs.chain);

  dirs.missing = copyFixture('llama_tied_gqa', 'missing');
  editTensors(dirs.missing, (ts) => ts.filter((t) => t.name !== 'model.layers.1.mlp.up_proj.weight'));
  dirs.extra = copyFixture('llama_tied_gqa', 'extra');
  editTensors(dirs.extra, (ts) => [...ts, { name: 'model.layers.0.mlp.extra_proj.weight', dtype: 'F32', shape: [2, 2], data: new Float32Array(4) }]);
  dirs.arch = copyFixture('llama_tied_gqa', 'arch');
  editConfig(dirs.arch, (c) => { c.architectures = ['GPT2LMHeadModel']; c.model_type = 'gpt2'; });
  dirs.rope = copyFixture('llama_tied_gqa', 'rope');
  editConfig(dirs.rope, (c) => { c.rope_scaling = { rope_type: 'yarn', factor: 4.0 }; });
  dirs.truncData = copyFixture('llama_tied_gqa', 'trunc-data');
  const st = path.join(dirs.truncData, 'model.safetensors');
  fs.truncateSync(st, fs.statSync(st).size - 100);
  dirs.truncHeader = copyFixture('llama_tied_gqa', 'trunc-header');
  fs.truncateSync(path.join(dirs.truncHeader, 'model.safetensors'), 40);
  dirs.notSt = copyFixture('llama_tied_gqa', 'not-safetensors');
  fs.writeFileSync(path.join(dirs.notSt, 'model.safetensors'), 'version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 64176\n');
  dirs.escape = copyFixture('llama_tied_gqa', 'escape');
  fs.renameSync(path.join(dirs.escape, 'model.safetensors'), path.join(tmp, 'model-00001-of-00001.safetensors'));
  const names = [...readSafetensorsHeader(path.join(tmp, 'model-00001-of-00001.safetensors')).tensors.keys()];
  fs.writeFileSync(path.join(dirs.escape, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: {}, weight_map: Object.fromEntries(names.map((n) => [n, '../model-00001-of-00001.safetensors'])) }));

  const U = golden('llama_untied').ids, G = golden('llama_tied_gqa').ids;
  const start = (name: string, args: string[]) => { runs[name] = kompresor(args); };
  start('inspectJson', ['inspect', dirs.untied, '--json']);
  start('inspectText', ['inspect', dirs.tied]);
  start('logits', ['logits', dirs.untied, '--ids', idsFlag(U), '--out', out('logits.json')]);
  start('gradsUntied', ['grads', dirs.untied, '--ids', idsFlag(U), '--out', out('untied.safetensors')]);
  start('gradsTied', ['grads', dirs.tied, '--ids', idsFlag(G), '--out', out('tied.safetensors')]);
  start('generate', ['generate', dirs.chain, '--prompt', 'A', '--temperature', '0']);
  start('generateChat', ['generate', dirs.chain, '--prompt', 'Say OK', '--chat']);
  start('generateShort', ['generate', dirs.chain, '--prompt', 'A', '--max-new-tokens', '2', '--temperature', '0']);
  start('generateSampled', ['generate', dirs.chain, '--prompt', 'A', '--temperature', '40', '--top-k', '50', '--top-p', '0.9',
    '--min-p', '0.01', '--seed', '11', '--max-new-tokens', '6', '--json']);

  start('idOutOfVocab', ['logits', dirs.untied, '--ids', '1,2,64;3,4,5', '--out', out('bad1.json')]);
  start('idNegative', ['grads', dirs.untied, '--ids', '1,-1,2', '--out', out('bad2.safetensors')]);
  start('idWraps', ['logits', dirs.untied, '--ids', '1,4294967301', '--out', out('bad3.json')]);
  start('idEmpty', ['logits', dirs.untied, '--ids', '1,,2', '--out', out('bad4.json')]);
  start('idText', ['logits', dirs.untied, '--ids', '1,2;3,x', '--out', out('bad5.json')]);
  start('rowsUnequal', ['logits', dirs.untied, '--ids', '1,2,3;4,5', '--out', out('bad6.json')]);
  start('gradsOneToken', ['grads', dirs.untied, '--ids', '1;2', '--out', out('bad7.safetensors')]);
  start('outFolderMissing', ['logits', dirs.untied, '--ids', '1,2', '--out', path.join(tmp, 'no-such-folder', 'l.json')]);
  start('outIsFolder', ['grads', dirs.untied, '--ids', '1,2', '--out', path.join(tmp, 'out')]);
  start('missingTensor', ['inspect', dirs.missing]);
  start('extraTensor', ['logits', dirs.extra, '--ids', '1,2', '--out', out('bad8.json')]);
  start('arch', ['inspect', dirs.arch]);
  start('rope', ['grads', dirs.rope, '--ids', '1,2', '--out', out('bad9.safetensors')]);
  start('truncData', ['inspect', dirs.truncData]);
  start('truncHeader', ['inspect', dirs.truncHeader]);
  start('notSafetensors', ['inspect', dirs.notSt]);
  start('escape', ['inspect', dirs.escape]);
  start('noDir', ['inspect', path.join(tmp, 'no-such-model')]);
  start('noTokenizer', ['generate', dirs.tied, '--prompt', 'hi']);
  start('temperatureText', ['generate', dirs.chain, '--prompt', 'A', '--temperature', 'hot']);
  start('maxNewFraction', ['generate', dirs.chain, '--prompt', 'A', '--max-new-tokens', '2.5']);
  start('topPRange', ['generate', dirs.chain, '--prompt', 'A', '--top-p', '1.5']);
  start('seedEmpty', ['generate', dirs.chain, '--prompt', 'A', '--seed', '']);
  start('cacheTooBig', ['generate', dirs.chain, '--prompt', 'A', '--max-new-tokens', '1000000000000']);
  start('emptyPrompt', ['generate', dirs.chain, '--prompt', '']);
});

after(async () => {
  await Promise.all(Object.values(runs));
  fs.rmSync(tmp, { recursive: true, force: true });
});

// -----------------------------------------------------------------------------------------------
// commands that work

describe('kompresor inspect', () => {
  test('--json: total_params is the sum of the tensor sizes in model.safetensors; components add up', async () => {
    const r = await runs.inspectJson;
    assertOk(r);
    const j = JSON.parse(r.stdout);
    const h = readSafetensorsHeader(path.join(dirs.untied, 'model.safetensors'));
    const by: Record<string, number> = { embeddings: 0, attention: 0, mlp: 0, norms: 0, lm_head: 0 };
    let total = 0;
    for (const [name, t] of h.tensors) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      total += n;
      by[name === 'lm_head.weight' ? 'lm_head' : name.includes('embed_tokens') ? 'embeddings'
        : name.includes('self_attn') ? 'attention' : name.includes('.mlp.') ? 'mlp' : 'norms'] += n;
    }
    assert.equal(total, 15520);
    assert.equal(j.total_params, total);
    assert.deepEqual(j.params, by);
    assert.equal(j.total_params_no_lm_head, total - 64 * 32, 'the seed\'s convention leaves out the untied [64, 32] head');
    assert.equal(j.architecture, 'LlamaForCausalLM');
    assert.deepEqual([j.config.vocab_size, j.config.hidden_size, j.config.num_hidden_layers, j.config.num_key_value_heads, j.config.tie_word_embeddings],
      [64, 32, 2, 4, false]);
  });

  test('text: one line per component and the exact total (tied head counts 0)', async () => {
    const r = await runs.inspectText;
    assertOk(r);
    const h = readSafetensorsHeader(path.join(dirs.tied, 'model.safetensors'));
    const total = [...h.tensors.values()].reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
    assert.match(r.stdout, /^.*tied: LlamaForCausalLM$/m);
    assert.match(r.stdout, new RegExp(`^ +total +${esc(total.toLocaleString('en-US'))}$`, 'm'));
    assert.match(r.stdout, /^ +lm_head +0 +0\.0%$/m);
    assert.match(r.stdout, new RegExp(`^ +without lm_head +${esc(total.toLocaleString('en-US'))}  \\(the seed's convention: 11\\.04B -> 7\\.35B\\)$`, 'm'), 'tied: the same count');
    assert.match(r.stdout, /^ +embeddings +2,048 +\d+\.\d%$/m);
    assert.match(r.stdout, /^ +num_key_value_heads +2$/m);
  });
});

describe('kompresor logits', () => {
  test('writes {shape:[B,T,V], logits} with float32 rows equal to the golden logits (llama_untied)', async () => {
    const r = await runs.logits;
    assertOk(r);
    assert.equal(r.stdout, `wrote logits [2,12,64] to ${out('logits.json')}\n`);
    const j = JSON.parse(fs.readFileSync(out('logits.json'), 'utf8'));
    assert.deepEqual(Object.keys(j).sort(), ['logits', 'shape']);
    assert.deepEqual(j.shape, [2, 12, 64]);
    assert.equal(j.logits.length, 2);
    const flat: number[] = [];
    for (const row of j.logits) {
      assert.equal(row.length, 12);
      for (const v of row) { assert.equal(v.length, 64); flat.push(...v); }
    }
    assert.ok(flat.every((v) => typeof v === 'number' && Math.fround(v) === v), 'every value is a float32');
    const err = relErr(flat, goldenTensor('llama_untied', 'logits'));
    assert.ok(err < LOGITS_TOL, `logits relative error ${err.toExponential(2)}`);
  });
});

describe('kompresor grads', () => {
  for (const [run, fixture, file, count] of [['gradsUntied', 'llama_untied', 'untied.safetensors', 21], ['gradsTied', 'llama_tied_gqa', 'tied.safetensors', 20]] as const) {
    test(`${fixture}: prints the loss; F32 gradient of every parameter under its HF name, within ${GRAD_TOL} of the golden`, async () => {
      const r = await runs[run];
      assertOk(r);
      const g = golden(fixture);
      const m = /^loss (\d+\.\d{6})\nwrote (\d+) gradient tensors to (.+)\n$/.exec(r.stdout);
      assert.ok(m, `stdout: ${r.stdout}`);
      assert.ok(Math.abs(Number(m[1]) - g.loss) < 1e-5, `printed loss ${m[1]} vs golden ${g.loss}`);
      assert.equal(Number(m[2]), count);
      assert.equal(m[3], out(file));
      const h = readSafetensorsHeader(out(file));
      const model = readSafetensorsHeader(path.join(FIXTURES, fixture, 'model.safetensors'));
      assert.deepEqual([...h.tensors.keys()].sort(), [...model.tensors.keys()].sort());
      assert.ok(Math.abs(Number(h.metadata.loss) - g.loss) < 1e-5, `metadata loss ${h.metadata.loss}`);
      for (const [name, t] of h.tensors) {
        assert.equal(t.dtype, 'F32', name);
        assert.deepEqual(t.shape, model.tensors.get(name)!.shape, name);
        const err = relErr(readTensorF32(h, t), goldenTensor(fixture, `grad.${name}`));
        assert.ok(err < GRAD_TOL, `gradient of ${name}: relative error ${err.toExponential(2)}`);
      }
      const heads = [...h.tensors.keys()].filter((n) => n === 'lm_head.weight' || n === 'model.embed_tokens.weight');
      assert.deepEqual(heads.sort(), fixture === 'llama_untied' ? ['lm_head.weight', 'model.embed_tokens.weight'] : ['model.embed_tokens.weight']);
    });
  }
});

describe('kompresor generate', () => {
  const TOKS = /^(\d+) tokens, prefill \d+(\.\d)? tokens\/s, decode \d+(\.\d)? tokens\/s\n$/;

  test('prints the completion (a two-token character whole, EOS not shown) and a tokens/s line', async () => {
    const r = await runs.generate;
    assertOk(r);
    assert.equal(r.stdout, 'é!\n');
    const m = TOKS.exec(r.stderr);
    assert.ok(m, `stderr: ${r.stderr}`);
    assert.equal(Number(m[1]), 4, 'three chain tokens and the EOS');
  });

  test('--chat wraps the prompt in the chat template (default sampling flags)', async () => {
    const r = await runs.generateChat;
    assertOk(r);
    assert.equal(r.stdout, 'OK\n');
    assert.match(r.stderr, TOKS);
  });

  test('--max-new-tokens 2 stops after two tokens', async () => {
    const r = await runs.generateShort;
    assertOk(r);
    assert.equal(r.stdout, 'é\n');
    assert.equal(TOKS.exec(r.stderr)?.[1], '2');
  });

  test('--json with sampling flags and --seed equals the library call with the same options; the seed matters', async () => {
    const r = await runs.generateSampled;
    assertOk(r);
    const j = JSON.parse(r.stdout);
    const opts = (seed: number) => ({ prompt: 'A', chat: false, maxNewTokens: 6, seed, sampling: { temperature: 40, topK: 50, topP: 0.9, minP: 0.01 } });
    const same = await generateCommand(dirs.chain, opts(11));
    const other = await generateCommand(dirs.chain, opts(12));
    assert.equal(j.completion, same.completion);
    assert.equal(j.new_tokens, 6);
    assert.notEqual(other.completion, same.completion);
    assert.equal(j.prompt_tokens, 1);
  });

  test('streamed text equals the final completion when characters span tokens', async () => {
    let streamed = '';
    const r = await generateCommand(dirs.chain, { prompt: 'A', chat: false, maxNewTokens: 8, seed: 0,
      sampling: { temperature: 0, topK: 0, topP: 1, minP: 0 }, onText: (s) => { streamed += s; } });
    assert.equal(r.completion, 'é!');
    assert.equal(streamed, r.completion);
  });
});

// -----------------------------------------------------------------------------------------------
// bad input: exit code 1 and one line naming where, what and what was expected

describe('bad input: one line on stderr, exit code 1', () => {
  const cases: [string, string, () => RegExp[]][] = [
    ['idOutOfVocab', 'an id equal to the vocabulary size', () => [/kompresor: --ids\[0\]\[2\]: token ids must index the vocabulary; expected 0 <= id < 64, found 64\./]],
    ['idNegative', 'a negative id (grads)', () => [/--ids\[0\]\[1\]: token ids must index the vocabulary; expected 0 <= id < 64, found -1\./]],
    ['idWraps', 'an id of 2^32 + 5 (an Int32Array would read 5)', () => [/--ids\[0\]\[1\]: token ids must index the vocabulary; expected 0 <= id < 64, found 4294967301\./]],
    ['idEmpty', 'an empty id between commas', () => [/--ids row 0 position 1: token ids are integers; found ""\./]],
    ['idText', 'a non-numeric id', () => [/--ids row 1 position 1: token ids are integers; found "x"\./]],
    ['rowsUnequal', '--ids rows of unequal length', () => [/--ids row 1: every row must have the same length \(no padding\); expected 3 tokens, found 2\./]],
    ['gradsOneToken', 'grads on rows of one token', () => [/--ids: next-token loss needs rows of at least 2 tokens; found 1\./]],
    ['outFolderMissing', '--out in a folder that does not exist', () => [new RegExp(`--out ${esc(path.join(tmp, 'no-such-folder', 'l.json'))}: the output folder must exist; expected a folder at ${esc(path.join(tmp, 'no-such-folder'))}, found no such folder\\.`)]],
    ['outIsFolder', '--out naming a folder', () => [new RegExp(`--out ${esc(path.join(tmp, 'out'))}: the output must be a file name; found a folder\\.`)]],
    ['missingTensor', 'a tensor missing from the checkpoint', () => [new RegExp(`${esc(dirs.missing)}: every tensor of the architecture must be in the checkpoint; expected 20 tensors, found 1 missing \\(model\\.layers\\.1\\.mlp\\.up_proj\\.weight\\)\\.`)]],
    ['extraTensor', 'a tensor the architecture does not use', () => [new RegExp(`${esc(dirs.extra)}: the checkpoint must not hold tensors the architecture does not use; expected none, found 1 \\(model\\.layers\\.0\\.mlp\\.extra_proj\\.weight\\)\\.`)]],
    ['arch', 'an unsupported architecture', () => [new RegExp(`${esc(path.join(dirs.arch, 'config.json'))}: architectures: .*expected LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, found \\["GPT2LMHeadModel"\\]`)]],
    ['rope', 'an unsupported rope type', () => [/config\.json: rope_scaling\.rope_type: .*expected "default", "linear", "llama3", found "yarn"/]],
    ['truncData', 'safetensors truncated inside the data', () => [new RegExp(`${esc(path.join(dirs.truncData, 'model.safetensors'))}: tensor "[^"]+": data_offsets must lie inside the data section; expected end <= \\d+, found end \\d+\\.`)]],
    ['truncHeader', 'safetensors truncated inside the header', () => [new RegExp(`${esc(path.join(dirs.truncHeader, 'model.safetensors'))}: the header length must fit inside the file; expected <= 32 bytes, found \\d+ bytes\\. Hint: the file is truncated`)]],
    ['notSafetensors', 'a Git LFS pointer instead of safetensors', () => [/model\.safetensors: the header length must be at most 100 MB; expected <= 100000000, found \d+\./]],
    ['escape', 'a shard index naming a file outside the folder', () => [new RegExp(`${esc(path.join(dirs.escape, 'model.safetensors.index.json'))}: "\\.\\./model-00001-of-00001\\.safetensors": shard files must be inside the model folder; expected a file name relative to ${esc(dirs.escape)}, found a path leaving the folder\\.`)]],
    ['noDir', 'a model folder that does not exist', () => [new RegExp(`${esc(path.join(tmp, 'no-such-model'))}: the model folder must exist; found no such folder\\.`)]],
    ['noTokenizer', 'generate on a folder without tokenizer.json', () => [/tokenizer\.json: the model folder must hold tokenizer\.json; found no such file\./]],
    ['temperatureText', 'a non-numeric --temperature', () => [/--temperature: --temperature takes a number >= 0; found "hot"\./]],
    ['maxNewFraction', 'a fractional --max-new-tokens', () => [/--max-new-tokens: --max-new-tokens takes an integer >= 1; found "2\.5"\./]],
    ['topPRange', '--top-p above 1', () => [/--top-p: --top-p takes a number in \[0, 1\]; found "1\.5"\./]],
    ['seedEmpty', 'an empty --seed', () => [/--seed: --seed takes an integer >= 0; found ""\./]],
    ['cacheTooBig', 'a KV cache that cannot be allocated', () => [/max_new_tokens: the KV cache for prompt \+ max_new_tokens must fit in memory; expected a smaller max_new_tokens, found 1000000000000 \(a \d+\.\d GiB cache/]],
    ['emptyPrompt', 'an empty prompt', () => [/prompt: every prompt needs at least one token; found \[0\]\./]],
  ];
  for (const [run, what, patterns] of cases) {
    test(what, async () => {
      assertOneLineError(await runs[run], ...patterns());
    });
  }

  test('a refused logits/grads run leaves no output file behind', async () => {
    await Promise.all(['idOutOfVocab', 'idNegative', 'idWraps', 'extraTensor', 'rope'].map((k) => runs[k]));
    const left = fs.readdirSync(path.join(tmp, 'out')).filter((f) => f.startsWith('bad'));
    assert.deepEqual(left, []);
  });
});
