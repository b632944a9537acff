// Cleaning, filtering, deduplication and the train/validation/test split of the Polish corpus.
// Pure functions over strings; build_corpus.ts applies them in this order:
//   normalizeParagraph -> rejectReason -> Deduper (exact, then near-duplicate key) -> splitOf(document id)
// Every rule is documented in docs/polish-corpus.md with the counts it dropped in the last build.
import { createHash } from 'node:crypto';

// -----------------------------------------------------------------------------------------------
// normalisation

/**
 * NFC; soft hyphens, zero-width characters and C0/C1 controls removed; every kind of space becomes
 * " ". keepLines keeps line breaks (verse and dialogue in fortunes), each line trimmed and its
 * inner runs of spaces collapsed; otherwise the paragraph becomes one line.
 */
export function normalizeParagraph(text: string, keepLines = false): string {
  let s = text.normalize('NFC')
    .replace(/[\u00ad\u200b-\u200d\u2060\ufeff]/g, '')
    .replace(/[\t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]/g, ' ')
    .replace(/\r\n?|[\u2028\u2029\u0085]/g, '\n')
    .replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '');
  if (!keepLines) return s.replace(/\s+/g, ' ').trim();
  s = s.split('\n').map((l) => l.replace(/ +/g, ' ').trim()).filter((l) => l !== '').join('\n');
  return s;
}

/**
 * Joins hard-wrapped lines of a raw fortune (text wrapped at ~72-80 columns) while keeping the
 * breaks that mean something: after a short line (verse, lists: under WRAP_MIN characters),
 * before an indented line (attributions), a dialogue dash or a "Speaker:" label.
 */
export const WRAP_MIN = 60;
export function reflowWrapped(text: string): string {
  const lines = text.split('\n');
  let out = lines[0] ?? '';
  for (let i = 1; i < lines.length; i++) {
    const prev = lines[i - 1], line = lines[i];
    const keep = prev.trimEnd().length < WRAP_MIN || line.trim() === '' || prev.trim() === '' || /^\s/.test(line)
      || /^[-–—*•>]/.test(line) || /^\p{L}[\p{L} .]{0,20}:\s/u.test(line) || /^\d+[.)]\s/.test(line);
    out += keep ? '\n' + line : ' ' + line;
  }
  return out;
}

// -----------------------------------------------------------------------------------------------
// filters

export type DropReason =
  | 'bad_encoding' | 'too_short' | 'code_or_symbols' | 'option_or_list' | 'upper_case'
  | 'chat_log' | 'profanity' | 'not_polish' | 'no_diacritics';

export const MIN_CHARS = 40;
export const MIN_WORDS = 6;

