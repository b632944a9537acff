// Batch sources over tokenized alignment data (data.ts), in the trainer's BatchSource contract:
// a deterministic order that a checkpoint can store and a resumed run continues exactly.
//
// SFT: examples are packed into rows of T tokens (best-fit decreasing, TRL's packing_strategy
// "bfd", or one example per row without packing). Each example is its own segment (positions
// restart at 0, attention stays inside it, the last token of a segment predicts nothing), so
// examples never see or predict each other; only completion tokens have targets.
//
// DPO: a micro-batch of B rows holds B/2 pairs, the chosen sequences in rows 0..P-1 and the
// rejected ones in rows P..2P-1 (TRL's concatenated batch), one sequence per row, padded.
import { createHash } from 'node:crypto';
import { batchFromDocs, IGNORE, type Batch } from '../model/batch.ts';
import { Rng } from '../model/sampling.ts';
import { KompresorError } from '../errors.ts';
import type { BatchSource, EvalSource, SourceState } from '../data/source.ts';
import type { PairExample, TokenExample } from './data.ts';

/**
 * Rows of examples -> a Batch (each example one segment, the rest of a row padding), with
 * targets only where the predicted token is a completion token: targets[n] = ids[i+1] if
 * mask[i+1], else -100.
 */
export function packRows(rows: TokenExample[][], T: number, padId: number): Batch {
  const batch = batchFromDocs(rows.map((r) => r.map((e) => Array.from(e.ids))), T, padId);
  rows.forEach((r, b) => {
    let t = b * T;
    for (const e of r) {
      for (let i = 0; i + 1 < e.ids.length; i++) if (!e.mask[i + 1]) batch.targets[t + i] = IGNORE;
      t += e.ids.length;
    }
  });
  return batch;
}

/** Best-fit decreasing: each sequence (longest first) goes to the open bin with the least room that holds it. */
export function bestFitDecreasing(order: ArrayLike<number>, lengths: ArrayLike<number>, T: number): number[][] {
  const items = Array.from(order).sort((a, b) => lengths[b] - lengths[a]); // stable: ties keep `order`
  const bins: number[][] = [];
  const byRoom: number[][] = Array.from({ length: T + 1 }, () => []); // room -> open bins
  for (const i of items) {
    const L = lengths[i];
    let room = L;
    while (room <= T && byRoom[room].length === 0) room++;
    let bin: number;
    if (room <= T) bin = byRoom[room].pop()!;
    else { bin = bins.length; bins.push([]); room = T; }
    bins[bin].push(i);
    byRoom[room - L].push(bin);
  }
  return bins;
}

/** Fisher-Yates over 0..n-1 with a generator seeded by (seed, epoch, salt): any epoch can be rebuilt alone. */
function permutation(n: number, seed: number, epoch: number, salt: number): number[] {
  const rng = new Rng((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b) ^ Math.imul(salt, 0xc2b2ae35)) >>> 0);
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    const t = p[i]; p[i] = p[j]; p[j] = t;
  }
  return p;
}

