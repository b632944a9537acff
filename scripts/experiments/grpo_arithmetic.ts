// GRPO raises a verifiable reward on held-out prompts (issue 5), with the project's own commands
// on a model the project trains:
//   1. data      short Polish arithmetic Q/A, "Ile to jest 7 + 5? Odpowiedź: 12", a, b in 0..14,
//                + and - (non-negative results): 345 facts, shuffled with a fixed seed; 100 are
//                held out for evaluation, the other 245 are GRPO's prompts. The pretraining text
//                holds every fact twice, once with the answer in digits and once as a Polish
//                number word ("dwanaście"), so the base model writes words about half the time
//   2. base      `kompresor data prepare` + `kompresor train --init`: a byte-level Llama
//                (3 layers, hidden 96, 0.3M parameters) trained from scratch on that text
//   3. grpo      `kompresor grpo` on the 245 prompts with the numeric reward (the completion's last
//                number equals the answer; words score 0), G = 8, 8 prompts per step, for two
//                seeds; `format` (one number, nothing else) is logged with weight 0
//   4. report    held-out reward of greedy completions before and after, per seed; JSON summary
// The held-out prompts are never GRPO prompts; their facts are in the pretraining text (as all
// facts are): what GRPO can change there is how the model answers, not what it memorised.
//
// Usage: node --import tsx scripts/experiments/grpo_arithmetic.ts [--out DIR] [--json FILE]
//   --out   the work folder (default runs/grpo_arithmetic); a phase whose output exists is skipped
//   --json  also copy the summary there (e.g. bench/results/grpo_arithmetic.json)
// Environment: BASE_STEPS (1000), GRPO_STEPS (60), SEEDS ("1,2"). About 4 minutes on 2 busy cores.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { byteLevelTokenizer } from '../../src/io/byte_tokenizer.ts';
import { readMetrics, type MetricsLine } from '../../src/train/metrics.ts';

const ROOT = path.join(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/kompresor.mjs');
const args = process.argv.slice(2);
const flag = (name: string, d?: string) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : d; };
const OUT = path.resolve(flag('--out', 'runs/grpo_arithmetic')!);
const JSON_COPY = flag('--json');
const BASE_STEPS = Number(process.env.BASE_STEPS ?? 1000);
const GRPO_STEPS = Number(process.env.GRPO_STEPS ?? 60);
const SEEDS = (process.env.SEEDS ?? '1,2').split(',').map(Number);
const at = (...p: string[]) => path.join(OUT, ...p);

// ---------------------------------------------------------------------------------------------
// 1. data

const ONES = ['zero', 'jeden', 'dwa', 'trzy', 'cztery', 'pięć', 'sześć', 'siedem', 'osiem', 'dziewięć', 'dziesięć', 'jedenaście',
  'dwanaście', 'trzynaście', 'czternaście', 'piętnaście', 'szesnaście', 'siedemnaście', 'osiemnaście', 'dziewiętnaście'];
const TENS: Record<number, string> = { 2: 'dwadzieścia', 3: 'trzydzieści' };
/** A Polish number word, 0..39. */
function polish(n: number): string {
  return n < 20 ? ONES[n] : TENS[Math.floor(n / 10)] + (n % 10 ? ` ${ONES[n % 10]}` : '');
}

type Fact = [number, '+' | '-', number, number];

function facts(): Fact[] {
  const out: Fact[] = [];
  for (let a = 0; a < 15; a++) {
    for (let b = 0; b < 15; b++) {
      out.push([a, '+', b, a + b]);
      if (a >= b) out.push([a, '-', b, a - b]);
    }
  }
  // a fixed shuffle (LCG), the same on every machine
  let s = 12345;
  const next = () => { s = (s * 1103515245 + 12345) % 2147483648; return s / 2147483648; };
  for (let i = out.length - 1; i > 0; i--) { const j = Math.floor(next() * (i + 1)); [out[i], out[j]] = [out[j], out[i]]; }
  return out;
}

const question = ([a, op, b]: Fact) => `Ile to jest ${a} ${op} ${b}? Odpowiedź:`;

function writeData(): void {
  const all = facts(), held = all.slice(0, 100), prompts = all.slice(100);
  fs.mkdirSync(at('text'), { recursive: true });
  // every fact twice, as separate documents (blank lines): digits and a number word
  fs.writeFileSync(at('text/pretrain.txt'), all.flatMap((f) => [`${question(f)} ${f[3]}`, `${question(f)} ${polish(f[3])}`]).join('\n\n') + '\n');
  const jsonl = (fs_: Fact[]) => fs_.map((f) => JSON.stringify({ prompt: question(f), answer: f[3] })).join('\n') + '\n';
  fs.writeFileSync(at('text/grpo.jsonl'), jsonl(prompts));
  fs.writeFileSync(at('text/held.jsonl'), jsonl(held));
  const tf = byteLevelTokenizer();
  fs.mkdirSync(at('init'), { recursive: true });
  fs.writeFileSync(at('init/tokenizer.json'), JSON.stringify(tf.tokenizerJson));
  fs.writeFileSync(at('init/tokenizer_config.json'), JSON.stringify(tf.tokenizerConfig, null, 2));
  fs.writeFileSync(at('init/config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: tf.vocabSize, hidden_size: 96, intermediate_size: 256,
    num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 24, hidden_act: 'silu', max_position_embeddings: 256,
    rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: true, attention_bias: false, initializer_range: 0.02, torch_dtype: 'float32',
    bos_token_id: null, eos_token_id: tf.specialIds['<|im_end|>'], pad_token_id: tf.specialIds['<|endoftext|>'],
  }, null, 2) + '\n');
  console.log(`wrote ${all.length} facts: ${prompts.length} GRPO prompts, ${held.length} held out; pretraining text with ${2 * all.length} documents`);
}

