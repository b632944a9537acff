// A BatchSource over tokens held in memory: one Int32Array and the offsets where its documents
// start. Tests, the demo and small experiments use it; real runs read token shards made by
// `kompresor data prepare` (packed_source.ts) through the same contract.
//
// Packing: documents are visited in a seeded order (a fresh permutation every epoch) and poured
// into rows of T tokens one after another. A document that does not fit in the rest of a row
// continues at the start of the next row as a new segment (positions restart at 0, attention does
// not cross rows), so rows are always full and no token is padding. The last token of each
// segment has no target, as in batchFromDocs. Limits: everything lives in memory; the permutation
// of one epoch is an Int32Array of the document count.
import type { Batch } from '../model/batch.ts';
import { batchFromDocs } from '../model/batch.ts';
import { Rng } from '../model/sampling.ts';
import { KompresorError } from '../errors.ts';
import type { BatchSource, EvalSource, SourceState } from './source.ts';

export interface MemorySourceOptions {
  /** Seed of the per-epoch document order. */
  seed: number;
  /** false: documents in their given order every epoch (evaluation, tests). Default true. */
  shuffle?: boolean;
}

/** Where the source is: document `doc` of the epoch's order, `offset` tokens into it. */
interface Cursor { epoch: number; doc: number; offset: number }

export class MemorySource implements BatchSource {
  private readonly starts: Int32Array; // (D+1) document boundaries; starts[D] = tokens.length
  private order: Int32Array;           // (D) document order of the current epoch
  private cur: Cursor = { epoch: 0, doc: 0, offset: 0 };

  /** docStarts: ascending offsets of the documents in `tokens`, the first one 0. */
  constructor(private readonly tokens: Int32Array, docStarts: ArrayLike<number>, private readonly o: MemorySourceOptions) {
    this.starts = checkDocStarts(tokens.length, docStarts);
    this.order = this.epochOrder(0);
  }

  static fromDocuments(docs: number[][], o: MemorySourceOptions): MemorySource {
    const { tokens, starts } = concatDocuments(docs);
    return new MemorySource(tokens, starts, o);
  }

  get documents(): number { return this.starts.length - 1; }

  next(B: number, T: number): Batch {
    const rows: number[][][] = [];
    for (let b = 0; b < B; b++) {
      const row: number[][] = [];
      for (let room = T; room > 0;) {
        const seg = this.take(room);
        row.push(seg);
        room -= seg.length;
      }
      rows.push(row);
    }
    return batchFromDocs(rows, T, 0);
  }

  state(): SourceState {
    return { kind: 'memory', epoch: this.cur.epoch, doc: this.cur.doc, offset: this.cur.offset, documents: this.documents, seed: this.o.seed };
  }

  restore(s: SourceState): void {
    const ok = s.kind === 'memory' && s.documents === this.documents && s.seed === this.o.seed
      && [s.epoch, s.doc, s.offset].every((v) => Number.isSafeInteger(v) && (v as number) >= 0)
      && (s.doc as number) < this.documents;
    if (!ok) {
      throw new KompresorError({ code: 'input_invalid', where: 'data source state', rule: 'a saved position must come from a source over the same documents and seed',
        expected: `{kind: "memory", documents: ${this.documents}, seed: ${this.o.seed}}`, found: JSON.stringify(s) });
    }
    this.cur = { epoch: s.epoch as number, doc: s.doc as number, offset: s.offset as number };
    this.order = this.epochOrder(this.cur.epoch);
  }

  /** Up to `room` tokens from the current document; advances the cursor (and the epoch). */
  private take(room: number): number[] {
    const d = this.order[this.cur.doc];
    const begin = this.starts[d] + this.cur.offset, end = this.starts[d + 1];
    const n = Math.min(room, end - begin);
    const seg = Array.from(this.tokens.subarray(begin, begin + n));
    this.cur.offset += n;
    if (begin + n === end) {
      this.cur.offset = 0;
      this.cur.doc++;
      if (this.cur.doc === this.documents) {
        this.cur.doc = 0;
        this.cur.epoch++;
        this.order = this.epochOrder(this.cur.epoch);
      }
    }
    return seg;
  }

  /** Fisher-Yates with a generator seeded by (seed, epoch), so any epoch can be rebuilt alone. */
  private epochOrder(epoch: number): Int32Array {
    const D = this.documents;
    const order = Int32Array.from({ length: D }, (_, i) => i);
    if (this.o.shuffle === false) return order;
    const rng = new Rng((Math.imul(this.o.seed >>> 0, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b)) >>> 0);
    for (let i = D - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      const t = order[i]; order[i] = order[j]; order[j] = t;
    }
    return order;
  }
}

/**
 * Validation batches over held-out documents: the same packing in the given order, from the
 * start every call. At most one pass over the data (at least one batch, wrapping if it is small).
 */
export function memoryEvalSource(tokens: Int32Array, docStarts: ArrayLike<number>): EvalSource {
  return {
    batches(B, T, maxBatches) {
      const src = new MemorySource(tokens, docStarts, { seed: 0, shuffle: false });
      const n = Math.max(1, Math.min(maxBatches, Math.floor(tokens.length / (B * T))));
      return Array.from({ length: n }, () => src.next(B, T));
    },
  };
}

export function concatDocuments(docs: number[][]): { tokens: Int32Array; starts: number[] } {
  const starts: number[] = [];
  let n = 0;
  for (const d of docs) { starts.push(n); n += d.length; }
  const tokens = new Int32Array(n);
  docs.forEach((d, i) => tokens.set(d, starts[i]));
  return { tokens, starts };
}

function checkDocStarts(n: number, docStarts: ArrayLike<number>): Int32Array {
  const s = Int32Array.from(docStarts);
  const bad = (found: string) => new KompresorError({ code: 'input_invalid', where: 'MemorySource',
    rule: 'documents must be non-empty and their start offsets ascending from 0 inside the tokens', found });
  if (s.length === 0 || s[0] !== 0) throw bad(s.length === 0 ? 'no documents' : `first start ${s[0]}`);
  for (let i = 1; i < s.length; i++) if (s[i] <= s[i - 1]) throw bad(`start ${s[i]} after ${s[i - 1]} (document ${i})`);
  if (s[s.length - 1] >= n) throw bad(`last start ${s[s.length - 1]} with ${n} tokens`);
  const out = new Int32Array(s.length + 1);
  out.set(s);
  out[s.length] = n;
  return out;
}
