import type { BackboneConfig } from './hf-config.js';

/** A backbone tensor as Hugging Face names it, with the PyTorch shape config.json implies. */
export interface BackboneTensor {
  name: string;
  shape: number[];
}

/**
 * Every tensor of a Qwen3 backbone (`model.*`), in checkpoint order: what Qwen3ForCausalLM loads. The output
 * projection is left out: the guard has none, and a tied config makes the embedding serve as it.
 */
export function qwen3BackboneTensors(config: BackboneConfig): BackboneTensor[] {
  const { hiddenSize: H, heads, kvHeads, headDim: D, intermediateSize: I } = config;
  const tensors: BackboneTensor[] = [{ name: 'model.embed_tokens.weight', shape: [config.vocabSize, H] }];
  for (let i = 0; i < config.layers; i++) {
    const p = `model.layers.${i}`;
    tensors.push(
      { name: `${p}.input_layernorm.weight`, shape: [H] },
      { name: `${p}.self_attn.q_proj.weight`, shape: [heads * D, H] },
      { name: `${p}.self_attn.k_proj.weight`, shape: [kvHeads * D, H] },
      { name: `${p}.self_attn.v_proj.weight`, shape: [kvHeads * D, H] },
      { name: `${p}.self_attn.o_proj.weight`, shape: [H, heads * D] },
      { name: `${p}.self_attn.q_norm.weight`, shape: [D] },
      { name: `${p}.self_attn.k_norm.weight`, shape: [D] },
      { name: `${p}.post_attention_layernorm.weight`, shape: [H] },
      { name: `${p}.mlp.gate_proj.weight`, shape: [I, H] },
      { name: `${p}.mlp.up_proj.weight`, shape: [I, H] },
      { name: `${p}.mlp.down_proj.weight`, shape: [H, I] },
    );
  }
  tensors.push({ name: 'model.norm.weight', shape: [H] });
  return tensors;
}
