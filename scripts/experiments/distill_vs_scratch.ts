// Helper of distill_vs_scratch.sh (the experiment is the shell script; this file only makes the
// starting folder and the report):
//   init DIR      a byte-level tokenizer (src/io/byte_tokenizer.ts, as the demo uses) and the
//                 teacher's config.json in DIR
//   report OUT    reads OUT/{teacher,distill,scratch*}/metrics.jsonl and OUT/pruned/prune_report.json,
//                 writes OUT/curves.svg (validation CE against tokens) and OUT/summary.json, prints
//                 the summary; --svg FILE and --json FILE also copy them (e.g. to bench/results/)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { byteLevelTokenizer } from '../../src/io/byte_tokenizer.ts';
import { readMetrics, type MetricsLine } from '../../src/train/metrics.ts';
import { linePlot, type Series } from '../../src/report/svg_plot.ts';
import { openCheckpoint } from '../../src/io/checkpoint.ts';
import { Decoder } from '../../src/model/decoder.ts';
import { latestCheckpoint, readTrainState } from '../../src/train/run_checkpoint.ts';

/** The teacher: a small Llama (GQA 6/2 heads of 32, SwiGLU 512, tied embeddings) over bytes. */
function teacherConfig(vocab: number, eos: number, pad: number): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: vocab, hidden_size: 192, intermediate_size: 512,
    num_hidden_layers: 6, num_attention_heads: 6, num_key_value_heads: 2, head_dim: 32, hidden_act: 'silu',
    max_position_embeddings: 1024, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: true, attention_bias: false,
    initializer_range: 0.02, torch_dtype: 'float32', bos_token_id: null, eos_token_id: eos, pad_token_id: pad,
  };
}

function init(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const tf = byteLevelTokenizer();
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tf.tokenizerJson));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tf.tokenizerConfig, null, 2));
  const cfg = teacherConfig(tf.vocabSize, tf.specialIds['<|im_end|>'], tf.specialIds['<|endoftext|>']);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg, null, 2) + '\n');
  console.log(`wrote ${dir}/config.json and the byte-level tokenizer (vocab ${tf.vocabSize})`);
}

interface RunSummary {
  run: string;
  /** Peak learning rate of the run. */
  lr: number;
  params: number;
  steps: number;
  tokens: number;
  seconds: number;
  tokens_per_s: number;
  /** Validation CE (nats per byte) at the first and the last evaluation. */
  valid_first: number;
  valid_final: number;
  /** Distillation only: validation KL to the teacher, first and last. */
  kl_first?: number;
  kl_final?: number;
  curve: [number, number][];
}

function params(dir: string): number {
  return new Decoder(openCheckpoint(dir).config).layout.total;
}

function summarise(out: string, run: string): RunSummary | null {
  const file = path.join(out, run, 'metrics.jsonl');
  if (!fs.existsSync(file)) return null;
  const lines = readMetrics(file);
  const train = lines.filter((l) => l.split === undefined), val = lines.filter((l) => l.split === 'validation');
  const last = train.at(-1) as MetricsLine;
  const num = (l: MetricsLine | undefined, k: string) => (l && typeof l[k] === 'number' ? (l[k] as number) : undefined);
  return {
    run, lr: readTrainState(latestCheckpoint(path.join(out, run))!).options.lr, params: params(path.join(out, run, 'final')), steps: last.step as number, tokens: last.tokens as number,
    seconds: last.seconds as number, tokens_per_s: (last.tokens as number) / (last.seconds as number),
    valid_first: val[0].loss as number, valid_final: val.at(-1)!.loss as number,
    kl_first: num(val[0], 'kl'), kl_final: num(val.at(-1), 'kl'),
    curve: val.map((l) => [l.tokens as number, l.loss as number]),
  };
}