const PL_DIACRITICS = /[ąćęłńóśźżĄĆĘŁŃÓŚŹŻ]/;
const CODE_CHARS = /[{}[\]<>=|\\$#@*_^~`/;]/g;
/** Function words: the language check counts them (whole lower-case words). */
const PL_STOP = new Set(('i w z na się nie do to że jest a o jak co od po za ale lub oraz by dla ten tym czy jeśli są może tak przez ' +
  'przy jego go ma być już tylko który która które aby gdy można pod we ze jako też jej ich ich nas was mnie mi sobie bo gdzie ' +
  'kiedy jeżeli także tego tej tych tę tą jest są był była było będzie zostanie').split(' '));
const EN_STOP = new Set(('the of and to is in that it for on with as are be this by you not or an if from at can will was ' +
  'which have has your all any use used when these their there should would may one').split(' '));
/** Stems of vulgar words, and words masked with "*" (ku*wa): dropped so the demo model does not learn them. */
const PROFANITY = /(?:^|[^\p{L}])(?:kurw|skurw|wkurw|chuj|huj[aeouóy]|pierd[oa]l|jeba|jebi|jebn|wyjeb|zajeb|pojeb|spierd|zapierd|pizd|cip[aekyo]|dup[aęieyo]|fiut|kutas|pedał|cwel|ciot[ay]|szmat[aąy]|dziwk|gówn|gown|srać|sra[łm]|ruchać|rucham|ruchał|ruchan|cyck|cyc[eóy])/iu;
const MASKED = /\p{L}{2}\*+\p{L}|\p{L}\*+\p{L}{2}/u;
/** IRC and chat logs (<nick> text, [12:34] nick:, *** nick joined) and e-mail quotes. */
const CHAT_LINE = /^\s*(?:\[?\d{1,2}:\d{2}(?::\d{2})?\]?\s*)?(?:<[@+%&~ ]?[^>\s]{1,24}>|\*{1,3}\s|-!-|>+\s|[^\s:]{1,20}\s*>\s)|<[@+%&~]?[\w\-[\]^`|{}]{1,24}>\s/u;

export function words(text: string): string[] {
  return text.split(/\s+/).filter((w) => w !== '');
}

/** Why a normalised paragraph is dropped, or null to keep it. */
export function rejectReason(p: string): DropReason | null {
  if (/[\ufffd\u0080-\u009f]/.test(p) || /[ĂĹÄĂ][\u0080-\u00bf]|Ä[\u0099\u0085]|Ĺ[\u0082\u0084\u009b\u009a\u00ba\u00bc\u00bb]/.test(p)) return 'bad_encoding';
  const ws = words(p);
  if (p.length < MIN_CHARS || ws.length < MIN_WORDS) return 'too_short';
  if (p.split('\n').some((l) => CHAT_LINE.test(l))) return 'chat_log';
  if (/^[-–•*]{1,2}[\p{L}\p{N}]/u.test(p)) return 'option_or_list';
  const nonSpace = p.replace(/\s/g, '');
  const letters = (p.match(/\p{L}/gu) ?? []).length;
  const codeChars = (p.match(CODE_CHARS) ?? []).length;
  if (letters / nonSpace.length < 0.75 || codeChars / nonSpace.length > 0.04) return 'code_or_symbols';
  const upper = (p.match(/\p{Lu}/gu) ?? []).length;
  if (letters >= 10 && upper / letters > 0.5) return 'upper_case';
  if (PROFANITY.test(p) || MASKED.test(p)) return 'profanity';
  let pl = 0, en = 0;
  for (const w of ws) {
    const k = w.toLowerCase().replace(/^[^\p{L}]+|[^\p{L}]+$/gu, '');
    if (PL_STOP.has(k)) pl++;
    if (EN_STOP.has(k)) en++;
  }
  if (en > pl || (pl === 0 && ws.length >= 8)) return 'not_polish';
  if (letters >= 60 && !PL_DIACRITICS.test(p)) return 'no_diacritics';
  return null;
}

// -----------------------------------------------------------------------------------------------
// deduplication

/** The near-duplicate key: lower case, letters and digits only, one space between words. */
export function nearDupKey(p: string): string {
  return p.normalize('NFC').toLowerCase().replace(/[^\p{L}\p{N}]+/gu, ' ').trim();
}

function digest(s: string): string {
  return createHash('sha256').update(s).digest('base64').slice(0, 22);
}

/** First occurrence wins: exact text first, then the near-duplicate key (case, punctuation, spacing). */
export class Deduper {
  private exact = new Set<string>();
  private near = new Set<string>();
  exactDropped = 0;
  nearDropped = 0;
  /** True when p is new (and remembers it). */
  keep(p: string): boolean {
    const e = digest(p);
    if (this.exact.has(e)) { this.exactDropped++; return false; }
    this.exact.add(e);
    const n = digest(nearDupKey(p));
    if (this.near.has(n)) { this.nearDropped++; return false; }
    this.near.add(n);
    return true;
  }
}

// -----------------------------------------------------------------------------------------------
// split

export type Split = 'train' | 'validation' | 'test';
export const SPLITS: Split[] = ['train', 'validation', 'test'];

export interface SplitFractions { validation: number; test: number }
export const DEFAULT_FRACTIONS: SplitFractions = { validation: 0.05, test: 0.05 };

/**
 * Split of a document by its id alone: u = uint48(sha256("kompresor-polish-split/<seed>/<id>")[0..6]) / 2^48;
 * test when u < test, validation when u < test + validation, else train. Whole documents move
 * together, so no page is split across train and test.
 */
export function splitOf(docId: string, seed: number, f: SplitFractions = DEFAULT_FRACTIONS): Split {
  const h = createHash('sha256').update(`kompresor-polish-split/${seed}/${docId}`).digest();
  const u = h.readUIntBE(0, 6) / 2 ** 48;
  if (u < f.test) return 'test';
  if (u < f.test + f.validation) return 'validation';
  return 'train';
}
