// Polish instruction data for the demo's SFT, DPO(-P) and GRPO steps (docs/polish-corpus.md §5),
// generated from the corpus's TRAIN split, hunspell-pl and seeded arithmetic; never from the test
// split, and arithmetic only from problems outside the evaluation's held-out fifth.
//
//   SFT   {"messages": [{"role": "user", ...}, {"role": "assistant", ...}], "task": KIND}
//   DPO   {"prompt": [{"role": "user", ...}], "chosen": [{"role": "assistant", ...}],
//          "rejected": [{"role": "assistant", ...}], "task": KIND}
//   GRPO  {"prompt": [{"role": "user", ...}], "answer": NUMBER, "task": KIND}
//   plain {"prompt": "Pytanie: ...\nOdpowiedź:", "completion": " 42", "task": "arithmetic_plain"}
//         (the evaluation's few-shot format, for SFT without a chat template)
import { splitSentences, numberToWords, stripDiacritics, hashUnit, Random } from './polish_text.ts';
import { words } from './clean.ts';
import { allProblems, isHeldOut, isChoiceSentence, questionText, type ArithmeticProblem, type Op, type SourceDoc } from './eval_tasks.ts';
import { suffixForms, type Affixes, type DicEntry } from './hunspell.ts';

export interface Message { role: 'user' | 'assistant'; content: string }
export interface SftRow { messages: Message[]; task: string }
export interface DpoRow { prompt: Message[]; chosen: Message[]; rejected: Message[]; task: string }
export interface GrpoRow { prompt: Message[]; answer: number; task: string }
export interface PlainRow { prompt: string; completion: string; task: string }

/** One generated example: the prompt, the right answer and a wrong one for DPO. */
export interface Example { task: string; prompt: string; answer: string; wrong: string; numeric?: number }

const user = (content: string): Message[] => [{ role: 'user', content }];
const assistant = (content: string): Message[] => [{ role: 'assistant', content }];

// -----------------------------------------------------------------------------------------------
// arithmetic

const OP_WORD: Record<Op, string[]> = { '+': ['dodać', 'plus'], '-': ['odjąć', 'minus'], '*': ['razy', 'pomnożone przez'] };
const OP_SIGN: Record<Op, string> = { '+': '+', '-': '-', '*': '·' };
const QUESTIONS = ['Ile to jest {a} {op} {b}?', 'Ile wynosi {a} {op} {b}?', 'Oblicz: {a} {op} {b}.', 'Policz, ile to {a} {op} {b}.'];

/** Training problems (outside the held-out fifth), in a seeded order. */
export function trainingProblems(seed: number): ArithmeticProblem[] {
  const ps = allProblems().filter((p) => !isHeldOut(p));
  return ps.sort((x, y) => hashUnit(`${seed}/p/${x.a}${x.op}${x.b}`) - hashUnit(`${seed}/p/${y.a}${y.op}${y.b}`));
}

/** A question in digits (most) or in words, and the worked answer "17 + 25 = 42." */
export function arithmeticExample(p: ArithmeticProblem, rnd: Random): Example {
  const inWords = rnd.next() < 0.25;
  const op = inWords ? rnd.pick(OP_WORD[p.op]) : p.op === '*' ? rnd.pick(['razy', '·']) : p.op;
  const a = inWords ? numberToWords(p.a) : String(p.a), b = inWords ? numberToWords(p.b) : String(p.b);
  const prompt = rnd.pick(QUESTIONS).replace('{a}', a).replace('{op}', op).replace('{b}', b);
  const line = (n: number) => `${p.a} ${OP_SIGN[p.op]} ${p.b} = ${n}.` + (inWords ? ` Słownie: ${numberToWords(n)}.` : '');
  return { task: 'arithmetic', prompt, answer: line(p.answer), wrong: line(wrongNumber(p.answer, [-10, -2, -1, 1, 2, 10], rnd)), numeric: p.answer };
}

