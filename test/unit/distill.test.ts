// Distillation: the KD objective against the KD head it wraps, the forward-only teacher arena, a
// short run that brings the student's KL to the teacher down, bitwise resume (a crash in process
// and kill -9 of `kompresor distill`), the teacher cache (identical losses with and without it,
// a fully cached run never loads the teacher, refusals) and the CLI's one-line errors.
// The teacher is the tiny fixture after a few steps of training (so its logits have structure);
// the student is a fresh one-layer model of the same vocabulary.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadModel, saveModel } from '../../src/model/load.ts';
import { Decoder } from '../../src/model/decoder.ts';
import { normalizeConfig } from '../../src/io/hf_config.ts';
import { initWeights } from '../../src/model/init.ts';
import { Rng } from '../../src/model/sampling.ts';
import { train, type TrainRun } from '../../src/train/trainer.ts';
import { readMetrics, type MetricsLine } from '../../src/train/metrics.ts';
import { latestCheckpoint, listCheckpoints, readTrainState } from '../../src/train/run_checkpoint.ts';
import { MemorySource, memoryEvalSource, concatDocuments } from '../../src/data/memory_source.ts';
import { prepareData } from '../../src/data/prepare.ts';
import { byteLevelTokenizer } from '../../src/io/byte_tokenizer.ts';
import { kdLoss, kdLossAndBackward, teacherChunks, type KdOptions } from '../../src/distill/kd_head.ts';
import { kdObjective } from '../../src/distill/objective.ts';
import { TeacherCache, cachedTeacher, liveTeacher, loadTeacher, teacherChecksum, batchKey, topKRow } from '../../src/distill/teacher_cache.ts';
import { topKIds } from '../../src/tensor/kernels/kd_loss.ts';
import { KompresorError } from '../../src/errors.ts';
import { TINY, syntheticDocs, tinyOptions } from '../train_helpers.ts';
import { rng, tempDir } from '../helpers.ts';
import { kompresor } from '../cli_run.ts';

const tmp = () => tempDir('kompresor-distill-');
const work = tmp();
const at = (...p: string[]) => path.join(work, ...p);

/** The fixture after 40 steps of next-token training: a teacher with something to teach. */
let teacherDir: string;
/** A fresh one-layer student of the same vocabulary (64), saved as an HF folder. */
let studentDir: string;

async function studentModel(): Promise<Decoder> {
  return (await loadModel(studentDir)).model;
}

function tinyDistillRun(runDir: string, student: Decoder, teacherModel: Decoder | null, over: Partial<TrainRun> = {}, kd: Partial<KdOptions> = {}): TrainRun {
  const v = concatDocuments(syntheticDocs(20, 2));
  const teacher = teacherModel ? liveTeacher(teacherModel) : undefined;
  return {
    runDir, model: student, config: JSON.parse(fs.readFileSync(path.join(studentDir ?? TINY, 'config.json'), 'utf8')), tokenizerFrom: studentDir ?? TINY,
    train: MemorySource.fromDocuments(syntheticDocs(200, 1), { seed: 11 }), valid: memoryEvalSource(v.tokens, v.starts),
    objective: teacher ? kdObjective(teacher, kd) : undefined, options: tinyOptions({ steps: 8, saveEvery: 3, evalEvery: 4, lr: 1e-2 }), ...over,
  };
}

const curve = (runDir: string) => readMetrics(path.join(runDir, 'metrics.jsonl')).map((l: MetricsLine) =>
  JSON.stringify([l.split ?? 'train', l.step, l.tokens, l.loss, l.lr, l.grad_norm, l.kl, l.ce]));
const weights = (runDir: string) => fs.readFileSync(path.join(runDir, 'final/model.safetensors'));

before(async () => {
  // teacher: the fixture trained briefly on the synthetic corpus
  teacherDir = at('teacher');
  const tRun = tinyDistillRun(at('teacher-run'), (await loadModel(TINY)).model, null);
  tRun.options = tinyOptions({ steps: 40, saveEvery: 0, evalEvery: 0, lr: 1e-2, warmup: 2 });
  await train(tRun);
  fs.cpSync(at('teacher-run/final'), teacherDir, { recursive: true });
  // student: one layer, random init
  const raw = { ...JSON.parse(fs.readFileSync(path.join(TINY, 'config.json'), 'utf8')), num_hidden_layers: 1 };
  const student = new Decoder(normalizeConfig(raw, 'student'));
  initWeights(student, 5);
  studentDir = at('student');
  saveModel(student, studentDir, raw);
});

