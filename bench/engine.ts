// Our engine's side of `npm run bench`: the same three phases as bench/torch_peer.py, on the same
// shapes, measured the same way (warmup, then the median of timed repetitions):
//   train    forward + fused loss + backward + AdamW step (with global-norm clipping) per batch
//   forward  logits for every position of the training batch (chunked lm_head, nothing kept)
//   decode   batch 1, KV cache, greedy: a 64-token prompt, then 64 new tokens timed
// and, ours only (the peer has no distillation), with the config model as the teacher and a
// pruned-shape student (2/3 of its layers, round):
//   student  the student's own training step (as train)
//   distill  teacher forward (forward-only arena) + the student's KD step (forward KL, T = 1) + AdamW
// Each config runs in its own process (bench/run.ts spawns `bench/engine.ts --config NAME`), so
// the peak RSS it reports belongs to that config alone. Prints ONE JSON object on stdout.
import { pathToFileURL } from 'node:url';
import { normalizeConfig } from '../src/io/hf_config.ts';
import { Decoder } from '../src/model/decoder.ts';
import { initWeights } from '../src/model/init.ts';
import { batchFromRows } from '../src/model/batch.ts';
import { generate } from '../src/model/generate.ts';
import { AdamW } from '../src/train/optimizer.ts';
import { native } from '../src/tensor/native.ts';
import { nativeKernelNames } from '../src/tensor/ops.ts';
import { Rng } from '../src/model/sampling.ts';
import { kdLossAndBackward, teacherChunks } from '../src/distill/kd_head.ts';
import { peakRss, type PeerConfig } from './peers.ts';

/** The shapes bench/torch_peer.py knows by name (keep the two in step). */
export const BENCH_CONFIGS: Record<string, PeerConfig> = {
  tiny15m: { name: 'tiny15m', hidden: 288, layers: 6, heads: 6, kv_heads: 6, mlp: 768, vocab: 32000, tied: false, seq: 256, batch: 8, rope_theta: 10000, eps: 1e-5 },
  smollm135: { name: 'smollm135', hidden: 576, layers: 30, heads: 9, kv_heads: 3, mlp: 1536, vocab: 49152, tied: true, seq: 512, batch: 4, rope_theta: 100000, eps: 1e-5 },
};

export interface EngineResult {
  config: string;
  threads: number;
  native_kernels: number;
  params: number;
  /** N of the FLOP convention (bench/README.md): every parameter except an untied input embedding. */
  flop_params: number;
  train_tokens_per_s: number;
  forward_tokens_per_s: number;
  decode_tokens_per_s: number;
  prefill_tokens_per_s: number;
  train_gflops: number;
  forward_gflops: number;
  /** Peak RSS over the train, forward and decode phases (before the distillation phase). */
  peak_rss_bytes: number;
  train_step_s: number[];
  forward_step_s: number[];
  /** The distillation phase: student layers, student params, its own train step, the KD step. */
  student_layers: number;
  student_params: number;
  student_train_tokens_per_s: number;
  distill_tokens_per_s: number;
  /** distill / train_tokens_per_s (the teacher's own training step) and / the student's. */
  distill_ratio_to_train: number;
  distill_ratio_to_student_train: number;
  distill_step_s: number[];
  steps: number;
  warmup: number;
}

export interface EngineOptions { threads: number; steps: number; warmup: number; prompt: number; newTokens: number; decodeRuns: number }

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function modelFor(pc: PeerConfig, seed = 1): Decoder {
  const raw = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu', hidden_size: pc.hidden,
    num_hidden_layers: pc.layers, num_attention_heads: pc.heads, num_key_value_heads: pc.kv_heads,
    intermediate_size: pc.mlp, vocab_size: pc.vocab, tie_word_embeddings: pc.tied, rope_theta: pc.rope_theta,
    rms_norm_eps: pc.eps, max_position_embeddings: Math.max(pc.seq, 2048),
  };
  const model = new Decoder(normalizeConfig(raw, `bench config ${pc.name}`));
  initWeights(model, seed);
  return model;
}

/** The pruned shape the distillation phase trains: 2/3 of the layers (at least 1). */
export function studentConfig(pc: PeerConfig): PeerConfig {
  return { ...pc, name: `${pc.name}-student`, layers: Math.max(1, Math.round((2 * pc.layers) / 3)) };
}

function randomRows(rng: Rng, B: number, T: number, V: number): number[][] {
  return Array.from({ length: B }, () => Array.from({ length: T }, () => Math.floor(rng.next() * V)));
}

function timed(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return (performance.now() - t0) / 1000;
}