// ---------------------------------------------------------------------------------------------
// running the commands

const seconds: Record<string, number> = {};

function kompresor(phase: string, cmdArgs: string[]): void {
  console.log(`+ kompresor ${cmdArgs.join(' ')}`);
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [BIN, ...cmdArgs], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`kompresor ${cmdArgs[0]} failed with exit code ${r.status}`);
  seconds[phase] = (seconds[phase] ?? 0) + (performance.now() - t0) / 1000;
}

function unless(file: string, phase: string, f: () => void): void {
  if (fs.existsSync(file)) console.log(`= ${path.relative(ROOT, file)} exists; ${phase} skipped`);
  else f();
}

// ---------------------------------------------------------------------------------------------
// 4. report

interface SeedResult {
  seed: number;
  /** Held-out greedy rewards: numeric (the optimised one) and format (logged, weight 0). */
  before: { numeric: number; format: number; completion_length: number };
  after: { numeric: number; format: number; completion_length: number };
  curve: [number, number][];
  /** Mean sampled training reward over the first and the last 10 steps. */
  train_reward_first10: number;
  train_reward_last10: number;
  seconds: number;
}

function summarise(seed: number): SeedResult {
  const lines = readMetrics(at(`grpo_seed${seed}`, 'metrics.jsonl'));
  const valid = lines.filter((l) => l.split === 'validation'), train = lines.filter((l) => l.split === undefined);
  const pick = (l: MetricsLine) => ({ numeric: l.reward_numeric as number, format: l.reward_format as number, completion_length: l.completion_length as number });
  const mean = (ls: MetricsLine[]) => ls.reduce((s, l) => s + (l.reward as number), 0) / ls.length;
  return {
    seed, before: pick(valid[0]), after: pick(valid.at(-1)!), curve: valid.map((l) => [l.step as number, l.reward_numeric as number]),
    train_reward_first10: mean(train.slice(0, 10)), train_reward_last10: mean(train.slice(-10)), seconds: train.at(-1)!.seconds as number,
  };
}

// ---------------------------------------------------------------------------------------------

const t0 = performance.now();
fs.mkdirSync(OUT, { recursive: true });
unless(at('text/held.jsonl'), 'data', writeData);
unless(at('data/manifest.json'), 'prepare', () => kompresor('prepare', ['data', 'prepare', '--input', at('text/pretrain.txt'), '--tokenizer', at('init'),
  '--out', at('data'), '--val-fraction', '0', '--workers', '0']));
unless(at('base/final/config.json'), 'base', () => kompresor('base', ['train', '--init', at('init/config.json'), '--data', at('data'), '--out', at('base'),
  '--steps', String(BASE_STEPS), '--micro-batch', '16', '--seq-len', '64', '--lr', '3e-3', '--min-lr', '3e-4', '--warmup', '30', '--save-every', '0', '--seed', '1']));
for (const seed of SEEDS) {
  unless(at(`grpo_seed${seed}/final/config.json`), `grpo seed ${seed}`, () => kompresor(`grpo_seed${seed}`, ['grpo', at('base/final'),
    '--data', at('text/grpo.jsonl'), '--eval-data', at('text/held.jsonl'), '--reward', 'numeric,format', '--reward-weights', '1,0',
    '--out', at(`grpo_seed${seed}`), '--steps', String(GRPO_STEPS), '--num-generations', '8', '--micro-batch', '64', '--max-new-tokens', '8',
    '--max-prompt-length', '64', '--lr', '1e-4', '--min-lr', '1e-5', '--eval-every', '20', '--eval-batches', '2', '--save-every', '0', '--seed', String(seed)]));
}
const results = SEEDS.map(summarise);
const summary = {
  experiment: 'grpo_arithmetic',
  task: 'Polish arithmetic, a op b with a, b in 0..14, op + or - (non-negative); reward numeric (last number = answer)',
  prompts: { grpo: 245, held_out: 100 },
  base: { steps: BASE_STEPS, micro_batch: 16, seq_len: 64, lr: 3e-3 },
  grpo: { steps: GRPO_STEPS, num_generations: 8, prompts_per_step: 8, max_new_tokens: 8, lr: 1e-4, loss_type: 'dapo', beta: 0, epsilon: 0.2 },
  seeds: results,
  mean_before: results.reduce((s, r) => s + r.before.numeric, 0) / results.length,
  mean_after: results.reduce((s, r) => s + r.after.numeric, 0) / results.length,
  phase_seconds: seconds,
  total_seconds: (performance.now() - t0) / 1000,
};
fs.writeFileSync(at('summary.json'), JSON.stringify(summary, null, 2) + '\n');
if (JSON_COPY) fs.writeFileSync(JSON_COPY, JSON.stringify(summary, null, 2) + '\n');

console.log('\nheld-out reward of greedy completions (100 prompts never used by GRPO):');
console.log('seed | numeric before -> after | format before -> after | sampled train reward first 10 -> last 10 steps');
for (const r of results) {
  console.log(`${String(r.seed).padStart(4)} | ${r.before.numeric.toFixed(2)} -> ${r.after.numeric.toFixed(2)}            | ${r.before.format.toFixed(2)} -> ${r.after.format.toFixed(2)}           | ${r.train_reward_first10.toFixed(3)} -> ${r.train_reward_last10.toFixed(3)}`);
}
console.log(`mean numeric reward ${summary.mean_before.toFixed(3)} -> ${summary.mean_after.toFixed(3)}; ${summary.total_seconds.toFixed(0)} s this session; summary: ${path.relative(ROOT, at('summary.json'))}`);
