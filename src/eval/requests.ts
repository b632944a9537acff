// The three request types of lm-evaluation-harness (lm_eval/api/model.py, models/huggingface.py),
// answered by our engine:
//   loglikelihood(ctx, cont)   -> (sum of log p(cont | ctx), is_greedy)
//   loglikelihood_rolling(txt) -> sum of log p over every token of txt, in disjoint windows
//   generate_until(ctx, opts)  -> text generated until a stop string, EOS or max_gen_toks
// and the token-level rules they follow:
//   - text is encoded without special tokens (HFLM.tok_encode for causal models);
//   - trailing whitespace of ctx moves to the front of cont, enc(ctx + cont) is split at
//     len(enc(ctx)) (TemplateLM._encode_pair); an empty ctx is replaced by the prefix token
//     (BOS, else the tokenizer's EOS) and cont is encoded on its own;
//   - the model sees (ctx + cont)[-(max_length + 1):][:-1] and the last len(cont) positions are
//     scored (HFLM._loglikelihood_tokens): a long context is cut from the left;
//   - rolling windows are utils.get_rolling_token_windows(max_seq_len = max_length,
//     context_len = 1, prefix_token) made disjoint: every token is predicted exactly once, the
//     first window conditions on the prefix token, later full windows on one token of context.
//
// Efficiency: every scored item is (input tokens, the targets of its last positions). Items are
// deduplicated, sorted longest first and packed into rows of T tokens as separate documents
// (attention and RoPE positions restart per document, so packing equals separate rows), rows are
// batched up to a token budget, and the lm_head runs only on the positions that are scored.
import type { Decoder } from '../model/decoder.ts';
import { linearForward } from '../model/parameters.ts';
import type { LoadedTokenizer } from '../io/tokenizer.ts';
import { batchFromDocs, type Batch } from '../model/batch.ts';
import { generate } from '../model/generate.ts';
import type { SamplingOptions } from '../model/sampling.ts';
import { kernels as K } from '../tensor/ops.ts';
import { KompresorError } from '../errors.ts';

export interface LoglikelihoodRequest { context: string; continuation: string }
export interface LoglikelihoodResult { ll: number; isGreedy: boolean }

export interface GenerateRequest {
  context: string;
  /** Stop strings; the output is cut at the first occurrence of each, in order. */
  until: string[];
  maxGenToks: number;
  /** Greedy unless the task's generation_kwargs ask for sampling. */
  sampling: SamplingOptions;
  seed: number;
}

/** What the evaluation loop needs from a model (src/eval/run.ts); `done` reports progress in requests. */
export interface EvalLM {
  loglikelihood(reqs: LoglikelihoodRequest[], done?: (n: number) => void): LoglikelihoodResult[];
  loglikelihoodRolling(texts: string[], done?: (n: number) => void): number[];
  generateUntil(reqs: GenerateRequest[], done?: (n: number) => void): string[];
}

/** One scored item: the model reads `input`; its last targets.length positions predict `targets`. */
export interface ScoreItem { input: number[]; targets: number[] }

export interface EngineLMOptions {
  /** Context length of the model for evaluation (HFLM.max_length): max_position_embeddings, capped at 2048 by default. */
  maxLength: number;
  /** Tokens per forward pass (B x T) when scoring. */
  batchTokens: number;
  /** Prompts generated together in one batch. */
  genBatch: number;
  /** Conditions an empty context and the first rolling window: BOS, else the tokenizer's EOS. */
  prefixTokenId: number;
}

// ---------------------------------------------------------------------------------------------
// tokenization rules

/** TemplateLM._encode_pair plus TemplateLM.loglikelihood's empty-context rule. */
export function encodePair(encode: (s: string) => number[], prefixTokenId: number, context: string, continuation: string): { ctx: number[]; cont: number[] } {
  if (context === '') return { ctx: [prefixTokenId], cont: encode(continuation) };
  const nSpaces = context.length - context.trimEnd().length;
  if (nSpaces > 0) {
    continuation = context.slice(context.length - nSpaces) + continuation;
    context = context.slice(0, context.length - nSpaces);
  }
  const whole = encode(context + continuation);
  const ctx = encode(context);
  return { ctx, cont: whole.slice(ctx.length) };
}

