// `kompresor train` as a user runs it (node bin/kompresor.mjs): a byte-level model trained from
// scratch (--init) on data made by `kompresor data prepare`, to the end; the same run killed with
// SIGKILL after a checkpoint and continued with --resume (bitwise the same losses and weights);
// SIGTERM (checkpoint, exit 143, resume hint); extending a finished run; one-line errors.
// The processes start when the file starts (two at a time, after the data is prepared).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { byteLevelTokenizer } from '../../src/io/byte_tokenizer.ts';
import { loadModel } from '../../src/model/load.ts';
import { readMetrics } from '../../src/train/metrics.ts';
import { listCheckpoints, latestCheckpoint, readTrainState } from '../../src/train/run_checkpoint.ts';
import { rng, tempDir } from '../helpers.ts';
import { parseTokens } from '../../src/cli/trainer_flags.ts';
import { KompresorError } from '../../src/errors.ts';
import { kompresor, type Run } from '../cli_run.ts';

const tmp = tempDir('kompresor-train-cli-');
const at = (...p: string[]) => path.join(tmp, ...p);



const curve = (runDir: string) => readMetrics(path.join(runDir, 'metrics.jsonl')).map((l) => JSON.stringify([l.split, l.step, l.loss, l.lr, l.grad_norm]));
const weights = (runDir: string) => fs.readFileSync(path.join(runDir, 'final/model.safetensors'));

/** Pseudo-English from a fixed vocabulary: learnable, and the same on every machine. */
function corpus(): string {
  const words = 'the model learns to predict the next token of text from a small corpus of short lines while we watch the loss fall'.split(' ');
  const r = rng(42);
  const paras: string[] = [];
  for (let p = 0; p < 150; p++) {
    const n = 8 + Math.floor(r() * 30);
    paras.push(Array.from({ length: n }, () => words[Math.floor(r() * words.length)]).join(' ') + '.');
  }
  return paras.join('\n\n') + '\n';
}

const COMMON = ['--steps', '120', '--micro-batch', '2', '--seq-len', '32', '--lr', '3e-3', '--warmup', '5', '--save-every', '20', '--eval-every', '40', '--eval-batches', '2', '--seed', '3'];
const fresh = (out: string) => ['train', '--init', at('cfg/config.json'), '--data', at('data'), '--out', out, ...COMMON];
let full: Promise<Run>, killed: Promise<Run>, stopped: Promise<Run>;

before(async () => {
  fs.mkdirSync(at('cfg'));
  const tf = byteLevelTokenizer();
  fs.writeFileSync(at('cfg/tokenizer.json'), JSON.stringify(tf.tokenizerJson));
  fs.writeFileSync(at('cfg/tokenizer_config.json'), JSON.stringify(tf.tokenizerConfig));
  fs.writeFileSync(at('cfg/config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: tf.vocabSize, hidden_size: 32, intermediate_size: 64,
    num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 256, rms_norm_eps: 1e-5,
    rope_theta: 10000, tie_word_embeddings: true, eos_token_id: tf.specialIds['<|im_end|>'], torch_dtype: 'float32',
  }));
  fs.writeFileSync(at('corpus.txt'), corpus());
  const prep = await kompresor(['data', 'prepare', '--input', at('corpus.txt'), '--tokenizer', at('cfg'), '--out', at('data'), '--val-fraction', '0.1', '--workers', '0']);
  assert.equal(prep.code, 0, prep.stderr);
  full = kompresor([...fresh(at('full')), '--json']);
  killed = kompresor(fresh(at('killed')), (kill) => { if (listCheckpoints(at('killed')).some((c) => c.step >= 40)) kill('SIGKILL'); });
  await full;
  stopped = kompresor(fresh(at('stopped')), (kill) => { if (listCheckpoints(at('stopped')).some((c) => c.step >= 20)) kill('SIGTERM'); });
});

test('from scratch to the end: JSON result, a loadable HF model with tokenizer in final/, metrics and plot', async () => {
  const r = await full;
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout);
  assert.equal(res.status, 'finished');
  assert.equal(res.step, 120);
  assert.equal(res.tokens, 120 * 2 * 32);
  assert.ok(res.validLoss < 4, `validation loss ${res.validLoss} (ln 259 = 5.56 at the start)`);
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) assert.ok(fs.existsSync(at('full/final', f)), f);
  const { model } = await loadModel(at('full/final'));
  assert.equal(model.cfg.vocabSize, 259);
  const lines = readMetrics(at('full/metrics.jsonl'));
  assert.equal(lines.filter((l) => l.split === undefined).length, 120);
  assert.deepEqual(lines.filter((l) => l.split === 'validation').map((l) => l.step), [0, 40, 80, 120]);
  assert.ok(fs.readFileSync(at('full/report/loss.svg'), 'utf8').includes('validation loss'));
  assert.deepEqual(listCheckpoints(at('full')).map((c) => c.step), [120]);
  assert.equal(r.stderr, '', 'no progress output with --json');
});

