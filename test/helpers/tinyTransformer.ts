/** The one-layer, 4-channel 4×4 transformer (text dim 8, 4 text tokens a scene) of the training-objective tests. */
import { parseTransformerConfig } from '../../src/config/transformerConfig.js';
import { WeightSource } from '../../src/layers/weightSource.js';
import { Mask2DiTTransformer } from '../../src/model/transformer.js';

export function tinyTransformer(seed = 5): Mask2DiTTransformer {
  return new Mask2DiTTransformer(
    parseTransformerConfig({
      _class_name: 'MultiPromptCogVideoXTransformer3DModel',
      num_attention_heads: 2,
      attention_head_dim: 16,
      num_layers: 1,
      in_channels: 4,
      out_channels: 4,
      text_embed_dim: 8,
      max_text_seq_length: 4,
      time_embed_dim: 16,
      sample_height: 4,
      sample_width: 4,
      use_rotary_positional_embeddings: true,
    }).config,
    WeightSource.random(seed),
  );
}
