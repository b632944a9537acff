// Plain paragraphs out of the three kinds of Polish text Debian ships:
//   fortunes  strfile sources: entries separated by lines holding only "%"; UTF-8, or ISO-8859-2
//             for the few entries of older files that are not valid UTF-8
//   man pages roff with the man(7) macros (manpages-pl, po4a translations); mdoc(7) pages are
//             skipped. Only filled prose survives: no-fill blocks (.nf/.fi, .EX/.EE), tables
//             (.TS/.TE), macro definitions, conditionals, .TP tags and whole sections that are not
//             prose (synopsis, examples, authors, copyright, see also, translators)
//   HTML      LibreOffice help pages: the text of #DisplayArea, split at block elements, without
//             scripts, code (<pre>, .bascode), tables, "how to get" menu paths and related links
// Every function here is pure (text in, paragraphs out); cleaning and filtering live in clean.ts.

// -----------------------------------------------------------------------------------------------
// fortunes

const UTF8 = new TextDecoder('utf-8', { fatal: true });
const LATIN2 = new TextDecoder('iso-8859-2');

/** Entries of a fortune file; lines keep their breaks (verse, dialogue), entries are not cleaned. */
export function parseFortunes(bytes: Uint8Array): string[] {
  const out: string[] = [];
  let start = 0;
  const push = (end: number) => {
    const raw = bytes.subarray(start, end);
    let text: string;
    try { text = UTF8.decode(raw); } catch { text = LATIN2.decode(raw); }
    if (text.trim() !== '') out.push(text.replace(/\r\n?/g, '\n').replace(/\n+$/, ''));
  };
  // a separator is a line "%" (start of file or after "\n", followed by "\n" or the end)
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0x25 && (i === 0 || bytes[i - 1] === 0x0a) && (i + 1 === bytes.length || bytes[i + 1] === 0x0a || bytes[i + 1] === 0x0d)) {
      push(i);
      while (i < bytes.length && bytes[i] !== 0x0a) i++;
      start = i + 1;
    }
  }
  if (start < bytes.length) push(bytes.length);
  return out;
}

// -----------------------------------------------------------------------------------------------
// roff (man pages)

/** Sections whose content is not prose (Polish titles of manpages-pl, and their English originals). */
const SKIP_SECTIONS = new Set([
  'NAZWA', 'NAME', 'SKŁADNIA', 'SYNOPSIS', 'SKŁADNIA POLECENIA', 'PRZYKŁAD', 'PRZYKŁADY', 'EXAMPLE', 'EXAMPLES',
  'AUTOR', 'AUTORZY', 'AUTHOR', 'AUTHORS', 'PRAWA AUTORSKIE', 'COPYRIGHT', 'ZGŁASZANIE BŁĘDÓW', 'REPORTING BUGS',
  'ZOBACZ TAKŻE', 'SEE ALSO', 'TŁUMACZENIE', 'KOLOFON', 'COLOPHON', 'PLIKI', 'FILES', 'WERSJE', 'VERSIONS',
  'STANDARDY', 'ZGODNE Z', 'CONFORMING TO', 'STANDARDS', 'ATRYBUTY', 'ATTRIBUTES', 'HISTORIA', 'HISTORY',
]);

/** Named glyphs (\(xx, \[xx]) that occur in the pages; unknown ones vanish. */
const GLYPHS: Record<string, string> = {
  em: '—', en: '–', hy: '-', mi: '-', aq: "'", dq: '"', lq: '“', rq: '”', oq: '‘', cq: '’', Fo: '«', Fc: '»',
  bu: '•', co: '©', rg: '®', tm: '™', mu: '×', di: '÷', de: '°', '>=': '≥', '<=': '≤', '->': '→', '<-': '←',
  pl: '+', eq: '=', ti: '~', ha: '^', rs: '\\', sl: '/', ba: '|', or: '|', sq: '□', at: '@', sh: '#', Do: '$',
  ua: '↑', da: '↓', '+-': '±', ga: '`', aa: '´', 'u2014': '—', 'u2013': '–',
};
/** Predefined strings (\*(xx, \*[xx]) of man(7). */
const STRINGS: Record<string, string> = { lq: '“', rq: '”', R: '®', Tm: '™', S: '', ' ': ' ' };

