// SentencePiece-style BPE tokenizers (tokenizer.json with byte_fallback and "▁" for spaces, as
// Llama 2, Mistral and Bielik ship) as llama.cpp's "llama" (SPM) tokenizer:
//   tokenizer.ggml.model             "llama"
//   tokenizer.ggml.tokens            the pieces, "▁" kept; rows past the tokenizer are "[PAD<i>]"
//   tokenizer.ggml.scores            f32 per token: −(rank of the first merge that makes it)
//   tokenizer.ggml.token_type        1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
//   tokenizer.ggml.add_space_prefix  whether a "▁" is put before the text (Prepend / Metaspace)
//
// Why scores from merge ranks. llama.cpp's SPM tokenizer starts from characters and repeatedly
// joins the adjacent pair whose concatenation is a token of the highest score (leftmost on ties);
// HF's BPE joins the adjacent pair of the lowest merge rank (leftmost on ties). With score(t) =
// −rank of the merge producing t, both take the same steps as long as every concatenation that is
// a token is also a merge, which holds for vocabularies made from a SentencePiece model (HF's
// converter lists every such pair). tokenizer.json has no SentencePiece scores (they live in
// tokenizer.model, which convert_hf_to_gguf reads; without it, it writes −1000 for all and the
// tokenization differs). Tokens no merge makes get a score below every merge. Characters missing
// from the vocabulary fall back to <0xXX> byte tokens in both.
import { KompresorError } from '../errors.ts';
import { kv } from './gguf_writer.ts';
import { tokenTable } from './gguf_tokens.ts';
import type { KvList } from './gguf_vocab.ts';

type Json = Record<string, unknown>;
const T = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;
const BYTE_TOKEN = /^<0x[0-9A-Fa-f]{2}>$/;

/** A BPE with byte_fallback whose spaces become "▁" (a Replace normalizer or a Metaspace pre-tokenizer). */
export function isSentencePieceBpe(tok: Json): boolean {
  const model = (tok.model ?? {}) as Json;
  return model.type === 'BPE' && model.byte_fallback === true && (metaspaceOf(tok) !== null || replacesSpaces(tok.normalizer));
}

function nodes(n: unknown, key: 'normalizers' | 'pretokenizers'): Json[] {
  if (typeof n !== 'object' || n === null) return [];
  const j = n as Json;
  return Array.isArray(j[key]) ? (j[key] as unknown[]).flatMap((c) => nodes(c, key)) : [j];
}

function metaspaceOf(tok: Json): Json | null {
  return nodes(tok.pre_tokenizer, 'pretokenizers').find((p) => p.type === 'Metaspace') ?? null;
}

function replacesSpaces(norm: unknown): boolean {
  return nodes(norm, 'normalizers').some((n) => n.type === 'Replace' && (n.pattern as Json | undefined)?.String === ' ' && n.content === '\u2581');
}

/** Whether the text gets a leading "▁": a Prepend("▁") normalizer, or a Metaspace that prepends. */
function addSpacePrefix(tok: Json, warnings: string[]): boolean {
  if (nodes(tok.normalizer, 'normalizers').some((n) => n.type === 'Prepend' && n.prepend === '\u2581')) return true;
  const m = metaspaceOf(tok);
  if (!m) return false;
  const scheme = typeof m.prepend_scheme === 'string' ? m.prepend_scheme : m.add_prefix_space === false ? 'never' : 'always';
  if (scheme === 'first') {
    warnings.push('Metaspace prepend_scheme "first" adds "▁" only at the start of the text, llama.cpp also after each special ' +
      'token: text right after a special token may tokenize differently');
  }
  return scheme !== 'never';
}

/** Key-values of the llama (SPM) tokenizer, and the id of every token text. */
export function spmKv(path: string, tok: Json, tokConfig: Json, vocabSize: number, warnings: string[]): { kv: KvList; ids: Map<string, number> } {
  const model = tok.model as Json;
  const others = nodes(tok.normalizer, 'normalizers').filter((n) => n.type !== 'Prepend' && n.type !== 'Replace');
  if (others.length > 0) {
    warnings.push(`the normalizer also applies ${others.map((n) => String(n.type)).join(', ')}, which llama.cpp's llama tokenizer does not: ` +
      'text it changes may tokenize differently');
  }
  const { tokens, types, ids, put } = tokenTable(path, vocabSize, T.UNUSED);
  const unk = typeof model.unk_token === 'string' ? model.unk_token : null;
  for (const [text, id] of Object.entries(model.vocab as Record<string, number>)) {
    put(text, id, text === unk ? T.UNKNOWN : BYTE_TOKEN.test(text) ? T.BYTE : T.NORMAL);
  }
  for (const a of (Array.isArray(tok.added_tokens) ? tok.added_tokens : []) as Json[]) {
    const text = String(a.content);
    put(text, Number(a.id), text === unk ? T.UNKNOWN : a.special === true ? T.CONTROL : T.USER_DEFINED);
  }
  return {
    ids,
    kv: [
      ['tokenizer.ggml.model', kv.str('llama')],
      ['tokenizer.ggml.tokens', kv.arr('string', Array.from(tokens, (t, i) => t ?? `[PAD${i}]`))],
      ['tokenizer.ggml.scores', kv.arr('f32', mergeScores(path, model, tokens))],
      ['tokenizer.ggml.token_type', kv.arr('i32', types)],
      ['tokenizer.ggml.add_space_prefix', kv.bool(addSpacePrefix(tok, warnings))],
    ],
  };
}

/** score[id] = −(rank of the first merge producing the token); −(merges + 1) for tokens no merge makes, 0 for padding. */
function mergeScores(path: string, model: Json, tokens: Array<string | undefined>): number[] {
  const list = model.merges;
  if (!Array.isArray(list)) {
    throw new KompresorError({ code: 'tokenizer_invalid', where: `${path}: model.merges`, rule: 'a BPE tokenizer needs a merges list', found: typeof list });
  }
  const rank = new Map<string, number>();
  list.forEach((m, r) => {
    const parts = typeof m === 'string' ? splitMerge(m) : Array.isArray(m) && m.length === 2 ? m as string[] : null;
    if (!parts) throw new KompresorError({ code: 'tokenizer_invalid', where: `${path}: model.merges[${r}]`, rule: 'each merge must be "a b" or ["a", "b"]', found: JSON.stringify(m) });
    const t = parts[0] + parts[1];
    if (!rank.has(t)) rank.set(t, r);
  });
  return Array.from(tokens, (t) => (t === undefined ? 0 : -(rank.get(t) ?? list.length + 1)));
}

/** "a b" -> [a, b]; SentencePiece pieces hold no spaces ("▁" stands for them), so one space splits. */
function splitMerge(m: string): [string, string] | null {
  const i = m.indexOf(' ');
  return i > 0 && i === m.lastIndexOf(' ') ? [m.slice(0, i), m.slice(i + 1)] : null;
}
