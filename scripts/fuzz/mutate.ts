// Seeded mutation primitives of the fuzz target: a random source per case, values that break
// typed fields (wrong types, extremes, huge and empty), and edits of JSON objects, text lines
// and raw bytes. Everything is a pure function of the Pick's seed, so a case regenerates from
// (seed, index) alone.
import { Rng } from '../../src/model/sampling.ts';

/** A seeded random source with the picks the generators need. */
export class Pick {
  private r: Rng;
  constructor(seed: number) { this.r = new Rng(seed); }
  float(): number { return this.r.next(); }
  int(n: number): number { return Math.floor(this.r.next() * n); }
  chance(p: number): boolean { return this.r.next() < p; }
  one<T>(xs: readonly T[]): T { return xs[this.int(xs.length)]; }
}

/** The seed of case `index` in a session seeded `seed` (cases are independent of each other). */
export function caseSeed(seed: number, index: number): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// values

/** Replacement values for a field, with a short label for the case table. */
export function badValue(p: Pick): [string, unknown] {
  return p.one<[string, unknown]>([
    ['null', null], ['true', true], ['zero', 0], ['-1', -1], ['0.5', 0.5], ['NaN-like string', 'NaN'],
    ['empty string', ''], ['empty array', []], ['empty object', {}], ['nested array', [[1, 2], ['x']]],
    ['1e308', 1e308], ['2^53+1', 2 ** 53 + 1], ['-2^31', -(2 ** 31)], ['string "32"', '32'],
    ['unicode string', 'zażółć \u0000\u202e\ud83d\ude00'], ['long string', 'x'.repeat(5000)],
    ['object with __proto__', JSON.parse('{"__proto__": {"polluted": 1}, "a": 1}')],
  ]);
}

/** Sizes for integer config fields: extremes that must be refused before any allocation. */
export function badSize(p: Pick): [string, unknown] {
  return p.one<[string, unknown]>([
    ['0', 0], ['-32', -32], ['1', 1], ['3', 3], ['huge 2^40', 2 ** 40], ['huge 1e9', 1e9], ['huge 2^31', 2 ** 31],
    ['float 32.5', 32.5], ['string', '32'], ['null', null], ['huge 1e300', 1e300],
  ]);
}

// ---------------------------------------------------------------------------------------------
// JSON objects

/** Deletes, retypes, renames or duplicates one key of `o` (a deep copy); returns its label. */
export function mutateObject(p: Pick, o: Record<string, unknown>, keys = Object.keys(o)): string {
  const key = p.one(keys);
  const kind = p.int(4);
  if (kind === 0) { delete o[key]; return `deleted "${key}"`; }
  if (kind === 1) { const v = o[key]; delete o[key]; o[key.toUpperCase() + '_'] = v; return `renamed "${key}"`; }
  const [label, v] = badValue(p);
  o[key] = v;
  return `"${key}" = ${label}`;
}

/** A JSON text damaged as a file can be: cut, BOM, trailing garbage, or not JSON at all. */
export function damageJsonText(p: Pick, text: string): [string, string] {
  const kind = p.int(6);
  if (kind === 0) { const n = p.int(text.length); return [`cut at ${n} of ${text.length} chars`, text.slice(0, n)]; }
  if (kind === 1) return ['BOM prefix', '\ufeff' + text];
  if (kind === 2) return ['trailing garbage', text + '}]x'];
  if (kind === 3) return ['empty file', ''];
  if (kind === 4) return ['a JSON array', '[' + text + ']'];
  return ['a JSON string', JSON.stringify(text.slice(0, 40))];
}

// ---------------------------------------------------------------------------------------------
// lines and bytes

/** Ways to break one JSONL line; some keep it valid JSON of the wrong shape. */
export function mutateLine(p: Pick, line: string): [string, string | Buffer] {
  const kind = p.int(10);
  if (kind === 0) return ['cut line', line.slice(0, p.int(Math.max(1, line.length)))];
  if (kind === 1) return ['invalid UTF-8 inside a string', Buffer.concat([Buffer.from(line.slice(0, -2)), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from(line.slice(-2))])];
  if (kind === 2) return ['raw control bytes', '\x1b[2J\x1b[31m' + line];
  if (kind === 3) return ['a bare number', '42'];
  if (kind === 4) return ['an array', '[' + line + ']'];
  if (kind === 5) return ['null', 'null'];
  if (kind === 6) return ['CRLF ending', line + '\r'];
  if (kind === 7) return ['BOM', '\ufeff' + line];
  if (kind === 8) return ['NUL bytes', line.replace(/"([^"]*)"$/, '"$1"') + '\u0000'];
  return ['blank spaces', '   \t '];
}

/** Overwrites `n` random bytes of a copy of `b` in [from, to). */
export function flipBytes(p: Pick, b: Buffer, from: number, to: number, n: number): Buffer {
  const out = Buffer.from(b);
  for (let i = 0; i < n && to > from; i++) out[from + p.int(to - from)] = p.int(256);
  return out;
}
