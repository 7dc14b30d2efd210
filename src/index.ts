/**
 * mask2dit-ts public API. Nothing else under src/ is a public path.
 */
export { VERSION } from './version.js';
export * from './errors.js';
export { log, setLogLevel, getLogLevel, type LogLevel } from './log.js';
export {
  BACKEND_NAMES,
  type BackendName,
  type BackendOptions,
  type BackendInfo,
  resolveBackendName,
  resolveThreads,
  selectBackend,
  shutdownBackends,
} from './backend/index.js';
export { takeWebGpuErrors, checkWebGpu, syncWebGpu, webGpuLimits, WebGpuDeviceError } from './backend/webgpu.js';
export * from './backend/memoryBudget.js';
export * from './model/peakEstimate.js';
export * from './io/safetensors.js';
export { inspectPath, findCheckpoints, summarise, groupOf, type CheckpointSummary } from './io/checkpointSummary.js';

// The transformer and its parts
export { Mask2DiTTransformer, type TransformerInputs, type ForwardPlan } from './model/transformer.js';
export {
  parseTransformerConfig,
  readTransformerConfig,
  TransformerConfigSchema,
  type TransformerConfig,
} from './config/transformerConfig.js';
export { Probe, ProbeScope, type AttentionSelection } from './layers/probe.js';
export * from './scene/layout.js';
export * from './scene/masks.js';
export * from './scene/plan.js';
export {
  maskedAttention,
  denseMaskedAttention,
  peakScoreBytes,
  denseScoreBytes,
  DEFAULT_CHUNK_SIZE,
  type MaskedAttentionOptions,
} from './layers/maskedAttention.js';
export { M2Layer, Container } from './layers/layer.js';
export { WeightSource, WeightLoadError, type TensorReader } from './layers/weightSource.js';
export { Linear } from './layers/linear.js';
export { LayerNorm } from './layers/layerNorm.js';
export { LayerNormZero, AdaLayerNorm, type SegmentCondition } from './layers/adaLayerNorm.js';
export { Attention } from './layers/attention.js';
export { FeedForward } from './layers/feedForward.js';
export { DiTBlock, type DiTBlockConfig } from './layers/ditBlock.js';
export { CogVideoXPatchEmbed } from './layers/patchEmbed.js';
export { TimestepEmbedding, timestepSinusoid } from './layers/timestepEmbedding.js';
export { RoPE3D, rope3dTables } from './layers/rope3d.js';

// The VAE
export {
  CogVideoXVAE,
  decodeCallRanges,
  encodeCallRanges,
  decodedFrameCount,
  FRAME_BATCHINGS,
  type FrameBatching,
  type DecodeOptions,
  type LatentDistribution,
} from './model/vae.js';
export {
  VaeConfigSchema,
  parseVaeConfig,
  readVaeConfig,
  type VaeConfig,
  type VaeConfigJson,
} from './config/vaeConfig.js';
export { conv3dByTimeTaps, disposeConvCache, type ConvCache } from './layers/vae/causalConv3d.js';

// Images, video files, scene files
export * from './io/atomic.js';
export * from './io/png.js';
export * from './io/image.js';
export * from './io/video.js';
export { renderMaskImage, maskSegments, MASK_COLORS, type MaskImageOptions, type MaskImage } from './io/maskImage.js';
export {
  renderAttentionImage,
  layoutSegments,
  type AttentionImageOptions,
  type AttentionImage,
  type SegmentSpec,
} from './io/attentionImage.js';
export { contactSheet, pickFrames, type SheetScene, type ContactSheetOptions } from './io/contactSheet.js';
export {
  readSceneFile,
  parseSceneFile,
  SceneFileSchema,
  SceneFileError,
  sceneCaption,
  type SceneFile,
  type Scene as SceneSpecEntry,
  type SceneDefaults,
} from './cli/sceneFile.js';

// The synthetic world, its captions and the oracle
export {
  SHAPES,
  COLOURS,
  PALETTE,
  MOTIONS,
  motionsFor,
  grammarWords,
  type Shape,
  type Colour,
  type Motion,
} from './data/vocabulary.js';
export {
  sampleClip,
  sampleClipSpec,
  sampleCaptionSet,
  clipVideo,
  resolveWorldOptions,
  DEFAULT_WORLD,
  Rng,
  type Clip,
  type ClipSpec,
  type Scene as WorldScene,
  type SceneSpec,
  type SceneAttributes,
  type Character,
  type WorldOptions,
  type Pose,
  type ScenePath,
} from './data/world.js';
export { renderScene, toUint8Frames, poseAt } from './data/render.js';
export { captionFor, parseCaption, type ParsedCaption } from './data/captions.js';
export {
  readScene,
  readClip,
  compareScene,
  nearestColour,
  type SceneReading,
  type ClipReading,
  type BlobReading,
  type FramesInput,
  type Maybe,
} from './data/oracle.js';
export { worldContactSheet, worldDemo } from './data/demo.js';

