// Input files of `data prepare` and the documents in them, read as a stream (1 MiB at a time):
//   .jsonl / .ndjson   one JSON object per line; the document is its `text` field (--text-field);
//                      blank lines are skipped; bad JSON or a missing field is an error at file:line
//   .txt / .text / .md --split-on blank-lines (default): a document is a run of non-blank lines,
//                      joined with "\n" (blank = only whitespace); --split-on file: the whole file,
//                      exactly as stored, is one document (at most 256 MiB)
// Folders given as inputs are expanded to the files above inside them (recursively, sorted).
// Text must be UTF-8; a leading BOM is dropped, and "\r" before "\n" except in --split-on file.
import fs from 'node:fs';
import nodePath from 'node:path';
import { KompresorError } from '../errors.ts';
import type { SplitOn } from './manifest.ts';

export type InputKind = 'text' | 'jsonl';
export interface InputFile { path: string; bytes: number; kind: InputKind }
export interface ReadOptions { splitOn: SplitOn; textField: string }

const KINDS: Record<string, InputKind> = { '.jsonl': 'jsonl', '.ndjson': 'jsonl', '.txt': 'text', '.text': 'text', '.md': 'text' };
const CHUNK_BYTES = 1 << 20;
export const MAX_FILE_DOC_BYTES = 256 * 2 ** 20;
/**
 * A JSON Lines line must fit one JavaScript string to be parsed (V8's limit is ~512 Mi chars:
 * a 600 MB line was a RangeError stack); text paragraphs longer than MAX_DOC_CHARS are cut into
 * documents of at most that many characters, before a space where there is one.
 */
export const MAX_LINE_CHARS = 256 * 2 ** 20;
export const MAX_DOC_CHARS = 64 * 2 ** 20;

/** Files to read, in order: files as given, folders expanded (sorted, recursive). */
export function expandInputs(paths: string[]): InputFile[] {
  if (paths.length === 0) {
    throw new KompresorError({ code: 'input_invalid', where: '--input', rule: 'give at least one input file or folder', found: 'none' });
  }
  const out: InputFile[] = [];
  for (const p of paths) {
    if (!fs.existsSync(p)) throw new KompresorError({ code: 'file_not_found', where: `--input ${p}`, rule: 'every input must exist', found: 'no such file or folder' });
    if (fs.statSync(p).isDirectory()) {
      const files = listFolder(p);
      if (files.length === 0) {
        throw new KompresorError({ code: 'input_invalid', where: `--input ${p}`, rule: 'a folder input must contain .jsonl, .ndjson, .txt, .text or .md files', found: 'none' });
      }
      out.push(...files.map((f) => inputFile(f)));
    } else {
      out.push(inputFile(p));
    }
  }
  return out;
}

function listFolder(dir: string): string[] {
  const entries = fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return entries.flatMap((e) => {
    const p = nodePath.join(dir, e.name);
    if (e.isDirectory()) return listFolder(p);
    return e.isFile() && KINDS[nodePath.extname(e.name).toLowerCase()] ? [p] : [];
  });
}

function inputFile(path: string): InputFile {
  const kind = KINDS[nodePath.extname(path).toLowerCase()];
  if (!kind) {
    throw new KompresorError({ code: 'input_invalid', where: `--input ${path}`, rule: 'inputs are JSON Lines or UTF-8 text files',
      expected: '.jsonl, .ndjson, .txt, .text or .md', found: JSON.stringify(nodePath.extname(path) || '(no extension)'), hint: 'rename the file to say what it holds' });
  }
  const st = fs.statSync(path);
  if (!st.isFile()) {
    // a .txt symlink to /dev/zero is an endless line
    throw new KompresorError({ code: 'input_invalid', where: `--input ${path}`, rule: 'inputs must be regular files', found: 'a device, pipe or socket', hint: 'copy the data into a file' });
  }
  return { path, bytes: st.size, kind };
}

/** The documents of one file, in order. onBytes(n) reports input bytes as they are read. */
export function* readDocuments(file: InputFile, opts: ReadOptions, onBytes: (n: number) => void): Generator<string> {
  if (file.kind === 'jsonl') yield* jsonlDocuments(file.path, opts.textField, onBytes);
  else if (opts.splitOn === 'file') yield wholeFile(file, onBytes);
  else yield* paragraphs(file.path, onBytes);
}