test('kill -9 after a checkpoint, then --resume: the same per-step losses and final weights, bitwise', async () => {
  const k = await killed;
  assert.equal(k.signal, 'SIGKILL', `the run must be killed mid-way: ${k.stdout} ${k.stderr}`);
  const step = readTrainState(latestCheckpoint(at('killed'))!).step;
  assert.ok(step >= 40 && step < 120, `killed at ${step}`);
  const r = await kompresor(['train', '--resume', at('killed')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^finished 120 steps \(7,680 tokens\)/);
  assert.deepEqual(curve(at('killed')), curve(at('full')));
  assert.ok(weights(at('killed')).equals(weights(at('full'))));
});

test('SIGTERM: checkpoint at the current step, exit 143, a resume hint; the resumed run matches', async () => {
  const s = await stopped;
  assert.equal(s.code, 143, s.stderr);
  const m = /^stopped at step (\d+) of 120 .*; checkpoint saved in (\S+)\nresume with: kompresor train --resume (\S+)\n$/.exec(s.stdout);
  assert.ok(m, s.stdout);
  assert.equal(m[2], at('stopped', `checkpoint-${m[1]}`));
  assert.match(s.stderr, /SIGTERM received; stopping after the current step/);
  const r = await kompresor(['train', '--resume', m[3], '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).sessionSteps, 120 - Number(m[1]));
  assert.deepEqual(curve(at('stopped')), curve(at('full')));
});

test('a finished run resumed with a larger --steps trains the extra steps and records the new budget', async () => {
  await full;
  fs.cpSync(at('full'), at('extended'), { recursive: true });
  const r = await kompresor(['train', '--resume', at('extended'), '--steps', '130', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).sessionSteps, 10);
  assert.equal(readTrainState(latestCheckpoint(at('extended'))!).options.steps, 130);
  assert.deepEqual(curve(at('extended')).slice(0, 124), curve(at('full')), 'the first 120 steps are kept');
});

test('bad invocations fail with one line naming the problem', async () => {
  await full;
  const cases: [string[], RegExp][] = [
    [['train', '--data', at('data'), '--out', at('x1'), '--steps', '5'], /name the model to train, or give --init/],
    [['train', '--init', at('cfg/config.json'), '--out', at('x3'), '--steps', '5'], /--data DATA_DIR and --out RUN_DIR/],
    [['train', '--init', at('cfg/config.json'), '--data', at('data'), '--out', at('x4'), '--seq-len', '64'], /exactly one budget/],
    [['train', '--init', at('cfg/config.json'), '--data', at('data'), '--out', at('full'), '--steps', '5', '--warmup', '0', '--seq-len', '64'], /new or empty run folder.*--resume/],
    // the default --seq-len (512) is beyond this model's 256 positions (fuzz report D14)
    [['train', '--init', at('cfg/config.json'), '--data', at('data'), '--out', at('x9'), '--steps', '5'], /--seq-len: training rows must fit the model's context; expected at most max_position_embeddings = 256, found 512/],
    [['train', '--resume', at('cfg')], /needs a checkpoint-<step> folder/],
    [['train', '--resume', at('full'), '--out', at('x7')], /takes its model and run folder from the checkpoint/],
    [['train', '--init', at('cfg/config.json'), '--data', at('cfg'), '--out', at('x8'), '--steps', '5', '--warmup', '0'], /manifest\.json/],
  ];
  const runs = await Promise.all(cases.map(([args]) => kompresor(args)));
  runs.forEach((r, i) => {
    const what = `${r.args.join(' ')}\n${r.stdout}\n${r.stderr}`;
    assert.equal(r.code, 1, what);
    assert.equal(r.stdout, '', what);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, what);
    assert.match(r.stderr, /^kompresor: /, what);
    assert.match(r.stderr, cases[i][1], what);
  });
});

test('--tokens takes counts with k, M, B suffixes', () => {
  assert.equal(parseTokens('2000'), 2000);
  assert.equal(parseTokens('2k'), 2000);
  assert.equal(parseTokens('1.5M'), 1_500_000);
  assert.equal(parseTokens('3b'), 3e9);
  for (const bad of ['', '0', '2x', '-5', '1e6', 'M']) assert.throws(() => parseTokens(bad), (e: unknown) => e instanceof KompresorError && /--tokens takes a positive count/.test(e.message), bad);
});
