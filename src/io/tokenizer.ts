// Tokenizer and chat template of a model folder: tokenizer.json through @huggingface/tokenizers,
// the chat template through @huggingface/jinja (the same code transformers.js runs).
// Template lookup follows transformers: chat_template.jinja wins over tokenizer_config.json's
// chat_template, which is a string or a list of {name, template} (we use "default").
import fs from 'node:fs';
import nodePath from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { KompresorError } from '../errors.ts';
import { renderSandboxed } from './template_sandbox.ts';

export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

export interface ChatTemplateOptions {
  addGenerationPrompt?: boolean;
  /** Extra template variables (tools, enable_thinking, date_string, ...). */
  extra?: Record<string, unknown>;
  /**
   * Render `{% generation %}` and `{% endgeneration %}` (TRL's assistant-span markers, normally
   * invisible) as these two strings, so a caller can find the spans in the text (SFT masks).
   */
  markGeneration?: [start: string, end: string];
}

export interface LoadedTokenizer {
  dir: string;
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: ArrayLike<number>, opts?: { skipSpecialTokens?: boolean }): string;
  /** Renders the conversation to text; throws 'chat_template' when the folder has no template. */
  applyChatTemplate(messages: ChatMessage[], opts?: ChatTemplateOptions): string;
  hasChatTemplate: boolean;
  /** The template marks assistant spans with {% generation %} ... {% endgeneration %}. */
  hasGenerationMarkers: boolean;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  bosTokenId: number | null;
  /** tokenizer_config.json's eos_token (what TRL appends to plain-text completions), or null. */
  eosTokenId: number | null;
  /** Tokens that end generation: generation_config.json's eos_token_id(s), then the tokenizer's eos_token. */
  eosTokenIds: number[];
  padTokenId: number | null;
  /** Largest token id + 1, added tokens included (the embedding needs at least this many rows). */
  vocabSize: number;
}

type Json = Record<string, unknown>;

export function loadTokenizer(dir: string): LoadedTokenizer {
  const jsonPath = nodePath.join(dir, 'tokenizer.json');
  if (!fs.existsSync(jsonPath)) {
    throw new KompresorError({ code: 'file_not_found', where: jsonPath, rule: 'the model folder must hold tokenizer.json',
      found: 'no such file', hint: 'copy tokenizer.json from the original model (sentencepiece-only tokenizer.model folders are not supported)' });
  }
  const tokenizerJson = readJsonObject(jsonPath);
  const configPath = nodePath.join(dir, 'tokenizer_config.json');
  const tokConfig = fs.existsSync(configPath) ? readJsonObject(configPath) : {};
  checkTokenizerModel(jsonPath, tokenizerJson);
  checkTokenIds(jsonPath, tokenizerJson);
  const tok = construct(jsonPath, tokenizerJson, tokConfig);
  const specials = specialTokenStrings(tokConfig);
  const idOf = (t: string | undefined) => (t === undefined ? null : tok.token_to_id(t) ?? null);
  const template = findTemplate(dir, tokConfig);
  let compiled: string | null = null;
  const marked = new Map<string, string>();
  const bosTokenId = idOf(specials.bos_token as string | undefined);
  const tokEos = idOf(specials.eos_token as string | undefined);
  return {
    dir,
    encode: (text, opts) => tok.encode(text, { add_special_tokens: opts?.addSpecialTokens ?? true }).ids,
    decode: (ids, opts) => tok.decode(Array.from(ids), { skip_special_tokens: opts?.skipSpecialTokens ?? false }),
    applyChatTemplate(messages, opts) {
      if (!template) throw noTemplate(dir);
      if (opts?.markGeneration) {
        const key = opts.markGeneration.join('\u0000');
        if (!marked.has(key)) marked.set(key, compile({ ...template, text: withGenerationOutput(template.text, opts.markGeneration) }));
        return render(marked.get(key)!, template.source, messages, specials, opts);
      }
      compiled ??= compile(template);
      return render(compiled, template.source, messages, specials, opts);
    },
    hasChatTemplate: template !== null,
    hasGenerationMarkers: template !== null && GENERATION_TAG.test(template.text),
    tokenToId: (t) => tok.token_to_id(t),
    idToToken: (id) => tok.id_to_token(id),
    bosTokenId,
    eosTokenId: tokEos,
    eosTokenIds: unique([...generationEos(dir), ...(tokEos === null ? [] : [tokEos])]),
    padTokenId: idOf(specials.pad_token as string | undefined),
    vocabSize: maxId(tok) + 1,
  };
}

/** A JSON object from a tokenizer file; one-line tokenizer_invalid errors otherwise. */
export function readJsonObject(path: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(fs.readFileSync(path, 'utf8'));
  } catch (e) {
    throw new KompresorError({ code: 'tokenizer_invalid', where: path, rule: 'the file must be valid JSON', found: (e as Error).message });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new KompresorError({ code: 'tokenizer_invalid', where: path, rule: 'the file must hold a JSON object', found: String(v) });
  }
  return v as Json;
}

const MODEL_TYPES = ['BPE', 'WordPiece', 'WordLevel', 'Unigram'];

