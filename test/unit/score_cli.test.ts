// `kompresor score` as a user runs it (node bin/kompresor.mjs): the scores file it writes loads
// with loadScores, --stream writes the same scores, --json is silent on stderr and reports peak
// RSS, the human summary names the layers, and every bad input is one line with exit code 1.
// Child processes start two at a time when the file starts; each test awaits its own.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { loadScores } from '../../src/prune/scores.ts';
import { parseSize } from '../../src/cli/score_command.ts';
import { openCheckpoint } from '../../src/io/checkpoint.ts';
import { planStream } from '../../src/prune/stream.ts';
import { BASELINE_BYTES } from '../../src/prune/importance.ts';
import { KompresorError } from '../../src/errors.ts';
import { relErr, rng, tempDir } from '../helpers.ts';
import { tinyModelDir } from './score_fixture.ts';

const ROOT = path.join(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/kompresor.mjs');

interface Run { code: number | null; stdout: string; stderr: string }

const queue: (() => void)[] = [];
let running = 0;
function kompresor(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const start = () => {
      running++;
      const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
      delete env.NODE_TEST_CONTEXT;
      execFile(process.execPath, [BIN, ...args], { cwd: ROOT, env, timeout: 60_000 }, (err, stdout, stderr) => {
        running--;
        queue.shift()?.();
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
        resolve({ code, stdout, stderr });
      });
    };
    if (running < 2) start(); else queue.push(start);
  });
}