/** A roff text line without escapes and font changes. `\c` (join with the next line) is kept as "\u0000". */
export function roffInline(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch !== '\\') { out += ch; continue; }
    const e = s[++i];
    if (e === undefined) break;
    switch (e) {
      case '"': return out;                                  // comment to end of line
      case '-': out += '-'; break;
      case 'e': case '\\': out += '\\'; break;
      case ' ': case '~': case '0': out += ' '; break;
      case '&': case ')': case '/': case ',': case ':': case '%': case '|': case '^': case 'z': case '{': case '}': break;
      case 'c': out += '\u0000'; break;
      case "'": out += '´'; break;
      case '`': out += '`'; break;
      case '.': out += '.'; break;
      case 't': out += ' '; break;
      case 'f': case 'F': case 'n': case 'k': case '*': case 'g': case 'm': case 'M': case 'V': case 'Y': case '$': {
        // one-character name, (xx two-character name, or [name]
        let name: string;
        if (s[i + 1] === '(') { name = s.slice(i + 2, i + 4); i += 3; }
        else if (s[i + 1] === '[') { const j = s.indexOf(']', i + 2); name = s.slice(i + 2, j < 0 ? s.length : j); i = j < 0 ? s.length : j; }
        else { name = s[i + 1] ?? ''; i += 1; }
        if (e === 'n' && name === '+' ) { i += 1; }            // \n+x: auto-increment register
        if (e === '*') out += STRINGS[name] ?? '';
        break;
      }
      case '(': out += GLYPHS[s.slice(i + 1, i + 3)] ?? ''; i += 2; break;
      case '[': {
        const j = s.indexOf(']', i + 1);
        const name = s.slice(i + 1, j < 0 ? s.length : j);
        i = j < 0 ? s.length : j;
        const u = /^u([0-9A-Fa-f]{4,6})$/.exec(name);
        out += u ? String.fromCodePoint(parseInt(u[1], 16)) : GLYPHS[name] ?? '';
        break;
      }
      case 's': {
        // \s+2, \s-1, \s0, \s(12, \s[12], \s'12'
        const m = /^(?:[+-]?\d{1,2}|[+-]?\(\d\d|[+-]?\[[^\]]*\]|'[^']*')/.exec(s.slice(i + 1));
        i += m ? m[0].length : 0;
        break;
      }
      case 'h': case 'v': case 'w': case 'l': case 'L': case 'o': case 'X': case 'D': case 'b': case 'x': case 'N': case 'R': case 'Z': case 'A': case 'B': case 'C': case 'S': case 'H': {
        // escapes with a delimited argument: \h'1m', \w'text', \X'...'
        const d = s[i + 1];
        if (d === undefined) break;
        const j = s.indexOf(d, i + 2);
        i = j < 0 ? s.length : j;
        break;
      }
      default: out += e; break;                               // \. \$ and other quoted characters
    }
  }
  return out;
}

/** Arguments of a request line: space separated, "double quoted" with "" for a quote. */
export function roffArgs(rest: string): string[] {
  const args: string[] = [];
  let i = 0;
  while (i < rest.length) {
    while (rest[i] === ' ' || rest[i] === '\t') i++;
    if (i >= rest.length) break;
    if (rest[i] === '"') {
      let a = '';
      i++;
      while (i < rest.length) {
        if (rest[i] === '"') { if (rest[i + 1] === '"') { a += '"'; i += 2; continue; } i++; break; }
        a += rest[i++];
      }
      args.push(a);
    } else {
      let j = i;
      while (j < rest.length && rest[j] !== ' ' && rest[j] !== '\t') j++;
      args.push(rest.slice(i, j));
      i = j;
    }
  }
  return args;
}

