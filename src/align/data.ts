// Alignment data: JSONL rows -> token ids with a completion mask, for SFT and DPO (spec §1-2, TRL's
// conventions). Every error names its row as FILE:LINE.
//
//   SFT rows   {"messages": [{role, content}, ...]}           loss on the assistant turns
//              {"prompt": P, "completion": C}                 loss on the completion
//   DPO rows   {"prompt": P, "chosen": C, "rejected": R}      two sequences, prompt + each answer
//
// P and C are both strings (plain text: prompt + completion + EOS, no template; TRL's
// non-conversational data) or both conversational: P a message list, C a message list or a
// string (one assistant message). Conversational rows are rendered with the model's chat
// template; the completion starts after the prompt rendered with add_generation_prompt.
//
// Assistant spans of `messages` rows: from the template's {% generation %} markers when it has
// them (TRL's assistant_only_loss), otherwise by rendering the conversation incrementally: turn i
// spans from render(messages[:i], add_generation_prompt) to render(messages[:i+1]), which must
// both be prefixes of the whole rendering (a prefix-preserving template). Character spans become
// token spans only where the text's tokens up to the boundary are a prefix of the whole text's
// tokens; anything else is refused with an error naming the row, never guessed.
//
// A mask bit marks a token the model is trained to produce: token i is predicted at position
// i - 1, so the first token of a sequence never counts. The end-of-turn token of each assistant
// turn (e.g. <|im_end|>) is inside its span, so the model learns to stop.
import fs from 'node:fs';
import { KompresorError } from '../errors.ts';
import { readUtf8File, notAFile } from '../io/text_file.ts';
import type { ChatMessage, LoadedTokenizer } from '../io/tokenizer.ts';

/** One tokenized sequence: ids and a completion mask (1 = trained token), both truncated. */
export interface TokenExample {
  ids: Int32Array;
  mask: Uint8Array;
  /** FILE:LINE of the row it came from. */
  where: string;
}

/** A DPO row: prompt + chosen and prompt + rejected, tokenized with the same prompt. */
export interface PairExample {
  chosen: TokenExample;
  rejected: TokenExample;
  where: string;
}

export interface AlignDataOptions {
  /** max_length: sequences keep their first maxLength tokens (TRL truncation_mode keep_start). */
  maxLength: number;
  /**
   * A row whose completion lies entirely beyond maxLength (the prompt fills the limit) is an
   * error by default; with dropLong it is skipped and counted in `dropped`.
   */
  dropLong?: boolean;
}

export interface AlignData<T> {
  examples: T[];
  /** Rows skipped by dropLong, with where they are (the first few are worth printing). */
  dropped: string[];
  /** Rows read (non-blank lines). */
  rows: number;
}

// ---------------------------------------------------------------------------------------------
// reading rows

interface Row { where: string; value: Record<string, unknown> }

