// A batch of token rows as the decoder consumes it: B rows of T tokens, each row holding one or
// more packed documents, possibly padded at the end. Per token it carries:
//   ids[N]       token id
//   pos[N]       RoPE position (restarts at 0 in every document, as HF position_ids do when packed)
//   docStart[N]  row index of the first token of its document: attention never looks before it
//   targets[N]   the next token of the same document, or -100 (ignored) at document ends and padding
import { KompresorError } from '../errors.ts';

export const IGNORE = -100;

export interface Batch {
  B: number;
  T: number;
  ids: Int32Array;
  pos: Int32Array;
  docStart: Int32Array;
  targets: Int32Array;
}

function emptyBatch(B: number, T: number): Batch {
  const N = B * T;
  return { B, T, ids: new Int32Array(N), pos: new Int32Array(N), docStart: new Int32Array(N), targets: new Int32Array(N).fill(IGNORE) };
}

/** Rows of equal length, one document each: targets are ids shifted by one (HF labels = input_ids). */
export function batchFromRows(rows: number[][], where = 'ids'): Batch {
  if (rows.length === 0 || rows[0].length === 0) {
    throw new KompresorError({ code: 'input_invalid', where, rule: 'a batch needs at least one row of at least one token', found: JSON.stringify(rows) });
  }
  const T = rows[0].length;
  rows.forEach((r, b) => {
    if (r.length !== T) {
      throw new KompresorError({ code: 'input_invalid', where: `${where} row ${b}`, rule: 'every row must have the same length (no padding)', expected: `${T} tokens`, found: `${r.length}`, hint: 'split rows with ";" and give each the same number of ids' });
    }
  });
  return batchFromDocs(rows.map((r) => [r]), T, 0);
}

/**
 * Packs documents into B rows of T tokens (each inner list of a row is one document, in order);
 * the rest of a row is padding (id padId, its own one-token segment, ignored by the loss).
 */
export function batchFromDocs(rows: number[][][], T: number, padId: number): Batch {
  const batch = emptyBatch(rows.length, T);
  rows.forEach((docs, b) => {
    let t = 0;
    for (const doc of docs) {
      if (t + doc.length > T) {
        throw new KompresorError({ code: 'input_invalid', where: `row ${b}`, rule: 'packed documents must fit in the row', expected: `at most ${T} tokens`, found: `${t + doc.length}` });
      }
      const start = t;
      doc.forEach((id, i) => {
        // an Int32Array silently wraps 2**32 + 5 to 5: refuse what it cannot hold
        if (!Number.isInteger(id) || id < -0x8000_0000 || id > 0x7fff_ffff) throw outOfVocab(`row ${b}`, t, id, 'a 32-bit integer');
        const n = b * T + t;
        batch.ids[n] = id;
        batch.pos[n] = i;
        batch.docStart[n] = start;
        batch.targets[n] = i + 1 < doc.length ? doc[i + 1] : IGNORE;
        t++;
      });
    }
    for (; t < T; t++) {
      const n = b * T + t;
      batch.ids[n] = padId;
      batch.pos[n] = 0;
      batch.docStart[n] = t;
    }
  });
  return batch;
}

/** Refuses ids outside [0, vocabSize) before they index the embedding table. */
export function checkIds(batch: Batch, vocabSize: number, where = 'ids'): void {
  for (let n = 0; n < batch.ids.length; n++) {
    const id = batch.ids[n];
    if (id < 0 || id >= vocabSize) throw outOfVocab(`${where}[${Math.floor(n / batch.T)}]`, n % batch.T, id, `0 <= id < ${vocabSize}`);
  }
}

/** The same check on rows of ids before they become a batch (so the error shows the id as given). */
export function checkRowIds(rows: number[][], vocabSize: number, where = 'ids'): void {
  rows.forEach((r, b) => r.forEach((id, t) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw outOfVocab(`${where}[${b}]`, t, id, `0 <= id < ${vocabSize}`);
  }));
}

function outOfVocab(row: string, t: number, id: number, expected: string): KompresorError {
  return new KompresorError({ code: 'ids_out_of_vocab', where: `${row}[${t}]`, rule: 'token ids must index the vocabulary', expected, found: `${id}`, hint: 'use ids produced by this model\'s tokenizer' });
}

/** Number of targets the loss averages over. */
export function countTargets(batch: Batch): number {
  let n = 0;
  for (const t of batch.targets) if (t >= 0) n++;
  return n;
}
