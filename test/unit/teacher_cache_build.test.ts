// The teacher cache built layer-streamed ahead of a distill run (src/distill/cache_build.ts): it
// holds exactly the batches the run reads (the run never misses), and distilling from it matches
// distilling from the live teacher: per-step losses, KL, CE and final weights bit for bit with the
// lm_head resident, to float rounding with the lm_head read by vocabulary blocks in several groups.
// `kompresor teacher-cache` end to end, with `distill --teacher-cache` under a --max-memory the
// teacher does not fit, and the refusals (before any work, nothing written).
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Decoder } from '../../src/model/decoder.ts';
import { normalizeConfig } from '../../src/io/hf_config.ts';
import { openCheckpoint } from '../../src/io/checkpoint.ts';
import { initWeights } from '../../src/model/init.ts';
import { saveModel, loadModel } from '../../src/model/load.ts';
import { readTensorF32, readSafetensorsHeader } from '../../src/io/safetensors.ts';
import { train, type TrainRun } from '../../src/train/trainer.ts';
import { readMetrics, type MetricsLine } from '../../src/train/metrics.ts';
import { MemorySource, memoryEvalSource, concatDocuments } from '../../src/data/memory_source.ts';
import { prepareData } from '../../src/data/prepare.ts';
import { byteLevelTokenizer } from '../../src/io/byte_tokenizer.ts';
import { kdObjective } from '../../src/distill/objective.ts';
import { TeacherCache, cachedTeacher, liveTeacher, loadTeacher, teacherChecksum } from '../../src/distill/teacher_cache.ts';
import { buildTeacherCache, distillBatches, planCacheBuild } from '../../src/distill/cache_build.ts';
import { TINY, syntheticDocs, tinyOptions } from '../train_helpers.ts';
import { rng, tempDir } from '../helpers.ts';
import { kompresor } from '../cli_run.ts';

const work = tempDir('kompresor-cache-build-');
const at = (...p: string[]) => path.join(work, ...p);
const raw = JSON.parse(fs.readFileSync(path.join(TINY, 'config.json'), 'utf8'));

/** A model of the fixture's vocabulary (64) with `layers` layers and random weights, saved. */
function modelDir(name: string, layers: number, seed: number, tied: boolean): string {
  const cfg = { ...raw, num_hidden_layers: layers, tie_word_embeddings: tied };
  const m = new Decoder(normalizeConfig(cfg, name));
  initWeights(m, seed, 0.2);
  saveModel(m, at(name), cfg);
  return at(name);
}

const opts = tinyOptions({ steps: 6, saveEvery: 0, evalEvery: 3, lr: 1e-2 });
const trainSource = () => MemorySource.fromDocuments(syntheticDocs(200, 1), { seed: 11 });
const valid = () => { const v = concatDocuments(syntheticDocs(20, 2)); return memoryEvalSource(v.tokens, v.starts); };

async function run(runDir: string, studentDir: string, teacher: TrainRun['objective']): Promise<void> {
  await train({ runDir, model: (await loadModel(studentDir)).model, config: JSON.parse(fs.readFileSync(path.join(studentDir, 'config.json'), 'utf8')),
    train: trainSource(), valid: valid(), objective: teacher, options: opts });
}
const lines = (runDir: string) => readMetrics(path.join(runDir, 'metrics.jsonl')).map((l: MetricsLine) => [l.split ?? 'train', l.step, l.loss, l.kl, l.ce, l.grad_norm] as const);
const finalWeights = (runDir: string) => {
  const h = readSafetensorsHeader(path.join(runDir, 'final/model.safetensors'));
  return [...h.tensors.values()].flatMap((info) => Array.from(readTensorF32(h, info)));
};

