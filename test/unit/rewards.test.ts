// GRPO rewards (src/align/rewards.ts): the last number of a completion (Polish decimal comma,
// signs, none), the numeric, format and length rewards, weighted sums, and users' modules: one
// that works (async too), and one-line errors for a module that throws, returns the wrong length
// or a NaN, has no default function, does not load or does not exist.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { extractLastNumber, numericReward, formatReward, lengthReward, loadRewards, scoreRewards, DEFAULT_FORMAT_REGEX,
  type BuiltinRewardOptions, type RewardInfo } from '../../src/align/rewards.ts';
import { throwsWith, tempDir } from '../helpers.ts';
import { KompresorError } from '../../src/errors.ts';
import { stopRewardWorkers } from '../../src/align/reward_sandbox.ts';

const OPTS: BuiltinRewardOptions = { answerField: 'answer', tolerance: 1e-6, formatRegex: DEFAULT_FORMAT_REGEX, lengthMax: 8, lengthCache: 4 };
const info = (ids: number[][]): RewardInfo => ({ completionIds: ids, batch: 'the generation batch of step 3 (data.jsonl:4)' });

describe('the last number of a completion', () => {
  const cases: [string, number | null][] = [
    [' 7', 7], ['Odpowiedź: 7,5', 7.5], ['7.5', 7.5], ['wynik to -3', -3], ['= \u22124', -4], ['Ile to jest 3 + 4? 12', 12],
    ['10-3', 3], ['x=-2.25.', -2.25], ['7.', 7], ['najpierw 2, potem 15', 15], ['brak liczby', null], ['', null], ['1,2,3', 3],
  ];
  for (const [text, want] of cases) {
    test(`${JSON.stringify(text)} -> ${want}`, () => assert.equal(extractLastNumber(text), want));
  }
});

describe('built-in rewards', () => {
  test('numeric: 1 when the last number equals the answer (number or string, tolerance), else 0; no number is 0', () => {
    const f = numericReward('answer', 1e-6);
    const rows = [{ answer: 7 }, { answer: '7,5' }, { answer: -3 }, { answer: 12 }, { answer: 4 }, { answer: 1e6 }];
    assert.deepEqual(f([], [' 7', '7,5', 'to jest -3', 'nie wiem', ' 5', '1000000.5'], rows, info([])), [1, 1, 1, 0, 0, 1]);
    assert.deepEqual(numericReward('wynik', 0)([], ['3'], [{ wynik: 3.0000001 }], info([])), [0]);
  });

  test('format: the default pattern accepts one number and nothing else', () => {
    const f = formatReward(DEFAULT_FORMAT_REGEX);
    assert.deepEqual(f([], [' 7', '-7,5 ', '7 jabłek', 'siedem', ''], [], info([])), [1, 1, 0, 0, 0]);
    assert.deepEqual(formatReward('^<answer>.*</answer>$')([], ['<answer>3</answer>', '3'], [], info([])), [1, 0]);
    throwsWith(() => formatReward('(unclosed'), 'input_invalid', /^--format-regex: the format reward needs a valid regular expression/);
  });

  test('length: DAPO soft overlong punishment (0 up to L_max - L_cache, linear to -1 at L_max, -1 beyond)', () => {
    const f = lengthReward(8, 4);
    const ids = [2, 4, 5, 6, 8, 9].map((n) => Array.from({ length: n }, () => 1));
    assert.deepEqual(f([], ids.map(() => ''), [], info(ids)), [0, 0, -0.25, -0.5, -1, -1]);
  });

  test('weights: r = Σ_k w_k r_k; each function\'s unweighted rewards are kept', async () => {
    const rewards = await loadRewards(['numeric', 'format'], [1, 0.5], OPTS);
    const s = await scoreRewards(rewards, ['q', 'q', 'q'], [' 7', 'to 7', ' 8'], [{ answer: 7 }, { answer: 7 }, { answer: 7 }], info([[], [], []]));
    assert.deepEqual(s.perFunction, [[1, 1, 0], [1, 0, 1]]);
    assert.deepEqual(s.total, [1.5, 1, 0.5]);
  });

  test('refused: no reward, an unknown name, weights that do not match, a bad length cache', async () => {
    const refused = async (p: Promise<unknown>, re: RegExp) => {
      await assert.rejects(p, (e: unknown) => e instanceof KompresorError && !e.message.includes('\n') && re.test(e.message));
    };
    await refused(loadRewards([], undefined, OPTS), /^--reward: GRPO needs at least one reward function; found none\. Hint: give --reward numeric\|format\|length/);
    await refused(loadRewards(['accuracy'], undefined, OPTS), /^--reward accuracy: a reward is a built-in name or a module file; expected numeric, format, length or a path such as \.\/my_reward\.ts, found "accuracy"\./);
    await refused(loadRewards(['numeric', 'format'], [1], OPTS), /^--reward-weights: give one weight per reward function; expected 2 \(for numeric, format\), found 1\./);
    await refused(loadRewards(['length'], undefined, { ...OPTS, lengthCache: 9 }), /^--length-cache: the length reward needs integers 1 <= --length-cache <= --length-max/);
  });
});