/** The non-blank lines of a JSONL file as objects; a line that is not a JSON object is an error. */
export function readJsonl(file: string): Row[] {
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) {
    throw new KompresorError({ code: 'file_not_found', where: file, rule: 'the data must be a JSONL file (one JSON object per line)', found: notAFile(file) });
  }
  const rows: Row[] = [];
  readUtf8File(file).split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${file}:${i + 1}`;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw rowError(where, 'each line must be one JSON object', (e as Error).message);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw rowError(where, 'each line must be one JSON object', Array.isArray(v) ? 'an array' : String(v));
    rows.push({ where, value: v as Record<string, unknown> });
  });
  if (rows.length === 0) throw new KompresorError({ code: 'input_invalid', where: file, rule: 'the data file must hold at least one row', found: 'no rows' });
  return rows;
}

function rowError(where: string, rule: string, found?: string, hint?: string): KompresorError {
  return new KompresorError({ code: 'input_invalid', where, rule, found, hint });
}

type Turns = ChatMessage[];
type Part = string | Turns;

/** A message list: non-empty, each {role: string, content: string}. */
function messagesOf(v: unknown, where: string, field: string): Turns {
  if (!Array.isArray(v) || v.length === 0) throw rowError(where, `"${field}" must be a non-empty list of {"role", "content"} messages`, JSON.stringify(v)?.slice(0, 80));
  return v.map((m, i) => {
    if (typeof m !== 'object' || m === null || typeof (m as ChatMessage).role !== 'string' || typeof (m as ChatMessage).content !== 'string') {
      throw rowError(where, `"${field}"[${i}] must be a {"role": string, "content": string} message`, JSON.stringify(m)?.slice(0, 80));
    }
    return m as ChatMessage;
  });
}

/** A prompt or completion field: a string or a message list. */
function partOf(row: Row, field: string): Part {
  const v = row.value[field];
  if (v === undefined) {
    throw rowError(row.where, `the row must have a "${field}" field`, `fields ${JSON.stringify(Object.keys(row.value))}`);
  }
  return typeof v === 'string' ? v : messagesOf(v, row.where, field);
}

/** A completion must say something: an empty string or an empty assistant message is refused. */
function checkNotEmpty(p: Part, where: string, field: string): void {
  const empty = typeof p === 'string' ? p.length === 0 : p.some((m) => m.role === 'assistant' && m.content.length === 0);
  if (empty) throw rowError(where, `"${field}" must not be empty`, '""', 'remove the row or give it a completion');
}

// ---------------------------------------------------------------------------------------------
// SFT and DPO datasets

/** SFT rows: `messages`, or `prompt` + `completion`. */
export function loadSftData(tok: LoadedTokenizer, file: string, o: AlignDataOptions): AlignData<TokenExample> {
  const rows = readJsonl(file);
  const out: TokenExample[] = [], dropped: string[] = [];
  for (const row of rows) {
    let ex: TokenExample;
    if (row.value.messages !== undefined) {
      const msgs = messagesOf(row.value.messages, row.where, 'messages');
      checkNotEmpty(msgs, row.where, 'messages');
      ex = encodeConversation(tok, msgs, row.where);
    } else if (row.value.prompt !== undefined || row.value.completion !== undefined) {
      const prompt = partOf(row, 'prompt'), completion = partOf(row, 'completion');
      checkNotEmpty(completion, row.where, 'completion');
      ex = encodePromptCompletion(tok, prompt, completion, row.where);
    } else {
      throw rowError(row.where, 'an SFT row needs "messages", or "prompt" and "completion"', `fields ${JSON.stringify(Object.keys(row.value))}`);
    }
    const t = truncate(ex, o.maxLength);
    if (lossTokens(t) > 0) out.push(t);
    else if (o.dropLong) dropped.push(row.where);
    else throw tooLong(ex, o.maxLength);
  }
  return { examples: out, dropped, rows: rows.length };
}

/** DPO rows: `prompt`, `chosen`, `rejected`. */
export function loadDpoData(tok: LoadedTokenizer, file: string, o: AlignDataOptions): AlignData<PairExample> {
  const rows = readJsonl(file);
  const out: PairExample[] = [], dropped: string[] = [];
  for (const row of rows) {
    const prompt = partOf(row, 'prompt'), chosen = partOf(row, 'chosen'), rejected = partOf(row, 'rejected');
    checkNotEmpty(chosen, row.where, 'chosen');
    checkNotEmpty(rejected, row.where, 'rejected');
    const c = encodePromptCompletion(tok, prompt, chosen, row.where), r = encodePromptCompletion(tok, prompt, rejected, row.where);
    const tc = truncate(c, o.maxLength), tr = truncate(r, o.maxLength);
    if (lossTokens(tc) > 0 && lossTokens(tr) > 0) out.push({ chosen: tc, rejected: tr, where: row.where });
    else if (o.dropLong) dropped.push(row.where);
    else throw tooLong(lossTokens(tc) > 0 ? r : c, o.maxLength);
  }
  return { examples: out, dropped, rows: rows.length };
}

/** keep_start: the first maxLength tokens. */
export function truncate(ex: TokenExample, maxLength: number): TokenExample {
  if (ex.ids.length <= maxLength) return ex;
  return { ids: ex.ids.slice(0, maxLength), mask: ex.mask.slice(0, maxLength), where: ex.where };
}

/** Tokens the loss is taken on: mask bits at positions >= 1 (token 0 is never predicted). */
export function lossTokens(ex: TokenExample): number {
  let n = 0;
  for (let i = 1; i < ex.mask.length; i++) n += ex.mask[i];
  return n;
}

function tooLong(ex: TokenExample, maxLength: number): KompresorError {
  const first = ex.mask.indexOf(1);
  return rowError(ex.where, 'the prompt must leave room for the completion within the length limit',
    `the completion starts at token ${first < 0 ? ex.ids.length : first} of ${ex.ids.length}, limit ${maxLength}`,
    'raise --seq-len (the max length), shorten the prompt, or pass --drop-long to skip such rows');
}

// ---------------------------------------------------------------------------------------------
// encoding

/** Private-use characters standing in for {% generation %} / {% endgeneration %} in rendered text. */
const GEN_START = '\uE000', GEN_END = '\uE001';

/** A conversation with the assistant turns as the completion (mask). */
export function encodeConversation(tok: LoadedTokenizer, messages: Turns, where: string): TokenExample {
  if (!messages.some((m) => m.role === 'assistant')) {
    throw rowError(where, 'a conversation needs at least one assistant message to train on', `roles ${JSON.stringify(messages.map((m) => m.role))}`);
  }
  const render = (msgs: Turns, gen = false) => tok.applyChatTemplate(msgs, { addGenerationPrompt: gen });
  let text: string, spans: [number, number][];
  if (tok.hasGenerationMarkers) {
    for (const m of messages) {
      if (m.content.includes(GEN_START) || m.content.includes(GEN_END)) throw rowError(where, 'message text must not contain the characters U+E000/U+E001 (used to find assistant spans)');
    }
    ({ text, spans } = spansFromMarkers(tok.applyChatTemplate(messages, { markGeneration: [GEN_START, GEN_END] }), where));
    if (spans.length === 0) throw rowError(where, 'the chat template\'s {% generation %} markers must mark the assistant turns', 'no marked span', 'check the template\'s generation block');
  } else {
    text = render(messages);
    spans = [];
    messages.forEach((m, i) => {
      if (m.role !== 'assistant') return;
      const before = render(messages.slice(0, i), true), through = render(messages.slice(0, i + 1));
      if (!through.startsWith(before) || !text.startsWith(through)) {
        throw rowError(where, 'assistant spans need {% generation %} markers or a prefix-preserving chat template (rendering the first messages must give a prefix of the whole conversation)',
          `message ${i} is rendered differently once later messages follow`, 'add {% generation %}...{% endgeneration %} around the assistant content in the template');
      }
      spans.push([before.length, through.length]);
    });
  }
  const ids = tok.encode(text, { addSpecialTokens: false });
  const mask = new Uint8Array(ids.length);
  for (const [s, e] of spans) {
    const a = tokenBoundary(tok, text, ids, s, false, where), b = tokenBoundary(tok, text, ids, e, false, where);
    mask.fill(1, a, b);
  }
  return { ids: Int32Array.from(ids), mask, where };
}

/** Strips the marker characters; returns the text and the marked [start, end) character spans. */
function spansFromMarkers(marked: string, where: string): { text: string; spans: [number, number][] } {
  const spans: [number, number][] = [];
  let text = '', open = -1;
  for (const ch of marked) {
    if (ch === GEN_START || ch === GEN_END) {
      if ((ch === GEN_START) !== (open < 0)) throw rowError(where, 'the chat template\'s {% generation %} blocks must not nest or be left open');
      if (ch === GEN_START) open = text.length;
      else { spans.push([open, text.length]); open = -1; }
    } else text += ch;
  }
  if (open >= 0) throw rowError(where, 'the chat template\'s {% generation %} blocks must be closed');
  return { text, spans };
}

/**
 * The number of tokens of text[0:p], when those tokens are a prefix of the whole text's tokens
 * (so the boundary at character p falls between two tokens); otherwise an error naming the row.
 */
function tokenBoundary(tok: LoadedTokenizer, text: string, ids: number[], p: number, special: boolean, where: string): number {
  if (p === text.length) return ids.length;
  const head = tok.encode(text.slice(0, p), { addSpecialTokens: special });
  const ok = head.length <= ids.length && head.every((id, i) => id === ids[i]);
  if (!ok) {
    throw rowError(where, 'a completion must start and end between tokens (the tokens of the text before it must be a prefix of the whole text\'s tokens)',
      `a token spanning character ${p} (${JSON.stringify(text.slice(Math.max(0, p - 8), p + 8))})`);
  }
  return head.length;
}

/**
 * Prompt + completion. Plain text (both strings): tokens of prompt + completion (with the
 * tokenizer's special tokens, e.g. BOS), plus EOS if missing; the completion starts where the
 * prompt's own tokens end, or, when the prompt's tokens are not a prefix of the joint ones
 * (a merge across the boundary), the two are tokenized separately and concatenated.
 * Conversational: the template rendering of prompt + completion; the completion starts after
 * the prompt rendered with add_generation_prompt.
 */
export function encodePromptCompletion(tok: LoadedTokenizer, prompt: Part, completion: Part, where: string): TokenExample {
  if (typeof prompt === 'string') {
    if (typeof completion !== 'string') throw rowError(where, 'a plain-text prompt takes a plain-text completion', 'a message list', 'give both as strings, or the prompt as messages');
    return encodePlain(tok, prompt, completion, where);
  }
  const answer: Turns = typeof completion === 'string' ? [{ role: 'assistant', content: completion }] : completion;
  const before = tok.applyChatTemplate(prompt, { addGenerationPrompt: true });
  const text = tok.applyChatTemplate([...prompt, ...answer]);
  if (!text.startsWith(before)) {
    throw rowError(where, 'the prompt rendered with add_generation_prompt must be a prefix of the rendered prompt + completion',
      `${JSON.stringify(before.slice(-20))} is not followed by the completion`, 'check that the completion is an assistant message and the template is prefix-preserving');
  }
  const ids = tok.encode(text, { addSpecialTokens: false });
  const mask = new Uint8Array(ids.length).fill(1, tokenBoundary(tok, text, ids, before.length, false, where));
  return { ids: Int32Array.from(ids), mask, where };
}

function encodePlain(tok: LoadedTokenizer, prompt: string, completion: string, where: string): TokenExample {
  const eos = tok.eosTokenId;
  if (eos === null) {
    throw rowError(where, 'plain-text completions end with the tokenizer\'s eos_token (so the model learns to stop)', 'a tokenizer without eos_token',
      'set eos_token in tokenizer_config.json, or give prompt and completion as chat messages');
  }
  const head = tok.encode(prompt);
  let ids = tok.encode(prompt + completion);
  if (!(head.length <= ids.length && head.every((id, i) => id === ids[i]))) {
    ids = [...head, ...tok.encode(completion, { addSpecialTokens: false })];
  }
  if (ids[ids.length - 1] !== eos) ids.push(eos);
  return { ids: Int32Array.from(ids), mask: new Uint8Array(ids.length).fill(1, head.length), where };
}