// Text
export { WordTokenizer, PAD_ID, EOS_ID, UNK_ID, type TokenizerJson } from './text/tokenizer.js';
export {
  T5Encoder,
  T5Block,
  T5Attention,
  T5DenseFF,
  T5LayerNorm,
  Embedding,
  encodePrompts,
  t5ParameterShapes,
  t5InitTensors,
  relativePositionBucket,
  type TextEncoderInputs,
} from './text/textEncoder.js';
export {
  parseTextEncoderConfig,
  readTextEncoderConfig,
  TextEncoderConfigSchema,
  type TextEncoderConfig,
} from './config/textEncoderConfig.js';

// Training
export {
  Trainer,
  TRAIN_DEFAULTS,
  type TrainOptions,
  type Objective,
  type StepObjective,
  type StepRecord,
} from './train/trainer.js';
export {
  ditObjective,
  type LatentDataset,
  type TextConditioner,
  type DitObjectiveOptions,
} from './train/ditObjective.js';
export { flowMatchingLoss, drawFlow, type FlowBatch, type FlowDraw } from './train/flowMatchingObjective.js';
export { AdamW, clipByGlobalNorm, ADAMW_DEFAULTS, type AdamWConfig } from './train/adamw.js';
export { Ema } from './train/ema.js';
export { learningRate, type LrSchedule } from './train/schedule.js';
export { saveCheckpoint, loadCheckpoint, type CheckpointMeta } from './train/checkpoint.js';
export { StepRng, uniformArray } from './train/rng.js';

// Samplers and pipelines
export {
  COGVIDEOX_5B_SCHEDULER,
  parseSchedulerConfig,
  readSchedulerConfig,
  isFlowMatchConfig,
  type SchedulerConfig,
  type CogVideoXSchedulerConfig,
  type FlowMatchSchedulerConfig,
} from './config/schedulerConfig.js';
export {
  createSampler,
  isSamplerName,
  SamplerError,
  SAMPLER_NAMES,
  CogVideoXDDIMSampler,
  CogVideoXDPMSampler,
  FlowMatchEulerSampler,
  cogvideoxAlphasCumprod,
  cogvideoxTimesteps,
  combineGuidance,
  guidanceScaleAt,
  gaussianNoise,
  gaussianArray,
  STREAM,
  type Sampler,
  type SamplerName,
  type SamplerOptions,
  type StepOutput,
  type NoiseSource,
  type DynamicCfg,
  type PrevTimestepRule,
} from './sampler/index.js';
export {
  Mask2DiTPipeline,
  PipelineInputError,
  PipelineAbortedError,
  type GenerateOptions,
  type SamplingOptions,
  type PipelineResult,
  type StepProgress,
  type PromptEmbeddings,
  type VideoDecoder,
  type VideoEncoder,
  type LatentPosterior,
} from './model/pipeline.js';
export {
  Mask2DiTExtendPipeline,
  type ExtendOptions,
  type ExtendResult,
  type PreviousScenes,
} from './model/extendPipeline.js';
export { conv2d, conv2dFilterGrad } from './layers/conv2d.js';

// Model folders and latents files
export {
  loadModelFolder,
  saveModelFolder,
  DEFAULT_MODEL_DIR,
  type LoadOptions as ModelFolderLoadOptions,
} from './model/modelFolder.js';
export { readLatentsFile, writeLatentsFile } from './io/latentsFile.js';

// Evaluation
export { evaluate, formatTable, formatClaim, checkClaim, HELD_OUT_FIRST_SEED } from './eval/evaluate.js';
export { scoreClip, summarize, expectedFromCaptions } from './eval/metrics.js';
export { readTensors, loadPretrained, type PretrainedOptions, type OffloadOptions } from './model/pretrained.js';
export {
  chooseOffload,
  footprint,
  memoryAvailable,
  parseOffloadMode,
  widenToF32,
  OffloadError,
  OffloadedBlocks,
  StoredEmbedding,
  StoredWeights,
  OFFLOAD_MODES,
  AUTO_ACTIVATION_SHARE,
  type BlockLayout,
  type MemoryAvailable,
  type OffloadDecision,
  type OffloadMode,
  type WeightFootprint,
} from './model/offload.js';
