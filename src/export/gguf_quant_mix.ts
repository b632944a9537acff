// Which ggml type each matrix gets, per export dtype: the mixes of llama.cpp's llama-quantize
// (llama_tensor_get_type in src/llama-quant.cpp), restated for the tensors we write.
//
//   dtype    base   output.weight (or a tied token_embd)   attn_v / ffn_down in "more bits" layers
//   f32      F32    F32                                    -
//   f16      F16    F16                                    -
//   bf16     BF16   BF16                                   -
//   q8_0     Q8_0   Q8_0                                   -
//   q4_0     Q4_0   Q6_K                                   -
//   q4_k_m   Q4_K   Q6_K                                   Q6_K
//   q5_k_m   Q5_K   Q6_K                                   Q6_K
//   q6_k     Q6_K   Q6_K                                   -
//
// "More bits" layers (use_more_bits): the first and last eighth of the layers, and every third
// layer between (i < L/8, i >= 7L/8, or (i − L/8) % 3 == 2, integer division), as llama.cpp.
// The head keeps 6 bits because its error reaches the logits directly.
//
// Fallback: a block type needs the row length (ne[0]) to be a multiple of its block. When it is
// not, as llama.cpp does: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0 (32-value blocks, about the
// same bits), and any type -> F16 when not even 32 divides the row. The summary lists each one.
import { GGML_TYPES, ggmlTypeFits, type GgmlTypeName } from './gguf_writer.ts';

export const EXPORT_DTYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_k_m', 'q5_k_m', 'q6_k'] as const;
export type ExportDtype = (typeof EXPORT_DTYPES)[number];

/** general.file_type (llama_ftype) per export dtype. */
export const FILE_TYPE: Record<ExportDtype, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7, q4_k_m: 15, q5_k_m: 17, q6_k: 18, bf16: 32 };

/** The matrices of a decoder, by their GGUF name (a tied token_embd is the output). */
export type MatrixRole = 'token_embd' | 'output' | 'attn_q' | 'attn_k' | 'attn_v' | 'attn_output' | 'ffn_gate' | 'ffn_up' | 'ffn_down';

const BASE: Record<ExportDtype, GgmlTypeName> = {
  f32: 'F32', f16: 'F16', bf16: 'BF16', q8_0: 'Q8_0', q4_0: 'Q4_0', q4_k_m: 'Q4_K', q5_k_m: 'Q5_K', q6_k: 'Q6_K',
};
const FALLBACK: Partial<Record<GgmlTypeName, GgmlTypeName>> = { Q4_K: 'Q5_0', Q5_K: 'Q5_1', Q6_K: 'Q8_0' };

export function useMoreBits(i: number, n: number): boolean {
  const e = Math.floor(n / 8);
  return i < e || i >= Math.floor((7 * n) / 8) || (i - e) % 3 === 2;
}

/** The type llama-quantize would want for this matrix (`wanted`) and the one that fits its rows (`type`). */
export function matrixType(dtype: ExportDtype, role: MatrixRole, layer: number, numLayers: number, shape: readonly number[]):
  { wanted: GgmlTypeName; type: GgmlTypeName } {
  const base = BASE[dtype];
  let wanted = base;
  const quantized = GGML_TYPES[base].blockSize > 1 && base !== 'Q8_0';
  if (quantized && role === 'output') wanted = ggmlTypeFits('Q6_K', shape) ? 'Q6_K' : 'Q8_0';
  else if ((dtype === 'q4_k_m' || dtype === 'q5_k_m') && (role === 'attn_v' || role === 'ffn_down') && useMoreBits(layer, numLayers)) wanted = 'Q6_K';
  let type = wanted;
  if (!ggmlTypeFits(type, shape)) type = FALLBACK[type] ?? type;
  if (!ggmlTypeFits(type, shape)) type = 'F16';
  return { wanted, type };
}
