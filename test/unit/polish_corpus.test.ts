// The Polish corpus builder's pure parts on inline samples (no Debian package needed): fortune,
// roff and HTML extraction, normalisation, filters, deduplication, the seeded split, DEP-5 licences.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseFortunes, roffToParagraphs, roffInline, htmlToParagraphs, decodeEntities } from '../../scripts/polish/extract.ts';
import { normalizeParagraph, reflowWrapped, rejectReason, nearDupKey, Deduper, splitOf } from '../../scripts/polish/clean.ts';
import { dep5Licence } from '../../scripts/polish/sources.ts';

describe('fortunes', () => {
  test('entries split at lines holding only %, empty entries dropped, trailing newlines cut', () => {
    const src = 'Pierwsza fortunka.\n%\nDruga,\nw dwóch liniach.\n%\n%\n100% pewności.\n';
    assert.deepEqual(parseFortunes(Buffer.from(src)), ['Pierwsza fortunka.', 'Druga,\nw dwóch liniach.', '100% pewności.']);
  });

  test('an entry that is not valid UTF-8 is read as ISO-8859-2; the others stay UTF-8', () => {
    const latin2 = Buffer.from([0x5a, 0xbf, 0xf3, 0xb3, 0x77]);                 // "Żółw" in ISO-8859-2 (Ż = 0xaf, ż = 0xbf)
    const bytes = Buffer.concat([Buffer.from('Zażółć gęślą jaźń\n%\n'), latin2, Buffer.from('\n')]);
    assert.deepEqual(parseFortunes(bytes), ['Zażółć gęślą jaźń', 'Zżółw']);
  });
});

describe('roff (man pages)', () => {
  const page = [
    '.\\" -*- coding: UTF-8 -*-',
    '.TH BASENAME 1 "wrzesień 2022" "GNU coreutils 9.1" "Polecenia użytkownika"',
    '.SH NAZWA',
    'basename \\- oddziela katalog i przyrostek od nazw plików',
    '.SH SKŁADNIA',
    '\\fBbasename\\fP \\fINAZWA\\fP',
    '.SH OPIS',
    '.PP',
    'Wyświetla \\fINAZWĘ\\fP, usuwając wiodące nazwy katalogów, pozostawiając w ten',
    'sposób nazwę pliku bez ścieżki \\(em tylko ją.',
    '.TP',
    '\\fB\\-a\\fP, \\fB\\-\\-multiple\\fP',
    'obsługuje wiele argumentów traktując każdy jako \\fINAZWĘ\\fP',
    '.TP',
    '.B \\-z',
    'kończy każdy wiersz bajtem NUL',
    '.nf',
    'basename /usr/bin/sort',
    '.fi',
    'Tekst po bloku: ',
    '.B pogrubiony',
    'i zwykły.',
    '.if t \\{\\',
    '.ft CW',
    'ukryte w warunku',
    '.\\}',
    '.SH PRZYKŁADY',
    'Przykład, który nie jest prozą.',
  ].join('\n');

  test('prose paragraphs only: skipped sections, .TP tags, no-fill blocks and conditionals are dropped', () => {
    const r = roffToParagraphs(page);
    assert.equal(r.skipped, undefined);
    assert.deepEqual(r.paragraphs, [
      'Wyświetla NAZWĘ, usuwając wiodące nazwy katalogów, pozostawiając w ten sposób nazwę pliku bez ścieżki — tylko ją.',
      'obsługuje wiele argumentów traktując każdy jako NAZWĘ',
      'kończy każdy wiersz bajtem NUL',
      'Tekst po bloku:  pogrubiony i zwykły.',
    ]);
  });

  test('escapes: fonts, dashes, named glyphs, \\[uXXXX], strings, size changes, \\c joins', () => {
    assert.equal(roffInline('\\fBpogrubiony\\fR \\fIkursywa\\fP \\f(CWstała\\fP'), 'pogrubiony kursywa stała');
    assert.equal(roffInline('a\\-b \\(aqx\\(aq \\(lqcytat\\(rq \\*(lqinny\\*(rq \\[u0105] \\[em]'), "a-b 'x' “cytat” “inny” ą —");
    assert.equal(roffInline('\\s-1MAŁE\\s0 litery\\&. \\e'), 'MAŁE litery. \\');
    assert.equal(roffInline('tekst \\" komentarz'), 'tekst ');
    assert.equal(roffToParagraphs('.PP\nbez\\c\nspacji').paragraphs[0], 'bezspacji');
  });

  test('mdoc pages and .so links are skipped and reported', () => {
    assert.deepEqual(roffToParagraphs('.Dd $Mdocdate$\n.Dt LS 1\n.Sh OPIS\nTekst.'), { paragraphs: [], skipped: 'mdoc' });
    assert.deepEqual(roffToParagraphs('.so man3/printf.3\n'), { paragraphs: [], skipped: 'so' });
  });
});

