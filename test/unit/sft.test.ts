// SFT: completion masks (assistant spans by {% generation %} markers and by incremental
// rendering, prompt/completion in plain text and as messages, the end-of-turn token inside),
// refusals naming FILE:LINE, packing without cross-example targets, the token mean over a whole
// accumulated batch (equal to one big batch, not a mean of micro-batch means), bitwise resume,
// and `kompresor sft` end to end (held-out completion loss falls; --drop-long; one-line errors).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { byteLevelTokenizer, CHATML_TEMPLATE } from '../../src/io/byte_tokenizer.ts';
import { loadTokenizer, type LoadedTokenizer } from '../../src/io/tokenizer.ts';
import { normalizeConfig } from '../../src/io/hf_config.ts';
import { Decoder } from '../../src/model/decoder.ts';
import { initWeights } from '../../src/model/init.ts';
import { loadModel, saveModel } from '../../src/model/load.ts';
import { countTargets, type Batch } from '../../src/model/batch.ts';
import { Rng } from '../../src/model/sampling.ts';
import { loadSftData, type TokenExample } from '../../src/align/data.ts';
import { SftSource, sftEvalSource, packRows, bestFitDecreasing } from '../../src/align/sources.ts';
import { sftObjective, completionLoss } from '../../src/align/sft.ts';
import { accumulateGradients, train } from '../../src/train/trainer.ts';
import { readMetrics } from '../../src/train/metrics.ts';
import { TINY, tinyOptions } from '../train_helpers.ts';
import { relErr, rng, throwsWith, tempDir } from '../helpers.ts';

const ROOT = path.join(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/kompresor.mjs');
let work: string;
const at = (...p: string[]) => path.join(work, ...p);

/** A folder with the byte-level tokenizer (ChatML with {% generation %}) and optionally another template. */
function tokenizerDir(name: string, template?: string): string {
  const dir = at(name);
  fs.mkdirSync(dir, { recursive: true });
  const tf = byteLevelTokenizer();
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tf.tokenizerJson));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ ...tf.tokenizerConfig, chat_template: template ?? CHATML_TEMPLATE }));
  return dir;
}

