// Reading a whole UTF-8 text file (JSON Lines of sft, dpo, grpo and eval data) strictly: invalid
// UTF-8 is refused naming FILE:LINE, as `data prepare` does, instead of being turned into U+FFFD
// by readFileSync(file, 'utf8') and trained on (fuzz report D20). A leading BOM is dropped.
import fs from 'node:fs';
import { KompresorError } from '../errors.ts';

/** What is at `path` when it is not a regular file, for messages ("a folder", "a device or pipe"). */
export function notAFile(path: string): string {
  if (!fs.existsSync(path)) return 'no such file';
  return fs.statSync(path).isDirectory() ? 'a folder' : 'not a regular file (a device, pipe or socket)';
}

export function readUtf8File(file: string): string {
  const bytes = fs.readFileSync(file);
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    // find the first line that does not decode, for the message
    const decoder = new TextDecoder('utf-8', { fatal: true });
    let start = 0;
    for (let line = 1; ; line++) {
      const nl = bytes.indexOf(0x0a, start);
      const end = nl < 0 ? bytes.length : nl;
      try {
        decoder.decode(bytes.subarray(start, end));
      } catch {
        throw new KompresorError({ code: 'input_invalid', where: `${file}:${line}`, rule: 'text files must be UTF-8',
          found: `invalid UTF-8 in bytes ${start}..${end} of the file`, hint: 'convert the file to UTF-8 (e.g. iconv -t UTF-8)' });
      }
      if (nl < 0) throw new KompresorError({ code: 'impl_error', where: file, rule: 'a file that does not decode has a line that does not' });
      start = nl + 1;
    }
  }
}