/** The evaluation's plain format: "Pytanie: Ile to jest 17 + 25?\nOdpowiedź:" -> " 42". */
export function arithmeticPlain(p: ArithmeticProblem, rnd: Random): PlainRow {
  const q = questionText(p, rnd.pick(['Ile to jest {a} {op} {b}?', 'Ile wynosi {a} {op} {b}?', 'Oblicz: {a} {op} {b}.']));
  return { prompt: `Pytanie: ${q}\nOdpowiedź:`, completion: ` ${p.answer}`, task: 'arithmetic_plain' };
}

/** A wrong non-negative number near n: n + d for a d picked from deltas, or n + |d| when that is negative. */
export function wrongNumber(n: number, deltas: number[], rnd: Random): number {
  const d = rnd.pick(deltas);
  return n + d >= 0 ? n + d : n + Math.abs(d);
}

export function numberWordsExample(n: number, rnd: Random): Example {
  const wrong = wrongNumber(n, [-11, -1, 1, 10, 100], rnd);
  if (rnd.next() < 0.5) {
    return { task: 'number_to_words', prompt: `Napisz słownie liczbę ${n}.`, answer: `${n} to słownie: ${numberToWords(n)}.`, wrong: `${n} to słownie: ${numberToWords(wrong)}.` };
  }
  return { task: 'words_to_number', prompt: `Zapisz cyframi liczbę: ${numberToWords(n)}.`, answer: `${n}`, wrong: `${wrong}`, numeric: n };
}

// -----------------------------------------------------------------------------------------------
// from corpus sentences

export interface Sentence { doc: string; text: string; next: string | null }

/** Sentences of the train documents that read as whole sentences, each with the one after it. */
export function corpusSentences(docs: SourceDoc[]): Sentence[] {
  const out: Sentence[] = [];
  for (const d of docs) for (const p of d.text.split('\n\n')) {
    const ss = splitSentences(p);
    ss.forEach((s, i) => {
      if (isChoiceSentence(s)) out.push({ doc: d.id, text: s, next: i + 1 < ss.length && isChoiceSentence(ss[i + 1]) ? ss[i + 1] : null });
    });
  }
  return out;
}

/** Shuffles the words of s (the garbled answer of DPO pairs); never returns s itself when it has 2+ distinct words. */
export function garble(s: string, rnd: Random): string {
  const ws = words(s);
  for (let t = 0; t < 5; t++) {
    const g = rnd.shuffle([...ws]).join(' ');
    if (g !== s) return g;
  }
  return ws.reverse().join(' ');
}

export function completeSentenceExample(s: Sentence, other: Sentence, rnd: Random): Example {
  const ws = words(s.text);
  const cut = Math.max(2, Math.floor(ws.length * (0.35 + 0.3 * rnd.next())));
  const head = ws.slice(0, cut).join(' ');
  const rest = ws.slice(cut).join(' ');
  const wrong = rnd.next() < 0.5 ? `${head} ${garble(rest, rnd)}` : `${head} ${words(other.text).slice(Math.floor(words(other.text).length / 2)).join(' ')}`;
  return { task: 'complete_sentence', prompt: `Dokończ zdanie: ${head} ...`, answer: s.text, wrong };
}

export function nextSentenceExample(s: Sentence, other: Sentence): Example {
  return { task: 'next_sentence', prompt: `Napisz zdanie, które może następować po tym: „${s.text}”`, answer: s.next!, wrong: other.text };
}

export function diacriticsExample(s: Sentence, rnd: Random): Example | null {
  const plain = stripDiacritics(s.text);
  if (plain === s.text) return null;
  // the wrong answer restores only some of the letters
  let partial = '';
  for (let i = 0; i < s.text.length; i++) partial += s.text[i] !== plain[i] && rnd.next() < 0.5 ? plain[i] : s.text[i];
  if (partial === s.text) partial = plain;
  return { task: 'diacritics', prompt: `Popraw polskie znaki w zdaniu: ${plain}`, answer: s.text, wrong: partial };
}