describe('reward modules', () => {
  const dir = tempDir('kompresor-rewards-');
  const mod = (name: string, body: string) => { const p = path.join(dir, name); fs.writeFileSync(p, body); return p; };
  const rows = [{ answer: 1 }, { answer: 2 }];

  test('a TypeScript module\'s default function, sync or async, gets prompts, completions and rows', async () => {
    const sync = mod('by_answer.ts', 'export default function (prompts: string[], completions: string[], rows: { answer: number }[]): number[] {\n' +
      '  return completions.map((c, i) => (c.includes(String(rows[i].answer)) ? 1 : 0) + prompts[i].length / 100);\n}\n');
    const asyncMod = mod('later.ts', 'export default async (_p: string[], c: string[]) => { await new Promise((r) => setTimeout(r, 1)); return c.map((x) => x.length); };\n');
    const rewards = await loadRewards([sync, asyncMod], [1, 2], OPTS);
    assert.deepEqual(rewards.map((r) => r.name), ['by_answer', 'later']);
    const s = await scoreRewards(rewards, ['ab', 'abcd'], ['1', 'xyz'], rows, info([[], []]));
    assert.deepEqual(s.perFunction, [[1.02, 0.04], [1, 3]]);
    assert.deepEqual(s.total, [3.02, 6.04]);
  });

  const bad: [string, string, RegExp][] = [
    ['throws.ts', 'export default () => { throw new Error("no answer column\\nsecond line"); };',
      /^reward module .*throws\.ts: the reward function must score the generation batch of step 3 \(data\.jsonl:4\); found it threw: no answer column\. Hint: the run stopped; its last checkpoint is intact$/],
    ['short.ts', 'export default (_p: string[], c: string[]) => c.slice(1).map(() => 1);',
      /^reward module .*short\.ts: the reward function must return one number per completion for the generation batch of step 3 \(data\.jsonl:4\); expected 2 numbers, found 1\./],
    ['nan.ts', 'export default (_p: string[], c: string[]) => c.map((_x, i) => (i === 1 ? NaN : 1));',
      /^reward module .*nan\.ts: every reward must be a finite number \(the generation batch of step 3 \(data\.jsonl:4\)\); found NaN for completion 1 \("b"\)\./],
    ['notarray.ts', 'export default () => 1;',
      /^reward module .*notarray\.ts: the reward function must return one number per completion .*; expected an array of 2 numbers, found 1\./],
    ['strings.ts', 'export default (_p: string[], c: string[]) => c.map(() => "1");',
      /^reward module .*strings\.ts: every reward must be a finite number .*; found string "1" for completion 0/],
  ];
  for (const [file, body, re] of bad) {
    test(`refused at scoring: ${file}`, async () => {
      const rewards = await loadRewards([mod(file, body)], undefined, OPTS);
      await assert.rejects(scoreRewards(rewards, ['p', 'q'], ['a', 'b'], rows, info([[], []]), 'the run stopped; its last checkpoint is intact'),
        (e: unknown) => { assert.ok(e instanceof KompresorError && !e.message.includes('\n'), String(e)); assert.match(e.message, re); return true; });
    });
  }

  const unloadable: [string, string | null, RegExp][] = [
    ['nodefault.ts', 'export const reward = () => [1];', /^reward module .*nodefault\.ts: the reward module must export a default function \(prompts, completions, rows\) => number\[\]; found no default export\./],
    // D22: esbuild's first line ("Transform failed with 1 error:") said nothing; the next one is kept
    ['syntax.ts', 'export default (=> 1;', /^reward module .*syntax\.ts: the reward module must load; found TransformError: Transform failed with 1 error: .*syntax\.ts:1:\d+: ERROR: .*\. Hint: fix the module/],
    ['toplevel_loop.ts', 'for (;;) {}\nexport default () => [1];', /^reward module .*toplevel_loop\.ts: the reward function must load within --reward-timeout 10 s; found no result after 10 s; its worker was stopped\./],
    ['missing.ts', null, /^reward module .*missing\.ts: the reward module must be a file; found no such file\./],
  ];
  for (const [file, body, re] of unloadable) {
    test(`refused at loading: ${file}`, async () => {
      const p = body === null ? path.join(dir, file) : mod(file, body);
      await assert.rejects(loadRewards([p], undefined, { ...OPTS, timeoutS: 0.5 }), (e: unknown) => { assert.ok(e instanceof KompresorError && !e.message.includes('\n'), String(e)); assert.match(e.message, re); return true; });
    });
  }
});

