// The fuzz target's healthy inputs, made once per session and never modified by a case: a tiny
// Llama (hidden 32, 2 layers, 259-token byte-level BPE with ChatML) with seeded random weights,
// and valid rows of every JSONL format and a valid recipe that the generators then break.
// The weights are written through io/ only (not the model/ classes), so this file does not
// follow the decoder's internals.
import fs from 'node:fs';
import nodePath from 'node:path';
import { byteLevelTokenizer, SPECIAL_TOKENS } from '../../src/io/byte_tokenizer.ts';
import { saveCheckpoint, type SaveTensor } from '../../src/io/checkpoint.ts';
import { Pick } from './mutate.ts';

export const HIDDEN = 32, LAYERS = 2, HEADS = 4, KV_HEADS = 2, INTERMEDIATE = 64;

/** The tiny model's config.json (vocab from the byte tokenizer: 256 bytes + 3 specials). */
export function baseConfig(vocab: number, eos: number): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: vocab, hidden_size: HIDDEN, intermediate_size: INTERMEDIATE,
    num_hidden_layers: LAYERS, num_attention_heads: HEADS, num_key_value_heads: KV_HEADS, max_position_embeddings: 256,
    rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: true, eos_token_id: eos, torch_dtype: 'float32',
  };
}

/** HF Llama tensor names and shapes for the config, filled N(0, 0.02)-ish (norms at 1). */
function baseTensors(vocab: number, seed: number): SaveTensor[] {
  const p = new Pick(seed);
  const hd = HIDDEN / HEADS;
  const t = (name: string, shape: number[]): SaveTensor => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = name.endsWith('norm.weight') ? new Float32Array(n).fill(1) : Float32Array.from({ length: n }, () => (p.float() - 0.5) * 0.07);
    return { name, shape, data };
  };
  const out = [t('model.embed_tokens.weight', [vocab, HIDDEN])];
  for (let l = 0; l < LAYERS; l++) {
    const L = `model.layers.${l}.`;
    out.push(t(L + 'input_layernorm.weight', [HIDDEN]), t(L + 'self_attn.q_proj.weight', [HEADS * hd, HIDDEN]),
      t(L + 'self_attn.k_proj.weight', [KV_HEADS * hd, HIDDEN]), t(L + 'self_attn.v_proj.weight', [KV_HEADS * hd, HIDDEN]),
      t(L + 'self_attn.o_proj.weight', [HIDDEN, HEADS * hd]), t(L + 'post_attention_layernorm.weight', [HIDDEN]),
      t(L + 'mlp.gate_proj.weight', [INTERMEDIATE, HIDDEN]), t(L + 'mlp.up_proj.weight', [INTERMEDIATE, HIDDEN]),
      t(L + 'mlp.down_proj.weight', [HIDDEN, INTERMEDIATE]));
  }
  out.push(t('model.norm.weight', [HIDDEN]));
  return out;
}

/** Writes BASE/model (the tiny model with its tokenizer); the same bytes for the same seed. */
export function makeBaseModel(dir: string, seed = 1): string {
  const tf = byteLevelTokenizer();
  const model = nodePath.join(dir, 'model');
  saveCheckpoint(model, baseConfig(tf.vocabSize, tf.specialIds['<|im_end|>']), baseTensors(tf.vocabSize, seed));
  fs.writeFileSync(nodePath.join(model, 'tokenizer.json'), JSON.stringify(tf.tokenizerJson));
  fs.writeFileSync(nodePath.join(model, 'tokenizer_config.json'), JSON.stringify(tf.tokenizerConfig));
  return model;
}

export const SPECIALS = SPECIAL_TOKENS;

// ---------------------------------------------------------------------------------------------
// valid rows, before the generators break them

const WORDS = ['ala', 'ma', 'kota', 'dwa', 'plus', 'trzy', 'ile', 'to', 'jest', 'wynik', 'zero', 'sto'];

export function sentence(p: Pick, n = 3 + p.int(6)): string {
  return Array.from({ length: n }, () => p.one(WORDS)).join(' ');
}

export function textRow(p: Pick): Record<string, unknown> { return { text: sentence(p) }; }

export function sftRow(p: Pick): Record<string, unknown> {
  return p.chance(0.5) ? { prompt: sentence(p), completion: ' ' + sentence(p, 2) }
    : { messages: [{ role: 'user', content: sentence(p) }, { role: 'assistant', content: sentence(p, 2) }] };
}

export function dpoRow(p: Pick): Record<string, unknown> {
  return { prompt: sentence(p), chosen: ' ' + sentence(p, 2), rejected: ' ' + sentence(p, 2) };
}

export function grpoRow(p: Pick): Record<string, unknown> {
  const a = p.int(9), b = p.int(9);
  return { prompt: `${a} + ${b} =`, answer: a + b };
}
