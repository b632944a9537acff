// `kompresor grpo` as a user runs it (node bin/kompresor.mjs) on a tiny byte-level model with
// random weights: a short run to the end (JSON result, metrics, held-out reward lines, final/);
// a reward module that throws at step 3 stops the run with one line naming the module and the
// batch, the checkpoint of step 2 intact, and --resume finishes it once the module is fixed;
// prompt files with bad rows are refused naming FILE:LINE (read in process, no model needed).
import { test, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { byteLevelTokenizer } from '../../src/io/byte_tokenizer.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { normalizeConfig } from '../../src/io/hf_config.ts';
import { Decoder } from '../../src/model/decoder.ts';
import { initWeights } from '../../src/model/init.ts';
import { saveModel } from '../../src/model/load.ts';
import { readMetrics } from '../../src/train/metrics.ts';
import { listCheckpoints } from '../../src/train/run_checkpoint.ts';
import { readPromptFile } from '../../src/align/grpo_data.ts';
import { throwsWith, tempDir } from '../helpers.ts';
import { kompresor } from '../cli_run.ts';

const tmp = tempDir('kompresor-grpo-cli-');
const at = (...p: string[]) => path.join(tmp, ...p);



const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
const SMALL = ['--num-generations', '4', '--micro-batch', '8', '--max-new-tokens', '4', '--max-prompt-length', '48', '--lr', '1e-3', '--seed', '3'];

before(() => {
  fs.mkdirSync(at('model'));
  const tf = byteLevelTokenizer();
  fs.writeFileSync(at('model/tokenizer.json'), JSON.stringify(tf.tokenizerJson));
  fs.writeFileSync(at('model/tokenizer_config.json'), JSON.stringify(tf.tokenizerConfig));
  const config = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: tf.vocabSize, hidden_size: 32, intermediate_size: 64,
    num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 128, rms_norm_eps: 1e-5,
    rope_theta: 10000, tie_word_embeddings: true, eos_token_id: tf.specialIds['<|im_end|>'], torch_dtype: 'float32',
  };
  const model = new Decoder(normalizeConfig(config, 'config'));
  initWeights(model, 1);
  saveModel(model, at('model'), config, { tokenizerFrom: at('model') });
  const rows = Array.from({ length: 12 }, (_, i) => ({ prompt: `Ile to jest ${i} + 1? Odpowiedź:`, answer: i + 1 }));
  fs.writeFileSync(at('train.jsonl'), jsonl(rows));
  fs.writeFileSync(at('held.jsonl'), jsonl([...rows.slice(0, 3), { prompt: [{ role: 'user', content: 'Ile to jest 2 + 2?' }], answer: 4 }]));
});