// -----------------------------------------------------------------------------------------------

describe('the KD objective', () => {
  const cases: [string, Partial<KdOptions>][] = [
    ['forward KL, T = 1', {}],
    ['reverse, T = 2, T^2, top-k 8', { reverse: true, temperature: 2, scaleT2: true, topK: 8 }],
    ['CE + KD, kdLossScale 0.5', { lmLoss: true, kdLossScale: 0.5 }],
  ];
  for (const [name, kd] of cases) {
    test(`${name}: loss and gradient equal the KD head's; ce is the student's CE; evaluate reports CE and kl`, async () => {
      const teacher = loadTeacher(teacherDir), student = await studentModel();
      const batch = MemorySource.fromDocuments(syntheticDocs(30, 9), { seed: 1 }).next(3, 16);
      const obj = kdObjective(liveTeacher(teacher), kd);
      student.zeroGrad();
      const r = obj.train(student, batch, { step: 1, micro: 0, rng: new Rng(0) });
      const g = student.grads!.flat();
      student.zeroGrad();
      const ref = kdLossAndBackward(student, batch, teacherChunks(teacher, batch), kd);
      assert.equal(r.loss, ref.loss);
      assert.deepEqual(g, student.grads!.flat(), 'the same gradient, bitwise');
      const t2 = kd.scaleT2 ? kd.temperature! ** 2 : 1;
      assert.equal(r.metrics!.kl, ref.kd / t2);
      const ce = student.loss(batch);
      assert.ok(Math.abs(r.metrics!.ce - ce) < 1e-12, `ce ${r.metrics!.ce} vs ${ce}`);
      const e = obj.evaluate(student, batch);
      assert.equal(e.loss, e.metrics!.ce);
      assert.ok(Math.abs(e.loss - ce) < 1e-12);
      assert.equal(e.metrics!.kl, kdLoss(student, batch, teacherChunks(teacher, batch), kd).kd / t2);
      assert.equal(e.metrics!.kl, r.metrics!.kl, 'forward only = the same KL as the training pass');
    });
  }

  test('the teacher\'s forward-only arena: the same logits, far fewer bytes, backward refused', async () => {
    const full = (await loadModel(teacherDir)).model, fwd = loadTeacher(teacherDir);
    const batch = MemorySource.fromDocuments(syntheticDocs(30, 4), { seed: 2 }).next(4, 32);
    const a = teacherChunks(full, batch)(0, 128).slice(), b = teacherChunks(fwd, batch)(0, 128);
    assert.deepEqual(b, a);
    const bytes = (m: Decoder) => m.activations(4, 32).bytes;
    assert.ok(bytes(fwd) < 0.6 * bytes(full), `${bytes(fwd)} vs ${bytes(full)} bytes`);
    assert.throws(() => fwd.lossAndBackward(batch), /\[ImplError\].*forward-only/);
  });
});

describe('training with the KD objective', () => {
  test('a short distill run lowers the validation KL and logs kl and ce on every line', async () => {
    const dir = tmp();
    await train(tinyDistillRun(dir, await studentModel(), loadTeacher(teacherDir), {}, {}));
    const lines = readMetrics(path.join(dir, 'metrics.jsonl'));
    const val = lines.filter((l) => l.split === 'validation');
    assert.deepEqual(val.map((l) => l.step), [0, 4, 8]);
    const kl0 = val[0].kl as number, kl1 = val[2].kl as number;
    assert.ok(kl1 < 0.7 * kl0, `validation KL ${kl0} -> ${kl1}`);
    for (const l of lines) for (const k of ['loss', 'kl', 'ce']) assert.ok(Number.isFinite(l[k]), `${k} in ${JSON.stringify(l)}`);
    for (const l of val) assert.equal(l.loss, l.ce, 'validation loss = the student\'s CE');
    assert.ok(fs.existsSync(path.join(dir, 'report/kl.svg')));
  });

  test('a crash after step 5 resumes from checkpoint 3 to the same losses, KL and weights, bitwise', async () => {
    const ref = tmp(), dir = tmp();
    await train(tinyDistillRun(ref, await studentModel(), loadTeacher(teacherDir)));
    const crash = (l: MetricsLine) => { if (l.step === 5) throw new Error('crash'); };
    await assert.rejects(train(tinyDistillRun(dir, await studentModel(), loadTeacher(teacherDir), { onStep: crash })), /crash/);
    const r = await train(tinyDistillRun(dir, await studentModel(), loadTeacher(teacherDir), { resume: true }));
    assert.equal(r.sessionSteps, 5);
    assert.deepEqual(curve(dir), curve(ref));
    assert.ok(weights(dir).equals(weights(ref)));
  });
});

