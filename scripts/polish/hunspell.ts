// Inflected forms from a hunspell dictionary (hunspell-pl's pl_PL.aff/.dic, ISO-8859-2): the forms
// of a dictionary entry are the stem plus every suffix rule of its flags whose condition matches.
// Only what the Polish tasks need:
//   - SFX rules (strip, add, condition); PFX rules are ignored (in pl_PL the only one adds the
//     negation "nie-", which is not an inflection);
//   - single-character flags (pl_PL has no FLAG directive), continuation classes ("add/flags")
//     are not followed.
// An entry's forms are its "paradigm": the inflection tasks choose among forms of one entry, so no
// grammatical tags are needed (pl_PL has none). pl_PL's flags do follow grammar loosely (e.g.
// flag "s" adds the nominative plural of masculine nouns: dom -> domy); see docs/polish-eval.md.

export interface SuffixRule { flag: string; strip: string; add: string; cond: RegExp }

export interface Affixes { suffixes: Map<string, SuffixRule[]> }

/** Parses the SFX rules of an .aff file (already decoded to a string). */
export function parseAffixes(aff: string): Affixes {
  const suffixes = new Map<string, SuffixRule[]>();
  const conds = new Map<string, RegExp>();
  for (const line of aff.split(/\r?\n/)) {
    const f = line.trim().split(/\s+/);
    if (f[0] !== 'SFX' || f.length < 5) continue;        // headers have 4 fields: SFX flag Y count
    const [, flag, strip, addRaw, cond] = f;
    const add = addRaw.split('/')[0];
    let re = conds.get(cond);
    if (re === undefined) { re = new RegExp(`${cond === '.' ? '' : cond}$`, 'u'); conds.set(cond, re); }
    const list = suffixes.get(flag) ?? [];
    list.push({ flag, strip: strip === '0' ? '' : strip, add: add === '0' ? '' : add, cond: re });
    suffixes.set(flag, list);
  }
  return { suffixes };
}

export interface DicEntry { stem: string; flags: string }

/** Entries of a .dic file (the first line, the entry count, is skipped). */
export function parseDic(dic: string): DicEntry[] {
  const lines = dic.split(/\r?\n/);
  const out: DicEntry[] = [];
  for (let i = 1; i < lines.length; i++) {
    const l = lines[i].trim();
    if (l === '') continue;
    const slash = l.indexOf('/');
    out.push(slash < 0 ? { stem: l, flags: '' } : { stem: l.slice(0, slash), flags: l.slice(slash + 1) });
  }
  return out;
}

/** Forms of one suffix flag applied to a stem (hunspell: the condition is tested on the stem). */
export function suffixForms(stem: string, flag: string, a: Affixes): string[] {
  const out: string[] = [];
  for (const r of a.suffixes.get(flag) ?? []) {
    if (!stem.endsWith(r.strip) || !r.cond.test(stem)) continue;
    out.push(stem.slice(0, stem.length - r.strip.length) + r.add);
  }
  return out;
}

/** The stem and every suffixed form of an entry, distinct, in rule order. */
export function entryForms(e: DicEntry, a: Affixes): string[] {
  const seen = new Set<string>([e.stem]);
  for (const flag of e.flags) for (const f of suffixForms(e.stem, flag, a)) seen.add(f);
  return [...seen];
}

export interface Paradigm { lemma: string; flags: string; forms: string[] }

/**
 * For each word of `wanted` (lower case), the paradigms of the dictionary entries that produce it.
 * Entries whose stem starts with an upper-case letter (names) are skipped.
 */
export function paradigmsFor(wanted: Set<string>, entries: DicEntry[], a: Affixes): Map<string, Paradigm[]> {
  const out = new Map<string, Paradigm[]>();
  for (const e of entries) {
    if (e.flags === '' || e.stem[0] !== e.stem[0].toLowerCase()) continue;
    const forms = entryForms(e, a);
    let p: Paradigm | null = null;
    for (const f of forms) {
      if (!wanted.has(f)) continue;
      p ??= { lemma: e.stem, flags: e.flags, forms };
      const list = out.get(f);
      if (list) list.push(p); else out.set(f, [p]);
    }
  }
  return out;
}