describe('the cache built layer-streamed = the live teacher', () => {
  let teacherDir: string, studentDir: string;
  before(() => {
    teacherDir = modelDir('teacher', 3, 21, false);
    studentDir = modelDir('student', 1, 5, true);
  });

  for (const topK of [8, 0]) {
    test(`top-k ${topK || 'full'}: the run reads only cached batches; losses, KL, CE and final weights bitwise (lm_head resident), to 1e-5 (by blocks, several groups)`, async () => {
      const kd = { topK };
      const live = at(`live-${topK}`);
      await run(live, studentDir, kdObjective(liveTeacher(loadTeacher(teacherDir)), kd));
      const ck = openCheckpoint(teacherDir), cfg = ck.config;
      const N = opts.microBatch * opts.seqLen;
      const big = planCacheBuild(cfg, N, 100 * N, topK, 8 * 2 ** 30);
      assert.equal(big.head!.blockRows, cfg.vocabSize, 'a big budget keeps the lm_head resident');
      const tight = planCacheBuild(cfg, N, 100 * N, topK, big.minBytes + 6 * 1024);
      assert.ok(tight.head!.blockRows < cfg.vocabSize && tight.groupTokens < 4 * N, JSON.stringify(tight));

      for (const [name, plan, exact] of [['resident', big, true], ['blocks', tight, false]] as const) {
        const dir = at(`cache-${name}-${topK}`);
        const cache = TeacherCache.open(dir, { teacher: teacherChecksum(teacherDir), teacherDir, vocabSize: cfg.vocabSize, topK });
        const layers: number[] = [];
        const r = buildTeacherCache(ck, cache, () => distillBatches(trainSource(), valid(), opts), { plan, onStart: (g, L) => layers.push(g * L) });
        assert.equal(r.batches, 2 + 6 * 2, '2 validation batches and 6 steps x 2 micro-batches');
        assert.deepEqual([r.written, r.cached], [r.batches, 0]);
        assert.ok(exact ? r.groups === 1 : r.groups > 2, `groups ${r.groups}`);
        assert.deepEqual(layers, [r.groups * cfg.numLayers]);
        const again = buildTeacherCache(ck, cache, () => distillBatches(trainSource(), valid(), opts), { plan });
        assert.deepEqual([again.written, again.cached], [0, r.batches], 'a second build finds everything cached');

        const reader = TeacherCache.open(dir, { teacher: teacherChecksum(teacherDir), teacherDir, vocabSize: cfg.vocabSize, topK });
        const out = at(`run-${name}-${topK}`);
        await run(out, studentDir, kdObjective(cachedTeacher(reader, () => { throw new Error('the teacher was loaded: a batch was not cached'); }), kd));
        assert.equal(reader.misses, 0);
        const a = lines(out), b = lines(live);
        if (exact) {
          assert.deepEqual(a, b);
          assert.deepEqual(finalWeights(out), finalWeights(live));
        } else {
          assert.equal(a.length, b.length);
          a.forEach((l, i) => l.slice(2).forEach((v, j) => {
            const w = b[i][j + 2];
            if (w === undefined) assert.equal(v, undefined); // grad_norm: training lines only
            else assert.ok(Math.abs((v as number) - (w as number)) <= 1e-5 * Math.max(1, Math.abs(w as number)), `line ${i} field ${j}: ${v} vs ${w}`);
          }));
          const wa = finalWeights(out), wb = finalWeights(live);
          assert.ok(wa.every((v, i) => Math.abs(v - wb[i]) <= 1e-4), 'final weights to float rounding');
        }
      }
    });
  }
});

// -----------------------------------------------------------------------------------------------

