// A tiny inline Polish "corpus split" and hunspell dictionary for the polish_* tests: three sources
// with three documents each, and a dictionary in pl_PL's format with a few noun and adjective
// paradigms, so the suite and instruction generators run without any Debian package.
import { parseAffixes, parseDic } from '../scripts/polish/hunspell.ts';
import type { SourceDoc } from '../scripts/polish/eval_tasks.ts';

export const FIXTURE_AFF = `SET UTF-8
SFX N Y 3
SFX N   0         om        [^aćńośź]
SFX N   0         ami       [^aćńośź]
SFX N   0         ach       [^aćńośź]

SFX O Y 4
SFX O   0         a         [^aćńośź]
SFX O   0         owi       [^aćńośź]
SFX O   0         em        [^aćńośź]
SFX O   0         u         [kg]

SFX s Y 2
SFX s   0         y         [^acćgjklńośyzźż]
SFX s   0         i         [kg]

SFX q Y 1
SFX q   ik        icy       nik

SFX T Y 1
SFX T   0         ów        [^aćońśuwź]

SFX X Y 6
SFX X   y         ego       y
SFX X   y         emu       y
SFX X   y         ym        y
SFX X   y         a         y
SFX X   y         e         y
SFX X   y         ą         y
`;

export const FIXTURE_DIC = `8
kot/NOsT
plik/NOsT
katalog/NOsT
użytkownik/NOqsT
dobry/X
nowy/X
tekstowy/X
Kraków/NO
`;

export const fixtureAffixes = () => parseAffixes(FIXTURE_AFF);
export const fixtureEntries = () => parseDic(FIXTURE_DIC);

const doc = (id: string, source: string, paragraphs: string[]): SourceDoc => ({ id, source, text: paragraphs.join('\n\n') });

export const FIXTURE_DOCS: SourceDoc[] = [
  doc('fortunes-pl/bajki#1', 'fortunes-pl', [
    'Mój kot ma na imię Mruczek i bardzo lubi spać. Wczoraj widziałem dobrego kota na podwórku za domem. Potem poszedłem do sklepu po mleko dla niego.',
    'Sąsiad powiedział, że jego kot jest najmądrzejszy na świecie. Nikt mu jednak nie uwierzył, bo kot spał cały dzień. Wieczorem wszyscy śmiali się z tej historii.',
  ]),
  doc('fortunes-pl/bajki#2', 'fortunes-pl', [
    'Przychodzi baba do lekarza i mówi, że boli ją głowa. Lekarz długo myśli i w końcu przepisuje jej herbatę. Baba wychodzi zadowolona z gabinetu.',
    'Dwóch górali spotkało się na szlaku w wysokich górach. Jeden zapytał drugiego o drogę do schroniska. Drugi tylko wzruszył ramionami i poszedł dalej.',
  ]),
  doc('fortunes-pl/bajki#3', 'fortunes-pl', [
    'Student przyszedł na egzamin bez żadnych notatek w ręku. Profesor spojrzał na niego z wielkim zdziwieniem. Po chwili student zaczął opowiadać o pogodzie.',
  ]),
  doc('manpages-pl/man1/cat.1', 'manpages-pl', [
    'Program zapisuje dane w nowym pliku na dysku twardym. Każdy plik ma swoją nazwę oraz rozmiar w bajtach. Polecenie pracuje z dobrym plikiem w bieżącym katalogu.',
    'Jeśli nie podano nazwy, czytane jest standardowe wejście programu. Wynik trafia zawsze na standardowe wyjście procesu. Błędy są wypisywane na standardowe wyjście błędów.',
  ]),
  doc('manpages-pl/man1/ls.1', 'manpages-pl', [
    'Wyświetla informacje o plikach w podanym katalogu roboczym. Domyślnie wpisy są sortowane alfabetycznie według nazwy. Opcje pozwalają zmienić kolejność i format wyjścia.',
    'Każdy użytkownik widzi tylko te pliki, do których ma prawo. Administrator systemu może czytać wszystkie katalogi na dysku. Uprawnienia są sprawdzane przy każdym dostępie.',
  ]),
  doc('manpages-pl/man1/cp.1', 'manpages-pl', [
    'Kopiuje pliki i katalogi do wskazanego miejsca docelowego. Istniejące pliki są nadpisywane bez pytania użytkownika. Tryb interaktywny pyta przed każdym nadpisaniem pliku.',
  ]),
  doc('libreoffice-help-pl/a.html', 'libreoffice-help-pl', [
    'Pasek narzędzi może być użyty do szybkiego przeszukiwania dokumentów. Wpisz szukany tekst w polu tekstowym i naciśnij klawisz Enter. Wyniki są zaznaczane w bieżącym dokumencie tekstowym.',
    'Aby zapisać dokument, wybierz polecenie z menu Plik programu. Dokument zostanie zapisany w bieżącym formacie pliku na dysku. Możesz też nadać mu nową nazwę w oknie dialogowym.',
  ]),
  doc('libreoffice-help-pl/b.html', 'libreoffice-help-pl', [
    'Styl akapitu określa wygląd całego tekstu w dokumencie głównym. Zmiana stylu od razu wpływa na wszystkie akapity tego typu. Nowy styl można utworzyć na podstawie zaznaczenia.',
  ]),
  doc('libreoffice-help-pl/c.html', 'libreoffice-help-pl', [
    'Arkusz kalkulacyjny składa się z komórek ułożonych w wiersze. Każda komórka może zawierać liczbę, tekst albo formułę obliczeniową. Formuły zaczynają się zawsze od znaku równości w komórce.',
  ]),
];