/** The scored item of a (ctx, cont) pair: what HFLM feeds the model for it. */
export function pairItem(ctx: number[], cont: number[], maxLength: number): ScoreItem {
  if (cont.length > maxLength) {
    throw new KompresorError({ code: 'input_invalid', where: 'loglikelihood', rule: 'a continuation must fit the model\'s context',
      expected: `at most max_length = ${maxLength} tokens`, found: `${cont.length}`, hint: 'raise --max-length or shorten the choices' });
  }
  const input = ctx.concat(cont).slice(-(maxLength + 1)).slice(0, -1);
  return { input, targets: cont };
}

/**
 * utils.get_rolling_token_windows(tokens, prefix, maxLen, context_len = 1) after
 * make_disjoint_window, as scored items: windows of at most maxLen inputs, each target once.
 */
export function rollingWindows(tokens: number[], prefixTokenId: number, maxLen: number): ScoreItem[] {
  if (tokens.length === 0) return [];
  const out: ScoreItem[] = [];
  const first = Math.min(maxLen, tokens.length);
  out.push({ input: [prefixTokenId, ...tokens.slice(0, first - 1)], targets: tokens.slice(0, first) });
  for (let predicted = first; predicted < tokens.length;) {
    const n = Math.min(tokens.length - predicted, maxLen); // pred_len = maxLen - context_len + 1
    const end = predicted + n;
    // the window's input is tokens[end - maxLen - 1, end - 1); disjoint: its first maxLen - n + 1
    // tokens are context, and the model reads (context + targets)[-(maxLen + 1):][:-1]
    const window = tokens.slice(Math.max(0, end - maxLen - 1), end - 1);
    const ctx = window.slice(0, window.length - n + 1);
    out.push(pairItem(ctx, tokens.slice(end - n, end), maxLen));
    predicted = end;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// scoring items with the engine

/** First-fit decreasing: item indices per row of capacity T (items sorted longest first). */
export function packRows(lengths: number[], T: number): number[][] {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b] - lengths[a] || a - b);
  const rows: number[][] = [], free: number[] = [];
  for (const i of order) {
    let r = free.findIndex((f) => f >= lengths[i]);
    if (r < 0) { rows.push([]); free.push(T); r = rows.length - 1; }
    rows[r].push(i);
    free[r] -= lengths[i];
  }
  return rows;
}

/** Rows of lm_head output computed at once when scoring. */
export const HEAD_ROWS = 64;

/** Unique items packed into rows of T tokens, B rows per forward pass; slot[i] = items[i]'s unique index. */
export interface PackedItems { unique: ScoreItem[]; slot: number[]; rows: number[][]; T: number; B: number }

/** Deduplicates items and packs them longest first (the same batches for every scorer). */
export function packItems(items: ScoreItem[], batchTokens: number): PackedItems {
  const key = (it: ScoreItem) => `${it.input.join(',')}|${it.targets.join(',')}`;
  const uniq = new Map<string, number>(), unique: ScoreItem[] = [];
  const slot = items.map((it) => {
    const k = key(it);
    if (!uniq.has(k)) { uniq.set(k, unique.length); unique.push(it); }
    return uniq.get(k)!;
  });
  const T = unique.length > 0 ? Math.max(...unique.map((it) => it.input.length)) : 1;
  const rows = unique.length > 0 ? packRows(unique.map((it) => it.input.length), T) : [];
  return { unique, slot, rows, T, B: Math.max(1, Math.floor(batchTokens / T)) };
}

/** The forward pass of packed rows [r0, r0 + B): its documents are the items' inputs. */
export function packedBatch(p: PackedItems, r0: number): Batch {
  return batchFromDocs(p.rows.slice(r0, r0 + p.B).map((r) => r.map((i) => p.unique[i].input)), p.T, 0);
}

/** out[n, V] = x[n, C] lm_headᵀ for n <= the head's rows per call. */
export type HeadFn = (out: Float32Array, x: Float32Array, n: number) => void;

