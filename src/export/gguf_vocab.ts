// The tokenizer of a Hugging Face model folder as GGUF key-values (tokenizer.ggml.*), following
// llama.cpp's convert_hf_to_gguf.py. Byte-level BPE vocabularies (GPT-2, Llama 3, Qwen2):
//   tokenizer.ggml.model       "gpt2"
//   tokenizer.ggml.pre         which split regex llama.cpp applies ("qwen2", "llama-bpe", "gpt-2")
//   tokenizer.ggml.tokens      one string per embedding row; rows past the tokenizer are "[PAD<i>]"
//   tokenizer.ggml.token_type  i32 per token: 1 normal, 3 control (special), 4 user-defined, 5 unused
//   tokenizer.ggml.merges      "a b" per merge, in priority order
//   tokenizer.ggml.{bos,eos,unknown,padding}_token_id, add_bos_token, add_eos_token
//   tokenizer.chat_template    chat_template.jinja, else tokenizer_config.json's chat_template
// SentencePiece-style BPE vocabularies (Llama 2, Mistral, Bielik: byte_fallback, "▁" for spaces)
// go out as llama.cpp's "llama" (SPM) tokenizer, see ./gguf_vocab_spm.ts. WordPiece and Unigram
// vocabularies are refused.
import fs from 'node:fs';
import nodePath from 'node:path';
import { KompresorError } from '../errors.ts';
import { kv, type GgufValue } from './gguf_writer.ts';
import { readJsonObject, checkTokenizerModel } from '../io/tokenizer.ts';
import { isSentencePieceBpe, spmKv } from './gguf_vocab_spm.ts';
import { tokenTable } from './gguf_tokens.ts';

export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

type Json = Record<string, unknown>;
export type KvList = Array<[string, GgufValue]>;

export interface GgufVocab {
  kv: KvList;
  /** Tokens written (= embedding rows). */
  tokens: number;
  /** tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (SentencePiece-style BPE). */
  model: 'gpt2' | 'llama';
  /** tokenizer.ggml.pre, or "-" for the llama model (which has no pre-tokenizer). */
  pre: string;
  warnings: string[];
}

/**
 * The pre-tokenizer split regexes llama.cpp knows, by the name it reads from tokenizer.ggml.pre
 * (llama-vocab.cpp); matched against tokenizer.json's Split pattern.
 */
const KNOWN_PRE: Array<[string, string]> = [
  ['qwen2', "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"],
  ['llama-bpe', "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"],
];

// ---------------------------------------------------------------------------------------------
// entry point

/** Tokenizer key-values for a model whose embedding has `vocabSize` rows. */
export function vocabKv(dir: string, vocabSize: number, rawConfig: Json): GgufVocab {
  const jsonPath = nodePath.join(dir, 'tokenizer.json');
  if (!fs.existsSync(jsonPath)) {
    throw new KompresorError({ code: 'file_not_found', where: jsonPath, rule: 'GGUF export needs the model\'s tokenizer.json',
      found: 'no such file', hint: 'copy tokenizer.json (and tokenizer_config.json) from the original model into the folder' });
  }
  const tok = readJsonObject(jsonPath);
  checkTokenizerModel(jsonPath, tok); // model type, a non-empty vocabulary, regexes (as loading does)
  const configPath = nodePath.join(dir, 'tokenizer_config.json');
  const tokConfig = fs.existsSync(configPath) ? readJsonObject(configPath) : {};
  const warnings: string[] = [];
  const tail = (ids: Map<string, number>, n: number): KvList => {
    const out = specialKv(tok, tokConfig, rawConfig, ids, n);
    const template = chatTemplate(dir, tokConfig);
    if (template !== null) out.push(['tokenizer.chat_template', kv.str(template)]);
    return out;
  };
  if (isSentencePieceBpe(tok)) {
    const spm = spmKv(jsonPath, tok, tokConfig, vocabSize, warnings);
    return { kv: [...spm.kv, ...tail(spm.ids, vocabSize)], tokens: vocabSize, model: 'llama', pre: '-', warnings };
  }
  const model = checkByteLevelBpe(jsonPath, tok);
  const { tokens, types, ids } = tokenList(jsonPath, model, tok, vocabSize);
  const pre = detectPre(tok, warnings);
  const out: KvList = [
    ['tokenizer.ggml.model', kv.str('gpt2')],
    ['tokenizer.ggml.pre', kv.str(pre)],
    ['tokenizer.ggml.tokens', kv.arr('string', tokens)],
    ['tokenizer.ggml.token_type', kv.arr('i32', types)],
    ['tokenizer.ggml.merges', kv.arr('string', merges(jsonPath, model))],
    ...tail(ids, tokens.length),
  ];
  return { kv: out, tokens: tokens.length, model: 'gpt2', pre, warnings };
}


