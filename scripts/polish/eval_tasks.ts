// The items of the Polish evaluation suite (docs/polish-eval.md), generated deterministically from
// documents of the corpus's TEST split (and, for arithmetic, from a seeded generator):
//   pl_perplexity     held-out paragraphs, scored with loglikelihood_rolling
//   pl_next_sentence  1-2 sentences of context, the true next sentence among 3 sentences of other
//                     documents of the same source with similar length
//   pl_inflection     a sentence cut before one word; the continuations are that word and 3 other
//                     forms of the same hunspell entry, each followed by the rest of the sentence
//   pl_arithmetic     "Ile to jest 17 + 25?" with a numeric answer, from a held-out fifth of all
//                     problems (the instruction data uses the other four fifths)
// Every choice made here goes through hashUnit(seed/...) or Random(seed), so the same corpus,
// dictionary and seed give byte-identical files.
import { splitSentences, hashUnit, Random } from './polish_text.ts';
import { nearDupKey, words } from './clean.ts';
import type { Paradigm } from './hunspell.ts';

export interface SourceDoc { id: string; source: string; text: string }

const paragraphsOf = (d: SourceDoc) => d.text.split('\n\n');

/** Items in a stable pseudo-random order: by hashUnit(seed/tag/key). */
function byHash<T>(xs: T[], seed: number, tag: string, key: (x: T) => string): T[] {
  const h = new Map(xs.map((x) => [x, hashUnit(`${seed}/${tag}/${key(x)}`)]));
  return [...xs].sort((a, b) => h.get(a)! - h.get(b)! || (key(a) < key(b) ? -1 : 1));
}

// -----------------------------------------------------------------------------------------------
// pl_perplexity

export interface PerplexityItem { id: string; source: string; text: string }

/** Test paragraphs of at least minChars characters, in hash order, until maxChars characters in total. */
export function perplexityItems(docs: SourceDoc[], o: { seed: number; maxChars: number; minChars: number }): PerplexityItem[] {
  const all = docs.flatMap((d) => paragraphsOf(d).map((text, i) => ({ id: `${d.id}/p${i}`, source: d.source, text })))
    .filter((p) => [...p.text].length >= o.minChars);
  const out: PerplexityItem[] = [];
  let chars = 0;
  for (const p of byHash(all, o.seed, 'ppl', (x) => x.id)) {
    const n = [...p.text].length;
    if (chars + n > o.maxChars) continue;
    out.push(p);
    chars += n;
  }
  return out;
}

// -----------------------------------------------------------------------------------------------
// pl_next_sentence

export interface NextSentenceItem { id: string; source: string; context: string; choices: string[]; gold: number }

/**
 * A sentence that can be a choice: 5-40 words, 25-250 characters, starting with an upper-case
 * letter, a quote or a dash, ending with . ! ? or … (closing quotes and brackets allowed after it).
 */
