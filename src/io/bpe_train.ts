// Trains a byte-level BPE tokenizer (the GPT-2/Qwen2 family that byte_tokenizer.ts writes).
//
//   text -> NFC -> pre-tokens (the Qwen2 split pattern of byte_tokenizer.ts: a word with its
//   leading space or punctuation, single digits, punctuation runs, newline runs, spaces)
//   -> UTF-8 bytes, symbol id = byte value -> repeated merges of the most frequent adjacent pair
//
// Merge order is deterministic: the pair with the highest count (each pre-token weighted by how
// often it occurs) wins; ties go to the smaller (left id, right id), ids being bytes 0..255 and
// then tokens in order of creation. A merge whose string already exists (reached by another pair)
// reuses that token, as Hugging Face's BpeTrainer does. Training stops at the vocabulary size or
// when the best pair occurs fewer than minFrequency times.
//
// Cost: pair counts are kept incrementally. Each merge rewrites only the pre-tokens that contain
// the pair (found through a pair -> pre-token index) and updates counts from their old and new
// symbols; a max-heap with lazy deletion gives the next pair. The heap keeps every pair with at
// least one entry whose count is >= its true count, so popping until an entry matches the true
// count yields the true best pair (stale entries are re-pushed with the current count).
import { bytesToUnicode, byteLevelTokenizer, SPECIAL_TOKENS, type TokenizerFiles } from './byte_tokenizer.ts';
import { KompresorError } from '../errors.ts';

/** byte_tokenizer.ts's split pattern in JavaScript syntax ((?i:...) spelled out). */
export const PRETOKENIZE =
  /'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

/** Pre-tokens of a text, as the tokenizer splits it (NFC first, like its normalizer). */
export function pretokenize(text: string): string[] {
  return text.normalize('NFC').match(PRETOKENIZE) ?? [];
}

/** Adds the pre-tokens of `text` to `counts`. */
export function countPretokens(text: string, counts: Map<string, number> = new Map()): Map<string, number> {
  for (const w of pretokenize(text)) counts.set(w, (counts.get(w) ?? 0) + 1);
  return counts;
}

export interface BpeTrainOptions {
  /** Final vocabulary size: 256 bytes + merges + the special tokens of byte_tokenizer.ts. */
  vocabSize: number;
  /** Stop when the best pair occurs fewer times than this (default 2). */
  minFrequency?: number;
  onProgress?: (merges: number, total: number) => void;
}

export interface BpeTrainResult {
  /** Pairs of symbol strings over the GPT-2 byte alphabet, in priority order (tokenizer.json "merges"). */
  merges: [string, string][];
  /** How often each merge's pair occurred when it was chosen. */
  counts: number[];
  /** Token strings by id: 256 bytes, then the tokens created by merges (no specials). */
  tokens: string[];
}

const MAX_VOCAB = 1 << 16;                                  // pair key = left * 2^16 + right

export function trainBpe(pretokenCounts: Map<string, number>, o: BpeTrainOptions): BpeTrainResult {
  const target = o.vocabSize - SPECIAL_TOKENS.length;
  if (!Number.isInteger(o.vocabSize) || target < 256 || o.vocabSize > MAX_VOCAB) {
    throw new KompresorError({ code: 'input_invalid', where: 'trainBpe vocabSize', rule: `vocabSize must be an integer in [${256 + SPECIAL_TOKENS.length}, ${MAX_VOCAB}]`,
      found: String(o.vocabSize) });
  }
  const minFrequency = o.minFrequency ?? 2;
  const alphabet = bytesToUnicode();
  const tokens = [...alphabet];
  const idOf = new Map<string, number>(tokens.map((t, i) => [t, i]));

  // pre-tokens as symbol arrays, sorted so the result never depends on Map insertion order
  const keys = [...pretokenCounts.keys()].sort();
  const W = keys.length;
  const syms: Int32Array[] = new Array(W);
  const lens = new Int32Array(W);
  const freq = new Float64Array(W);
  const encoder = new TextEncoder();
  for (let w = 0; w < W; w++) {
    const b = encoder.encode(keys[w]);
    syms[w] = Int32Array.from(b);
    lens[w] = b.length;
    freq[w] = pretokenCounts.get(keys[w])!;
  }

  // pair counts and the pair -> pre-tokens index (may hold stale or repeated entries)
  const pairCount = new Map<number, number>();
  const where = new Map<number, number[]>();
  for (let w = 0; w < W; w++) {
    const s = syms[w];
    for (let j = 0; j + 1 < lens[w]; j++) {
      const k = s[j] * MAX_VOCAB + s[j + 1];
      pairCount.set(k, (pairCount.get(k) ?? 0) + freq[w]);
      const list = where.get(k);
      if (list === undefined) where.set(k, [w]); else if (list[list.length - 1] !== w) list.push(w);
    }
  }
  const heap = new PairHeap();
  for (const [k, c] of pairCount) heap.push(c, k);

  const merges: [string, string][] = [];
  const counts: number[] = [];
  const stamp = new Int32Array(W).fill(-1);
  let longest = 1;
  for (let w = 0; w < W; w++) longest = Math.max(longest, lens[w]);
  const scratch = new Int32Array(longest);
  const total = target - 256;
  while (tokens.length < target && heap.size > 0) {
    const [c, k] = heap.pop();
    const cur = pairCount.get(k) ?? 0;
    if (c !== cur) { if (c > cur && cur > 0) heap.push(cur, k); continue; }
    if (cur < minFrequency) break;
    const a = Math.floor(k / MAX_VOCAB), b = k % MAX_VOCAB;
    const str = tokens[a] + tokens[b];
    let id = idOf.get(str);
    if (id === undefined) { id = tokens.length; tokens.push(str); idOf.set(str, id); }
    merges.push([tokens[a], tokens[b]]);
    counts.push(cur);

    // rewrite every pre-token holding (a, b); collect the count changes of pairs with the new token
    const grown = new Map<number, number>();
    const step = merges.length;
    for (const w of where.get(k) ?? []) {
      if (stamp[w] === step) continue;
      stamp[w] = step;
      const s = syms[w], n = lens[w];
      let m = 0, changed = false;
      for (let j = 0; j < n; j++) {
        if (j + 1 < n && s[j] === a && s[j + 1] === b) { scratch[m++] = id; j++; changed = true; } else scratch[m++] = s[j];
      }
      if (!changed) continue;
      const f = freq[w];
      for (let j = 0; j + 1 < n; j++) addCount(pairCount, s[j] * MAX_VOCAB + s[j + 1], -f);
      for (let j = 0; j + 1 < m; j++) {
        const pk = scratch[j] * MAX_VOCAB + scratch[j + 1];
        addCount(pairCount, pk, f);
        if (scratch[j] === id || scratch[j + 1] === id) {
          grown.set(pk, 1);
          const list = where.get(pk);
          if (list === undefined) where.set(pk, [w]); else if (list[list.length - 1] !== w) list.push(w);
        }
      }
      s.set(scratch.subarray(0, m));
      lens[w] = m;
    }
    where.delete(k);
    for (const pk of grown.keys()) { const pc = pairCount.get(pk) ?? 0; if (pc > 0) heap.push(pc, pk); }
    o.onProgress?.(tokens.length - 256, total);
  }
  return { merges, counts, tokens };
}