// ---------------------------------------------------------------------------------------------
// tokens

/** The model section of a byte-level BPE tokenizer.json; anything else is refused with the reason. */
function checkByteLevelBpe(path: string, tok: Json): Json {
  const model = (tok.model ?? {}) as Json;
  const refuse = (found: string, hint: string) => new KompresorError({ code: 'config_unsupported', where: `${path}: model`,
    rule: 'GGUF export supports BPE tokenizers, byte-level (GPT-2, Llama 3, Qwen2) or SentencePiece-style (Llama 2, Mistral)', found, hint });
  if (model.type !== 'BPE' || typeof model.vocab !== 'object' || model.vocab === null) {
    throw refuse(`a ${String(model.type)} tokenizer`, 'WordPiece/Unigram vocabularies have no GGUF mapping here; use llama.cpp\'s convert_hf_to_gguf.py');
  }
  if (!mentionsByteLevel(tok.pre_tokenizer)) {
    throw refuse('a BPE with neither a ByteLevel pre-tokenizer nor byte_fallback with "▁" spaces',
      'llama.cpp\'s tokenizers cannot reproduce this one; use llama.cpp\'s convert_hf_to_gguf.py if it knows the model');
  }
  return model;
}

function mentionsByteLevel(node: unknown): boolean {
  if (typeof node !== 'object' || node === null) return false;
  const n = node as Json;
  if (n.type === 'ByteLevel') return true;
  const list = n.pretokenizers;
  return Array.isArray(list) && list.some(mentionsByteLevel);
}

function tokenList(path: string, model: Json, tok: Json, vocabSize: number):
  { tokens: string[]; types: number[]; ids: Map<string, number> } {
  const { tokens, types, ids, put } = tokenTable(path, vocabSize, TOKEN_TYPE.UNUSED);
  for (const [text, id] of Object.entries(model.vocab as Record<string, number>)) put(text, id, TOKEN_TYPE.NORMAL);
  for (const a of (Array.isArray(tok.added_tokens) ? tok.added_tokens : []) as Json[]) {
    const text = String(a.content);
    const special = a.special === true || (text.startsWith('<|') && text.endsWith('|>'));
    put(text, Number(a.id), special ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED);
  }
  const filled = Array.from(tokens, (t, i) => t ?? `[PAD${i}]`);
  return { tokens: filled, types, ids };
}

/** Merges as "a b" strings; pair-form merges with spaces inside a part encode them as U+0120. */
function merges(path: string, model: Json): string[] {
  const list = model.merges;
  if (!Array.isArray(list)) {
    throw new KompresorError({ code: 'tokenizer_invalid', where: `${path}: model.merges`, rule: 'a BPE tokenizer needs a merges list', found: typeof list });
  }
  return list.map((m) => {
    if (typeof m === 'string') return m;
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') {
      return m.map((part: string) => part.replaceAll(' ', '\u0120')).join(' ');
    }
    throw new KompresorError({ code: 'tokenizer_invalid', where: `${path}: model.merges`, rule: 'each merge must be "a b" or ["a", "b"]', found: JSON.stringify(m) });
  });
}