export function isChoiceSentence(s: string): boolean {
  const n = words(s).length, c = [...s].length;
  return n >= 5 && n <= 40 && c >= 25 && c <= 250 && /^["„«\-–—\p{Lu}]/u.test(s) && /[.!?…]["'”»)\]]*$/u.test(s);
}

export function nextSentenceItems(docs: SourceDoc[], o: { seed: number; n: number; perDoc: number }): NextSentenceItem[] {
  interface Sent { doc: string; source: string; text: string; key: string }
  const pool = new Map<string, Sent[]>();                  // choice sentences by source
  const cands: { id: string; doc: string; source: string; context: string; gold: string }[] = [];
  for (const d of docs) {
    paragraphsOf(d).forEach((p, pi) => {
      const ss = splitSentences(p);
      for (const s of ss) if (isChoiceSentence(s)) {
        const list = pool.get(d.source) ?? [];
        list.push({ doc: d.id, source: d.source, text: s, key: nearDupKey(s) });
        pool.set(d.source, list);
      }
      for (let k = 1; k < ss.length; k++) {
        if (!isChoiceSentence(ss[k])) continue;
        const context = ss.slice(Math.max(0, k - 2), k).join(' ');
        if (words(context).length < 4) continue;
        cands.push({ id: `${d.id}/p${pi}/s${k}`, doc: d.id, source: d.source, context, gold: ss[k] });
      }
    });
  }
  const perDoc = new Map<string, number>();
  const out: NextSentenceItem[] = [];
  for (const c of byHash(cands, o.seed, 'next', (x) => x.id)) {
    if (out.length >= o.n) break;
    if ((perDoc.get(c.doc) ?? 0) >= o.perDoc) continue;
    const goldLen = [...c.gold].length;
    const taken = new Set([nearDupKey(c.gold), nearDupKey(c.context)]);
    const distractors: string[] = [];
    for (const s of byHash(pool.get(c.source) ?? [], o.seed, `next/${c.id}`, (x) => `${x.doc}/${x.text}`)) {
      if (distractors.length === 3) break;
      const len = [...s.text].length;
      if (s.doc === c.doc || taken.has(s.key) || len < goldLen / 1.6 || len > goldLen * 1.6) continue;
      taken.add(s.key);
      distractors.push(s.text);
    }
    if (distractors.length < 3) continue;
    const choices = new Random(Math.floor(hashUnit(`${o.seed}/order/${c.id}`) * 2 ** 32)).shuffle([c.gold, ...distractors]);
    out.push({ id: c.id, source: c.source, context: c.context, choices, gold: choices.indexOf(c.gold) });
    perDoc.set(c.doc, (perDoc.get(c.doc) ?? 0) + 1);
  }
  return out;
}

// -----------------------------------------------------------------------------------------------
// pl_inflection

export interface InflectionItem {
  id: string; source: string;
  /** Previous sentence (if any) and the sentence up to the blank, without trailing space. */
  context: string;
  /** Each form followed by the rest of the sentence. */
  choices: string[];
  gold: number;
  /** The sentence with the word replaced by "___", the word, its hunspell entry and the 4 forms offered. */
  sentence: string; word: string; lemma: string; forms: string[];
}

const WORD = /\p{L}+/gu;

/** Lower-case words of the test sentences that the dictionary index needs to know. */
export function inflectionWords(docs: SourceDoc[]): Set<string> {
  const out = new Set<string>();
  for (const d of docs) for (const m of d.text.matchAll(WORD)) if (/^\p{Ll}{3,}$/u.test(m[0])) out.add(m[0]);
  return out;
}

/** The paradigm used for a word: the entry with the most forms (dictionary order breaks ties). */
function paradigmOf(word: string, index: Map<string, Paradigm[]>): Paradigm | null {
  const ps = index.get(word);
  if (!ps) return null;
  return ps.reduce((best, p) => (p.forms.length > best.forms.length ? p : best));
}

export function inflectionItems(docs: SourceDoc[], index: Map<string, Paradigm[]>, o: { seed: number; n: number; perDoc: number }): InflectionItem[] {
  interface Cand { id: string; doc: string; source: string; prev: string; sentence: string; start: number; end: number; word: string; p: Paradigm }
  const cands: Cand[] = [];
  for (const d of docs) {
    paragraphsOf(d).forEach((para, pi) => {
      const ss = splitSentences(para);
      ss.forEach((s, si) => {
        const n = words(s).length;
        if (n < 6 || n > 40 || [...s].length > 300) return;
        const slots: Cand[] = [];
        for (const m of s.matchAll(WORD)) {
          const start = m.index!, end = start + m[0].length;
          if (words(s.slice(0, start)).length < 2 || s[start - 1] !== ' ' || !/^\p{Ll}{3,}$/u.test(m[0])) continue;
          if (end < s.length && /[\p{L}\p{N}\-'’]/u.test(s[end])) continue;
          const p = paradigmOf(m[0], index);
          if (!p || p.forms.filter((f) => f !== m[0]).length < 3) continue;
          slots.push({ id: `${d.id}/p${pi}/s${si}/w${start}`, doc: d.id, source: d.source, prev: si > 0 ? ss[si - 1] : '', sentence: s, start, end, word: m[0], p });
        }
        if (slots.length > 0) cands.push(byHash(slots, o.seed, 'slot', (x) => x.id)[0]);
      });
    });
  }
  const perDoc = new Map<string, number>();
  const out: InflectionItem[] = [];
  for (const c of byHash(cands, o.seed, 'infl', (x) => x.id)) {
    if (out.length >= o.n) break;
    if ((perDoc.get(c.doc) ?? 0) >= o.perDoc) continue;
    const others = byHash(c.p.forms.filter((f) => f !== c.word), o.seed, `forms/${c.id}`, (f) => f).slice(0, 3);
    const forms = new Random(Math.floor(hashUnit(`${o.seed}/order/${c.id}`) * 2 ** 32)).shuffle([c.word, ...others]);
    const rest = c.sentence.slice(c.end);
    const context = (c.prev !== '' ? c.prev + ' ' : '') + c.sentence.slice(0, c.start).trimEnd();
    out.push({
      id: c.id, source: c.source, context, choices: forms.map((f) => f + rest), gold: forms.indexOf(c.word),
      sentence: c.sentence.slice(0, c.start) + '___' + rest, word: c.word, lemma: c.p.lemma, forms,
    });
    perDoc.set(c.doc, (perDoc.get(c.doc) ?? 0) + 1);
  }
  return out;
}

// -----------------------------------------------------------------------------------------------
// pl_arithmetic

export type Op = '+' | '-' | '*';
export interface ArithmeticProblem { a: number; op: Op; b: number; answer: number }
export interface ArithmeticItem { id: string; question: string; answer: string; a: number; op: Op; b: number }

/** Every problem: a + b and a - b (b <= a) for a, b in 0..50; a * b for a, b in 2..20. */
export function allProblems(): ArithmeticProblem[] {
  const out: ArithmeticProblem[] = [];
  for (let a = 0; a <= 50; a++) for (let b = 0; b <= 50; b++) out.push({ a, op: '+', b, answer: a + b });
  for (let a = 0; a <= 50; a++) for (let b = 0; b <= a; b++) out.push({ a, op: '-', b, answer: a - b });
  for (let a = 2; a <= 20; a++) for (let b = 2; b <= 20; b++) out.push({ a, op: '*', b, answer: a * b });
  return out;
}

/**
 * The evaluation's fifth of the problems: hashUnit of the problem with commutative operands sorted
 * (17 + 25 and 25 + 17 fall on the same side) below 0.2. Training data must use only the rest.
 */
export function isHeldOut(p: { a: number; op: Op; b: number }): boolean {
  const [x, y] = p.op === '-' ? [p.a, p.b] : [Math.min(p.a, p.b), Math.max(p.a, p.b)];
  return hashUnit(`kompresor-polish-arithmetic/${p.op}/${x}/${y}`) < 0.2;
}

const OP_TEXT: Record<Op, string> = { '+': '+', '-': '-', '*': 'razy' };
const QUESTIONS = ['Ile to jest {a} {op} {b}?', 'Ile wynosi {a} {op} {b}?', 'Oblicz: {a} {op} {b}.'];

export function questionText(p: { a: number; op: Op; b: number }, template: string): string {
  return template.replace('{a}', String(p.a)).replace('{op}', OP_TEXT[p.op]).replace('{b}', String(p.b));
}

/**
 * n questions from the held-out problems (heldOut true) or from the training ones, in the
 * proportions 45% +, 35% -, 20% *, each with a question template picked by the seed.
 */
export function arithmeticItems(o: { seed: number; n: number; heldOut: boolean; tag: string }): ArithmeticItem[] {
  const rnd = new Random(o.seed);
  const pool = allProblems().filter((p) => isHeldOut(p) === o.heldOut);
  const quota: Record<Op, number> = { '+': Math.round(o.n * 0.45), '-': Math.round(o.n * 0.35), '*': 0 };
  quota['*'] = o.n - quota['+'] - quota['-'];
  const out: ArithmeticItem[] = [];
  for (const op of ['+', '-', '*'] as Op[]) {
    const ps = byHash(pool.filter((p) => p.op === op), o.seed, `arith/${o.tag}`, (p) => `${p.a}${p.op}${p.b}`).slice(0, quota[op]);
    for (const p of ps) {
      out.push({ id: `${o.tag}-${p.a}${p.op}${p.b}`, question: questionText(p, rnd.pick(QUESTIONS)), answer: String(p.answer), a: p.a, op: p.op, b: p.b });
    }
  }
  return byHash(out, o.seed, `arith-order/${o.tag}`, (x) => x.id);
}
