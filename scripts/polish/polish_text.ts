// Small pieces of Polish the task generators share: a sentence splitter that knows the common
// abbreviations, cardinal numbers in words, diacritics removal, and a seeded random helper.
import { createHash } from 'node:crypto';
import { Rng } from '../../src/model/sampling.ts';

// -----------------------------------------------------------------------------------------------
// sentences

/** Abbreviations after which a period does not end a sentence (lower case, without the final period). */
const ABBREVIATIONS = new Set([
  'np', 'm.in', 'tzn', 'tj', 'itp', 'itd', 'ok', 'godz', 'r', 'w', 'wg', 'św', 'dr', 'prof', 'mgr', 'inż', 'nr', 'zob', 'por',
  'tzw', 'ul', 'im', 'cd', 'pt', 'ang', 'łac', 'lit', 'n.p.m', 'p.n.e', 'n.e', 'ds', 'jw', 'wyd', 'red', 'tab', 'rys', 'str', 's',
  'tys', 'mln', 'mld', 'zł', 'gr', 'min', 'sek', 'max', 'ew', 'pkt', 'ust', 'art', 'poz', 'płn', 'płd', 'wsch', 'zach', 'al',
  'pl', 'os', 'tel', 'ks', 'bp', 'gen', 'płk', 'kpt', 'por', 'sierż', 'szer', 'dot', 'odp', 'jęz', 'gł', 'b', 'nast', 'zw',
  'e.g', 'i.e', 'etc', 'vs', 'wzgl', 'przyp', 'oprac', 'tłum',
]);

/**
 * Sentences of a paragraph. A sentence ends at . ! ? or … (with closing quotes or brackets after
 * it) followed by white space and an upper-case letter, a digit, an opening quote or a dash;
 * not after an abbreviation, an initial ("J. Kowalski") or an ordinal number ("5. maja"). A line
 * break always ends a sentence (verse and dialogue lines in fortunes).
 */
export function splitSentences(paragraph: string): string[] {
  const out: string[] = [];
  for (const line of paragraph.split('\n')) {
    let start = 0;
    const re = /[.!?…]+["'”»)\]]*(?=\s+["„«(\-–—\p{Lu}\p{N}])/gu;
    for (let m = re.exec(line); m; m = re.exec(line)) {
      const end = m.index + m[0].length;
      if (m[0].replace(/["'”»)\]]+$/, '') === '.') {
        const word = /(\S+)$/.exec(line.slice(start, m.index))?.[1] ?? '';
        const bare = word.replace(/^["„«(]+/, '').toLowerCase();
        if (ABBREVIATIONS.has(bare) || /^\p{L}$/u.test(bare) || /^\d+$/.test(bare)) continue;
      }
      const s = line.slice(start, end).trim();
      if (s !== '') out.push(s);
      start = end;
    }
    const rest = line.slice(start).trim();
    if (rest !== '') out.push(rest);
  }
  return out;
}

// -----------------------------------------------------------------------------------------------
// numbers in words

const UNITS = ['zero', 'jeden', 'dwa', 'trzy', 'cztery', 'pięć', 'sześć', 'siedem', 'osiem', 'dziewięć'];
const TEENS = ['dziesięć', 'jedenaście', 'dwanaście', 'trzynaście', 'czternaście', 'piętnaście', 'szesnaście', 'siedemnaście', 'osiemnaście', 'dziewiętnaście'];
const TENS = ['', '', 'dwadzieścia', 'trzydzieści', 'czterdzieści', 'pięćdziesiąt', 'sześćdziesiąt', 'siedemdziesiąt', 'osiemdziesiąt', 'dziewięćdziesiąt'];
const HUNDREDS = ['', 'sto', 'dwieście', 'trzysta', 'czterysta', 'pięćset', 'sześćset', 'siedemset', 'osiemset', 'dziewięćset'];

function below1000(n: number): string[] {
  const w: string[] = [];
  const h = Math.floor(n / 100), t = Math.floor((n % 100) / 10), u = n % 10;
  if (h > 0) w.push(HUNDREDS[h]);
  if (t === 1) w.push(TEENS[u]);
  else {
    if (t > 1) w.push(TENS[t]);
    if (u > 0) w.push(UNITS[u]);
  }
  return w;
}

/** The Polish cardinal of an integer in (-10^6, 10^6): 21 -> "dwadzieścia jeden", 2000 -> "dwa tysiące". */
export function numberToWords(n: number): string {
  if (!Number.isInteger(n) || Math.abs(n) >= 1e6) throw new Error(`numberToWords: ${n} is not an integer below one million`);
  if (n === 0) return 'zero';
  if (n < 0) return `minus ${numberToWords(-n)}`;
  const th = Math.floor(n / 1000), rest = n % 1000;
  const w: string[] = [];
  if (th === 1) w.push('tysiąc');
  else if (th > 1) {
    const u = th % 10, t = Math.floor(th / 10) % 10;
    const form = u >= 2 && u <= 4 && t !== 1 ? 'tysiące' : 'tysięcy';
    w.push(...below1000(th), form);
  }
  w.push(...below1000(rest));
  return w.join(' ');
}

// -----------------------------------------------------------------------------------------------
// diacritics

const PLAIN: Record<string, string> = { ą: 'a', ć: 'c', ę: 'e', ł: 'l', ń: 'n', ó: 'o', ś: 's', ź: 'z', ż: 'z', Ą: 'A', Ć: 'C', Ę: 'E', Ł: 'L', Ń: 'N', Ó: 'O', Ś: 'S', Ź: 'Z', Ż: 'Z' };

/** Polish letters with diacritics replaced by their plain Latin letters (ż -> z, ł -> l). */
export function stripDiacritics(s: string): string {
  return s.replace(/[ąćęłńóśźżĄĆĘŁŃÓŚŹŻ]/g, (c) => PLAIN[c]);
}

// -----------------------------------------------------------------------------------------------
// seeded randomness

/** mulberry32 (src/model/sampling.ts) with the helpers the generators use. */
export class Random {
  private rng: Rng;
  constructor(seed: number) { this.rng = new Rng(seed); }
  next(): number { return this.rng.next(); }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number { return lo + Math.floor(this.rng.next() * (hi - lo + 1)); }
  pick<T>(xs: readonly T[]): T { return xs[Math.floor(this.rng.next() * xs.length)]; }
  /** Fisher-Yates, in place. */
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) { const j = Math.floor(this.rng.next() * (i + 1)); [xs[i], xs[j]] = [xs[j], xs[i]]; }
    return xs;
  }
}

/** A stable number in [0, 1) for a string (sha256), to order or partition items without a stream of random numbers. */
export function hashUnit(s: string): number {
  return createHash('sha256').update(s).digest().readUIntBE(0, 6) / 2 ** 48;
}
