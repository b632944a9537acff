// eval layer by layer (src/eval/stream_lm.ts on src/model/stream_forward.ts): the answers of the
// streamed scorer equal the in-memory engine's bit for bit with the lm_head resident, and to float32
// rounding with the lm_head read by vocabulary blocks and the batches in several groups; `kompresor
// eval --stream` writes the same results as the in-memory run; refusals come before any work.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { openCheckpoint } from '../../src/io/checkpoint.ts';
import { loadModel } from '../../src/model/load.ts';
import { scoreItems, rollingWindows, type ScoreItem } from '../../src/eval/requests.ts';
import { scoreItemsStreamed, planEvalStream } from '../../src/eval/stream_lm.ts';
import { kompresor } from '../cli_run.ts';
import { rng, tempDir, throwsWith } from '../helpers.ts';
import { tinyModelDir, writeByteTokenizer, spyReads, numel } from './score_fixture.ts';

let tmp: string;
before(() => { tmp = tempDir('kompresor-eval-stream-'); });
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Items of several lengths over the byte vocabulary, some repeated, as pairs and rolling windows make them. */
function items(seed: number): ScoreItem[] {
  const r = rng(seed), tok = () => 3 + Math.floor(r() * 250);
  const out: ScoreItem[] = [];
  for (let i = 0; i < 14; i++) {
    const input = Array.from({ length: 3 + Math.floor(r() * 30) }, tok);
    out.push({ input, targets: input.slice(1).concat([tok()]).slice(-1 - Math.floor(r() * input.length / 2)) });
  }
  out.push(out[3], out[7]);
  out.push(...rollingWindows(Array.from({ length: 70 }, tok), 2, 24));
  return out;
}

for (const c of [
  { name: 'Llama, tied, F32', opts: { layers: 3 } },
  { name: 'Qwen2, untied, BF16', opts: { layers: 2, qwen: true, tied: false, dtype: 'BF16' as const } },
]) {
  test(`${c.name}: streamed answers = in-memory ones (bitwise with the lm_head resident; 1e-5 by vocabulary blocks in several groups)`, async () => {
    const { dir } = tinyModelDir(path.join(tmp, c.name.replace(/\W+/g, '_')), { ...c.opts, std: 0.2 });
    const { model } = await loadModel(dir);
    const its = items(5), batchTokens = 64;
    const mem = scoreItems(model, its, batchTokens);
    const ck = openCheckpoint(dir), spy = spyReads(ck);
    const seen: number[] = [];
    const same = scoreItemsStreamed(ck, its, batchTokens, 8 * 2 ** 30, (n) => seen.push(n));
    assert.deepEqual(same, mem);
    assert.equal(seen.at(-1), its.length, 'progress ends at every item');
    const head = model.cfg.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
    const layerNames = [...ck.tensors.keys()].filter((n) => n.startsWith('model.layers.'));
    // (tied, the embedding's row reads mix with the head's: the untied case checks the head)
    if (!model.cfg.tieWordEmbeddings) assert.equal(spy.floats.get(head), numel(ck, head), 'the resident lm_head is read once');
    for (const n of [...layerNames, 'model.norm.weight']) assert.equal(spy.floats.get(n), numel(ck, n), `${n} read once`);

    // just above the smallest budget: one batch per group, the lm_head by blocks of rows
    const cfg = model.cfg, T = Math.max(...its.map((i) => i.input.length));
    const min = planEvalStream(cfg, Math.floor(batchTokens / T) * T, 10 * batchTokens, 8 * 2 ** 30).minBytes;
    const tight = planEvalStream(cfg, Math.floor(batchTokens / T) * T, 10 * batchTokens, min + 24 * 1024);
    assert.ok(tight.head!.blockRows < cfg.vocabSize, JSON.stringify(tight.head));
    const ck2 = openCheckpoint(dir), spy2 = spyReads(ck2);
    const blocked = scoreItemsStreamed(ck2, its, batchTokens, min + 24 * 1024);
    assert.ok(spy2.floats.get(head)! > 2 * numel(ck, head), 'the lm_head is read by blocks, several times');
    assert.ok(spy2.floats.get('model.layers.0.mlp.down_proj.weight')! > numel(ck, 'model.layers.0.mlp.down_proj.weight'), 'several groups: each layer read once per group');
    assert.equal(spy2.whole.get(head), undefined, 'the lm_head is never read whole');
    blocked.forEach((r, i) => {
      assert.ok(Math.abs(r.ll - mem[i].ll) <= 1e-5 * Math.max(1, Math.abs(mem[i].ll)), `item ${i}: ${r.ll} vs ${mem[i].ll}`);
      assert.equal(r.isGreedy, mem[i].isGreedy, `item ${i} greedy`);
    });
  });
}

