// Batches from a prepared data folder (docs/data-format.md §4): the BatchSource of src/data/source.ts
// over the train split and an EvalSource over the validation split.
//
// Packing: documents (each ending with EOS) are laid end to end in a seeded shuffled order and the
// stream is cut into rows of T tokens, so no token is padding. A document that does not fit in
// what is left of a row continues at the start of the next row (a new segment: positions restart
// at 0 and attention never reaches back past the cut, as it never reaches into another document
// via docStart). When every document has been served, the next epoch starts with a fresh order.
// The order of epoch e is a Fisher-Yates shuffle seeded by sha256("kompresor-order/<seed>/<e>").
// state() is {epoch, cursor, offset}: the next document in the order and how many of its tokens
// were already served; restore() rebuilds the order from the seed, so a resumed run gets exactly
// the batches an uninterrupted one would have.
// Validation: documents in stored order, packed the same way, the last batch padded (targets -100).
// Limits: the shuffled order is a Uint32Array over the train documents (4 bytes per document).
import { createHash } from 'node:crypto';
import { KompresorError } from '../errors.ts';
import { batchFromDocs, type Batch } from '../model/batch.ts';
import { Rng } from '../model/sampling.ts';
import type { BatchSource, EvalSource, SourceState } from './source.ts';
import { checkVocab, openSplit, readManifest, type TokenManifest, type TokenSplit } from './manifest.ts';

export interface PackedState extends SourceState {
  kind: 'kptok-packed';
  /** Identifies the train split: the first 16 hex digits of sha256 over its shards' sha256s. */
  data: string;
  seed: number;
  epoch: number;
  cursor: number;
  offset: number;
}

/** Reads segments of documents into rows of T tokens, checking every id against the vocabulary. */
class RowFiller {
  constructor(private split: TokenSplit) {}

  /** Appends tokens [offset, offset + take) of document d to segs; returns take. */
  segment(segs: number[][], d: number, offset: number, room: number): number {
    const take = Math.min(this.split.docLength(d) - offset, room);
    const ids = this.split.readDoc(d, offset, take);
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] >= this.split.vocabSize) {
        throw new KompresorError({ code: 'ids_out_of_vocab', where: `${this.split.name} document ${d} token ${offset + i}`, rule: 'shard token ids must be below the tokenizer\'s vocab_size',
          expected: `< ${this.split.vocabSize}`, found: `${ids[i]}`, hint: 'the shard is damaged; open it with verification on or prepare the data again' });
      }
    }
    segs.push(Array.from(ids));
    return take;
  }
}

export class PackedSource implements BatchSource {
  private order: Uint32Array;
  private epoch = 0;
  private cursor = 0;
  private offset = 0;
  private filler: RowFiller;

  constructor(private split: TokenSplit, private fingerprint: string, readonly seed: number) {
    if (split.nDocs === 0) {
      throw new KompresorError({ code: 'input_invalid', where: `${split.name} split`, rule: 'training needs at least one document in the train split', found: '0 documents',
        hint: 'prepare more data or lower --val-fraction' });
    }
    this.filler = new RowFiller(split);
    this.order = shuffledOrder(split.nDocs, seed, 0);
  }

  next(B: number, T: number): Batch {
    checkShape(B, T);
    const rows: number[][][] = [];
    for (let b = 0; b < B; b++) {
      const segs: number[][] = [];
      for (let filled = 0; filled < T;) {
        const d = this.order[this.cursor];
        const take = this.filler.segment(segs, d, this.offset, T - filled);
        filled += take;
        this.offset += take;
        if (this.offset === this.split.docLength(d)) this.advance();
      }
      rows.push(segs);
    }
    return batchFromDocs(rows, T, this.split.eosId);
  }

  private advance(): void {
    this.offset = 0;
    if (++this.cursor < this.order.length) return;
    this.cursor = 0;
    this.epoch++;
    this.order = shuffledOrder(this.split.nDocs, this.seed, this.epoch);
  }

  state(): PackedState {
    return { kind: 'kptok-packed', data: this.fingerprint, seed: this.seed, epoch: this.epoch, cursor: this.cursor, offset: this.offset };
  }