export function countingExample(s: Sentence, rnd: Random): Example {
  const ws = words(s.text).map((w) => w.replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, '')).filter((w) => w !== '');
  const letterWords = ws.filter((x) => /^\p{L}{3,}$/u.test(x));
  if (rnd.next() < 0.5 && letterWords.length > 0) {
    const w = rnd.pick(letterWords);
    const n = [...w].length;
    return { task: 'count_letters', prompt: `Ile liter ma słowo „${w}”?`, answer: `Słowo „${w}” ma ${n} ${letterNoun(n)}.`, wrong: `Słowo „${w}” ma ${n + 1} ${letterNoun(n + 1)}.`, numeric: n };
  }
  const n = ws.length;
  return { task: 'count_words', prompt: `Ile słów ma zdanie: „${s.text}”?`, answer: `To zdanie ma ${n} ${wordNoun(n)}.`, wrong: `To zdanie ma ${n + 2} ${wordNoun(n + 2)}.`, numeric: n };
}

/** Polish agreement of a noun with a number: 1 litera, 2-4 litery (not 12-14), 5+ liter. */
function plural(n: number, one: string, few: string, many: string): string {
  if (n === 1) return one;
  const u = n % 10, t = Math.floor(n / 10) % 10;
  return u >= 2 && u <= 4 && t !== 1 ? few : many;
}
const letterNoun = (n: number) => plural(n, 'literę', 'litery', 'liter');
const wordNoun = (n: number) => plural(n, 'słowo', 'słowa', 'słów');

// -----------------------------------------------------------------------------------------------
// from the dictionary

/**
 * Nominative plural of masculine nouns from pl_PL's flags: an entry with the plural-case flags N
 * (-om/-ami/-ach) and T (-ów) takes its plural from q (personal nouns: użytkownik -> użytkownicy)
 * or else s (plik -> pliki). Only one-form results are used; other nouns are left out.
 */
export function masculinePlural(e: DicEntry, a: Affixes): string | null {
  if (!e.flags.includes('N') || !e.flags.includes('T') || !/^\p{Ll}+$/u.test(e.stem)) return null;
  const forms = e.flags.includes('q') ? suffixForms(e.stem, 'q', a) : e.flags.includes('s') ? suffixForms(e.stem, 's', a) : [];
  return forms.length === 1 ? forms[0] : null;
}

export function pluralExample(stem: string, pl: string, genPl: string | null, rnd: Random): Example {
  const prompt = rnd.pick(['Podaj liczbę mnogą słowa „{w}”.', 'Jaka jest liczba mnoga słowa „{w}”?', 'Napisz słowo „{w}” w liczbie mnogiej.']).replace('{w}', stem);
  const wrong = genPl ?? stem;
  return { task: 'plural', prompt, answer: `Liczba mnoga słowa „${stem}” to „${pl}”.`, wrong: `Liczba mnoga słowa „${stem}” to „${wrong}”.` };
}

/** The cloze form of the inflection task: the sentence with a blank, the lemma, the right form. */
export function inflectionExample(sentence: string, lemma: string, word: string, wrongForm: string): Example {
  return {
    task: 'inflection', prompt: `Wstaw właściwą formę słowa „${lemma}” w miejsce ___: ${sentence}`,
    answer: sentence.replace('___', word), wrong: sentence.replace('___', wrongForm),
  };
}

// -----------------------------------------------------------------------------------------------
// rows

export function sftRow(e: Example): SftRow { return { messages: [...user(e.prompt), ...assistant(e.answer)], task: e.task }; }
export function dpoRow(e: Example): DpoRow { return { prompt: user(e.prompt), chosen: assistant(e.answer), rejected: assistant(e.wrong), task: e.task }; }
export function grpoRow(e: Example): GrpoRow {
  if (e.numeric === undefined) throw new Error(`grpoRow: ${e.task} has no numeric answer`);
  return { prompt: user(e.prompt), answer: e.numeric, task: e.task };
}