function addCount(m: Map<number, number>, k: number, d: number): void {
  const v = (m.get(k) ?? 0) + d;
  if (v === 0) m.delete(k); else m.set(k, v);
}

/** Max-heap of (count, pair key): higher count first, then the smaller key. */
class PairHeap {
  private c: number[] = [];
  private k: number[] = [];
  get size(): number { return this.c.length; }
  private before(i: number, j: number): boolean {
    return this.c[i] > this.c[j] || (this.c[i] === this.c[j] && this.k[i] < this.k[j]);
  }
  private swap(i: number, j: number): void {
    [this.c[i], this.c[j]] = [this.c[j], this.c[i]];
    [this.k[i], this.k[j]] = [this.k[j], this.k[i]];
  }
  push(count: number, key: number): void {
    this.c.push(count); this.k.push(key);
    let i = this.c.length - 1;
    while (i > 0) { const p = (i - 1) >> 1; if (!this.before(i, p)) break; this.swap(i, p); i = p; }
  }
  pop(): [number, number] {
    const top: [number, number] = [this.c[0], this.k[0]];
    const lastC = this.c.pop()!, lastK = this.k.pop()!;
    if (this.c.length > 0) {
      this.c[0] = lastC; this.k[0] = lastK;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let best = i;
        if (l < this.c.length && this.before(l, best)) best = l;
        if (r < this.c.length && this.before(r, best)) best = r;
        if (best === i) break;
        this.swap(i, best); i = best;
      }
    }
    return top;
  }
}

// -----------------------------------------------------------------------------------------------
// applying merges (a reference encoder) and the tokenizer files

/**
 * Token ids of `text` by the standard BPE rule: within each pre-token, repeatedly merge the
 * adjacent pair with the lowest merge rank. The tokenizer library must give the same ids.
 */
export function encodeWithMerges(text: string, merges: [string, string][]): number[] {
  const alphabet = bytesToUnicode();
  const ids = new Map<string, number>(alphabet.map((t, i) => [t, i]));
  for (const [a, b] of merges) if (!ids.has(a + b)) ids.set(a + b, ids.size);
  const rank = new Map<string, number>(merges.map(([a, b], i) => [`${a} ${b}`, i]));
  const encoder = new TextEncoder();
  const out: number[] = [];
  for (const w of pretokenize(text)) {
    let parts = Array.from(encoder.encode(w), (x) => alphabet[x]);
    for (;;) {
      let best = -1, bestRank = Infinity;
      for (let j = 0; j + 1 < parts.length; j++) {
        const r = rank.get(`${parts[j]} ${parts[j + 1]}`);
        if (r !== undefined && r < bestRank) { bestRank = r; best = j; }
      }
      if (best < 0) break;
      const [a, b] = merges[bestRank];
      const next: string[] = [];
      for (let j = 0; j < parts.length; j++) {
        if (j + 1 < parts.length && parts[j] === a && parts[j + 1] === b) { next.push(a + b); j++; } else next.push(parts[j]);
      }
      parts = next;
    }
    for (const p of parts) out.push(ids.get(p)!);
  }
  return out;
}

export interface BpeFilesOptions {
  /** bos_token of tokenizer_config.json; nothing adds it automatically (add_bos_token false). */
  bosToken?: (typeof SPECIAL_TOKENS)[number] | null;
  modelMaxLength?: number;
}

/**
 * tokenizer.json + tokenizer_config.json of a trained tokenizer: byte_tokenizer.ts's format
 * (ChatML template with {% generation %} markers around the assistant content and its
 * <|im_end|>, eos <|im_end|>, pad <|endoftext|>) plus a bos_token, <|endoftext|> by default as in GPT-2.
 */
export function bpeTokenizerFiles(merges: [string, string][], o: BpeFilesOptions = {}): TokenizerFiles {
  const files = byteLevelTokenizer(merges);
  files.tokenizerConfig.bos_token = o.bosToken === undefined ? '<|endoftext|>' : o.bosToken;
  if (o.modelMaxLength !== undefined) files.tokenizerConfig.model_max_length = o.modelMaxLength;
  return files;
}