describe('HTML (LibreOffice help)', () => {
  const html = `<!DOCTYPE html><html><head><title>Tytuł</title><script>var x = "<p>nie</p>";</script></head><body>
<header><p>Pomoc LibreOffice</p></header>
<div id="DisplayArea" itemprop="softwareHelp">
<h1>Pasek wyszukiwania</h1>
<p class="paragraph">Pasek narzędzi <span class="menuitem">Znajdź</span> może być użyty do&nbsp;szybkiego przeszukiwania &amp; więcej.</p>
<div class="bascode"><pre>Sub Main
  MsgBox "kod"
End Sub</pre></div>
<table><tr><td><p>Komórka tabeli</p></td></tr></table>
<div class="howtoget"><p>Wybierz Edycja - Znajdź</p></div>
<p>Drugi akapit<br>po łamaniu wiersza &#261;&#x107;.</p>
<ul><li>Element listy</li></ul>
</div>
<footer><p>Stopka</p></footer>
</body></html>`;

  test('the text of #DisplayArea split at block elements; scripts, code, tables and menu paths dropped; entities decoded', () => {
    assert.deepEqual(htmlToParagraphs(html), [
      'Pasek wyszukiwania',
      'Pasek narzędzi Znajdź może być użyty do\u00a0szybkiego przeszukiwania & więcej.',
      'Drugi akapit', 'po łamaniu wiersza ąć.',
      'Element listy',
    ]);
  });

  test('entities: named, decimal and hexadecimal; unknown ones are kept', () => {
    assert.equal(decodeEntities('&lt;a&gt; &quot;b&quot; &#322;&#x144; &bdquo;c&rdquo; &unknown;'), '<a> "b" łń „c” &unknown;');
  });
});