/**
 * What @huggingface/tokenizers accepts without a word: a model type it does not know ("Foo") or
 * an empty vocabulary gave garbage text and a GGUF that tokenises everything to 0 tokens (fuzz
 * report D23); and a pre-tokenizer or normalizer regex with a nested quantifier ((a+)+$) hangs on
 * a short input, as in the Rust library (D18). Known tokenizers (GPT-2, Llama 3, Qwen2, Mistral)
 * have no nested quantifiers, so they are refused as a rule: "star height" at most 1.
 */
export function checkTokenizerModel(path: string, json: Json): void {
  const bad = (where: string, rule: string, expected: string, found: string, hint?: string) =>
    new KompresorError({ code: 'tokenizer_invalid', where: `${path}: ${where}`, rule, expected, found, hint });
  const model = json.model as Json | undefined;
  if (typeof model !== 'object' || model === null) throw bad('model', 'tokenizer.json must have a model', 'an object', String(model));
  if (model.type !== undefined && !MODEL_TYPES.includes(String(model.type))) {
    throw bad('model.type', 'the tokenizer model must be one @huggingface/tokenizers implements', MODEL_TYPES.join(', '), JSON.stringify(model.type));
  }
  const v = model.vocab;
  const size = Array.isArray(v) ? v.length : typeof v === 'object' && v !== null ? Object.keys(v).length : 0;
  if (size === 0) throw bad('model.vocab', 'the vocabulary must not be empty', 'at least one token', v === undefined ? 'no vocab' : 'none');
  for (const [where, pattern] of regexes(json, '')) {
    const nested = nestedQuantifier(pattern);
    if (nested) {
      throw bad(where, 'tokenizer regexes must not nest quantifiers (they take exponential time on short inputs)', 'a group without + or * inside when it is repeated',
        JSON.stringify(nested), 'this is not a tokenizer a model was trained with; re-download tokenizer.json');
    }
  }
}

/**
 * Token ids must be integers from 0, dense up to a slack of ID_SLACK: @huggingface/tokenizers
 * stores the vocabulary as an array indexed by id and walks it to its length, so one id of 1e9
 * made every command that loads the tokenizer hang (found by scripts/fuzz.ts).
 */
const ID_SLACK = 65_536;

function checkTokenIds(path: string, json: Json): void {
  const model = json.model as Json | undefined;
  const vocab = model && typeof model.vocab === 'object' && model.vocab !== null && !Array.isArray(model.vocab) ? Object.entries(model.vocab as Json) : [];
  const added = Array.isArray(json.added_tokens) ? (json.added_tokens as Json[]).map((t): [string, unknown] => [String(t?.content), t?.id]) : [];
  // a Unigram vocabulary is a list ([token, score] pairs, ids by position): only its length counts
  const listed = model && Array.isArray(model.vocab) ? model.vocab.length : vocab.length;
  const limit = listed + added.length + ID_SLACK;
  for (const [where, list] of [['model.vocab', vocab], ['added_tokens', added]] as const) {
    for (const [token, id] of list) {
      if (typeof id === 'number' && Number.isInteger(id) && id >= 0 && id < limit) continue;
      throw new KompresorError({ code: 'tokenizer_invalid', where: `${path}: ${where} ${JSON.stringify(token)}`,
        rule: `token ids must be integers from 0 to the token count plus ${ID_SLACK}`, expected: `an integer in [0, ${limit})`, found: JSON.stringify(id),
        hint: 're-export the tokenizer with a recent transformers (tokenizer.save_pretrained)' });
    }
  }
}

/** Every {"Regex": "..."} of tokenizer.json with its JSON path. */
function regexes(node: unknown, where: string): [string, string][] {
  if (typeof node !== 'object' || node === null) return [];
  const out: [string, string][] = [];
  for (const [k, v] of Object.entries(node as Json)) {
    const at = where ? `${where}.${k}` : k;
    if (k === 'Regex' && typeof v === 'string') out.push([at, v]);
    else if (k !== 'vocab' && k !== 'merges' && k !== 'added_tokens') out.push(...regexes(v, at));
  }
  return out;
}

/** The first repeated group that contains a quantifier ("(a+)+"), or null. */
export function nestedQuantifier(pattern: string): string | null {
  const open: { start: number; quantified: boolean }[] = [];
  let inClass = false;
  const quantAt = (i: number) => {
    const c = pattern[i];
    if (c === '*' || c === '+') return true;
    const m = c === '{' ? /^\{(\d*),?(\d*)\}/.exec(pattern.slice(i)) : null;
    return m !== null && (m[2] === '' ? pattern.slice(i).startsWith(`{${m[1]},`) : Number(m[2]) > 1);
  };
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') { i++; continue; }
    if (inClass) { if (c === ']') inClass = false; continue; }
    if (c === '[') { inClass = true; continue; }
    if (c === '(') { open.push({ start: i, quantified: false }); continue; }
    if (c === ')') {
      const g = open.pop();
      if (g && g.quantified && quantAt(i + 1)) return pattern.slice(g.start, pattern[i + 1] === '{' ? pattern.indexOf('}', i) + 1 : i + 2);
      if (g && g.quantified && open.length > 0) open[open.length - 1].quantified = true;
      if (g && quantAt(i + 1) && open.length > 0) open[open.length - 1].quantified = true;
      continue;
    }
    if (quantAt(i) && open.length > 0) open[open.length - 1].quantified = true;
  }
  return null;
}

