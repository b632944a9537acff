// Error lines of the CLI in the documented form, fuzz report D17 (control bytes from input files
// echoed into messages), D21 (commander's own "error: ..." plus a usage line), D20 (invalid
// UTF-8 in alignment data) and D22 (misleading messages: seed wording, devices, data files).
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { renderError } from '../../src/errors.ts';
import { notAFile } from '../../src/io/text_file.ts';
import { readManifest } from '../../src/data/manifest.ts';
import { readJsonl } from '../../src/align/data.ts';
import { readPromptFile } from '../../src/align/grpo_data.ts';
import { parseNumber } from '../../src/cli/args.ts';
import { resumeState, checkSeqLen } from '../../src/cli/trainer_flags.ts';
import { kompresor } from '../cli_run.ts';
import { tempDir, throwsWith } from '../helpers.ts';

test('D17: control bytes in error fields are shown as \\xNN, never sent to the terminal', () => {
  const line = renderError({ code: 'input_invalid', where: 'x.jsonl:1', rule: 'each line must be JSON', found: 'Unexpected token \x1b[2J\x1b[31mEVIL\0\0\tend\r' });
  assert.equal(line, 'x.jsonl:1: each line must be JSON; found Unexpected token \\x1b[2J\\x1b[31mEVIL\\x00\\x00 end\\x0d.');
  assert.doesNotMatch(line, /[\x00-\x1f\x7f]/);
});

test('D22: --seed and other unbounded ranges read as the trainers\' options do', () => {
  throwsWith(() => parseNumber('-1', '--seed', { min: 0, integer: true }), 'input_invalid', /^--seed: --seed takes an integer >= 0; found "-1"\.$/);
  throwsWith(() => parseNumber('x', '--a', {}), 'input_invalid', /^--a: --a takes a number; found "x"\.$/);
  throwsWith(() => parseNumber('2', '--p', { min: 0, max: 1 }), 'input_invalid', /^--p: --p takes a number in \[0, 1\]; found "2"\.$/);
});

test('D21: commander\'s parse errors are one line with where, rule, expected/found and a hint', async () => {
  const fx = 'test/fixtures/llama_tied_gqa';
  const cases: [string[], RegExp][] = [
    [['logits', fx, '--ids', '1,2'], /^kompresor: kompresor logits --out: this option is required; found not given\. Hint: see `kompresor logits --help`\n$/],
    [['logits', fx, '--ids', '1,2', '--out', 'x.json', '--outt', 'y'], /^kompresor: kompresor logits: every option must be one the command knows; found "--outt"\. Hint: .*see `kompresor logits --help`\n$/],
    [['export', fx, '--gguf', 'x.gguf', '--dtype', 'q4'], /^kompresor: kompresor export --dtype: the value must be one of the choices; expected f32, f16, bf16, q8_0, q4_0, q4_k_m, q5_k_m, q6_k, found "q4"\. Hint: see `kompresor export --help`\n$/],
    [['data', 'prepare', '--input', 'x'], /^kompresor: kompresor data prepare --tokenizer: this option is required; found not given\./],
    [['frobnicate'], /^kompresor: kompresor: the command line must parse; found unknown command 'frobnicate'\./],
  ];
  const runs = await Promise.all(cases.map(([args]) => kompresor(args)));
  runs.forEach((r, i) => {
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, cases[i][1]);
    assert.equal(r.stdout, '');
  });
  const help = await kompresor(['logits', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: kompresor logits/);
});