// fuzz report D2 and D6: a reward runs in a worker thread with a deadline, so one that never
// returns (a busy loop) or never settles (a promise nobody resolves) ends with one line, and a
// stop signal ends a call in flight at once
describe('reward modules that do not return', () => {
  const dir = tempDir('kompresor-rewards-stuck-');
  const mod = (name: string, body: string) => { const p = path.join(dir, name); fs.writeFileSync(p, body); return p; };
  const rows = [{ answer: 1 }, { answer: 2 }];
  const stuck = (e: unknown, re: RegExp) => { assert.ok(e instanceof KompresorError && !e.message.includes('\n'), String(e)); assert.match(e.message, re); return true; };

  for (const [file, body] of [['loop.ts', 'export default () => { for (;;) {} };'], ['hang.ts', 'export default () => new Promise(() => {});']]) {
    test(`${file}: the call is stopped at --reward-timeout with one line`, async () => {
      const rewards = await loadRewards([mod(file, body)], undefined, { ...OPTS, timeoutS: 0.5 });
      const t0 = performance.now();
      await assert.rejects(scoreRewards(rewards, ['p', 'q'], ['a', 'b'], rows, info([[], []]), 'the run stopped; its last checkpoint is intact'),
        (e) => stuck(e, new RegExp(`^reward module .*${file.replace('.', '\\.')}: the reward function must return within --reward-timeout 0\\.5 s \\(the generation batch of step 3 \\(data\\.jsonl:4\\)\\); found no result after 0\\.5 s; its worker was stopped\\. Hint: the run stopped; its last checkpoint is intact$`)));
      assert.ok(performance.now() - t0 < 10_000);
    });
  }

  test('stopRewardWorkers (a SIGINT/SIGTERM) ends a call in flight at once', async () => {
    const rewards = await loadRewards([mod('loop2.ts', 'export default () => { for (;;) {} };')], undefined, { ...OPTS, timeoutS: 600 });
    const pending = scoreRewards(rewards, ['p', 'q'], ['a', 'b'], rows, info([[], []]));
    setTimeout(() => stopRewardWorkers('SIGTERM'), 100);
    await assert.rejects(pending, (e) => stuck(e, /^reward module .*loop2\.ts: the reward function was stopped by SIGTERM \(the generation batch of step 3 .*\); found the call had not returned\.$/));
  });

  test('a value the worker cannot send back is described, not lost', async () => {
    const rewards = await loadRewards([mod('fn.ts', 'export default () => ({ f: () => 1 });')], undefined, OPTS);
    await assert.rejects(scoreRewards(rewards, ['p', 'q'], ['a', 'b'], rows, info([[], []])), (e) => stuck(e, /expected an array of 2 numbers, found an object\./));
  });
});