/**
 * Sum of log-probabilities of each item's targets and whether each target is the argmax.
 * Identical items are scored once. Log-softmax in float64 over the float32 logits.
 */
export function scoreItems(model: Decoder, items: ScoreItem[], batchTokens: number, done?: (n: number) => void): LoglikelihoodResult[] {
  const p = packItems(items, batchTokens);
  const res = new Array<LoglikelihoodResult>(p.unique.length);
  const C = model.cfg.hiddenSize, V = model.cfg.vocabSize;
  const head: HeadFn = (out, x, n) => linearForward(out.subarray(0, n * V), x.subarray(0, n * C), model.w.lmHead, null, n, C, V, false, model.w.f16);
  const wasForwardOnly = model.forwardOnly;
  model.forwardOnly = true;
  try {
    let finished = 0;
    for (let r0 = 0; r0 < p.rows.length; r0 += p.B) {
      const batch = packedBatch(p, r0);
      const a = model.forward(batch);
      scoreRows(a.buf.lnf, C, V, head, HEAD_ROWS, p, r0, res);
      finished += p.rows.slice(r0, r0 + p.B).reduce((s, g) => s + g.length, 0);
      done?.(Math.round(finished / p.unique.length * items.length)); // in the caller's items
    }
  } finally {
    model.forwardOnly = wasForwardOnly;
    model.releaseActivations();
  }
  return p.slot.map((s) => res[s]);
}

/**
 * The results of the items in packed rows [r0, r0 + B) from the final-norm output of their forward
 * pass, lnf (B*T, C): the lm_head (headRows rows per call) and log-softmax only where targets are.
 */
export function scoreRows(lnf: Float32Array, C: number, V: number, head: HeadFn, headRows: number, p: PackedItems, r0: number, res: LoglikelihoodResult[]): void {
  const rows = p.rows.slice(r0, r0 + p.B), T = p.T;
  // (row position, target) of every scored position, grouped by item
  const positions: number[] = [], targets: number[] = [], owner: number[] = [];
  rows.forEach((r, b) => {
    let start = 0;
    for (const i of r) {
      const it = p.unique[i], first = start + it.input.length - it.targets.length;
      it.targets.forEach((tok, j) => { positions.push(b * T + first + j); targets.push(tok); owner.push(i); });
      start += it.input.length;
    }
  });
  for (const i of rows.flat()) res[i] = { ll: 0, isGreedy: true };
  const x = new Float32Array(headRows * C), logits = new Float32Array(headRows * V);
  for (let p0 = 0; p0 < positions.length; p0 += headRows) {
    const n = Math.min(headRows, positions.length - p0);
    for (let j = 0; j < n; j++) x.set(lnf.subarray(positions[p0 + j] * C, (positions[p0 + j] + 1) * C), j * C);
    head(logits, x, n);                                                  // (n, V)
    for (let j = 0; j < n; j++) {
      const { lp, isMax } = logProb(logits.subarray(j * V, (j + 1) * V), targets[p0 + j]);
      const r = res[owner[p0 + j]];
      r.ll += lp;
      r.isGreedy &&= isMax;
    }
  }
}

/** log softmax(row)[target] in float64, and whether target is the argmax (first index on ties). */
export function logProb(row: Float32Array, target: number): { lp: number; isMax: boolean } {
  let m = -Infinity, arg = 0;
  for (let v = 0; v < row.length; v++) if (row[v] > m) { m = row[v]; arg = v; }
  let s = 0;
  for (let v = 0; v < row.length; v++) s += Math.exp(row[v] - m);
  return { lp: row[target] - m - Math.log(s), isMax: arg === target };
}

// ---------------------------------------------------------------------------------------------
// the engine as an EvalLM

/**
 * The request rules over token items (shared by the in-memory engine and the layer-streamed one,
 * src/eval/stream_lm.ts): encoding, pairs and rolling windows; a subclass scores the items.
 */
export abstract class TokenLM implements EvalLM {
  constructor(readonly tok: LoadedTokenizer, readonly o: EngineLMOptions) {}

  encode(text: string): number[] { return this.tok.encode(text, { addSpecialTokens: false }); }