  restore(s: SourceState): void {
    const st = s as Partial<PackedState>;
    const bad = (rule: string, expected: string, found: unknown) => new KompresorError({ code: 'input_invalid', where: 'data source state', rule, expected, found: JSON.stringify(found),
      hint: 'resume with the same data folder and seed as the run that saved the checkpoint' });
    if (st.kind !== 'kptok-packed') throw bad('the state must come from a packed KPTOK source', '"kptok-packed"', st.kind);
    if (st.data !== this.fingerprint || st.seed !== this.seed) {
      throw bad('a source resumes only from a state of the same train split and seed', `data ${this.fingerprint}, seed ${this.seed}`, { data: st.data, seed: st.seed });
    }
    const int = (v: unknown, max: number) => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) < max;
    if (!int(st.epoch, Number.MAX_SAFE_INTEGER) || !int(st.cursor, this.split.nDocs)) {
      throw bad('epoch and cursor must be integers, cursor below the document count', `cursor in [0, ${this.split.nDocs})`, { epoch: st.epoch, cursor: st.cursor });
    }
    const order = st.epoch === this.epoch ? this.order : shuffledOrder(this.split.nDocs, this.seed, st.epoch!);
    const len = this.split.docLength(order[st.cursor!]);
    if (!int(st.offset, len)) throw bad('offset must lie inside the current document', `an integer in [0, ${len})`, st.offset);
    this.order = order;
    this.epoch = st.epoch!;
    this.cursor = st.cursor!;
    this.offset = st.offset!;
  }
}

export class PackedEvalSource implements EvalSource {
  private filler: RowFiller;

  constructor(private split: TokenSplit) {
    this.filler = new RowFiller(split);
  }

  batches(B: number, T: number, maxBatches: number): Batch[] {
    checkShape(B, T);
    if (this.split.nDocs === 0) {
      throw new KompresorError({ code: 'input_invalid', where: `${this.split.name} split`, rule: 'evaluation needs at least one validation document', found: '0 documents',
        hint: 'prepare the data with a larger --val-fraction' });
    }
    const out: Batch[] = [];
    let d = 0, offset = 0;
    while (out.length < maxBatches && d < this.split.nDocs) {
      const rows: number[][][] = [];
      for (let b = 0; b < B; b++) {
        const segs: number[][] = [];
        for (let filled = 0; filled < T && d < this.split.nDocs;) {
          const take = this.filler.segment(segs, d, offset, T - filled);
          filled += take;
          offset += take;
          if (offset === this.split.docLength(d)) { d++; offset = 0; }
        }
        rows.push(segs);
      }
      out.push(batchFromDocs(rows, T, this.split.eosId));
    }
    return out;
  }
}

function checkShape(B: number, T: number): void {
  if (!Number.isSafeInteger(B) || !Number.isSafeInteger(T) || B < 1 || T < 1) {
    throw new KompresorError({ code: 'input_invalid', where: 'batch shape', rule: 'B and T must be positive integers', found: `B=${B}, T=${T}` });
  }
}

/** Fisher-Yates over 0..n-1 with a Mulberry32 stream seeded from (seed, epoch). */
export function shuffledOrder(n: number, seed: number, epoch: number): Uint32Array {
  const order = Uint32Array.from({ length: n }, (_, i) => i);
  const rng = new Rng(createHash('sha256').update(`kompresor-order/${seed}/${epoch}`).digest().readUInt32LE(0));
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    const t = order[i]; order[i] = order[j]; order[j] = t;
  }
  return order;
}

// ---------------------------------------------------------------------------------------------
// opening a folder

export interface PackedData {
  manifest: TokenManifest;
  train: PackedSource;
  val: PackedEvalSource;
  close(): void;
}

export interface OpenPackedOptions {
  /** Shuffle seed of the train order; default the manifest's seed. */
  seed?: number;
  /** Check each shard's sha256 against the manifest (reads every byte once). Default true. */
  verify?: boolean;
  /** When given, refuses data whose tokenizer vocabulary does not fit the model (checkVocab). */
  modelVocabSize?: number;
}

export function openPackedData(dir: string, opts: OpenPackedOptions = {}): PackedData {
  const manifest = readManifest(dir);
  if (opts.modelVocabSize !== undefined) checkVocab(manifest, opts.modelVocabSize, `${dir}/manifest.json`);
  const train = openSplit(dir, manifest, 'train', opts);
  let val: TokenSplit;
  try {
    val = openSplit(dir, manifest, 'val', opts);
  } catch (e) {
    train.close();
    throw e;
  }
  const fingerprint = createHash('sha256').update(manifest.splits.train.shards.map((s) => s.sha256).join('\n')).digest('hex').slice(0, 16);
  try {
    return { manifest, train: new PackedSource(train, fingerprint, opts.seed ?? manifest.seed), val: new PackedEvalSource(val), close: () => { train.close(); val.close(); } };
  } catch (e) {
    train.close(); val.close();
    throw e;
  }
}