const FONT_MACROS = new Set(['B', 'I', 'SM', 'SB']);
const ALTERNATING = new Set(['BR', 'RB', 'IR', 'RI', 'BI', 'IB']);
const BREAKS = new Set(['PP', 'P', 'LP', 'SS', 'sp', 'br', 'IP', 'TP', 'TQ', 'HP', 'RS', 'RE', 'in', 'PD', 'ti', 'bp', 'ne', 'UR', 'UE', 'MT', 'ME', 'TH']);
/** Blocks skipped whole: no-fill text (code, examples, diagrams), tables, equations, macro definitions. */
const BLOCKS: Record<string, string> = { nf: 'fi', EX: 'EE', TS: 'TE', EQ: 'EN', PS: 'PE', Vb: 'Ve', de: '.', de1: '.', am: '.', ig: '.' };

export interface RoffResult { paragraphs: string[]; skipped?: 'mdoc' | 'so' }

/** The prose paragraphs of a man(7) page (each paragraph one line of text, whitespace not yet normalised). */
export function roffToParagraphs(src: string): RoffResult {
  const lines = src.replace(/\r\n?/g, '\n').split('\n');
  const firstReal = lines.find((l) => l.trim() !== '' && !/^[.']\s*\\"/.test(l)) ?? '';
  if (/^\.so\s/.test(firstReal)) return { paragraphs: [], skipped: 'so' };
  if (lines.some((l) => /^\.(Dd|Sh)\b/.test(l))) return { paragraphs: [], skipped: 'mdoc' };

  const paragraphs: string[] = [];
  let cur: string[] = [];
  let skipSection = false;
  let blockEnd: string | null = null;
  let braceDepth = 0;
  let dropNextText = false;                                  // the tag line after .TP
  const flush = () => {
    const p = cur.join(' ').replace(/\u0000 ?/g, '');
    if (!skipSection && p.trim() !== '') paragraphs.push(p);
    cur = [];
  };
  for (const line of lines) {
    if (braceDepth > 0) { braceDepth += countBraces(line); continue; }
    if (blockEnd !== null) {
      const req = /^[.']\s*([A-Za-z0-9]+|\.)/.exec(line)?.[1];
      if (req === blockEnd || (blockEnd === '.' && /^\.\.\s*$/.test(line))) blockEnd = null;
      continue;
    }
    const control = /^[.']\s*(\S*)(.*)$/.exec(line);
    if (control) {
      const [, name, rest] = control;
      if (name === '' || name.startsWith('\\"')) continue;   // empty request, comment
      if (name in BLOCKS) { flush(); blockEnd = BLOCKS[name]; continue; }
      if (name === 'SH') {
        flush();
        const title = roffInline(roffArgs(rest).join(' ')).replace(/\s+/g, ' ').trim().toUpperCase();
        skipSection = SKIP_SECTIONS.has(title);
        dropNextText = false;
        continue;
      }
      if (name === 'TP' || name === 'TQ') { flush(); dropNextText = true; continue; }
      if (BREAKS.has(name)) { flush(); continue; }
      if (FONT_MACROS.has(name) || ALTERNATING.has(name)) {
        const args = roffArgs(rest).map(roffInline);
        if (args.length === 0) continue;                     // font for the next line: the text follows
        if (dropNextText) { dropNextText = false; continue; }
        cur.push(args.join(ALTERNATING.has(name) ? '' : ' '));
        continue;
      }
      braceDepth = countBraces(line);                         // .if/.ie/.el with \{ ... \} blocks
      if (braceDepth < 0) braceDepth = 0;
      continue;                                              // every other request: formatting only
    }
    if (dropNextText) { dropNextText = false; continue; }
    if (line.trim() === '') { flush(); continue; }           // a blank line is a paragraph break in man pages
    if (/^\s/.test(line)) { flush(); continue; }              // leading space: an unfilled line (code, diagrams)
    cur.push(roffInline(line));
  }
  flush();
  return { paragraphs };
}

function countBraces(line: string): number {
  return (line.match(/\\\{/g)?.length ?? 0) - (line.match(/\\\}/g)?.length ?? 0);
}

// -----------------------------------------------------------------------------------------------
// HTML (LibreOffice help)

const BLOCK_TAGS = new Set(['p', 'div', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'li', 'ul', 'ol', 'br', 'tr', 'td', 'th', 'table',
  'section', 'article', 'header', 'footer', 'nav', 'aside', 'dd', 'dt', 'dl', 'blockquote', 'hr']);
const VOID_TAGS = new Set(['br', 'img', 'meta', 'link', 'input', 'hr', 'base', 'source', 'wbr', 'area', 'col', 'embed', 'param', 'track']);
/** Elements whose whole content is dropped. */
const SKIP_TAGS = new Set(['script', 'style', 'noscript', 'pre', 'code', 'table', 'nav', 'aside', 'header', 'footer', 'button', 'label', 'head', 'title', 'svg', 'math']);
const SKIP_CLASSES = ['bascode', 'howtoget', 'relatedtopics', 'related', 'noteicon', 'iconcell', 'icontable', 'debug', 'bug'];

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0', shy: '\u00ad', hellip: '…', mdash: '—', ndash: '–', laquo: '«', raquo: '»', bdquo: '„', rdquo: '”', ldquo: '“', rsquo: '’', lsquo: '‘', copy: '©', reg: '®', trade: '™', deg: '°', times: '×', middot: '·', bull: '•', euro: '€' };

export function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|[A-Za-z]+);/g, (m, e: string) => {
    if (e[0] === '#') {
      const cp = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : '';
    }
    return ENTITIES[e] ?? m;
  });
}

/**
 * Paragraphs of an HTML page: the content of the element with id="DisplayArea" when there is one
 * (the LibreOffice help layout), else of <body>; block elements separate paragraphs.
 */
export function htmlToParagraphs(html: string): string[] {
  const area = html.indexOf('id="DisplayArea"');
  const from = area >= 0 ? html.lastIndexOf('<', area) : Math.max(0, html.search(/<body[\s>]/i));
  const out: string[] = [];
  let cur = '';
  const flush = () => { if (cur.trim() !== '') out.push(decodeEntities(cur)); cur = ''; };
  const stack: { name: string; skip: boolean }[] = [];
  let skipDepth = 0;                                         // open elements with skip = true
  const tagRe = /<!--[\s\S]*?-->|<(\/?)([A-Za-z][A-Za-z0-9]*)((?:[^>"']|"[^"]*"|'[^']*')*)>|<!\[CDATA\[[\s\S]*?\]\]>|<![^>]*>/g;
  tagRe.lastIndex = from;
  let last = from;
  for (let m = tagRe.exec(html); m; m = tagRe.exec(html)) {
    if (skipDepth === 0) cur += html.slice(last, m.index);
    last = tagRe.lastIndex;
    if (m[2] === undefined) continue;                        // comment, doctype, CDATA
    const closing = m[1] === '/';
    const name = m[2].toLowerCase();
    const attrs = m[3] ?? '';
    if (!closing && area >= 0 && stack.length === 0 && name !== 'div') continue;
    if (closing) {
      // pop to the matching open element (tolerates unclosed <p>, <li>)
      let k = stack.length - 1;
      while (k >= 0 && stack[k].name !== name) k--;
      if (k < 0) continue;
      while (stack.length > k) { const e = stack.pop()!; if (e.skip) skipDepth--; }
      if (BLOCK_TAGS.has(name)) flush();
      if (stack.length === 0 && area >= 0) break;            // end of #DisplayArea
      continue;
    }
    if (BLOCK_TAGS.has(name) && skipDepth === 0) flush();
    if (VOID_TAGS.has(name) || /\/\s*$/.test(attrs)) continue;
    const cls = /\bclass\s*=\s*"([^"]*)"/i.exec(attrs)?.[1].split(/\s+/) ?? [];
    const skip = SKIP_TAGS.has(name) || cls.some((c) => SKIP_CLASSES.includes(c));
    stack.push({ name, skip });
    if (skip) { if (skipDepth === 0) flush(); skipDepth++; }
  }
  if (skipDepth === 0 && (stack.length > 0 || area < 0)) cur += html.slice(last);
  flush();
  return out.map((p) => p.replace(/<[^>]*>/g, ''));
}