describe('kompresor teacher-cache', () => {
  const cli = (...p: string[]) => at('cli', ...p);
  const FLAGS = ['--steps', '8', '--micro-batch', '2', '--seq-len', '32', '--eval-batches', '2', '--seed', '3', '--top-k', '16'];
  const TRAIN = ['--lr', '3e-3', '--warmup', '2', '--save-every', '0', '--eval-every', '4'];
  before(async () => {
    const tf = byteLevelTokenizer();
    const words = 'a teacher shows the student which token comes next in every line of this small text'.split(' ');
    const r = rng(8);
    fs.mkdirSync(cli(), { recursive: true });
    fs.writeFileSync(cli('corpus.txt'), Array.from({ length: 80 }, () => Array.from({ length: 6 + Math.floor(r() * 20) }, () => words[Math.floor(r() * words.length)]).join(' ')).join('\n\n'));
    for (const [name, layers, seed] of [['teacher', 2, 1], ['student', 1, 2]] as const) {
      const cfg = { architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: tf.vocabSize, hidden_size: 32, intermediate_size: 64, num_hidden_layers: layers,
        num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 256, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: name === 'student',
        eos_token_id: tf.specialIds['<|im_end|>'], torch_dtype: 'float32' };
      const m = new Decoder(normalizeConfig(cfg, name));
      initWeights(m, seed, 0.2);
      saveModel(m, cli(name), cfg);
      fs.writeFileSync(cli(name, 'tokenizer.json'), JSON.stringify(tf.tokenizerJson));
      fs.writeFileSync(cli(name, 'tokenizer_config.json'), JSON.stringify(tf.tokenizerConfig));
    }
    await prepareData({ inputs: [cli('corpus.txt')], tokenizerDir: cli('student'), outDir: cli('data'), valFraction: 0.1, workers: 0 });
  });
  const distill = (out: string, extra: string[]) => kompresor(['distill', '--teacher', cli('teacher'), '--student', cli('student'), '--data', cli('data'), '--out', out, ...FLAGS, ...TRAIN, '--json', ...extra]);
  const build = (extra: string[], out = cli('cache')) => kompresor(['teacher-cache', '--teacher', cli('teacher'), '--data', cli('data'), '--out', out, ...FLAGS, '--json', ...extra]);
  // the teacher never fits this budget beside the student (the baseline alone is 192 MiB)
  const NO_TEACHER = ['--max-memory', '192.1MiB'];

  test('teacher-cache, then distill --teacher-cache without the teacher in memory: the live run\'s losses and weights', async () => {
    const refused = await distill(cli('refused'), ['--teacher-cache', cli('cache'), ...NO_TEACHER]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.equal(refused.stderr.trimEnd().split('\n').length, 1, refused.stderr);
    assert.match(refused.stderr, /^kompresor: --teacher-cache .*cache: every batch of the run must be cached when the teacher cannot be loaded \(the teacher's float32 weights .* above --max-memory 192\.10 MiB\); expected 10 batches cached, found 10 missing, the first validation batch 0\. Hint: build them with `kompresor teacher-cache --teacher .* --steps 8 --micro-batch 2 --seq-len 32 --grad-accum 1 --eval-batches 2 --seed 3 --top-k 16`, or raise --max-memory/);
    assert.ok(!fs.existsSync(cli('cache')) && !fs.existsSync(cli('refused')), 'nothing written');

    const first = await build(['--max-memory', '200MiB']);
    assert.equal(first.code, 0, first.stderr);
    const s = JSON.parse(first.stdout);
    assert.deepEqual([s.batches, s.written, s.already_cached, s.tokens, s.top_k], [10, 10, 0, 10 * 64, 16]);
    assert.ok(s.peak_rss_bytes > 0 && s.lm_head_block_rows === 259 && s.groups >= 1);
    const second = await build([]);
    assert.deepEqual([JSON.parse(second.stdout).written, JSON.parse(second.stdout).already_cached], [0, 10]);

    const [live, cached] = await Promise.all([distill(cli('live'), []), distill(cli('cached'), ['--teacher-cache', cli('cache'), ...NO_TEACHER])]);
    assert.equal(live.code, 0, live.stderr);
    assert.equal(cached.code, 0, cached.stderr);
    assert.deepEqual(JSON.parse(cached.stdout).teacher_cache.misses, 0);
    assert.deepEqual(lines(cli('cached')), lines(cli('live')));
    assert.ok(fs.readFileSync(cli('cached/final/model.safetensors')).equals(fs.readFileSync(cli('live/final/model.safetensors'))));
  });

  test('bad input: a live teacher above --max-memory, a budget below one layer and one batch, no budget; one line, exit 1, nothing written', async () => {
    const runs = await Promise.all([
      distill(cli('r1'), NO_TEACHER).then((r) => ({ r, re: /^kompresor: --teacher .*teacher: a live teacher must fit --max-memory beside the student; found the teacher's float32 weights \([\d.]+ KiB\) with the student's training state need [\d.]+ MiB, above --max-memory 192\.10 MiB\. Hint: build its logits layer by layer first with `kompresor teacher-cache`.*and pass --teacher-cache, or raise --max-memory$/ })),
      build(['--max-memory', '100MiB'], cli('c1')).then((r) => ({ r, re: /^kompresor: --max-memory: a layer-streamed forward holds one layer's weights, one batch's activations and hidden states and one row of logits; expected at least 192\.\d\d MiB \(one layer [\d.]+ KiB, one batch of 64 tokens [\d.]+ KiB\), found 100\.00 MiB\. Hint: raise --max-memory, or lower --micro-batch or --seq-len$/ })),
      kompresor(['teacher-cache', '--teacher', cli('teacher'), '--data', cli('data'), '--out', cli('c2')]).then((r) => ({ r, re: /^kompresor: --steps\/--tokens: give exactly one budget, as the distill run: --steps or --tokens; found neither\.$/ })),
    ]);
    for (const { r, re } of runs) {
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr.trimEnd(), re);
    }
    assert.ok(!fs.existsSync(cli('c1')) && !fs.existsSync(cli('c2')));
    assert.ok(!fs.existsSync(cli('r1')), 'the refused distill run made no folder');
  });
});