test('a budget below one layer, one batch and one row of logits is refused, naming the memory and the flags', () => {
  const { model } = tinyModelDir(path.join(tmp, 'refuse'), { layers: 2 });
  throwsWith(() => planEvalStream(model.cfg, 64, 640, 100 * 2 ** 20), 'input_invalid',
    /^--max-memory: a layer-streamed forward holds one layer's weights, one batch's activations and hidden states and one row of logits; expected at least 192\.\d\d MiB \(one layer [\d.]+ KiB, one batch of 64 tokens [\d.]+ KiB\), found 100\.00 MiB\. Hint: raise --max-memory, or lower --batch-tokens or --max-length$/);
});

// ---------------------------------------------------------------------------------------------
// the command

test('eval --stream: the same results as in memory (student and teacher); generate_until and a too small budget refused before any work', async () => {
  const student = tinyModelDir(path.join(tmp, 'cli-student'), { layers: 2, std: 0.2, seed: 3 }).dir;
  const teacher = tinyModelDir(path.join(tmp, 'cli-teacher'), { layers: 3, tied: false, std: 0.2, seed: 4 }).dir;
  for (const d of [student, teacher]) writeByteTokenizer(d);
  const tasks = path.join(tmp, 'tasks');
  fs.mkdirSync(path.join(tasks, 'data'), { recursive: true });
  const jsonl = (docs: object[]) => docs.map((d) => JSON.stringify(d)).join('\n') + '\n';
  fs.writeFileSync(path.join(tasks, 'data', 'mc.jsonl'), jsonl([
    { q: 'Co rośnie na łące?', choices: ['trawa', 'kamień', 'żółw'], gold: 0 },
    { q: 'Stolica Polski to', choices: ['Kraków', 'Warszawa'], gold: 1 },
  ]));
  fs.writeFileSync(path.join(tasks, 'data', 'text.jsonl'), jsonl([{ text: 'Ala ma kota, a kot ma Alę.' }, { text: 'Źdźbło trawy kołysze się na wietrze nad łąką, długo i cicho.' }]));
  fs.writeFileSync(path.join(tasks, 'mc.yaml'), 'task: mc\ndataset_path: data/mc.jsonl\noutput_type: multiple_choice\n'
    + 'doc_to_text: "Pytanie: {{q}}\\nOdpowiedź:"\ndoc_to_target: gold\ndoc_to_choice: choices\n');
  fs.writeFileSync(path.join(tasks, 'ppl.yaml'), 'task: ppl\ndataset_path: data/text.jsonl\noutput_type: loglikelihood_rolling\ndoc_to_target: text\n');
  const run = (out: string, extra: string[]) => kompresor(['eval', student, '--teacher', teacher, '--tasks', tasks, '--out', out, '--max-length', '32', '--batch-tokens', '64', '--json', ...extra]);
  const [mem, streamed] = await Promise.all([run(path.join(tmp, 'mem.json'), []), run(path.join(tmp, 'stream.json'), ['--stream'])]);
  assert.equal(mem.code, 0, mem.stderr);
  assert.equal(streamed.code, 0, streamed.stderr);
  const a = JSON.parse(mem.stdout), b = JSON.parse(streamed.stdout);
  assert.deepEqual(a.config.mode, { student: 'memory', teacher: 'memory' });
  assert.deepEqual(b.config.mode, { student: 'stream', teacher: 'stream' });
  for (const k of ['results', 'teacher_results', 'recovery', 'n-samples', 'primary_metric']) assert.deepEqual(b[k], a[k], k);

  // a generate_until task, and a budget too small even streamed: one line, exit 1, no results file
  const gen = path.join(tmp, 'gen.yaml');
  fs.writeFileSync(gen, `task: gen\ndataset_path: ${path.join(tasks, 'data', 'mc.jsonl')}\noutput_type: generate_until\ndoc_to_text: "{{q}}"\ndoc_to_target: gold\n`);
  const bad = await Promise.all([
    kompresor(['eval', student, '--tasks', `${tasks},${gen}`, '--out', path.join(tmp, 'x1.json'), '--stream']),
    kompresor(['eval', student, '--tasks', tasks, '--out', path.join(tmp, 'x2.json'), '--max-memory', '100MiB']),
  ]);
  const want = [
    /^kompresor: --tasks .*: a model evaluated layer by layer \(--stream\) answers log-likelihood and perplexity tasks only; found generate_until task "gen"\. Hint: leave out --stream, or the generate_until tasks$/,
    /^kompresor: --max-memory: a layer-streamed forward holds one layer's weights.*; expected at least [\d.]+ MiB .*found 100\.00 MiB\. Hint: raise --max-memory, or lower --batch-tokens or --max-length$/,
  ];
  bad.forEach((r, i) => {
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.match(r.stderr.trimEnd(), want[i]);
  });
  assert.ok(!fs.existsSync(path.join(tmp, 'x1.json')) && !fs.existsSync(path.join(tmp, 'x2.json')));
});