export function measureEngine(pc: PeerConfig, o: EngineOptions): EngineResult {
  native?.setThreads(o.threads);
  const model = modelFor(pc);
  const rng = new Rng(7);
  const batch = batchFromRows(randomRows(rng, pc.batch, pc.seq, pc.vocab));
  const tokens = pc.batch * pc.seq;
  const opt = new AdamW(model.layout, { lr: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip: 1 });
  const trainStep = () => { model.zeroGrad(); model.lossAndBackward(batch); opt.update(model.params, model.grads!, 1e-4); };
  const forward = () => model.logits(batch, () => {});

  const trainS: number[] = [];
  for (let i = 0; i < o.warmup + o.steps; i++) {
    const s = timed(trainStep);
    if (i >= o.warmup) trainS.push(s);
  }
  const forwardS: number[] = [];
  forward();
  for (let i = 0; i < o.steps; i++) forwardS.push(timed(forward));
  model.releaseActivations();

  const prompt = randomRows(rng, 1, o.prompt, pc.vocab);
  const greedy = { temperature: 0, topK: 0, topP: 1, minP: 0 };
  const decodeRates: number[] = [], prefillRates: number[] = [];
  for (let r = 0; r <= o.decodeRuns; r++) {
    // no EOS: always exactly newTokens tokens, as the peer does
    const g = generate(model, prompt, { maxNewTokens: o.newTokens, sampling: greedy, seed: 0, eosTokenIds: [] });
    if (r === 0) continue; // warmup
    decodeRates.push(g.decodeSteps / g.decodeSeconds);
    prefillRates.push(o.prompt / g.prefillSeconds);
  }

  const params = model.layout.total;
  const flopParams = pc.tied ? params : params - pc.vocab * pc.hidden;
  const train = tokens / median(trainS), fwd = tokens / median(forwardS);
  const peak = peakRss();
  const d = measureDistill(model, pc, batch, o);
  return {
    config: pc.name, threads: o.threads, native_kernels: nativeKernelNames.length, params, flop_params: flopParams,
    train_tokens_per_s: train, forward_tokens_per_s: fwd,
    decode_tokens_per_s: median(decodeRates), prefill_tokens_per_s: median(prefillRates),
    train_gflops: (6 * flopParams * train) / 1e9, forward_gflops: (2 * flopParams * fwd) / 1e9,
    peak_rss_bytes: peak, train_step_s: trainS, forward_step_s: forwardS, steps: o.steps, warmup: o.warmup,
    student_layers: d.layers, student_params: d.params, student_train_tokens_per_s: d.studentTrain, distill_tokens_per_s: d.distill,
    distill_ratio_to_train: d.distill / train, distill_ratio_to_student_train: d.distill / d.studentTrain,
    distill_step_s: d.distillS,
  };
}

/**
 * The distillation phase: `teacher` (the config model, its training state dropped) runs forward
 * only; a fresh pruned-shape student takes plain training steps, then KD steps, on the same batch.
 */
function measureDistill(teacher: Decoder, pc: PeerConfig, batch: ReturnType<typeof batchFromRows>, o: EngineOptions) {
  teacher.grads = null;
  teacher.dw = null;
  teacher.releaseActivations();
  teacher.forwardOnly = true;
  const sc = studentConfig(pc);
  const student = modelFor(sc, 2);
  const opt = new AdamW(student.layout, { lr: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip: 1 });
  const tokens = batch.B * batch.T;
  const studentStep = () => { student.zeroGrad(); student.lossAndBackward(batch); opt.update(student.params, student.grads!, 1e-4); };
  const distillStep = () => {
    student.zeroGrad();
    kdLossAndBackward(student, batch, teacherChunks(teacher, batch));
    opt.update(student.params, student.grads!, 1e-4);
  };
  const timedSteps = (fn: () => void) => {
    const out: number[] = [];
    for (let i = 0; i < o.warmup + o.steps; i++) {
      const s = timed(fn);
      if (i >= o.warmup) out.push(s);
    }
    return out;
  };
  const studentS = timedSteps(studentStep), distillS = timedSteps(distillStep);
  return { layers: sc.layers, params: student.layout.total, studentTrain: tokens / median(studentS), distill: tokens / median(distillS), distillS };
}

// ---- child-process entry: node --import tsx bench/engine.ts --config NAME [--threads N] [--steps N] [--warmup N]
function main(argv: string[]): void {
  const val = (k: string) => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1] : undefined; };
  const name = val('--config') ?? 'tiny15m';
  const pc = BENCH_CONFIGS[name];
  if (!pc) throw new Error(`bench/engine.ts: unknown config ${name}; known: ${Object.keys(BENCH_CONFIGS).join(', ')}`);
  const r = measureEngine(pc, {
    threads: Number(val('--threads') ?? 2), steps: Number(val('--steps') ?? (name === 'smollm135' ? 5 : 8)),
    warmup: Number(val('--warmup') ?? 3), prompt: 64, newTokens: 64, decodeRuns: 3,
  });
  console.log(JSON.stringify(r));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main(process.argv.slice(2));
