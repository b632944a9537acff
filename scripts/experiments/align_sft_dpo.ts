// SFT and DPO work, not just run (issue 5), with the project's own commands on a model it trains:
//   1. base     a byte-level Llama (src/io/byte_tokenizer.ts, ChatML template; 0.8M parameters)
//               trained from scratch with `kompresor train --init` on the licence texts every
//               Debian system ships (/usr/share/common-licenses, package base-files, as .txt)
//   2. data     short Polish arithmetic questions, "Ile to jest 7 + 5?", as chat prompts; the
//               (a, b) problems are split into training ones and held-out ones (a fifth)
//   3. sft      `kompresor sft` on the training problems; the answers are right, half of them
//               bare ("12") and half wordy ("To jest 12."), as a mixed-style annotation would be
//   4. dpo      `kompresor dpo` twice from the SFT model (also the frozen reference), plain DPO
//               and DPO-Positive (lambda 2.5), on pairs of the training problems: chosen = the
//               bare right sum; rejected = the wordy right sum, or a wrong sum (one too high or
//               low, an operand repeated, the operands run together)
//   5. report   on the HELD-OUT problems only: completion loss of the base and SFT models; the
//               share of held-out pairs where the model gives the chosen answer a higher log-prob
//               than the rejected one (SFT vs DPO vs DPO-P, overall and per kind of rejected
//               answer), DPO's reward accuracy against its reference, greedy answers
// Usage: node --import tsx scripts/experiments/align_sft_dpo.ts [OUT]   (default runs/align_sft_dpo)
// A phase whose output exists is skipped (run it again after an interruption). Environment:
// PRETRAIN_STEPS (400), SFT_STEPS (1200), DPO_STEPS (200), DPO_LR (2e-4), OPERANDS (12: a, b in
// 0..11), RESULTS (bench/results: where the JSON summary is copied). About 2 minutes on 2 idle
// cores (7 when they are busy). Every number printed is measured in this run.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { byteLevelTokenizer } from '../../src/io/byte_tokenizer.ts';
import { loadTokenizer, type LoadedTokenizer } from '../../src/io/tokenizer.ts';
import { loadModel } from '../../src/model/load.ts';
import type { Decoder } from '../../src/model/decoder.ts';
import { generate } from '../../src/model/generate.ts';
import { loadDpoData, loadSftData } from '../../src/align/data.ts';
import { sftEvalSource, dpoEvalSource, type DpoBatch } from '../../src/align/sources.ts';
import { completionLoss } from '../../src/align/sft.ts';
import { rowLogps } from '../../src/align/logprobs.ts';
import { readMetrics } from '../../src/train/metrics.ts';

const ROOT = path.join(import.meta.dirname, '../..');
const OUT = path.resolve(process.argv[2] ?? 'runs/align_sft_dpo');
const env = (k: string, d: number) => Number(process.env[k] ?? d);
const PRETRAIN_STEPS = env('PRETRAIN_STEPS', 400), SFT_STEPS = env('SFT_STEPS', 1200), DPO_STEPS = env('DPO_STEPS', 200), DPO_LR = env('DPO_LR', 2e-4);
const RESULTS = process.env.RESULTS ?? 'bench/results';
const CORPUS = '/usr/share/common-licenses';
const at = (...p: string[]) => path.join(OUT, ...p);
const t0 = performance.now();

function kompresor(...args: string[]): void {
  console.error(`+ kompresor ${args.join(' ')}`);
  const t = performance.now();
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/kompresor.mjs'), ...args], { stdio: ['ignore', 'inherit', 'inherit'], cwd: ROOT });
  if (r.status !== 0) throw new Error(`kompresor ${args[0]} failed with status ${r.status}`);
  console.error(`  (${((performance.now() - t) / 1000).toFixed(0)} s)`);
}
const unless = (file: string, f: () => void) => (fs.existsSync(file) ? console.error(`= ${file} exists; skipped`) : f());

// ---------------------------------------------------------------------------------------------
// 1. the base model

/** A small Llama over bytes: 4 layers, hidden 128, GQA 4/2 heads of 32, SwiGLU 384, tied embeddings. */
function baseConfig(vocab: number, eos: number, pad: number): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: vocab, hidden_size: 128, intermediate_size: 384,
    num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 32, hidden_act: 'silu',
    max_position_embeddings: 1024, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: true, attention_bias: false,
    initializer_range: 0.02, torch_dtype: 'float32', bos_token_id: null, eos_token_id: eos, pad_token_id: pad,
  };
}

function initBase(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const tf = byteLevelTokenizer();
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tf.tokenizerJson));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tf.tokenizerConfig, null, 2));
  const cfg = baseConfig(tf.vocabSize, tf.specialIds['<|im_end|>'], tf.specialIds['<|endoftext|>']);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg, null, 2) + '\n');
}

