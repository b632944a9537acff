// Tokenizer and chat template of a model folder: tokenizer.json through @huggingface/tokenizers,
// the chat template through @huggingface/jinja (the same code transformers.js runs).
// Template lookup follows transformers: chat_template.jinja wins over tokenizer_config.json's
// chat_template, which is a string or a list of {name, template} (we use "default").
import fs from 'node:fs';
import nodePath from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { KompresorError } from '../errors.ts';

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
  checkTokenIds(jsonPath, tokenizerJson);
  const tok = construct(jsonPath, tokenizerJson, tokConfig);
  const specials = specialTokenStrings(tokConfig);
  const idOf = (t: string | undefined) => (t === undefined ? null : tok.token_to_id(t) ?? null);
  const template = findTemplate(dir, tokConfig);
  let compiled: Template | null = null;
  const marked = new Map<string, Template>();
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

function compile(t: TemplateSource): Template {
  try {
    return new Template(t.text);
  } catch (e) {
    throw new KompresorError({ code: 'chat_template', where: t.source, rule: 'the chat template must parse', found: (e as Error).message });
  }
}

function render(tpl: Template, source: string, messages: ChatMessage[], specials: Record<string, unknown>,
  opts: ChatTemplateOptions | undefined): string {
  try {
    // bos/eos_token default to '' so templates that print them unconditionally still render
    return tpl.render({ bos_token: '', eos_token: '', ...specials, ...opts?.extra, messages,
      add_generation_prompt: opts?.addGenerationPrompt ?? false });
  } catch (e) {
    // raise_exception(...) in a template lands here with the template author's message
    throw new KompresorError({ code: 'chat_template', where: source, rule: 'the chat template must render these messages',
      found: (e as Error).message });
  }
}