function report(out: string, copySvg?: string, copyJson?: string): void {
  const teacher = summarise(out, 'teacher')!, distill = summarise(out, 'distill')!;
  const scratch = fs.readdirSync(out).filter((d) => d.startsWith('scratch')).sort().map((d) => summarise(out, d)!).filter(Boolean);
  const prune = JSON.parse(fs.readFileSync(path.join(out, 'pruned/prune_report.json'), 'utf8')) as Record<string, unknown>;
  const best = scratch.reduce((a, b) => (b.valid_final < a.valid_final ? b : a));
  const series: Series[] = [
    { name: `pruned + distilled (KD from the teacher, lr ${distill.lr})`, points: distill.curve, markers: true },
    ...scratch.map((s, i) => ({ name: `same architecture from random init, lr ${s.lr}`, points: s.curve, markers: true, dashed: i > 0 })),
    { name: `teacher after its training (${teacher.valid_final.toFixed(3)})`, points: [[0, teacher.valid_final], [distill.tokens, teacher.valid_final]], dashed: true, color: '#777777' },
  ];
  const svg = linePlot({
    title: `Pruned student (${(distill.params / teacher.params * 100).toFixed(0)}% of the teacher): distillation vs training from scratch`,
    xLabel: 'training tokens of the student', yLabel: 'validation loss (CE, nats/byte)', series,
    yDomain: [Math.floor(teacher.valid_final * 5) / 5 - 0.2, Math.ceil(Math.min(4, Math.max(...scratch.map((s) => s.curve[1]?.[1] ?? 4))) * 5) / 5],
  });
  fs.writeFileSync(path.join(out, 'curves.svg'), svg);
  const summary = {
    machine: { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, node: process.version, date: new Date().toISOString() },
    teacher, pruned: { params: distill.params, fraction_of_teacher: distill.params / teacher.params, report: prune },
    distill, scratch,
    result: {
      distill_valid: distill.valid_final, scratch_valid: best.valid_final, scratch_run: best.run,
      ratio_distill_over_scratch: distill.valid_final / best.valid_final,
      pruned_valid_before_recovery: distill.valid_first, teacher_valid: teacher.valid_final,
      distill_wins: distill.valid_final < best.valid_final,
    },
  };
  fs.writeFileSync(path.join(out, 'summary.json'), JSON.stringify(summary, null, 1) + '\n');
  if (copySvg) { fs.mkdirSync(path.dirname(copySvg), { recursive: true }); fs.copyFileSync(path.join(out, 'curves.svg'), copySvg); }
  if (copyJson) { fs.mkdirSync(path.dirname(copyJson), { recursive: true }); fs.copyFileSync(path.join(out, 'summary.json'), copyJson); }
  const f = (x: number) => x.toFixed(4);
  console.log(`teacher   ${teacher.params.toLocaleString('en-US')} params, ${teacher.tokens.toLocaleString('en-US')} tokens in ${teacher.seconds.toFixed(0)} s: validation ${f(teacher.valid_final)}`);
  console.log(`pruned    ${distill.params.toLocaleString('en-US')} params (${(100 * distill.params / teacher.params).toFixed(1)}%): validation before recovery ${f(distill.valid_first)}`);
  console.log(`distilled ${distill.tokens.toLocaleString('en-US')} tokens in ${distill.seconds.toFixed(0)} s (${distill.tokens_per_s.toFixed(0)} tok/s): validation ${f(distill.valid_final)}, KL ${f(distill.kl_first!)} -> ${f(distill.kl_final!)}`);
  for (const s of scratch) console.log(`${s.run.padEnd(9)} ${s.tokens.toLocaleString('en-US')} tokens in ${s.seconds.toFixed(0)} s (${s.tokens_per_s.toFixed(0)} tok/s): validation ${f(s.valid_first)} -> ${f(s.valid_final)}`);
  console.log(`distilled / best scratch (${best.run}) validation loss: ${f(summary.result.ratio_distill_over_scratch)}`);
}

const [cmd, dir, ...rest] = process.argv.slice(2);
const opt = (k: string) => { const i = rest.indexOf(k); return i >= 0 ? rest[i + 1] : undefined; };
if (cmd === 'init' && dir) init(dir);
else if (cmd === 'report' && dir) report(dir, opt('--svg'), opt('--json'));
else {
  console.error('usage: distill_vs_scratch.ts init DIR | report OUT [--svg FILE] [--json FILE]');
  process.exit(1);
}