/** sha256 (first 16 hex digits) of tokenized examples: a saved position must come from the same data. */
function digestOf(examples: TokenExample[]): string {
  const h = createHash('sha256');
  for (const e of examples) {
    h.update(new Uint8Array(e.ids.buffer, e.ids.byteOffset, e.ids.byteLength)).update(e.mask).update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

function tooLongForRow(e: TokenExample, T: number): KompresorError {
  return new KompresorError({ code: 'input_invalid', where: e.where, rule: 'every sequence must fit in a row of --seq-len tokens',
    expected: `at most ${T} tokens`, found: `${e.ids.length}`, hint: 'load the data with the same max length as --seq-len' });
}

function restoreError(expected: Record<string, unknown>, found: SourceState): KompresorError {
  return new KompresorError({ code: 'input_invalid', where: 'data source state', rule: 'a saved position must come from a source over the same data and seed',
    expected: JSON.stringify(expected), found: JSON.stringify(found), hint: 'resume with the data file the run started with' });
}

// ---------------------------------------------------------------------------------------------
// SFT

export interface SftSourceOptions {
  seed: number;
  /** Pack several examples per row (best-fit decreasing); false: one example per row. */
  packing: boolean;
  /** The id written into padding (never attended to, never a target). */
  padId: number;
}

/** Bins of example indices for one epoch: shuffled examples, packed, the bins shuffled again. */
function sftBins(examples: TokenExample[], o: SftSourceOptions, T: number, epoch: number | null): number[][] {
  for (const e of examples) if (e.ids.length > T) throw tooLongForRow(e, T);
  const n = examples.length;
  const order = epoch === null ? Array.from({ length: n }, (_, i) => i) : permutation(n, o.seed, epoch, 1);
  const bins = o.packing ? bestFitDecreasing(order, examples.map((e) => e.ids.length), T) : order.map((i) => [i]);
  if (epoch === null) return bins;
  return permutation(bins.length, o.seed, epoch, 2).map((i) => bins[i]);
}

export class SftSource implements BatchSource {
  private cur = { epoch: 0, bin: 0 };
  private bins: { epoch: number; T: number; bins: number[][] } | null = null;
  private readonly digest: string;

  constructor(private readonly examples: TokenExample[], private readonly o: SftSourceOptions) {
    if (examples.length === 0) throw new KompresorError({ code: 'input_invalid', where: 'SFT data', rule: 'training needs at least one example with completion tokens', found: 'none' });
    this.digest = digestOf(examples);
  }

  next(B: number, T: number): Batch {
    const rows: TokenExample[][] = [];
    for (let b = 0; b < B; b++) {
      const bins = this.epochBins(T);
      rows.push(bins[this.cur.bin].map((i) => this.examples[i]));
      if (++this.cur.bin === bins.length) this.cur = { epoch: this.cur.epoch + 1, bin: 0 };
    }
    return packRows(rows, T, this.o.padId);
  }

  state(): SourceState {
    return { kind: 'sft', epoch: this.cur.epoch, bin: this.cur.bin, examples: this.examples.length, seed: this.o.seed, packing: this.o.packing, digest: this.digest };
  }

  restore(s: SourceState): void {
    const expected = { kind: 'sft', examples: this.examples.length, seed: this.o.seed, packing: this.o.packing, digest: this.digest };
    const same = Object.entries(expected).every(([k, v]) => s[k] === v);
    if (!same || !Number.isSafeInteger(s.epoch) || !Number.isSafeInteger(s.bin) || (s.epoch as number) < 0 || (s.bin as number) < 0) throw restoreError(expected, s);
    this.cur = { epoch: s.epoch as number, bin: s.bin as number };
    this.bins = null;
  }

  private epochBins(T: number): number[][] {
    if (!this.bins || this.bins.epoch !== this.cur.epoch || this.bins.T !== T) {
      this.bins = { epoch: this.cur.epoch, T, bins: sftBins(this.examples, this.o, T, this.cur.epoch) };
      if (this.cur.bin >= this.bins.bins.length) this.cur.bin = 0; // a position saved with another T
    }
    return this.bins.bins;
  }
}

/** Held-out SFT examples in file order, packed the same way; every call gives the same batches. */
export function sftEvalSource(examples: TokenExample[], o: Omit<SftSourceOptions, 'seed'>): EvalSource {
  return {
    batches(B, T, maxBatches) {
      const bins = sftBins(examples, { ...o, seed: 0 }, T, null);
      const out: Batch[] = [];
      for (let i = 0; i < bins.length && out.length < maxBatches; i += B) {
        out.push(packRows(Array.from({ length: B }, (_, b) => (bins[i + b] ?? []).map((k) => examples[k])), T, o.padId));
      }
      return out;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// DPO

/** A DPO micro-batch: rows 0..P-1 chosen, P..2P-1 rejected; slots past `pairs` are empty rows. */
export interface DpoBatch extends Batch {
  /** Real pairs in the batch (the first `pairs` slots of B/2). */
  pairs: number;
  /** Index of each slot's pair in its data set (-1 for an empty slot). */
  index: Int32Array;
  /** The reference model's sequence log-probs per row, when precomputed; else null (run the reference). */
  refLogps: Float64Array | null;
}

export function isDpoBatch(b: Batch): b is DpoBatch {
  return typeof (b as DpoBatch).pairs === 'number' && (b as DpoBatch).index instanceof Int32Array;
}

/** Pairs -> a DpoBatch of 2P rows; `ref` holds [chosen, rejected] log-probs per pair (2 per pair), or null. */
export function pairBatch(pairs: PairExample[], indices: number[], P: number, T: number, padId: number, ref: Float64Array | null): DpoBatch {
  const rows: TokenExample[][] = Array.from({ length: 2 * P }, () => []);
  const index = new Int32Array(P).fill(-1);
  const refLogps = ref ? new Float64Array(2 * P) : null;
  indices.forEach((i, k) => {
    const p = pairs[i];
    for (const e of [p.chosen, p.rejected]) if (e.ids.length > T) throw tooLongForRow(e, T);
    rows[k] = [p.chosen];
    rows[P + k] = [p.rejected];
    index[k] = i;
    if (refLogps && ref) { refLogps[k] = ref[2 * i]; refLogps[P + k] = ref[2 * i + 1]; }
  });
  return { ...packRows(rows, T, padId), pairs: indices.length, index, refLogps };
}

function pairsPerBatch(B: number): number {
  if (B < 2 || B % 2 !== 0) {
    throw new KompresorError({ code: 'input_invalid', where: '--micro-batch', rule: 'a DPO micro-batch holds whole pairs: two rows (chosen, rejected) per pair',
      expected: 'an even number of rows >= 2', found: `${B}` });
  }
  return B / 2;
}

export interface DpoSourceOptions {
  seed: number;
  padId: number;
  /** Precomputed reference log-probs, [chosen, rejected] per pair (length 2 x pairs), or null. */
  refLogps?: Float64Array | null;
}

export class DpoSource implements BatchSource {
  private cur = { epoch: 0, pos: 0 };
  private order: number[];
  private readonly digest: string;

  constructor(private readonly pairs: PairExample[], private readonly o: DpoSourceOptions) {
    if (pairs.length === 0) throw new KompresorError({ code: 'input_invalid', where: 'DPO data', rule: 'training needs at least one pair', found: 'none' });
    this.digest = digestOf(pairs.flatMap((p) => [p.chosen, p.rejected]));
    this.order = permutation(pairs.length, o.seed, 0, 3);
  }

  next(B: number, T: number): DpoBatch {
    const P = pairsPerBatch(B);
    const take: number[] = [];
    while (take.length < P) {
      take.push(this.order[this.cur.pos]);
      if (++this.cur.pos === this.pairs.length) {
        this.cur = { epoch: this.cur.epoch + 1, pos: 0 };
        this.order = permutation(this.pairs.length, this.o.seed, this.cur.epoch, 3);
      }
    }
    return pairBatch(this.pairs, take, P, T, this.o.padId, this.o.refLogps ?? null);
  }

  state(): SourceState {
    return { kind: 'dpo', epoch: this.cur.epoch, pos: this.cur.pos, pairs: this.pairs.length, seed: this.o.seed, digest: this.digest };
  }

  restore(s: SourceState): void {
    const expected = { kind: 'dpo', pairs: this.pairs.length, seed: this.o.seed, digest: this.digest };
    const same = Object.entries(expected).every(([k, v]) => s[k] === v);
    if (!same || !Number.isSafeInteger(s.epoch) || !Number.isSafeInteger(s.pos) || (s.epoch as number) < 0 || (s.pos as number) < 0 || (s.pos as number) >= this.pairs.length) {
      throw restoreError(expected, s);
    }
    this.cur = { epoch: s.epoch as number, pos: s.pos as number };
    this.order = permutation(this.pairs.length, this.o.seed, this.cur.epoch, 3);
  }
}

/** Held-out pairs in file order, B/2 per batch (the last one partly empty); the same every call. */
export function dpoEvalSource(pairs: PairExample[], o: Omit<DpoSourceOptions, 'seed'>): EvalSource {
  return {
    batches(B, T, maxBatches) {
      const P = pairsPerBatch(B);
      const out: DpoBatch[] = [];
      for (let i = 0; i < pairs.length && out.length < maxBatches; i += P) {
        const idx = Array.from({ length: Math.min(P, pairs.length - i) }, (_, k) => i + k);
        out.push(pairBatch(pairs, idx, P, T, o.padId, o.refLogps ?? null));
      }
      return out;
    },
  };
}