test('a short run to the end: JSON result, reward metrics per step, held-out reward at 0, 2 and 4, final/ with the tokenizer', async () => {
  const r = await kompresor(['grpo', at('model'), '--data', at('train.jsonl'), '--eval-data', at('held.jsonl'), '--reward', 'numeric,length',
    '--reward-weights', '1,0.5', '--out', at('run'), '--steps', '4', '--eval-every', '2', '--beta', '0.04', '--num-iterations', '2', '--json', ...SMALL]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.equal(out.status, 'finished');
  assert.equal(typeof out.eval_reward_first, 'number');
  const lines = readMetrics(at('run/metrics.jsonl'));
  const train = lines.filter((l) => l.split === undefined), valid = lines.filter((l) => l.split === 'validation');
  assert.equal(train.length, 4);
  assert.deepEqual(valid.map((l) => l.step), [0, 2, 4]);
  for (const k of ['reward', 'reward_std', 'reward_numeric', 'reward_length', 'completion_length', 'truncated', 'clip_low', 'clip_high', 'kl']) {
    assert.equal(typeof train[0][k], 'number', k);
  }
  assert.equal(valid[0].loss, -(valid[0].reward as number));
  assert.ok(fs.existsSync(at('run/final/model.safetensors')) && fs.existsSync(at('run/final/tokenizer.json')));
  assert.ok(fs.existsSync(at('run/report/reward.svg')));
});

test('a reward module that throws at step 3: one line naming the module and the batch, checkpoint 2 intact; --resume finishes after the fix', async () => {
  const mod = at('flaky.ts');
  // a file of calls next to the module: the third generation batch fails
  fs.writeFileSync(mod, `import fs from 'node:fs';\nconst f = ${JSON.stringify(at('calls'))};\n` +
    'export default (_p: string[], c: string[]) => {\n  const n = fs.existsSync(f) ? Number(fs.readFileSync(f, "utf8")) + 1 : 1;\n' +
    '  fs.writeFileSync(f, String(n));\n  if (n === 3) throw new Error("lookup table missing");\n  return c.map((x) => x.length);\n};\n');
  const r = await kompresor(['grpo', at('model'), '--data', at('train.jsonl'), '--reward', mod, '--out', at('flaky'), '--steps', '4', '--save-every', '1', ...SMALL]);
  assert.equal(r.code, 1, r.stderr);
  const last = r.stderr.trim().split('\n').at(-1)!;
  assert.match(last, /^kompresor: reward module .*flaky\.ts: the reward function must score the generation batch of step 3 \(prompts .*train\.jsonl:\d+, .*\); found it threw: lookup table missing\. Hint: the run stopped; checkpoints already written are intact \(fix the reward, then `kompresor grpo --resume .*flaky`\)$/);
  assert.deepEqual(listCheckpoints(at('flaky')).map((c) => c.step), [2]);
  fs.writeFileSync(mod, 'export default (_p: string[], c: string[]) => c.map((x) => x.length);\n');
  const resumed = await kompresor(['grpo', '--resume', at('flaky'), '--json']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal((JSON.parse(resumed.stdout) as { step: number }).step, 4);
  assert.deepEqual(readMetrics(at('flaky/metrics.jsonl')).map((l) => l.step), [1, 2, 3, 4]);
});

// fuzz report D2/D6: the reward runs in a worker, so a stuck one cannot hold the run
test('a reward stuck from step 3 (busy loop): SIGTERM ends the run within 30 s with exit 143, checkpoint 2 intact; --reward-timeout alone ends it with one line', async () => {
  const stuck = (name: string, body: string) => {
    const mod = at(name);
    fs.writeFileSync(mod, `import fs from 'node:fs';\nconst f = ${JSON.stringify(at(name + '.calls'))};\n` +
      'export default (_p: string[], c: string[]) => {\n  const n = fs.existsSync(f) ? Number(fs.readFileSync(f, "utf8")) + 1 : 1;\n' +
      `  fs.writeFileSync(f, String(n));\n  if (n === 3) ${body}\n  return c.map((x) => x.length);\n};\n`);
    return mod;
  };
  let sentAt = 0;
  const args = (mod: string, out: string) => ['grpo', at('model'), '--data', at('train.jsonl'), '--reward', mod, '--out', at(out), '--steps', '4', '--save-every', '1', ...SMALL];
  const [term, timed] = await Promise.all([
    kompresor(args(stuck('loop.ts', 'for (;;) {}'), 'stuck1'), (kill) => {
      // the third call has started: the worker spins, the trainer waits on it
      if (sentAt === 0 && fs.existsSync(at('loop.ts.calls')) && fs.readFileSync(at('loop.ts.calls'), 'utf8') === '3') { sentAt = performance.now(); kill('SIGTERM'); }
    }, 120_000),
    kompresor([...args(stuck('hang.ts', 'return new Promise(() => {});'), 'stuck2'), '--reward-timeout', '2'], undefined, 120_000),
  ]);
  assert.equal(term.code, 143, term.stderr);
  assert.ok(sentAt > 0 && performance.now() - sentAt < 30_000);
  assert.match(term.stderr.trim().split('\n').at(-1)!, /^kompresor: reward module .*loop\.ts: the reward function was stopped by SIGTERM \(the generation batch of step 3 .*\); found the call had not returned\. Hint: the run stopped; checkpoints already written are intact/);
  assert.deepEqual(listCheckpoints(at('stuck1')).map((c) => c.step), [2]);
  assert.equal(timed.code, 1, timed.stderr);
  assert.match(timed.stderr.trim().split('\n').at(-1)!, /^kompresor: reward module .*hang\.ts: the reward function must return within --reward-timeout 2 s \(the generation batch of step 3 .*\); found no result after 2 s; its worker was stopped\./);
  assert.deepEqual(listCheckpoints(at('stuck2')).map((c) => c.step), [2]);
});

test('refused before loading the model: micro-batch not a multiple of G, --seq-len given, unknown reward', async () => {
  const base = ['grpo', at('model'), '--data', at('train.jsonl'), '--out', at('never'), '--steps', '2'];
  const cases: [string[], RegExp][] = [
    [['--reward', 'numeric', '--num-generations', '3', '--micro-batch', '8'], /^kompresor: --micro-batch: --micro-batch counts completions and must be a multiple of --num-generations \(whole groups per micro-batch\); found --micro-batch 8, --num-generations 3\. Hint: e\.g\. --micro-batch 9$/],
    [['--reward', 'numeric', '--seq-len', '64'], /^kompresor: --seq-len: GRPO rows are prompt \+ completion/],
    [['--reward', 'accuracy'], /^kompresor: --reward accuracy: a reward is a built-in name or a module file/],
  ];
  for (const [extra, re] of cases) {
    const r = await kompresor([...base, ...extra]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr.trim(), re);
  }
  assert.ok(!fs.existsSync(at('never')));
});

describe('prompt files', () => {
  const tok = () => loadTokenizer(at('model'));
  const file = (name: string, text: string) => { fs.writeFileSync(at(name), text); return at(name); };
  const o = { maxPromptLength: 40, chat: false, requiredFields: ['answer'] };

  test('string prompts as they are, messages through the chat template with the generation prompt; --chat wraps strings', () => {
    const f = file('ok.jsonl', jsonl([{ prompt: 'Ile to jest 1 + 1?', answer: 2 }, { prompt: [{ role: 'user', content: 'Hej' }], answer: 0 }]) + '\n');
    const rows = readPromptFile(f, tok(), o);
    assert.equal(rows[0].text, 'Ile to jest 1 + 1?');
    assert.equal(rows[1].text, '<|im_start|>user\nHej<|im_end|>\n<|im_start|>assistant\n');
    assert.equal(rows[1].where, `${f}:2`);
    assert.equal(readPromptFile(f, tok(), { ...o, chat: true })[0].text, '<|im_start|>user\nIle to jest 1 + 1?<|im_end|>\n<|im_start|>assistant\n');
  });

  const bad: [string, string, RegExp][] = [
    ['not JSON', '{"prompt": "a", "answer": 1}\n{"prompt": \n', /^.*bad0\.jsonl:2: each line must be one JSON object; found /],
    ['no prompt', jsonl([{ answer: 1 }]), /^.*bad1\.jsonl:1: each row needs a "prompt": a string or a list of \{role, content\} messages; found no "prompt" field\.$/],
    ['empty prompt', jsonl([{ prompt: 'ok', answer: 1 }, { prompt: '', answer: 1 }]), /^.*bad2\.jsonl:2: the prompt must not be empty; found ""\.$/],
    ['a prompt of another type', jsonl([{ prompt: 7, answer: 1 }]), /^.*bad3\.jsonl:1: the "prompt" must be a string or a non-empty list of \{role, content\} messages; found 7\.$/],
    ['missing answer', jsonl([{ prompt: 'a', answer: 1 }, { prompt: 'b' }]), /^.*bad4\.jsonl:2: each row needs the field "answer" \(a reward reads it\); found fields \["prompt"\]\.$/],
    ['a prompt longer than the limit', jsonl([{ prompt: 'x'.repeat(41), answer: 1 }]), /^.*bad5\.jsonl:1: prompts must fit in --max-prompt-length tokens; expected at most 40, found 41 tokens\. Hint: shorten the prompt or raise --max-prompt-length$/],
    ['an empty file', '\n\n', /^.*bad6\.jsonl: the prompt data must hold at least one line; found no prompts\.$/],
  ];
  bad.forEach(([label, text, re], i) => {
    test(`refused: ${label}`, () => throwsWith(() => readPromptFile(file(`bad${i}.jsonl`, text), tok(), o), 'input_invalid', re));
  });
});