function construct(path: string, json: Json, config: Json): Tokenizer {
  try {
    return new Tokenizer(json, config);
  } catch (e) {
    throw new KompresorError({ code: 'tokenizer_invalid', where: path, rule: 'the tokenizer must be loadable by @huggingface/tokenizers',
      found: (e as Error).message, hint: 're-export the tokenizer with a recent transformers (tokenizer.save_pretrained)' });
  }
}

/** bos_token, eos_token, ...: strings or {content} AddedToken objects in tokenizer_config.json. */
function specialTokenStrings(config: Json): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) {
    if (!k.endsWith('_token')) continue;
    if (typeof v === 'string') out[k] = v;
    else if (typeof v === 'object' && v !== null && typeof (v as Json).content === 'string') out[k] = (v as Json).content;
  }
  if (Array.isArray(config.additional_special_tokens)) out.additional_special_tokens = config.additional_special_tokens;
  return out;
}

function generationEos(dir: string): number[] {
  const p = nodePath.join(dir, 'generation_config.json');
  if (!fs.existsSync(p)) return [];
  const v = readJsonObject(p).eos_token_id;
  const list = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
  return list.filter((x): x is number => typeof x === 'number' && Number.isSafeInteger(x));
}

function unique(xs: number[]): number[] { return [...new Set(xs)]; }

// a loop, not Math.max(...ids): 150k arguments overflow the call stack
function maxId(tok: Tokenizer): number {
  let m = -1;
  for (const id of tok.get_vocab(true).values()) if (id > m) m = id;
  return m;
}

// ---------------------------------------------------------------------------------------------
// chat templates

interface TemplateSource { text: string; source: string }

function findTemplate(dir: string, config: Json): TemplateSource | null {
  const file = nodePath.join(dir, 'chat_template.jinja');
  if (fs.existsSync(file)) return { text: fs.readFileSync(file, 'utf8'), source: file };
  const source = `${nodePath.join(dir, 'tokenizer_config.json')}: chat_template`;
  const t = config.chat_template;
  if (t === undefined || t === null) return null;
  if (typeof t === 'string') return { text: t, source };
  if (Array.isArray(t)) {
    const named = t.find((x) => typeof x === 'object' && x !== null && (x as Json).name === 'default');
    if (named && typeof (named as Json).template === 'string') return { text: (named as Json).template as string, source };
    throw new KompresorError({ code: 'chat_template', where: source, rule: 'a list of chat templates must contain one named "default"',
      expected: '[{"name": "default", "template": "..."}]',
      found: `names ${JSON.stringify(t.map((x) => (x as Json)?.name))}` });
  }
  throw new KompresorError({ code: 'chat_template', where: source, rule: 'chat_template must be a string or a list of {name, template}',
    found: typeof t });
}

/** {% generation %} / {% endgeneration %}, with optional whitespace control (TRL: has_generation_markers). */
const GENERATION_TAG = /\{%-?\s*(?:end)?generation\s*-?%\}/;

/** The template with its generation tags turned into outputs of the marker strings (same whitespace control). */
function withGenerationOutput(text: string, [start, end]: [string, string]): string {
  const lit = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  return text.replace(/\{%(-?)\s*(end)?generation\s*(-?)%\}/g,
    (_m, l: string, isEnd: string | undefined, r: string) => `{{${l} ${lit(isEnd ? end : start)} ${r}}}`);
}

function noTemplate(dir: string): KompresorError {
  return new KompresorError({ code: 'chat_template', where: dir, rule: 'chat formatting needs a chat template',
    expected: 'chat_template in tokenizer_config.json or a chat_template.jinja file', found: 'neither',
    hint: 'use an instruct/chat model folder, add its chat_template.jinja, or run without --chat' });
}

/** Parses the template here (one-line errors), returns its text for the sandbox to render. */
function compile(t: TemplateSource): string {
  try {
    new Template(t.text); // eslint-disable-line no-new
    return t.text;
  } catch (e) {
    throw new KompresorError({ code: 'chat_template', where: t.source, rule: 'the chat template must parse', found: (e as Error).message });
  }
}

function render(text: string, source: string, messages: ChatMessage[], specials: Record<string, unknown>,
  opts: ChatTemplateOptions | undefined): string {
  // bos/eos_token default to '' so templates that print them unconditionally still render; the
  // render runs in the template sandbox (time, memory and size limits)
  const r = renderSandboxed(text, { bos_token: '', eos_token: '', ...specials, ...opts?.extra, messages,
    add_generation_prompt: opts?.addGenerationPrompt ?? false });
  // raise_exception(...) in a template lands here with the template author's message
  if ('error' in r) throw new KompresorError({ code: 'chat_template', where: source, rule: 'the chat template must render these messages', found: r.error });
  return r.out;
}