  /** Each item's (sum of log p, is greedy), `done` in items. */
  protected abstract score(items: ScoreItem[], done?: (n: number) => void): LoglikelihoodResult[];

  abstract generateUntil(reqs: GenerateRequest[], done?: (n: number) => void): string[];

  loglikelihood(reqs: LoglikelihoodRequest[], done?: (n: number) => void): LoglikelihoodResult[] {
    const items = reqs.map((r) => {
      const { ctx, cont } = encodePair((s) => this.encode(s), this.o.prefixTokenId, r.context, r.continuation);
      return pairItem(ctx, cont, this.o.maxLength);
    });
    return this.score(items, done);
  }

  loglikelihoodRolling(texts: string[], done?: (n: number) => void): number[] {
    const windows = texts.map((t) => rollingWindows(this.encode(t), this.o.prefixTokenId, this.o.maxLength));
    const flat = windows.flat();
    const owner = windows.flatMap((w, i) => w.map(() => i));
    const scored = this.score(flat, done && ((n) => done(Math.min(texts.length, Math.floor(n * texts.length / Math.max(1, flat.length))))));
    const out = new Array<number>(texts.length).fill(0);
    scored.forEach((r, k) => { out[owner[k]] += r.ll; });
    return out;
  }
}

export class EngineLM extends TokenLM {
  constructor(readonly model: Decoder, tok: LoadedTokenizer, o: EngineLMOptions) { super(tok, o); }

  protected score(items: ScoreItem[], done?: (n: number) => void): LoglikelihoodResult[] {
    return scoreItems(this.model, items, this.o.batchTokens, done);
  }

  generateUntil(reqs: GenerateRequest[], done?: (n: number) => void): string[] {
    const out = new Array<string>(reqs.length);
    // longest context first, as the harness orders them; batches share their settings
    const order = reqs.map((_, i) => i).sort((a, b) => reqs[b].context.length - reqs[a].context.length || a - b);
    let finished = 0;
    for (let i0 = 0; i0 < order.length;) {
      const first = reqs[order[i0]];
      const batch: number[] = [];
      while (i0 < order.length && batch.length < this.o.genBatch && sameSettings(reqs[order[i0]], first)) batch.push(order[i0++]);
      const texts = this.generateBatch(batch.map((i) => reqs[i]));
      batch.forEach((i, k) => { out[i] = texts[k]; });
      finished += batch.length;
      done?.(finished);
    }
    return out;
  }

  /** One batch of prompts with the same stop strings, length and sampling. */
  private generateBatch(reqs: GenerateRequest[]): string[] {
    const { until, maxGenToks, sampling, seed } = reqs[0];
    const maxCtx = Math.max(1, this.o.maxLength - maxGenToks);
    const prompts = reqs.map((r) => {
      const ids = this.encode(r.context).slice(-maxCtx);
      return ids.length > 0 ? ids : [this.o.prefixTokenId];
    });
    const stops = until.filter((s) => s.length > 0);
    const decode = (ids: readonly number[]) => this.tok.decode(ids, { skipSpecialTokens: true });
    const r = generate(this.model, prompts, {
      maxNewTokens: maxGenToks, sampling, seed, eosTokenIds: this.tok.eosTokenIds, padTokenId: this.tok.padTokenId ?? undefined,
      stopRow: stops.length === 0 ? undefined : (_b, ids) => { const s = decode(ids); return stops.some((t) => s.includes(t)); },
    });
    this.model.releaseActivations();
    return r.tokens.map((ids) => cutAtStops(decode(ids), until));
  }
}

function sameSettings(a: GenerateRequest, b: GenerateRequest): boolean {
  return a.maxGenToks === b.maxGenToks && a.seed === b.seed && JSON.stringify(a.until) === JSON.stringify(b.until)
    && JSON.stringify(a.sampling) === JSON.stringify(b.sampling);
}

/** HFLM.generate_until: for each non-empty stop string in order, s = s.split(term)[0]. */
export function cutAtStops(s: string, until: string[]): string {
  for (const t of until) if (t.length > 0) s = s.split(t)[0];
  return s;
}