// ---------------------------------------------------------------------------------------------
// 2. the task

const N = env('OPERANDS', 12); // operands 0..N-1
const question = (a: number, b: number) => `Ile to jest ${a} + ${b}?`;
const chat = (a: number, b: number) => [{ role: 'user', content: question(a, b) }];

/** A fifth of the problems (by a seeded shuffle) is held out. */
function split(): { train: [number, number][]; held: [number, number][] } {
  const all: [number, number][] = [];
  for (let a = 0; a < N; a++) for (let b = 0; b < N; b++) all.push([a, b]);
  let s = 12345;
  const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  for (let i = all.length - 1; i > 0; i--) { const j = Math.floor(rand() * (i + 1)); [all[i], all[j]] = [all[j], all[i]]; }
  const k = Math.floor(all.length / 5);
  return { held: all.slice(0, k), train: all.slice(k) };
}

/**
 * The rejected answers of the DPO pairs (the chosen one is always the bare sum, "12"): the right
 * sum in the wordy style half of the SFT answers use ("To jest 12."), and four wrong sums: one
 * too high, one too low, an operand repeated, the operands run together ("3 + 4" -> "34").
 */
const REJECTED = ['wordy', 'plus_one', 'minus_one', 'operand', 'concatenated'] as const;
type Rejected = (typeof REJECTED)[number];
const wordy = (c: number) => `To jest ${c}.`;
function rejected(a: number, b: number, kind: Rejected): string {
  const c = a + b;
  const v = { wordy: wordy(c), plus_one: c + 1, minus_one: c === 0 ? 2 : c - 1, operand: a !== c ? a : b !== c ? b : c + 2, concatenated: `${a}${b}` }[kind];
  return String(v);
}

/** Share of SFT answers written in the wordy style (the rest bare); seeded. */
const WORDY = 0.5;