test('D20: invalid UTF-8 in sft/dpo/grpo JSONL is refused naming FILE:LINE (it became U+FFFD and was trained on)', () => {
  const dir = tempDir('kp-utf8-');
  const file = path.join(dir, 'nu.jsonl');
  fs.writeFileSync(file, Buffer.concat([Buffer.from('{"prompt": "ok", "completion": " ok"}\n{"prompt": "caf'), Buffer.from([0xe9]), Buffer.from(' ?", "completion": " ok"}\n')]));
  throwsWith(() => readJsonl(file), 'input_invalid', /nu\.jsonl:2: text files must be UTF-8; found invalid UTF-8 in bytes 38\.\.\d+ of the file\. Hint: convert the file to UTF-8/);
  const tok = { encode: () => [1], applyChatTemplate: () => '', hasChatTemplate: false };
  throwsWith(() => readPromptFile(file, tok as never, { maxPromptLength: 8, chat: false, requiredFields: [] }), 'input_invalid', /nu\.jsonl:2: text files must be UTF-8/);
  fs.writeFileSync(file, '\ufeff{"prompt": "p", "completion": " c"}\n');
  assert.deepEqual(readJsonl(file).map((r) => r.value), [{ prompt: 'p', completion: ' c' }]);
});

test('D22: a device is not called a folder; a data file given as --data is named as the input of data prepare', () => {
  assert.equal(notAFile('/dev/null'), 'not a regular file (a device, pipe or socket)');
  assert.equal(notAFile(os.tmpdir()), 'a folder');
  const file = path.join(tempDir('kp-data-'), 'train.jsonl');
  fs.writeFileSync(file, '{}\n');
  throwsWith(() => readManifest(file), 'input_invalid',
    /train\.jsonl: the data is a folder made by `kompresor data prepare`; found a file\. Hint: run `kompresor data prepare --input .*train\.jsonl --tokenizer MODEL_DIR --out DATA_DIR` and pass DATA_DIR$/);
});

test('D15: a malformed checkpoint state.json is one line naming the field (it was a TypeError stack)', () => {
  const run = tempDir('kp-state-');
  fs.mkdirSync(path.join(run, 'checkpoint-4'));
  const write = (s: unknown) => fs.writeFileSync(path.join(run, 'checkpoint-4', 'state.json'), JSON.stringify(s));
  write({ format: 'kompresor-train-state', version: 1, step: 'x' });
  throwsWith(() => resumeState(run, 'train'), 'config_invalid',
    /checkpoint-4\/state\.json: step: the training state must hold the fields a checkpoint writes; expected an integer >= 0, found "x"\. Hint: .*remove this checkpoint-<step> folder/);
  write({ format: 'kompresor-train-state', version: 1, step: 4, tokens: 10, seconds: 1, loss: 1, validLoss: null, rng: 3, source: {}, objective: 'ce',
    schedule: { totalSteps: 8, lr: 1e-3, minLr: 0, warmup: 0 }, options: {}, metrics: { bytes: 0, lines: 0 }, meta: {} });
  throwsWith(() => resumeState(run, 'train'), 'config_invalid', /state\.json: meta\.command: .*found the key is missing\./);
});

test('D14: a training --seq-len above max_position_embeddings or above the training tokens is refused before any allocation', () => {
  throwsWith(() => checkSeqLen(1_000_000, 2048, '--seq-len', 136_000), 'input_invalid',
    /^--seq-len: training rows must fit the model's context; expected at most max_position_embeddings = 2048, found 1000000\. Hint: give --seq-len 2048 or less$/);
  throwsWith(() => checkSeqLen(1024, 2048, '--seq-len', 500), 'input_invalid', /^--seq-len: one training row needs at least --seq-len tokens of data; expected at most the 500 training tokens, found 1024\./);
  checkSeqLen(2048, 2048, '--seq-len', 2048);
});

test('D13: bench refuses a --prompt-len beyond the context at once (a child ran 49 s into a heap OOM)', async () => {
  const r = await kompresor(['bench', 'test/fixtures/llama_tied_gqa', '--prompt-len', '100000000', '--repeats', '1']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^kompresor: --prompt-len: the prompt and the new tokens must fit the model's context; expected --prompt-len \+ --new-tokens <= max_position_embeddings = \d+ \(test\/fixtures\/llama_tied_gqa\), found 100000000 \+ \d+\.\n$/);
});