function writeJsonl(name: string, rows: unknown[]): string {
  fs.writeFileSync(at(name), rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n');
  return at(name);
}

/** The text with each masked token in brackets: "ab[c][d]" (unmasked runs decoded whole, for UTF-8). */
function show(tok: LoadedTokenizer, e: TokenExample): string {
  const text = (ids: number[]) => (ids.length > 0 ? tok.decode(ids) : '');
  let out = '', run: number[] = [];
  e.ids.forEach((id, i) => {
    if (!e.mask[i]) { run.push(id); return; }
    out += text(run) + `[${tok.decode([id])}]`;
    run = [];
  });
  return out + text(run);
}

const CONVO = [{ role: 'system', content: 'Bądź zwięzły.' }, { role: 'user', content: 'Ile to jest 2 + 3?' }, { role: 'assistant', content: '5' },
  { role: 'user', content: 'A 4 + 4?' }, { role: 'assistant', content: '8' }];

before(() => { work = tempDir('kompresor-sft-'); });
after(() => { fs.rmSync(work, { recursive: true, force: true }); });

describe('completion masks', () => {
  test('messages, {% generation %} markers: the assistant content and its <|im_end|>, nothing else', () => {
    const tok = loadTokenizer(tokenizerDir('marked'));
    assert.equal(tok.hasGenerationMarkers, true);
    const d = loadSftData(tok, writeJsonl('convo.jsonl', [{ messages: CONVO }]), { maxLength: 512 });
    assert.equal(show(tok, d.examples[0]),
      '<|im_start|>system\nBądź zwięzły.<|im_end|>\n<|im_start|>user\nIle to jest 2 + 3?<|im_end|>\n<|im_start|>assistant\n[5][<|im_end|>]\n' +
      '<|im_start|>user\nA 4 + 4?<|im_end|>\n<|im_start|>assistant\n[8][<|im_end|>]\n');
  });

  test('messages without markers: spans by rendering turn by turn (the template\'s "\\n" after <|im_end|> included)', () => {
    const plain = CHATML_TEMPLATE.replace('{% generation %}', '').replace('{% endgeneration %}', '');
    const tok = loadTokenizer(tokenizerDir('unmarked', plain));
    assert.equal(tok.hasGenerationMarkers, false);
    const e = loadSftData(tok, at('convo.jsonl'), { maxLength: 512 }).examples[0];
    assert.match(show(tok, e), /assistant\n\[5\]\[<\|im_end\|>\]\[\n\]<\|im_start\|>user\nA 4 \+ 4\?<\|im_end\|>\n<\|im_start\|>assistant\n\[8\]\[<\|im_end\|>\]\[\n\]$/);
  });

  test('a template that re-renders earlier turns is refused, naming the row', () => {
    // drops the content of every assistant turn but the last: not prefix-preserving
    const bad = "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' }}{% if m['role'] == 'assistant' and not loop.last %}...{% else %}{{ m['content'] }}{% endif %}{{ '<|im_end|>\\n' }}{% endfor %}" +
      "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    const tok = loadTokenizer(tokenizerDir('rerender', bad));
    throwsWith(() => loadSftData(tok, at('convo.jsonl'), { maxLength: 512 }), 'input_invalid', /convo\.jsonl:1: /, /prefix-preserving/, /generation/);
  });

  test('plain-text prompt/completion: EOS appended, loss on the completion and EOS', () => {
    const tok = loadTokenizer(at('marked'));
    const e = loadSftData(tok, writeJsonl('plain.jsonl', [{ prompt: 'Ile to jest 2 + 2? ', completion: '4' }]), { maxLength: 64 }).examples[0];
    assert.equal(show(tok, e), 'Ile to jest 2 + 2? [4][<|im_end|>]');
  });

  test('conversational prompt/completion: the completion starts after the generation prompt', () => {
    const tok = loadTokenizer(at('marked'));
    const e = loadSftData(tok, writeJsonl('pc.jsonl', [{ prompt: [{ role: 'user', content: '1 + 1?' }], completion: '2' }]), { maxLength: 64 }).examples[0];
    assert.equal(show(tok, e), '<|im_start|>user\n1 + 1?<|im_end|>\n<|im_start|>assistant\n[2][<|im_end|>][\n]');
  });

  test('bad rows are refused with FILE:LINE; --drop-long counts instead of refusing', () => {
    const tok = loadTokenizer(at('marked'));
    const ok = { prompt: 'a', completion: 'b' };
    throwsWith(() => loadSftData(tok, writeJsonl('miss.jsonl', [ok, { prompt: 'x' }]), { maxLength: 64 }), 'input_invalid', /miss\.jsonl:2: the row must have a "completion" field/);
    throwsWith(() => loadSftData(tok, writeJsonl('empty.jsonl', [ok, ok, { prompt: 'x', completion: '' }]), { maxLength: 64 }), 'input_invalid', /empty\.jsonl:3: "completion" must not be empty/);
    throwsWith(() => loadSftData(tok, writeJsonl('json.jsonl', [ok, '{"prompt": "x",']), { maxLength: 64 }), 'input_invalid', /json\.jsonl:2: each line must be one JSON object/);
    throwsWith(() => loadSftData(tok, writeJsonl('noasst.jsonl', [{ messages: [{ role: 'user', content: 'hi' }] }]), { maxLength: 64 }), 'input_invalid', /noasst\.jsonl:1: a conversation needs at least one assistant message/);
    throwsWith(() => loadSftData(tok, writeJsonl('mixed.jsonl', [{ prompt: 'x', completion: [{ role: 'assistant', content: 'y' }] }]), { maxLength: 64 }), 'input_invalid', /mixed\.jsonl:1: a plain-text prompt takes a plain-text completion/);
    const long = writeJsonl('long.jsonl', [ok, { prompt: 'x'.repeat(40), completion: 'y' }, ok]);
    throwsWith(() => loadSftData(tok, long, { maxLength: 32 }), 'input_invalid', /long\.jsonl:2: the prompt must leave room for the completion/, /--drop-long/);
    const d = loadSftData(tok, long, { maxLength: 32, dropLong: true });
    assert.deepEqual([d.examples.length, d.dropped, d.rows], [2, [`${long}:2`], 3]);
  });

  test('truncation keeps the start: a completion cut by the limit keeps its first tokens', () => {
    const tok = loadTokenizer(at('marked'));
    const e = loadSftData(tok, writeJsonl('cut.jsonl', [{ prompt: 'abc', completion: 'defgh' }]), { maxLength: 5 }).examples[0];
    assert.equal(show(tok, e), 'abc[d][e]');
  });
});

// -----------------------------------------------------------------------------------------------
// packing and the objective, on the tiny fixture model (vocabulary 64), with hand-made examples

function examples(n: number, seed: number): TokenExample[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const len = 3 + Math.floor(r() * 10), start = 1 + Math.floor(r() * (len - 1));
    const ids = Int32Array.from({ length: len }, (_, t) => (t === 0 ? Math.floor(r() * 64) : (i * 7 + t * 3) % 64));
    return { ids, mask: new Uint8Array(len).fill(1, start), where: `ex${i}` };
  });
}