describe('the teacher cache', () => {
  test('top-k rows: the same ids as the KD kernel picks, ties included', () => {
    const r = rng(3);
    for (let trial = 0; trial < 50; trial++) {
      const V = 5 + Math.floor(r() * 60), k = 1 + Math.floor(r() * (V - 1));
      const u = Float32Array.from({ length: V }, () => Math.round(r() * 6) / 2 - (r() < 0.05 ? Infinity : 0));
      const want = new Int32Array(k), ids = new Int32Array(k), vals = new Float32Array(k);
      topKIds(want, u, k);
      topKRow(ids, vals, 0, u, k, new Float32Array(V));
      assert.deepEqual(ids, want, `V=${V} k=${k} u=${u}`);
      assert.deepEqual(vals, Float32Array.from(want, (j) => u[j]));
    }
  });

  for (const topK of [8, 0]) {
    test(`round trip (top-k ${topK || 'full'}): runs without, writing and reading the cache are identical; a cached run never loads the teacher`, async () => {
      const kd = { topK };
      const ref = tmp(), cold = tmp(), warm = tmp(), cacheDir = path.join(tmp(), 'cache');
      await train(tinyDistillRun(ref, await studentModel(), loadTeacher(teacherDir), {}, kd));
      const want = { teacher: teacherChecksum(teacherDir), teacherDir, vocabSize: 64, topK };
      const c1 = TeacherCache.open(cacheDir, want);
      let loads = 0;
      const load = () => { loads++; return loadTeacher(teacherDir); };
      await train(tinyDistillRun(cold, await studentModel(), null, { objective: kdObjective(cachedTeacher(c1, load), kd) }));
      assert.equal(loads, 1, 'the teacher is loaded once, on the first miss');
      assert.deepEqual([c1.misses, c1.hits], [16 + 2, 2 * 2], '16 training micro-batches and 2 validation batches written; 2 later validations read');
      const c2 = TeacherCache.open(cacheDir, want);
      await train(tinyDistillRun(warm, await studentModel(), null, { objective: kdObjective(cachedTeacher(c2, load), kd) }));
      assert.equal(loads, 1, 'a fully cached run does not load the teacher');
      assert.deepEqual([c2.misses, c2.hits], [0, 16 + 3 * 2]);
      assert.deepEqual(curve(cold), curve(ref));
      assert.deepEqual(curve(warm), curve(ref));
      assert.ok(weights(warm).equals(weights(ref)));
    });
  }

  test('a cache of another teacher, vocabulary or top-k is refused; so is a damaged entry', async () => {
    const dir = path.join(tmp(), 'c');
    const want = { teacher: teacherChecksum(teacherDir), teacherDir, vocabSize: 64, topK: 4 };
    const c = TeacherCache.open(dir, want);
    const batch = MemorySource.fromDocuments(syntheticDocs(10, 1), { seed: 0 }).next(2, 8);
    cachedTeacher(c, () => loadTeacher(teacherDir)).chunks(batch);
    const refused = (over: object, re: RegExp) => assert.throws(() => TeacherCache.open(dir, { ...want, ...over }),
      (e: unknown) => e instanceof KompresorError && re.test(e.message) && !e.message.includes('\n'));
    refused({ teacher: teacherChecksum(TINY), teacherDir: TINY }, /^--teacher-cache .*teacher checksum differs.*Hint: use a new --teacher-cache folder/);
    refused({ vocabSize: 65 }, /\(vocab_size differs\); expected 65, found 64/);
    refused({ topK: 8 }, /\(top_k differs\); expected 8, found 4/);
    const file = path.join(dir, `${batchKey(batch)}.kptl`);
    fs.truncateSync(file, fs.statSync(file).size - 4);
    assert.throws(() => c.read(batchKey(batch), batch), /must hold exactly the logits its header announces/);
    const other = MemorySource.fromDocuments(syntheticDocs(10, 1), { seed: 0 }).next(1, 16);
    fs.copyFileSync(file, path.join(dir, `${batchKey(other)}.kptl`));
    assert.throws(() => c.read(batchKey(other), other), /the entry's key must match/);
  });
});

// -----------------------------------------------------------------------------------------------
// the command line



describe('kompresor distill', () => {
  // byte-level teacher (2 layers) and student (1 layer) with random weights, and prepared data
  const cli = (...p: string[]) => at('cli', ...p);
  const COMMON = ['--steps', '60', '--micro-batch', '2', '--seq-len', '32', '--lr', '3e-3', '--warmup', '5', '--save-every', '10', '--eval-every', '20', '--eval-batches', '2', '--seed', '3'];
  const fresh = (out: string, extra: string[] = []) => ['distill', '--teacher', cli('teacher'), '--student', cli('student'), '--data', cli('data'), '--out', out, ...COMMON, ...extra];
  let ready: Promise<void>;
  const setup = async () => {
    const tf = byteLevelTokenizer();
    const words = 'a teacher shows the student which token comes next in every line of this small text'.split(' ');
    const r = rng(8);
    fs.mkdirSync(cli(), { recursive: true });
    fs.writeFileSync(cli('corpus.txt'), Array.from({ length: 120 }, () => Array.from({ length: 6 + Math.floor(r() * 20) }, () => words[Math.floor(r() * words.length)]).join(' ')).join('\n\n'));
    for (const [name, layers, seed] of [['teacher', 2, 1], ['student', 1, 2]] as const) {
      const raw = { architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: tf.vocabSize, hidden_size: 32, intermediate_size: 64, num_hidden_layers: layers,
        num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 256, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: true,
        eos_token_id: tf.specialIds['<|im_end|>'], torch_dtype: 'float32' };
      const m = new Decoder(normalizeConfig(raw, name));
      initWeights(m, seed, 0.2); // a teacher with opinions
      saveModel(m, cli(name), raw);
      fs.writeFileSync(cli(name, 'tokenizer.json'), JSON.stringify(tf.tokenizerJson));
      fs.writeFileSync(cli(name, 'tokenizer_config.json'), JSON.stringify(tf.tokenizerConfig));
    }
    await prepareData({ inputs: [cli('corpus.txt')], tokenizerDir: cli('student'), outDir: cli('data'), valFraction: 0.1, workers: 0 });
  };
  before(() => { ready = setup(); });

  test('kill -9 after a checkpoint, then --resume: the same losses, KL and weights as an uninterrupted run', async () => {
    await ready;
    const [full, killed] = await Promise.all([
      kompresor([...fresh(cli('full')), '--json']),
      kompresor(fresh(cli('killed')), (kill) => { if (listCheckpoints(cli('killed')).some((c) => c.step >= 20)) kill('SIGKILL'); }),
    ]);
    assert.equal(full.code, 0, full.stderr);
    const res = JSON.parse(full.stdout);
    assert.equal(res.status, 'finished');
    assert.ok(res.validLoss > 0 && res.teacher_cache === null);
    const lines = readMetrics(cli('full/metrics.jsonl'));
    assert.ok(lines.every((l) => typeof l.kl === 'number'), 'every line has kl');
    const val = lines.filter((l) => l.split === 'validation');
    assert.ok((val.at(-1)!.kl as number) < (val[0].kl as number), `KL ${val[0].kl} -> ${val.at(-1)!.kl}`);
    assert.ok(fs.existsSync(cli('full/final/tokenizer.json')));
    assert.equal(killed.signal, 'SIGKILL', `killed mid-way: ${killed.stdout} ${killed.stderr}`);
    const step = readTrainState(latestCheckpoint(cli('killed'))!).step;
    assert.ok(step >= 20 && step < 60, `killed at ${step}`);
    const r = await kompresor(['distill', '--resume', cli('killed')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^finished 60 steps/);
    assert.deepEqual(curve(cli('killed')), curve(cli('full')));
    assert.ok(weights(cli('killed')).equals(weights(cli('full'))));
  });

  test('bad invocations fail with one line naming the problem', async () => {
    await ready;
    const cases: [string[], RegExp][] = [
      [fresh(cli('x1')).map((a) => (a === cli('teacher') ? TINY : a)), /--teacher .*share the vocabulary.*expected vocab_size 259 \(the student's\), found vocab_size 64/],
      [fresh(cli('x2')).map((a) => (a === cli('teacher') ? cli('nope') : a)), /--teacher .*nope: the model folder must exist.*no such folder/],
      [['distill', '--teacher', cli('teacher'), '--data', cli('data'), '--out', cli('x3'), '--steps', '5'], /needs --teacher, --student, --data and --out; found --student missing/],
      [[...fresh(cli('x4')), '--top-k', '-1'], /--top-k takes an integer/],
      [['distill', '--resume', cli('nothing')], /needs a checkpoint-<step> folder/],
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
});
