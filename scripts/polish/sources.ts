// The Debian packages the Polish corpus is made from, how to find their files (dpkg), install
// them (apt, when root) and read their licences (DEP-5 /usr/share/doc/<pkg>/copyright).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createHash } from 'node:crypto';

export type SourceKind = 'fortune' | 'man' | 'html' | 'dictionary';

export interface PackageSource {
  pkg: string;
  kind: SourceKind;
  /** Which of the package's files are read (dpkg -L paths). */
  select: (path: string) => boolean;
  /** The DEP-5 "Files:" pattern whose License applies to what we use. */
  licenceFiles: string;
  about: string;
}

/**
 * Fortune files left out: lists of insults and stereotypes (imiona, dowcipy-szowinistyczne,
 * dowcipy-feministyczne), word games that are not sentences (gra_polslowek) and a glossary of
 * vulgarisms (slownik). The rest go through the same filters as every other text.
 */
export const FORTUNE_EXCLUDED = ['imiona', 'dowcipy-szowinistyczne', 'dowcipy-feministyczne', 'gra_polslowek', 'slownik'];

export const PACKAGES: PackageSource[] = [
  {
    pkg: 'fortunes-pl', kind: 'fortune', licenceFiles: '*',
    about: 'Polish fortune cookies (jokes, quotations, verse) from the LinuxPL and PLD distributions',
    select: (p) => p.startsWith('/usr/share/games/fortunes/pl/') && !/\.(dat|u8)$/.test(p) && !FORTUNE_EXCLUDED.includes(p.split('/').pop()!),
  },
  {
    pkg: 'manpages-pl', kind: 'man', licenceFiles: '*',
    about: 'Polish translations of Linux manual pages (manpages-l10n, po4a)',
    select: (p) => /^\/usr\/share\/man\/pl\/man\d\w*\/[^/]+\.gz$/.test(p),
  },
  {
    pkg: 'manpages-pl-dev', kind: 'man', licenceFiles: '*',
    about: 'Polish translations of the Linux programming manual pages (sections 2 and 3)',
    select: (p) => /^\/usr\/share\/man\/pl\/man\d\w*\/[^/]+\.gz$/.test(p),
  },
  {
    pkg: 'libreoffice-help-pl', kind: 'html', licenceFiles: '*',
    about: 'Polish LibreOffice 7.4 help (HTML pages)',
    select: (p) => /^\/usr\/share\/libreoffice\/help\/pl\/text\/.+\.html$/.test(p),
  },
  {
    pkg: 'hunspell-pl', kind: 'dictionary', licenceFiles: 'dictionaries/pl_PL/*',
    about: 'Polish hunspell dictionary (sjp.pl): word stems with affix rules; used for the inflection tasks, not as text',
    select: (p) => /^\/usr\/share\/hunspell\/pl_PL\.(aff|dic)$/.test(p),
  },
];

export const HUNSPELL_AFF = '/usr/share/hunspell/pl_PL.aff';
export const HUNSPELL_DIC = '/usr/share/hunspell/pl_PL.dic';

/** The installed version of a package, or null when it is not installed. */
export function dpkgVersion(pkg: string): string | null {
  try {
    const out = execFileSync('dpkg-query', ['-W', '-f=${db:Status-Abbrev}|${Version}', pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const [status, version] = out.split('|');
    return status.startsWith('ii') ? version : null;
  } catch {
    return null;
  }
}

/** Files installed by a package, sorted. */
export function dpkgFiles(pkg: string): string[] {
  const out = execFileSync('dpkg', ['-L', pkg], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return out.split('\n').filter((p) => p !== '' && fs.existsSync(p) && fs.statSync(p).isFile()).sort();
}

export function aptInstallLine(pkgs: string[]): string {
  return `apt-get install -y --no-install-recommends ${pkgs.join(' ')}`;
}

/**
 * Installed versions of the packages. Missing ones are installed with apt when we are root and
 * `install` is true; otherwise this throws with the exact command to run.
 */
export function ensurePackages(pkgs: string[], install: boolean, log: (s: string) => void): Record<string, string> {
  const missing = pkgs.filter((p) => dpkgVersion(p) === null);
  if (missing.length > 0) {
    const root = typeof process.getuid === 'function' && process.getuid() === 0;
    if (!install || !root) {
      throw new Error(`missing Debian packages: ${missing.join(' ')}; run: sudo apt-get update && sudo ${aptInstallLine(missing)}`);
    }
    log(`installing Debian packages: ${missing.join(' ')}`);
    execFileSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'ignore', 'inherit'] });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing],
      { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
  const versions: Record<string, string> = {};
  for (const p of pkgs) {
    const v = dpkgVersion(p);
    if (v === null) throw new Error(`Debian package ${p} is still not installed after apt-get install`);
    versions[p] = v;
  }
  return versions;
}

export interface Licence { licence: string; copyright: string; copyrightFile: string; copyrightSha256: string }

/** The License and Copyright fields of the DEP-5 stanza for `files`, from /usr/share/doc/<pkg>/copyright. */
export function licenceOf(pkg: string, files: string): Licence {
  const copyrightFile = `/usr/share/doc/${pkg}/copyright`;
  const text = fs.readFileSync(copyrightFile, 'utf8');
  return { ...dep5Licence(text, files), copyrightFile, copyrightSha256: createHash('sha256').update(text).digest('hex') };
}

/**
 * License (its short name, the first line) and Copyright of the stanza whose Files field is exactly
 * `files` in a DEP-5 copyright file; for other formats, the first line that mentions a licence.
 */
export function dep5Licence(text: string, files: string): { licence: string; copyright: string } {
  const stanza = text.split(/\n\s*\n/).find((s) => new RegExp(`^Files:\\s*${escapeRe(files)}\\s*$`, 'm').test(s));
  if (!stanza) return { licence: firstLicenceLine(text), copyright: '' };
  const field = (name: string) => {
    const m = new RegExp(`^${name}:[ \\t]*(.*(?:\\n[ \\t]+.*)*)`, 'm').exec(stanza);
    return m ? m[1].split('\n').map((l) => l.trim()).filter((l) => l !== '' && l !== '.') : [];
  };
  return { licence: field('License')[0] ?? '', copyright: field('Copyright').join('; ') };
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Non-DEP-5 copyright files: the first line that names a licence. */
function firstLicenceLine(text: string): string {
  return text.split('\n').find((l) => /licen[cs]e|GPL|Creative Commons/i.test(l))?.trim() ?? 'see the copyright file';
}