describe('packing', () => {
  test('best-fit decreasing places every sequence once, within the row length, longest first', () => {
    const lengths = [9, 3, 7, 2, 5, 5, 1, 8];
    const bins = bestFitDecreasing(lengths.map((_, i) => i), lengths, 10);
    assert.deepEqual(bins.flat().sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7]);
    for (const b of bins) assert.ok(b.reduce((s, i) => s + lengths[i], 0) <= 10);
    assert.deepEqual(bins.map((b) => b.map((i) => lengths[i])), [[9, 1], [8, 2], [7, 3], [5, 5]]); // 40 tokens: 4 full rows
  });

  test('packed rows: targets only on completion tokens of the same example, none across a boundary', () => {
    const ex = examples(3, 1);
    const T = ex.reduce((s, e) => s + e.ids.length, 0) + 2;
    const b = packRows([ex], T, 0);
    let t = 0;
    for (const e of ex) {
      for (let i = 0; i < e.ids.length; i++) {
        const want = i + 1 < e.ids.length && e.mask[i + 1] ? e.ids[i + 1] : -100;
        assert.equal(b.targets[t + i], want, `${e.where} position ${i}`);
        assert.equal(b.pos[t + i], i);
        assert.equal(b.docStart[t + i], t);
      }
      t += e.ids.length;
    }
    assert.deepEqual(Array.from(b.targets.subarray(t)), [-100, -100]);
  });

  test('eval batches cover every example once, in order, the same each call', () => {
    const ex = examples(9, 2);
    const src = sftEvalSource(ex, { packing: false, padId: 0 });
    const a = src.batches(4, 16, 10), b = src.batches(4, 16, 10);
    assert.equal(a.length, 3);
    assert.deepEqual(a.map((x) => Array.from(x.ids)), b.map((x) => Array.from(x.ids)));
    assert.equal(a.reduce((s, x) => s + countTargets(x), 0), ex.reduce((s, e) => s + e.mask.reduce((u, m, i) => u + (i > 0 ? m : 0), 0), 0));
  });
});

/** Micro-batches stacked into one batch of all their rows. */
function stack(bs: Batch[]): Batch {
  const cat = (k: 'ids' | 'pos' | 'docStart' | 'targets') => Int32Array.from(bs.flatMap((b) => Array.from(b[k])));
  return { B: bs.reduce((s, b) => s + b.B, 0), T: bs[0].T, ids: cat('ids'), pos: cat('pos'), docStart: cat('docStart'), targets: cat('targets') };
}

describe('the SFT objective', () => {
  test('grad accumulation 3: the step\'s loss and gradient are those of one batch of all its rows (token mean)', async () => {
    const ex = examples(40, 3), o = { microBatch: 2, seqLen: 16, gradAccum: 3 };
    const batches = (() => { const s = new SftSource(ex, { seed: 5, packing: true, padId: 0 }); return [0, 1, 2].map(() => s.next(2, 16)); })();
    const counts = batches.map(countTargets);
    assert.ok(new Set(counts).size > 1, `micro-batches should hold different numbers of completion tokens: ${counts}`);
    const m1 = (await loadModel(TINY)).model;
    const r = accumulateGradients(m1, new SftSource(ex, { seed: 5, packing: true, padId: 0 }), sftObjective(), o, { step: 1, rng: new Rng(0) });
    const m2 = (await loadModel(TINY)).model;
    m2.zeroGrad();
    const whole = m2.lossAndBackward(stack(batches));
    assert.ok(Math.abs(r.loss - whole) < 1e-6, `loss ${r.loss} vs ${whole}`);
    assert.ok(relErr(m1.grads!.flat(), m2.grads!.flat()) < 1e-5, `gradient relErr ${relErr(m1.grads!.flat(), m2.grads!.flat())}`);
    // the mean of micro-batch means would differ
    const means = batches.map((b) => m2.loss(b)).reduce((s, v) => s + v, 0) / 3;
    assert.ok(Math.abs(means - whole) > 1e-3);
  });

  test('a run stopped after 3 steps and resumed matches the uninterrupted one bitwise', async () => {
    const ex = examples(60, 4), val = examples(10, 5);
    const run = async (dir: string, over: Record<string, unknown> = {}) => {
      const { model, config } = await loadModel(TINY);
      return train({ runDir: dir, model, config, train: new SftSource(ex, { seed: 1, packing: true, padId: 0 }), valid: sftEvalSource(val, { packing: true, padId: 0 }),
        objective: sftObjective(), options: tinyOptions({ steps: 6, saveEvery: 0, evalEvery: 3, gradAccum: 2 }), ...over });
    };
    await run(at('straight'));
    let n = 0;
    const stopped = await run(at('stopped'), { shouldStop: () => ++n === 3 });
    assert.equal(stopped.status, 'stopped');
    await run(at('stopped'), { resume: true });
    const lines = (d: string) => readMetrics(path.join(d, 'metrics.jsonl')).map((l) => JSON.stringify([l.split, l.step, l.loss, l.grad_norm, l.lr]));
    assert.deepEqual(lines(at('stopped')), lines(at('straight')));
    assert.deepEqual(fs.readFileSync(at('stopped/final/model.safetensors')), fs.readFileSync(at('straight/final/model.safetensors')));
  });

  test('SftSource refuses a position saved over other data', () => {
    const s = new SftSource(examples(10, 6), { seed: 1, packing: true, padId: 0 });
    s.next(2, 16);
    const other = new SftSource(examples(10, 7), { seed: 1, packing: true, padId: 0 });
    throwsWith(() => other.restore(s.state()), 'input_invalid', /a saved position must come from a source over the same data and seed/);
  });
});