function writeJsonl(file: string, rows: unknown[]): void {
  fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

function writeData(): void {
  const { train, held } = split();
  let s = 777;
  const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  // prompt/completion rows: SFT trains on what DPO scores, everything after the generation prompt
  // ("9<|im_end|>\n"); `messages` rows would leave out the "\n" after <|im_end|> (the template's span)
  const sft = (ps: [number, number][], share: number) => ps.map(([a, b]) => ({ prompt: chat(a, b), completion: rand() < share ? wordy(a + b) : String(a + b) }));
  // DPO pairs: the bare right sum against every kind of rejected answer, for every problem
  const pairs = (ps: [number, number][]) => ps.flatMap(([a, b]) => REJECTED.map((kind) => (
    { prompt: chat(a, b), chosen: String(a + b), rejected: rejected(a, b, kind), kind })));
  writeJsonl(at('sft_train.jsonl'), sft(train, WORDY));
  writeJsonl(at('sft_held.jsonl'), sft(held, 0));
  writeJsonl(at('dpo_train.jsonl'), pairs(train));
  writeJsonl(at('dpo_held.jsonl'), pairs(held));
}

// ---------------------------------------------------------------------------------------------
// 5. measurements on the held-out problems

const SEQ = 64;

function heldOutLoss(model: Decoder, tok: LoadedTokenizer): { loss: number; tokens: number } {
  const ex = loadSftData(tok, at('sft_held.jsonl'), { maxLength: SEQ }).examples;
  return completionLoss(model, sftEvalSource(ex, { packing: true, padId: 0 }).batches(16, SEQ, 1000));
}

/** Greedy answers to the held-out questions: the bare sum ("12"), or the right sum in either style. */
function exactMatch(model: Decoder, tok: LoadedTokenizer): { accuracy: number; right_any_style: number; samples: string[] } {
  const { held } = split();
  const prompts = held.map(([a, b]) => tok.encode(tok.applyChatTemplate(chat(a, b), { addGenerationPrompt: true }), { addSpecialTokens: false }));
  const eos = tok.eosTokenId!;
  const r = generate(model, prompts, { maxNewTokens: 16, sampling: { temperature: 0, topK: 0, topP: 1, minP: 0 }, seed: 0, eosTokenIds: [eos] });
  let bare = 0, any = 0;
  const samples: string[] = [];
  r.tokens.forEach((t, i) => {
    const [a, b] = held[i];
    const ids = t.filter((id) => id !== eos), answer = ids.length > 0 ? tok.decode(ids) : '', done = t.at(-1) === eos;
    if (done && answer === String(a + b)) bare++;
    if (done && (answer === String(a + b) || answer === wordy(a + b))) any++;
    if (i < 5) samples.push(`${a}+${b}=${JSON.stringify(answer)}`);
  });
  return { accuracy: bare / held.length, right_any_style: any / held.length, samples };
}

/**
 * Held-out pairs: the share where logπ(chosen) > logπ(rejected), over all pairs and per kind of
 * rejected answer; with a reference, also DPO's reward accuracy (β log πθ/πref higher for the right answer).
 */
function pairAccuracy(model: Decoder, tok: LoadedTokenizer, ref?: Decoder) {
  const pairs = loadDpoData(tok, at('dpo_held.jsonl'), { maxLength: SEQ }).examples;
  let pref = 0, rew = 0;
  const byKind = Object.fromEntries(REJECTED.map((k) => [k, 0])) as Record<Rejected, number>;
  for (const b of dpoEvalSource(pairs, { padId: 0 }).batches(16, SEQ, 1000) as DpoBatch[]) {
    const P = b.B / 2, lp = rowLogps(model, b), lr = ref ? rowLogps(ref, b) : null;
    for (let k = 0; k < b.pairs; k++) {
      if (lp[k] > lp[P + k]) { pref++; byKind[REJECTED[b.index[k] % REJECTED.length]]++; }
      if (lr && lp[k] - lr[k] > lp[P + k] - lr[P + k]) rew++;
    }
  }
  const perKind = pairs.length / REJECTED.length;
  return {
    prefers_chosen: pref / pairs.length,
    by_rejected: Object.fromEntries(REJECTED.map((k) => [k, byKind[k] / perKind])) as Record<Rejected, number>,
    ...(ref ? { reward_accuracy: rew / pairs.length } : {}), pairs: pairs.length,
  };
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  fs.mkdirSync(OUT, { recursive: true });
  unless(at('base/config.json'), () => initBase(at('base')));
  unless(at('corpus'), () => {
    fs.mkdirSync(at('corpus'));
    for (const f of fs.readdirSync(CORPUS)) {
      const p = path.join(CORPUS, f);
      if (fs.statSync(p).isFile()) fs.copyFileSync(p, at('corpus', `${f}.txt`));
    }
  });
  unless(at('data/manifest.json'), () => kompresor('data', 'prepare', '--input', at('corpus'), '--tokenizer', at('base'), '--out', at('data'), '--val-fraction', '0.02', '--seed', '0'));
  unless(at('pretrain/final'), () => kompresor('train', '--init', at('base/config.json'), '--data', at('data'), '--out', at('pretrain'),
    '--steps', String(PRETRAIN_STEPS), '--micro-batch', '16', '--seq-len', '128', '--lr', '3e-3', '--min-lr', '3e-4', '--warmup', '30',
    '--eval-every', '0', '--save-every', '0', '--seed', '1'));
  writeData();
  unless(at('sft/final'), () => kompresor('sft', at('pretrain/final'), '--data', at('sft_train.jsonl'), '--eval-data', at('sft_held.jsonl'), '--out', at('sft'),
    '--steps', String(SFT_STEPS), '--micro-batch', '8', '--seq-len', String(SEQ), '--lr', '3e-3', '--min-lr', '3e-4', '--warmup', '20', '--weight-decay', '0.1',
    '--eval-every', '50', '--save-every', '0', '--seed', '1'));
  // DPO and DPO-Positive from the SFT model (also their frozen reference), same pairs and budget
  const dpoRun = (name: string, lambda: string) => unless(at(name, 'final'), () => kompresor('dpo', at('sft/final'), '--data', at('dpo_train.jsonl'),
    '--eval-data', at('dpo_held.jsonl'), '--out', at(name), '--steps', String(DPO_STEPS), '--micro-batch', '16', '--seq-len', String(SEQ),
    '--lr', String(DPO_LR), '--min-lr', String(DPO_LR / 10), '--warmup', '10', '--beta', '0.1', '--dpop-lambda', lambda, '--precompute-ref',
    '--eval-every', '50', '--eval-batches', '1000', '--save-every', '0', '--seed', '1'));
  dpoRun('dpo', '0');
  dpoRun('dpop', '2.5');

  const tok = loadTokenizer(at('base'));
  const load = async (d: string) => (await loadModel(at(d, 'final'))).model;
  const base = await load('pretrain'), sft = await load('sft'), dpo = await load('dpo'), dpop = await load('dpop');
  const models = { base, sft, dpo, dpop } as const;
  const each = <T>(f: (m: Decoder) => T) => Object.fromEntries(Object.entries(models).map(([k, m]) => [k, f(m)])) as Record<keyof typeof models, T>;
  const loss = each((m) => heldOutLoss(m, tok)), em = each((m) => exactMatch(m, tok));
  const pr = { sft: pairAccuracy(sft, tok), dpo: pairAccuracy(dpo, tok, sft), dpop: pairAccuracy(dpop, tok, sft) };
  const chosenLogp = (d: string) => {
    const v = readMetrics(at(d, 'metrics.jsonl')).filter((l) => l.split === 'validation');
    return { first: v[0]['logps/chosen'] as number, last: v.at(-1)!['logps/chosen'] as number };
  };
  const pretrainVal = readMetrics(at('pretrain/metrics.jsonl')).filter((l) => l.split === 'validation').at(-1)!.loss as number;
  const { train, held } = split();
  const summary = {
    task: `Polish arithmetic "${question(7, 5)}" -> "12", operands 0..${N - 1}: ${train.length} training problems, ${held.length} held out`,
    base: { params: base.layout.total, pretrain_steps: PRETRAIN_STEPS, corpus: CORPUS, validation_ce_nats_per_byte: pretrainVal },
    sft: { steps: SFT_STEPS, examples: train.length, lr: 3e-3, weight_decay: 0.1, wordy_share: WORDY },
    dpo: { steps: DPO_STEPS, pairs: train.length * REJECTED.length, beta: 0.1, loss: 'sigmoid', lr: DPO_LR, dpop_lambda: { dpo: 0, dpop: 2.5 }, rejected: REJECTED },
    held_out: {
      completion_loss: { ...Object.fromEntries(Object.entries(loss).map(([k, v]) => [k, v.loss])), tokens: loss.sft.tokens },
      exact_match: Object.fromEntries(Object.entries(em).map(([k, v]) => [k, v.accuracy])),
      right_any_style: Object.fromEntries(Object.entries(em).map(([k, v]) => [k, v.right_any_style])),
      samples: Object.fromEntries(Object.entries(em).map(([k, v]) => [k, v.samples])),
      prefers_chosen_answer: { sft: pr.sft.prefers_chosen, dpo: pr.dpo.prefers_chosen, dpop: pr.dpop.prefers_chosen, pairs: pr.sft.pairs },
      prefers_chosen_by_rejected: { sft: pr.sft.by_rejected, dpo: pr.dpo.by_rejected, dpop: pr.dpop.by_rejected },
      reward_accuracy: { dpo: pr.dpo.reward_accuracy, dpop: pr.dpop.reward_accuracy },
      chosen_logp: { dpo: chosenLogp('dpo'), dpop: chosenLogp('dpop') },
    },
    seconds: (performance.now() - t0) / 1000,
  };
  fs.writeFileSync(at('summary.json'), JSON.stringify(summary, null, 2) + '\n');
  fs.mkdirSync(path.join(ROOT, RESULTS), { recursive: true });
  fs.copyFileSync(at('summary.json'), path.join(ROOT, RESULTS, 'align_sft_dpo.json'));
  const f = (v: number) => v.toFixed(3), pct = (v: number | undefined) => `${(100 * (v ?? NaN)).toFixed(1)}%`;
  const h = summary.held_out;
  console.log(`held-out (${held.length} problems never trained on; DPO-P = DPO-Positive, lambda 2.5):`);
  console.log(`  completion loss (nats/token): base ${f(loss.base.loss)} -> SFT ${f(loss.sft.loss)}; DPO ${f(loss.dpo.loss)}, DPO-P ${f(loss.dpop.loss)}`);
  console.log(`  greedy answer = the bare sum: base ${pct(em.base.accuracy)} -> SFT ${pct(em.sft.accuracy)}; DPO ${pct(em.dpo.accuracy)}, DPO-P ${pct(em.dpop.accuracy)}`);
  console.log(`  greedy answer = the right sum, either style: base ${pct(em.base.right_any_style)} -> SFT ${pct(em.sft.right_any_style)}; DPO ${pct(em.dpo.right_any_style)}, DPO-P ${pct(em.dpop.right_any_style)}`);
  console.log(`  pairs with logπ(chosen) > logπ(rejected) (${h.prefers_chosen_answer.pairs}): SFT ${pct(pr.sft.prefers_chosen)} -> DPO ${pct(pr.dpo.prefers_chosen)}, DPO-P ${pct(pr.dpop.prefers_chosen)}`);
  for (const k of REJECTED) console.log(`    rejected = ${k.padEnd(12)} SFT ${pct(pr.sft.by_rejected[k])} -> DPO ${pct(pr.dpo.by_rejected[k])}, DPO-P ${pct(pr.dpop.by_rejected[k])}`);
  console.log(`  reward accuracy vs the SFT reference: DPO ${pct(pr.dpo.reward_accuracy)}, DPO-P ${pct(pr.dpop.reward_accuracy)}`);
  console.log(`  mean logπ(chosen answer) over the held-out pairs: SFT ${f(h.chosen_logp.dpo.first)} -> DPO ${f(h.chosen_logp.dpo.last)}, DPO-P ${f(h.chosen_logp.dpop.last)}`);
  console.log(`  samples: SFT ${em.sft.samples.join(' ')}; DPO-P ${em.dpop.samples.join(' ')}`);
  console.log(`wrote ${at('summary.json')} and ${path.join(RESULTS, 'align_sft_dpo.json')} (${summary.seconds.toFixed(0)} s)`);
}

await main();
