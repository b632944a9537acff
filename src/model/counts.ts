// Exact parameter counts per component, read off the parameter layout (so they are the numbers
// of the tensors the model really holds, tied lm_head counted once as part of the embeddings).
import type { ParameterLayout } from './parameters.ts';

export interface ParamCounts {
  embeddings: number;
  attention: number;
  mlp: number;
  norms: number;
  lm_head: number;
  total: number;
}

export function componentOf(name: string): keyof Omit<ParamCounts, 'total'> {
  if (name === 'model.embed_tokens.weight') return 'embeddings';
  if (name === 'lm_head.weight') return 'lm_head';
  if (name.includes('.self_attn.')) return 'attention';
  if (name.includes('.mlp.')) return 'mlp';
  return 'norms';
}

export function countParams(layout: ParameterLayout): ParamCounts {
  const c: ParamCounts = { embeddings: 0, attention: 0, mlp: 0, norms: 0, lm_head: 0, total: 0 };
  for (const s of layout.slots) { c[componentOf(s.name)] += s.size; c.total += s.size; }
  return c;
}
