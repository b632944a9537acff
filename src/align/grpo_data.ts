// GRPO prompt data: a JSON Lines file, one object per line, with a `prompt` and any other fields
// the rewards read (e.g. `answer`).
//
//   {"prompt": "Ile to jest 3 + 4? Odpowiedź:", "answer": 7}                    standard: text as is
//   {"prompt": [{"role": "user", "content": "Ile to jest 3 + 4?"}], "answer": 7} conversational
//
// Conversational prompts are rendered with the model's chat template and the generation prompt
// (add_generation_prompt), as TRL's maybe_apply_chat_template does; text prompts are used as they
// are (TRL's standard format), or wrapped as one user turn with `chat: true` (--chat). Template
// text is tokenized without adding special tokens (the template writes them); plain text with
// them (a BOS where the tokenizer adds one), as `kompresor generate` does. Every prompt is read,
// checked and tokenized up front, so bad data stops the command before any training, with one
// line naming FILE:LINE.
import fs from 'node:fs';
import { KompresorError } from '../errors.ts';
import { readUtf8File, notAFile } from '../io/text_file.ts';
import type { ChatMessage, LoadedTokenizer } from '../io/tokenizer.ts';
import type { DataRow } from './rewards.ts';

export interface PromptRow {
  /** FILE:LINE, for messages. */
  where: string;
  /** The text the model is given (after the chat template, if any). */
  text: string;
  ids: number[];
  /** The whole JSON object of the line (passed to the rewards). */
  row: DataRow;
}

export interface PromptFileOptions {
  /** Longest prompt in tokens; a longer one is refused. */
  maxPromptLength: number;
  /** Wrap text prompts as a user turn of the chat template. */
  chat: boolean;
  /** Fields every row must have (the rewards' needs, e.g. `answer`). */
  requiredFields: string[];
  /** Checks a required field's value; returns a reason when it is unusable. */
  checkField?: (field: string, value: unknown) => string | null;
}

type Tok = Pick<LoadedTokenizer, 'encode' | 'applyChatTemplate' | 'hasChatTemplate'>;

export function readPromptFile(file: string, tok: Tok, o: PromptFileOptions): PromptRow[] {
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) {
    throw new KompresorError({ code: 'file_not_found', where: file, rule: 'the prompt data must be a JSON Lines file', found: notAFile(file) });
  }
  const lines = readUtf8File(file).split('\n');
  const out: PromptRow[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    out.push(readLine(`${file}:${i + 1}`, line, tok, o));
  });
  if (out.length === 0) {
    throw new KompresorError({ code: 'input_invalid', where: file, rule: 'the prompt data must hold at least one line', found: 'no prompts' });
  }
  return out;
}

function readLine(where: string, line: string, tok: Tok, o: PromptFileOptions): PromptRow {
  let row: unknown;
  try {
    row = JSON.parse(line);
  } catch (e) {
    throw new KompresorError({ code: 'input_invalid', where, rule: 'each line must be one JSON object', found: (e as Error).message });
  }
  if (typeof row !== 'object' || row === null || Array.isArray(row)) {
    throw new KompresorError({ code: 'input_invalid', where, rule: 'each line must be one JSON object', found: Array.isArray(row) ? 'an array' : JSON.stringify(row) });
  }
  const r = row as DataRow;
  for (const f of o.requiredFields) {
    if (!(f in r)) {
      throw new KompresorError({ code: 'input_invalid', where, rule: `each row needs the field "${f}" (a reward reads it)`, found: `fields ${JSON.stringify(Object.keys(r))}` });
    }
    const why = o.checkField?.(f, r[f]);
    if (why) throw new KompresorError({ code: 'input_invalid', where: `${where}: field "${f}"`, rule: why, found: JSON.stringify(r[f]) });
  }
  const text = renderPrompt(where, r.prompt, tok, o.chat);
  const ids = tok.encode(text, { addSpecialTokens: !(Array.isArray(r.prompt) || o.chat) });
  if (ids.length === 0) {
    throw new KompresorError({ code: 'input_invalid', where, rule: 'the prompt must give at least one token', found: JSON.stringify(text) });
  }
  if (ids.length > o.maxPromptLength) {
    throw new KompresorError({ code: 'input_invalid', where, rule: 'prompts must fit in --max-prompt-length tokens',
      expected: `at most ${o.maxPromptLength}`, found: `${ids.length} tokens`, hint: 'shorten the prompt or raise --max-prompt-length' });
  }
  return { where, text, ids, row: r };
}

function renderPrompt(where: string, prompt: unknown, tok: Tok, chat: boolean): string {
  if (prompt === undefined) {
    throw new KompresorError({ code: 'input_invalid', where, rule: 'each row needs a "prompt": a string or a list of {role, content} messages', found: 'no "prompt" field' });
  }
  if (typeof prompt === 'string') {
    if (prompt.length === 0) throw new KompresorError({ code: 'input_invalid', where, rule: 'the prompt must not be empty', found: '""' });
    return chat ? withTemplate(where, [{ role: 'user', content: prompt }], tok) : prompt;
  }
  if (Array.isArray(prompt) && prompt.length > 0 && prompt.every(isMessage)) return withTemplate(where, prompt as ChatMessage[], tok);
  throw new KompresorError({ code: 'input_invalid', where, rule: 'the "prompt" must be a string or a non-empty list of {role, content} messages',
    found: JSON.stringify(prompt).slice(0, 80) });
}

function isMessage(m: unknown): boolean {
  return typeof m === 'object' && m !== null && typeof (m as ChatMessage).role === 'string' && typeof (m as ChatMessage).content === 'string';
}

function withTemplate(where: string, messages: ChatMessage[], tok: Tok): string {
  if (!tok.hasChatTemplate) {
    throw new KompresorError({ code: 'chat_template', where, rule: 'a conversational prompt (or --chat) needs the model\'s chat template', found: 'the tokenizer has none',
      hint: 'use plain text prompts without --chat, or a model folder with a chat template' });
  }
  return tok.applyChatTemplate(messages, { addGenerationPrompt: true });
}