describe('cleaning', () => {
  test('normalizeParagraph: NFC, soft hyphens and zero-width characters removed, every space one space', () => {
    const decomposed = 'Zaz\u0307o\u0301\u0142c\u0301'; // Zażółć with combining accents
    assert.equal(normalizeParagraph(`  ${decomposed}\u00a0\tgęś\u00adlą \u200bjaźń\n i  tak dalej  `), 'Zażółć gęślą jaźń i tak dalej');
    assert.equal(normalizeParagraph(' wiersz  pierwszy \n\n  drugi\twiersz ', true), 'wiersz pierwszy\ndrugi wiersz');
  });

  test('reflowWrapped joins hard-wrapped prose, keeps verse, dialogue and indented lines', () => {
    const wrapped = 'To jest długie zdanie zawinięte po siedemdziesięciu kilku znakach, które\nciągnie się dalej w następnym wierszu.\n- Kwestia dialogu\n\t\tPodpis autora';
    assert.equal(reflowWrapped(wrapped), 'To jest długie zdanie zawinięte po siedemdziesięciu kilku znakach, które ciągnie się dalej w następnym wierszu.\n- Kwestia dialogu\n\t\tPodpis autora');
    assert.equal(reflowWrapped('Krótki wers,\ndrugi wers.'), 'Krótki wers,\ndrugi wers.');
  });

  test('rejectReason: one example per rule, and prose that passes', () => {
    const ok = 'Funkcja zwraca wartość logiczną, która określa, czy komórka zawiera tekst w języku polskim.';
    assert.equal(rejectReason(ok), null);
    assert.equal(rejectReason('Krótki tekst.'), 'too_short');
    assert.equal(rejectReason('Zdanie z błędem kodowania \ufffd w środku, które jest wystarczająco długie.'), 'bad_encoding');
    assert.equal(rejectReason('<@nick> no to się zaczyna dyskusja na kanale o systemie i jądrze'), 'chat_log');
    assert.equal(rejectReason('--multiple obsługuje wiele argumentów, traktując każdy z nich jako nazwę pliku'), 'option_or_list');
    assert.equal(rejectReason('if (x == 1) { y = 2; } else { z = x[3] * y; } // kod się tu nie mieści'), 'code_or_symbols');
    assert.equal(rejectReason('UWAGA: TEN TEKST JEST NAPISANY WIELKIMI LITERAMI I NIE JEST ZWYKŁĄ PROZĄ'), 'upper_case');
    assert.equal(rejectReason('To jest kurwa zdanie z przekleństwem, które nie powinno trafić do korpusu.'), 'profanity');
    assert.equal(rejectReason('Nie ku*wa tak, to nie jest dobry pomysł na korpus dla modelu językowego.'), 'profanity');
    assert.equal(rejectReason('This function returns the value of the cell that is given as the argument.'), 'not_polish');
    assert.equal(rejectReason('Dziala na laptopach, wiec jest przenosny, a to jest dla nas bardzo wazne i dobre.'), 'no_diacritics');
  });

  test('Deduper: exact repeats, then repeats differing only in case, punctuation and spacing', () => {
    const d = new Deduper();
    assert.equal(d.keep('Ala ma kota, a kot ma Alę.'), true);
    assert.equal(d.keep('Ala ma kota, a kot ma Alę.'), false);
    assert.equal(d.keep('ala ma kota a kot  ma alę!'), false);
    assert.equal(d.keep('Ala ma psa, a pies ma Alę.'), true);
    assert.deepEqual([d.exactDropped, d.nearDropped], [1, 1]);
    assert.equal(nearDupKey('„Żółw”,  idzie — POWOLI.'), 'żółw idzie powoli');
  });

  test('splitOf: a function of the seed and the id only, with the requested fractions', () => {
    const ids = Array.from({ length: 20000 }, (_, i) => `pkg/doc-${i}`);
    const a = ids.map((id) => splitOf(id, 1234));
    assert.deepEqual([...ids].reverse().map((id) => splitOf(id, 1234)).reverse(), a);
    const frac = (s: string) => a.filter((x) => x === s).length / ids.length;
    assert.ok(Math.abs(frac('test') - 0.05) < 0.006 && Math.abs(frac('validation') - 0.05) < 0.006, `${frac('test')} ${frac('validation')}`);
    const b = ids.map((id) => splitOf(id, 99));
    assert.ok(a.filter((x, i) => x !== b[i]).length > 500, 'another seed moves documents');
    assert.equal(splitOf('pkg/doc-1', 1234, { validation: 0, test: 1 }), 'test');
    assert.equal(splitOf('pkg/doc-1', 1234, { validation: 0, test: 0 }), 'train');
  });
});

test('dep5Licence reads the License and Copyright of the named Files stanza', () => {
  const text = [
    'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/', '',
    'Files: *', 'Copyright: © 2000-2010, LinuxPL and PLD teams.', 'License: GPL-2+', '',
    'Files: dictionaries/pl_PL/*', 'Copyright: Marek Futrega', ' and others', 'License: GPL or LGPL or MPL or Apache-2.0 or CC-SA-1.0', '',
    'License: GPL-2+', ' This program is free software.',
  ].join('\n');
  assert.deepEqual(dep5Licence(text, '*'), { licence: 'GPL-2+', copyright: '© 2000-2010, LinuxPL and PLD teams.' });
  assert.deepEqual(dep5Licence(text, 'dictionaries/pl_PL/*'), { licence: 'GPL or LGPL or MPL or Apache-2.0 or CC-SA-1.0', copyright: 'Marek Futrega; and others' });
  assert.equal(dep5Licence('This dictionary is covered by CREATIVE COMMONS PUBLIC LICENSE', '*').licence, 'This dictionary is covered by CREATIVE COMMONS PUBLIC LICENSE');
});
