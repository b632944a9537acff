// The token table both GGUF vocabularies (byte-level BPE and SentencePiece-style) fill: one text
// and one llama.cpp token type per embedding row, with the rules llama.cpp's loader needs checked
// as each token goes in.
import { KompresorError } from '../errors.ts';

export interface TokenTable {
  tokens: Array<string | undefined>;
  types: number[];
  ids: Map<string, number>;
  /** Puts token `text` at row `id` with llama.cpp token type `type`, refusing what llama.cpp cannot load. */
  put(text: string, id: number, type: number): void;
}

/** An empty table of vocabSize rows, every row of type `unused` until a token fills it. */
export function tokenTable(path: string, vocabSize: number, unused: number): TokenTable {
  const tokens: Array<string | undefined> = new Array(vocabSize);
  const types = new Array<number>(vocabSize).fill(unused);
  const ids = new Map<string, number>();
  const bad = (where: string, rule: string, found: string, expected?: string, hint?: string) =>
    new KompresorError({ code: 'tokenizer_invalid', where: `${path}: ${where}`, rule, expected, found, hint });
  const put = (text: string, id: number, type: number) => {
    if (!Number.isSafeInteger(id) || id < 0 || id >= vocabSize) {
      throw bad(`token ${JSON.stringify(text)}`, 'every token id must be a row of the embedding', String(id), `0 <= id < vocab_size ${vocabSize}`,
        'the tokenizer does not belong to this model (or config.json vocab_size is wrong)');
    }
    // llama.cpp reads token texts as C strings: "a\0b" would become a duplicate of "a" and abort
    // its loader (GGML_ASSERT on the token map sizes)
    if (text.includes('\u0000')) {
      throw bad(`token id ${id}`, 'GGUF token texts must not contain NUL', JSON.stringify(text), undefined,
        'llama.cpp cuts token texts at NUL; fix or drop the token in tokenizer.json');
    }
    const prev = ids.get(text);
    if (prev !== undefined && prev !== id) {
      throw bad(`token ${JSON.stringify(text)}`, 'llama.cpp needs every token text to be unique', `ids ${prev} and ${id}`);
    }
    tokens[id] = text; types[id] = type; ids.set(text, id);
  };
  return { tokens, types, ids, put };
}