function assertOneLineError(r: Run, ...patterns: RegExp[]): void {
  assert.equal(r.code, 1, `exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0], /^kompresor: /);
  for (const p of patterns) assert.match(lines[0], p);
}

// everything is set up at load time so the child processes can start right away
const tmp = tempDir('kompresor-score-cli-');
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });
const model = tinyModelDir(path.join(tmp, 'model'), { layers: 3 }).dir;
const calib = path.join(tmp, 'calib.txt');
{
  const r = rng(3), words = ['score', 'the', 'layers', 'of', 'a', 'model', 'on', 'CPU', '12', 'text'];
  fs.writeFileSync(calib, Array.from({ length: 30 }, () => Array.from({ length: 6 + Math.floor(r() * 12) }, () => words[Math.floor(r() * 10)]).join(' ')).join('\n\n'));
}
const noTokenizer = path.join(tmp, 'no_tok');
fs.mkdirSync(noTokenizer);
for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(model, f), path.join(noTokenizer, f));

const out = (name: string) => path.join(tmp, name);

/** The smallest budget (1 KiB steps) the stream planner accepts for 4 x 32: rows then go in groups. */
function tightBudget(): number {
  const cfg = openCheckpoint(model).config;
  for (let m = BASELINE_BYTES; ; m += 1024) {
    try { if (planStream(cfg, 4, 32, m).groups > 1) return m; } catch { /* below one row: keep going */ }
  }
}
const base = (o: string, ...extra: string[]) => ['score', model, '--data', calib, '--samples', '4', '--seq-len', '32', '--out', out(o), ...extra];

const runs = {
  json: kompresor(base('mem.json', '--json')),
  stream: kompresor(base('stream.json', '--json', '--stream')),
  human: kompresor(base('human.json', '--layer-metric', 'loss')),
  auto: kompresor(base('auto.json', '--max-memory', String(tightBudget()))),
  help: kompresor(['score', '--help']),
  missingData: kompresor(['score', model, '--data', out('nope.txt'), '--seq-len', '32', '--out', out('x.json')]),
  notEnough: kompresor(base('x.json', '--samples', '1000')),
  badSize: kompresor(base('x.json', '--max-memory', 'lots')),
  tooSmall: kompresor(base('x.json', '--max-memory', '1MiB')),
  lossStream: kompresor(base('x.json', '--layer-metric', 'loss', '--stream')),
  badMetric: kompresor(base('x.json', '--layer-metric', 'ppl')),
  longRows: kompresor(base('x.json', '--seq-len', '100000')),
  zeroSamples: kompresor(base('x.json', '--samples', '0')),
  noModel: kompresor(['score', out('missing_model'), '--data', calib, '--out', out('x.json')]),
  noOutDir: kompresor(['score', model, '--data', calib, '--out', out('missing_dir/s.json')]),
  noTok: kompresor(['score', noTokenizer, '--data', calib, '--samples', '2', '--seq-len', '16', '--out', out('x.json')]),
};

describe('kompresor score', () => {
  let mem: Run;
  before(async () => { mem = await runs.json; });

  test('--json: the summary on stdout, nothing on stderr, a scores file loadScores accepts', () => {
    assert.equal(mem.code, 0, mem.stderr);
    assert.equal(mem.stderr, '');
    const r = JSON.parse(mem.stdout);
    assert.equal(r.mode, 'memory');
    assert.equal(r.tokens, 128);
    assert.ok(r.tokens_per_s > 0 && r.seconds > 0);
    assert.ok(r.peak_rss_bytes > 10 * 2 ** 20, `peak RSS ${r.peak_rss_bytes}`);
    assert.deepEqual(r.layers_by_bi.map((x: { layer: number }) => x.layer).sort(), [0, 1, 2]);
    const s = loadScores(out('mem.json'));
    assert.equal(s.calibration.tokens, 128);
    assert.equal(s.calibration.mode, 'memory');
    assert.deepEqual(r.layers_by_bi.map((x: { bi: number }) => x.bi), [...s.layers].sort((a, b) => b - a));
  });

  test('--stream writes the same scores as the in-memory run', async () => {
    const r = await runs.stream;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).mode, 'stream');
    const a = loadScores(out('stream.json')), b = loadScores(out('mem.json'));
    assert.equal(a.calibration.mode, 'stream');
    for (const k of ['hidden', 'heads', 'mlp', 'layers'] as const) assert.ok(relErr(a[k].flat(), b[k].flat()) <= 1e-6, k);
  });

  test('human summary: tokens, throughput, layers by BI, the loss metric; progress on stderr', async () => {
    const r = await runs.human;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^scored 4 x 32 = 128 tokens from \d+ of 30 documents \(in memory, 4 rows per pass\)$/m);
    assert.match(r.stdout, /[\d.]+ s, [\d,]+ tokens\/s/);
    assert.match(r.stdout, /layers by BI, most important first: \d \([\d.]+\), \d \([\d.]+\), \d \([\d.]+\)/);
    assert.match(r.stdout, /loss increase per skipped layer: 0: -?[\d.]+, 1: -?[\d.]+, 2: -?[\d.]+/);
    assert.match(r.stdout, /wrote .*human\.json$/m);
    assert.match(r.stderr, /score 4\/4 rows/);
    assert.equal(loadScores(out('human.json')).layers_loss!.length, 3);
  });

  test('a budget below the weights streams by itself, in row groups when the hidden states do not fit, and says so', async () => {
    const r = await runs.auto;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^score: the float32 weights \([\d.]+ KiB\) and activations do not fit --max-memory [\d.]+ MiB; scoring layer by layer$/m);
    assert.match(r.stderr, /^score: the hidden states of 4 rows \(16\.00 KiB\) do not fit the budget; processing (\d) groups of at most \d rows?, reading the weights \1 times$/m);
    assert.match(r.stdout, /\(layer by layer, \d rows? per pass, \d row groups\)/);
    assert.match(r.stderr, /score \d+\/\d+ layers/);
    const a = loadScores(out('auto.json')), b = loadScores(out('mem.json'));
    assert.equal(a.calibration.mode, 'stream');
    for (const k of ['hidden', 'heads', 'mlp', 'layers'] as const) assert.ok(relErr(a[k].flat(), b[k].flat()) <= 1e-6, k);
  });

  test('--help explains the defaults and the memory modes', async () => {
    const r = await runs.help;
    assert.equal(r.code, 0);
    for (const p of [/--samples <n>.*\(default: "64"\)/, /--seq-len <n>.*\(default: "512"\)/, /64 x 512 = 32,768 tokens/, /layer by layer/, /--max-memory/]) assert.match(r.stdout, p);
  });
});

describe('kompresor score refuses bad input with one line', () => {
  const cases: [keyof typeof runs, RegExp[]][] = [
    ['missingData', [/nope\.txt: each --data file must exist; found no such file/]],
    ['notEnough', [/needs that many tokens of calibration data; expected 32000 tokens, found \d+ tokens in 30 documents/, /Hint: add data, or lower --samples to \d+/]],
    ['badSize', [/--max-memory: --max-memory takes a positive size with an optional unit; expected e\.g\. 2GiB/, /found "lots"/]],
    ['tooSmall', [/--max-memory: the budget must hold one layer's weights and one calibration row; expected at least [\d.]+ MiB, found 1\.00 MiB/]],
    ['lossStream', [/--layer-metric loss: the layer-skip loss .* needs the whole model in memory; expected no --stream, found --stream/, /Hint: use --layer-metric bi/]],
    ['badMetric', [/--layer-metric: --layer-metric takes one of its choices; expected bi or loss, found "ppl"/]],
    ['longRows', [/--seq-len: calibration rows must fit the model's context; expected at most max_position_embeddings = 256, found 100000/]],
    ['zeroSamples', [/--samples/, /found "0"/]],
    ['noModel', [/missing_model: the model folder must exist/]],
    ['noOutDir', [/--out .*missing_dir\/s\.json: the output folder must exist/]],
    ['noTok', [/tokenizer\.json: the model folder must hold tokenizer\.json/]],
  ];
  for (const [name, patterns] of cases) {
    test(name, async () => assertOneLineError(await runs[name], ...patterns));
  }

  test('parseSize: units, decimals, refusals', () => {
    assert.equal(parseSize('2GiB', '--max-memory'), 2 * 2 ** 30);
    assert.equal(parseSize('512 MiB', '--max-memory'), 512 * 2 ** 20);
    assert.equal(parseSize('1.5GB', '--max-memory'), 1.5e9);
    assert.equal(parseSize('4096', '--max-memory'), 4096);
    for (const bad of ['', '-1GiB', '0', '2 parsecs', 'GiB']) assert.throws(() => parseSize(bad, '--max-memory'), KompresorError, bad);
  });
});
