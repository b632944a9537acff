// Builds Hugging Face tokenizer files (tokenizer.json + tokenizer_config.json) for a byte-level
// BPE tokenizer, the GPT-2/Qwen2 family format: 256 byte symbols (GPT-2 bytes_to_unicode), the
// given merges, and three special tokens with a ChatML chat template. Models the project trains
// itself use it; @huggingface/tokenizers and `transformers` load the files unchanged.

export const SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] as const;

/** ChatML, with {% generation %} markers so SFT can find assistant spans (TRL convention). */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}" +
  "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}" +
  "{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}{{ '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** GPT-2's reversible map from bytes to printable unicode characters. */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let i = 33; i <= 126; i++) bs.push(i);
  for (let i = 161; i <= 172; i++) bs.push(i);
  for (let i = 174; i <= 255; i++) bs.push(i);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) { bs.push(b); cs.push(256 + n); n++; }
  }
  const out = new Array<string>(256);
  bs.forEach((b, i) => { out[b] = String.fromCodePoint(cs[i]); });
  return out;
}

export interface TokenizerFiles {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  vocabSize: number;
  specialIds: Record<(typeof SPECIAL_TOKENS)[number], number>;
}

/**
 * merges: pairs of symbols (strings over the byte alphabet) in priority order; each adds the
 * concatenation to the vocabulary after the 256 bytes. Specials come last.
 */
export function byteLevelTokenizer(merges: [string, string][] = []): TokenizerFiles {
  const vocab: Record<string, number> = {};
  bytesToUnicode().forEach((ch, i) => { vocab[ch] = i; });
  for (const [a, b] of merges) if (!((a + b) in vocab)) vocab[a + b] = Object.keys(vocab).length;
  const base = Object.keys(vocab).length;
  const specialIds = Object.fromEntries(SPECIAL_TOKENS.map((t, i) => [t, base + i])) as TokenizerFiles['specialIds'];
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((content, i) => ({
      id: base + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        // the Qwen2 split pattern: words with their leading space, numbers, punctuation, newlines
        { type: 'Split', pattern: { Regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false,
      vocab, merges: merges.map(([a, b]) => [a, b]),
    },
  };
  const tokenizerConfig = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: null,
    eos_token: '<|im_end|>',
    pad_token: '<|endoftext|>',
    unk_token: null,
    model_max_length: 4096,
    clean_up_tokenization_spaces: false,
    add_bos_token: false,
    chat_template: CHATML_TEMPLATE,
    added_tokens_decoder: Object.fromEntries(SPECIAL_TOKENS.map((content, i) => [String(base + i), {
      content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true,
    }])),
  };
  return { tokenizerJson, tokenizerConfig, vocabSize: base + SPECIAL_TOKENS.length, specialIds };
}