function* jsonlDocuments(path: string, field: string, onBytes: (n: number) => void): Generator<string> {
  let lineNo = 0;
  const tooLong = (chars: number) => jsonlError(path, lineNo + 1, field, `a line of more than ${chars} characters (the limit is ${MAX_LINE_CHARS})`);
  for (const line of readLines(path, onBytes, MAX_LINE_CHARS, tooLong)) {
    lineNo++;
    if (line.trim() === '') continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw jsonlError(path, lineNo, field, `invalid JSON (${(e as Error).message})`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw jsonlError(path, lineNo, field, Array.isArray(v) ? 'an array' : JSON.stringify(v));
    const text = (v as Record<string, unknown>)[field];
    if (typeof text !== 'string') {
      const found = text === undefined ? `no "${field}" (keys ${JSON.stringify(Object.keys(v).slice(0, 8))})` : `"${field}" of type ${text === null ? 'null' : typeof text}`;
      throw jsonlError(path, lineNo, field, found);
    }
    yield text;
  }
}

function jsonlError(path: string, line: number, field: string, found: string): KompresorError {
  return new KompresorError({ code: 'input_invalid', where: `${path}:${line}`, rule: `every line of a JSON Lines file must be an object with a string "${field}" field`,
    found, hint: field === 'text' ? 'fix the line, or name the field that holds the text with --text-field' : 'fix the line or the --text-field name' });
}

function* paragraphs(path: string, onBytes: (n: number) => void): Generator<string> {
  let para: string[] = [], chars = 0;
  // an endless line is cut into pieces (readLines), and a paragraph into documents of MAX_DOC_CHARS
  for (const line of readLines(path, onBytes, MAX_DOC_CHARS)) {
    if (line.trim() === '') {
      if (para.length > 0) yield para.join('\n');
      para = []; chars = 0;
    } else {
      if (chars + line.length > MAX_DOC_CHARS && para.length > 0) { yield para.join('\n'); para = []; chars = 0; }
      para.push(line);
      chars += line.length + 1;
    }
  }
  if (para.length > 0) yield para.join('\n');
}

function wholeFile(file: InputFile, onBytes: (n: number) => void): string {
  if (file.bytes > MAX_FILE_DOC_BYTES) {
    throw new KompresorError({ code: 'input_invalid', where: file.path, rule: `--split-on file reads a file as one document of at most ${MAX_FILE_DOC_BYTES} bytes`,
      found: `${file.bytes} bytes`, hint: 'use --split-on blank-lines for large text files' });
  }
  const bytes = fs.readFileSync(file.path);
  onBytes(bytes.length);
  return decodeUtf8(new TextDecoder('utf-8', { fatal: true }), bytes, file.path, 0, false);
}

/**
 * Lines of a UTF-8 file without their "\n" (or "\r\n"), read 1 MiB at a time. A line growing past
 * maxChars is refused by `tooLong` when given, else yielded in pieces cut before a space.
 */
export function* readLines(path: string, onBytes: (n: number) => void, maxChars = MAX_LINE_CHARS, tooLong?: (chars: number) => Error): Generator<string> {
  const fd = fs.openSync(path, 'r');
  try {
    const decoder = new TextDecoder('utf-8', { fatal: true });
    const chunk = Buffer.alloc(CHUNK_BYTES);
    let carry = '', at = 0;
    for (let n; (n = fs.readSync(fd, chunk, 0, CHUNK_BYTES, null)) > 0; at += n) {
      onBytes(n);
      const text = decodeUtf8(decoder, chunk.subarray(0, n), path, at, true);
      // a line longer than a chunk grows as a rope and is split once, when its end arrives
      if (!text.includes('\n')) {
        carry += text;
        while (carry.length > maxChars) {
          if (tooLong) throw tooLong(carry.length);
          const cut = cutBeforeSpace(carry, maxChars);
          yield carry.slice(0, cut);
          carry = carry.slice(cut);
        }
        continue;
      }
      const lines = (carry + text).split('\n');
      carry = lines.pop()!;
      for (const l of lines) yield* limited(l.endsWith('\r') ? l.slice(0, -1) : l, maxChars, tooLong);
    }
    carry += decodeUtf8(decoder, new Uint8Array(0), path, at, false);
    if (carry !== '') yield* limited(carry.endsWith('\r') ? carry.slice(0, -1) : carry, maxChars, tooLong);
  } finally {
    fs.closeSync(fd);
  }
}

/** A line within maxChars as is; a longer one refused by tooLong, or cut into pieces. */
function* limited(line: string, maxChars: number, tooLong?: (chars: number) => Error): Generator<string> {
  if (line.length > maxChars && tooLong) throw tooLong(line.length);
  while (line.length > maxChars) {
    const cut = cutBeforeSpace(line, maxChars);
    yield line.slice(0, cut);
    line = line.slice(cut);
  }
  yield line;
}

/** Where to cut `s` to at most maxChars: before its last space in the second half, else at maxChars. */
function cutBeforeSpace(s: string, maxChars: number): number {
  const i = s.lastIndexOf(' ', maxChars);
  return i > maxChars >> 1 ? i : maxChars;
}

function decodeUtf8(d: TextDecoder, bytes: Uint8Array, path: string, at: number, stream: boolean): string {
  try {
    return d.decode(bytes, { stream });
  } catch {
    throw new KompresorError({ code: 'input_invalid', where: path, rule: 'text inputs must be UTF-8',
      found: `invalid UTF-8 in bytes ${at}..${at + bytes.length}`, hint: 'convert the file to UTF-8 (e.g. iconv -t UTF-8)' });
  }
}
