/** A tiny AutoencoderKLCogVideoX config (raw `config.json` keys) for training tests: one block per width. */
export function tinyVaeConfig(o: {
  widths: number[];
  size: number;
  temporalCompression: number;
  scalingFactor?: number;
}): Record<string, unknown> {
  return {
    _class_name: 'AutoencoderKLCogVideoX',
    in_channels: 3,
    out_channels: 3,
    latent_channels: 4,
    layers_per_block: 1,
    norm_num_groups: 2,
    norm_eps: 1e-6,
    block_out_channels: o.widths,
    down_block_types: o.widths.map(() => 'CogVideoXDownBlock3D'),
    up_block_types: o.widths.map(() => 'CogVideoXUpBlock3D'),
    temporal_compression_ratio: o.temporalCompression,
    sample_height: o.size,
    sample_width: o.size,
    scaling_factor: o.scalingFactor ?? 1,
    shift_factor: null,
  };
}
