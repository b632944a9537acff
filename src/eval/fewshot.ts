// Few-shot prompts as lm-evaluation-harness builds them in plain-text mode
// (ConfigurableTask.fewshot_context + build_qa_turn, lm_eval/api/samplers.py):
//
//   prompt = description + Σ_shots (text_i + target_delimiter + answer_i + fewshot_delimiter) + text
//
// - description is rendered (Jinja) with the evaluated document and prepended as it is: the
//   harness adds no delimiter after it, which is why its task YAMLs end descriptions with "\n\n";
// - a shot whose target is "" contributes its text alone, with neither delimiter;
// - an int target indexes the shot's choices; a list target contributes its first element;
// - the evaluated document's text ends the prompt; multiple_choice continuations then start
//   with target_delimiter (src/eval/run.ts).
//
// Shots are drawn by the harness's default sampler, Python's random.Random(1234).sample(docs, n),
// ONE generator per task advancing document by document. Python's generator is the Mersenne
// Twister (MT19937) and `sample` is a short documented algorithm, so both are reproduced here
// exactly: the same few-shot docs, in the same order, as the harness picks from the same split.
// When the few-shot split is the evaluation split, n + 1 are drawn and the evaluated document is
// removed. `first_n` takes the first n docs in order.
import type { Doc, Task } from './tasks.ts';

// ---------------------------------------------------------------------------------------------
// Python's random.Random: MT19937 seeded by init_by_array, getrandbits, _randbelow, sample

export class PyRandom {
  private mt = new Uint32Array(624);
  private mti = 625;

  /** random.Random(seed) for a non-negative integer seed below 2^53. */
  constructor(seed: number) {
    let n = Math.abs(Math.trunc(seed));
    const key: number[] = [];
    do { key.push(n % 0x1_0000_0000); n = Math.floor(n / 0x1_0000_0000); } while (n > 0);
    this.initByArray(key);
  }

  private initGenrand(s: number): void {
    const mt = this.mt;
    mt[0] = s >>> 0;
    for (let i = 1; i < 624; i++) {
      const p = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = (Math.imul(1812433253, p) + i) >>> 0;
    }
    this.mti = 624;
  }

  private initByArray(key: number[]): void {
    const mt = this.mt;
    this.initGenrand(19650218);
    let i = 1, j = 0;
    for (let k = Math.max(624, key.length); k > 0; k--) {
      const p = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = ((mt[i] ^ Math.imul(p, 1664525)) + key[j] + j) >>> 0;
      i++; j++;
      if (i >= 624) { mt[0] = mt[623]; i = 1; }
      if (j >= key.length) j = 0;
    }
    for (let k = 623; k > 0; k--) {
      const p = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = ((mt[i] ^ Math.imul(p, 1566083941)) - i) >>> 0;
      i++;
      if (i >= 624) { mt[0] = mt[623]; i = 1; }
    }
    mt[0] = 0x80000000;
  }

  /** genrand_uint32. */
  nextUint32(): number {
    const mt = this.mt;
    if (this.mti >= 624) {
      for (let k = 0; k < 624; k++) {
        const y = (mt[k] & 0x80000000) | (mt[(k + 1) % 624] & 0x7fffffff);
        mt[k] = mt[(k + 397) % 624] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      this.mti = 0;
    }
    let y = mt[this.mti++];
    y ^= y >>> 11;
    y = (y ^ ((y << 7) & 0x9d2c5680)) >>> 0;
    y = (y ^ ((y << 15) & 0xefc60000)) >>> 0;
    return (y ^ (y >>> 18)) >>> 0;
  }

  /** getrandbits(k) for 0 <= k <= 32. */
  getrandbits(k: number): number { return k === 0 ? 0 : this.nextUint32() >>> (32 - k); }

  /** _randbelow_with_getrandbits(n): uniform in [0, n) by rejection, n < 2^32. */
  randbelow(n: number): number {
    const k = n === 0 ? 0 : 32 - Math.clz32(n);
    let r = this.getrandbits(k);
    while (r >= n) r = this.getrandbits(k);
    return r;
  }

  /** random.sample(population, k) (Python 3.11). */
  sample<T>(population: readonly T[], k: number): T[] {
    const n = population.length;
    if (k < 0 || k > n) throw new RangeError(`Sample larger than population or is negative (k=${k}, n=${n})`);
    const result = new Array<T>(k);
    let setsize = 21;
    if (k > 5) setsize += 4 ** Math.ceil(Math.log(k * 3) / Math.log(4));
    if (n <= setsize) {
      const pool = [...population];
      for (let i = 0; i < k; i++) {
        const j = this.randbelow(n - i);
        result[i] = pool[j];
        pool[j] = pool[n - i - 1];
      }
    } else {
      const selected = new Set<number>();
      for (let i = 0; i < k; i++) {
        let j = this.randbelow(n);
        while (selected.has(j)) j = this.randbelow(n);
        selected.add(j);
        result[i] = population[j];
      }
    }
    return result;
  }
}

// ---------------------------------------------------------------------------------------------
// sampling and prompt construction

export type SamplerName = 'default' | 'first_n';

/** Draws the few-shot docs of one evaluated document (the harness's ContextSampler). */
export class FewshotSampler {
  private rnd: PyRandom;
  constructor(readonly docs: Doc[], readonly name: SamplerName, seed: number, readonly sameSplit: boolean) {
    this.rnd = new PyRandom(seed);
  }

  shotsFor(doc: Doc, n: number): Doc[] {
    if (n <= 0) return [];
    const draw = this.sameSplit ? n + 1 : n;
    if (draw > this.docs.length) throw new RangeError(`${draw} few-shot examples requested from ${this.docs.length} docs`);
    const picked = this.name === 'first_n' ? this.docs.slice(0, draw) : this.rnd.sample(this.docs, draw);
    const self = JSON.stringify(doc);
    return picked.filter((d) => JSON.stringify(d) !== self).slice(0, n);
  }
}

/** The text of one few-shot example: q + target_delimiter + answer + fewshot_delimiter (q alone when the answer is ""). */
export function shotText(task: Task, doc: Doc): string {
  const q = task.docToText(doc, 'fewshot');
  const a = task.docToTarget(doc, 'fewshot');
  if (a === '') return q;
  let answer: string;
  if (typeof a === 'string') answer = a;
  else if (typeof a === 'number') answer = String(task.docToChoice(doc, 'fewshot')[a]);
  else answer = typeof a[0] === 'number' ? String(task.docToChoice(doc, 'fewshot')[a[0]]) : String(a[0]);
  return q + task.fewshotTargetDelimiter + answer + task.fewshotDelimiter;
}

/** The whole prompt (context) of one evaluated document. */
export function fewshotContext(task: Task, doc: Doc, numFewshot: number, sampler: FewshotSampler | null): string {
  let out = task.description(doc);
  if (numFewshot > 0 && sampler) for (const shot of sampler.shotsFor(doc, numFewshot)) out += shotText(task, shot);
  return out + task.docToText(doc, 'eval');
}