// -----------------------------------------------------------------------------------------------
// the command

describe('kompresor sft', () => {
  let modelDir: string;
  before(() => {
    modelDir = tokenizerDir('model');
    const tf = byteLevelTokenizer();
    const raw = { architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: tf.vocabSize, hidden_size: 32, intermediate_size: 64,
      num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, hidden_act: 'silu', max_position_embeddings: 256, rms_norm_eps: 1e-5,
      tie_word_embeddings: true, eos_token_id: tf.specialIds['<|im_end|>'], torch_dtype: 'float32' };
    const m = new Decoder(normalizeConfig(raw, 'sft-test'));
    initWeights(m, 3);
    saveModel(m, modelDir, raw);
    const qa = (a: number, b: number) => ({ messages: [{ role: 'user', content: `Ile to jest ${a} + ${b}?` }, { role: 'assistant', content: String(a + b) }] });
    const rows: unknown[] = [], held: unknown[] = [];
    for (let a = 0; a < 10; a++) for (let b = 0; b < 10; b++) ((a * 10 + b) % 5 === 0 ? held : rows).push(qa(a, b));
    writeJsonl('train.jsonl', [...rows, { prompt: 'x'.repeat(80), completion: 'y' }]);
    writeJsonl('val.jsonl', held);
  });

  const kompresor = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: ROOT });

  test('trains: the held-out completion loss falls; --drop-long reports the dropped row', () => {
    const r = kompresor('sft', modelDir, '--data', at('train.jsonl'), '--eval-data', at('val.jsonl'), '--out', at('run'), '--steps', '25',
      '--micro-batch', '4', '--seq-len', '64', '--lr', '1e-2', '--eval-every', '0', '--drop-long', '--json');
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { status: string; data: { train: { examples: number; dropped: number } } };
    assert.deepEqual([out.status, out.data.train.examples, out.data.train.dropped], ['finished', 80, 1]);
    const val = readMetrics(at('run/metrics.jsonl')).filter((l) => l.split === 'validation').map((l) => l.loss as number);
    assert.equal(val.length, 2);
    assert.ok(val[1] < val[0] - 1, `held-out completion loss ${val[0]} -> ${val[1]}`);
    assert.ok(fs.existsSync(at('run/final/tokenizer.json')));
  });

  test('held-out completion loss by the library equals the validation line', async () => {
    const tok = loadTokenizer(modelDir);
    const ex = loadSftData(tok, at('val.jsonl'), { maxLength: 64 }).examples;
    const { model } = await loadModel(at('run/final'));
    const batches = sftEvalSource(ex, { packing: true, padId: 0 }).batches(4, 64, 1000);
    const last = readMetrics(at('run/metrics.jsonl')).filter((l) => l.split === 'validation').at(-1)!;
    assert.ok(Math.abs(completionLoss(model, batches).loss - (last.loss as number)) < 1e-6);
  });

  test('--resume with another --seq-len is refused naming the flag, not the data', () => {
    const r = kompresor('sft', '--resume', at('run'), '--seq-len', '128', '--steps', '30');
    assert.equal(r.status, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /^kompresor: --seq-len: a resumed sft run keeps the row length it started with .*; expected 64 \(or no --seq-len\), found 128\. Hint: resume with `kompresor sft --resume .*run` and no --seq-len/);
  });

  test('a bad row is one line on stderr naming FILE:LINE, exit 1, nothing written', () => {
    const bad = writeJsonl('bad.jsonl', [{ prompt: 'a', completion: 'b' }, { prompt: 'a' }]);
    const r = kompresor('sft', modelDir, '--data', bad, '--out', at('bad-run'), '--steps', '2', '--seq-len', '64');
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`^kompresor: ${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: the row must have a "completion" field`));
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.equal(fs.existsSync(at('bad-run')), false);
  });
});