/** tokenizer.ggml.pre from the Split regex (or GPT-2's plain ByteLevel with its own regex). */
function detectPre(tok: Json, warnings: string[]): string {
  const patterns: string[] = [];
  const walk = (node: unknown): void => {
    if (typeof node !== 'object' || node === null) return;
    const n = node as Json;
    if (n.type === 'Split' && typeof n.pattern === 'object' && n.pattern !== null && typeof (n.pattern as Json).Regex === 'string') {
      patterns.push((n.pattern as Json).Regex as string);
    }
    if (n.type === 'ByteLevel' && n.use_regex !== false) patterns.push('<gpt2>');
    if (Array.isArray(n.pretokenizers)) n.pretokenizers.forEach(walk);
  };
  walk(tok.pre_tokenizer);
  if (patterns.length === 1 && patterns[0] === '<gpt2>') return 'gpt-2';
  const known = patterns.length === 1 ? KNOWN_PRE.find(([, re]) => re === patterns[0]) : undefined;
  if (known) return known[0];
  warnings.push('the tokenizer\'s pre-tokenizer split is not one llama.cpp names; wrote tokenizer.ggml.pre "default", ' +
    'so llama.cpp may split text differently from the model (token ids given directly are unaffected)');
  return 'default';
}

// ---------------------------------------------------------------------------------------------
// special tokens and chat template

export function specialKv(tok: Json, tokConfig: Json, rawConfig: Json, ids: Map<string, number>, n: number): KvList {
  const out: KvList = [];
  const keys: Array<[string, string]> = [['bos', 'bos'], ['eos', 'eos'], ['unk', 'unknown'], ['pad', 'padding']];
  for (const [hf, gguf] of keys) {
    const id = specialId(tokConfig[`${hf}_token`], ids) ?? configId(rawConfig[`${hf}_token_id`]);
    if (id !== null && id < n) out.push([`tokenizer.ggml.${gguf}_token_id`, kv.u32(id)]);
  }
  const added = addSpecial(tok, tokConfig);
  out.push(['tokenizer.ggml.add_bos_token', kv.bool(added.bos)]);
  out.push(['tokenizer.ggml.add_eos_token', kv.bool(added.eos)]);
  return out;
}

/** A tokenizer_config.json token: a string or an AddedToken object {content}. */
function specialId(entry: unknown, ids: Map<string, number>): number | null {
  const text = typeof entry === 'string' ? entry
    : typeof entry === 'object' && entry !== null && typeof (entry as Json).content === 'string' ? (entry as Json).content as string : null;
  return text === null ? null : ids.get(text) ?? null;
}

function configId(v: unknown): number | null {
  const x = Array.isArray(v) ? v[0] : v;
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 ? x : null;
}

/**
 * Whether encoding adds BOS/EOS: tokenizer_config.json's add_bos_token/add_eos_token when given,
 * else a TemplateProcessing post-processor that starts/ends with the BOS/EOS token.
 */
function addSpecial(tok: Json, tokConfig: Json): { bos: boolean; eos: boolean } {
  const text = (e: unknown) => (typeof e === 'string' ? e : typeof e === 'object' && e !== null ? (e as Json).content : undefined);
  let bos = false, eos = false;
  const pp = tok.post_processor as Json | null | undefined;
  const procs = pp ? (Array.isArray(pp.processors) ? pp.processors as Json[] : [pp]) : [];
  for (const p of procs) {
    if (p.type !== 'TemplateProcessing' || !Array.isArray(p.single) || p.single.length < 2) continue;
    const first = ((p.single[0] as Json).SpecialToken as Json | undefined)?.id;
    const last = ((p.single[p.single.length - 1] as Json).SpecialToken as Json | undefined)?.id;
    if (first !== undefined && first === text(tokConfig.bos_token)) bos = true;
    if (last !== undefined && last === text(tokConfig.eos_token)) eos = true;
  }
  if (typeof tokConfig.add_bos_token === 'boolean') bos = tokConfig.add_bos_token;
  if (typeof tokConfig.add_eos_token === 'boolean') eos = tokConfig.add_eos_token;
  return { bos, eos };
}

/** chat_template.jinja wins over tokenizer_config.json (a string, or the "default" of a list). */
function chatTemplate(dir: string, tokConfig: Json): string | null {
  const file = nodePath.join(dir, 'chat_template.jinja');
  if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8');
  const t = tokConfig.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const d = t.find((x) => typeof x === 'object' && x !== null && (x as Json).name === 'default') as Json | undefined;
    if (d && typeof d.template === 'string') return d.template;
  }
  return null;
}
