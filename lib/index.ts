/** cxr-train public API. Only what is exported here is public. */
export { CxrError, isCxrError } from './errors';
export type { ErrorCode } from './errors';

// Native backend and models
export { capabilities, nativeStats, releaseCpuCache, setThreads, physicalCores } from './native';
export { ClipModel, createModel, resolveLoss } from './models/ClipModel';
export type { ModelOptions, LossOptions, TrainBatch, StepOptions, OptimizerOptions } from './models/ClipModel';
export type { StepResult, NamedTensor, ResolvedLoss, DistOptions } from './types';
export type { CpuCacheStats } from './native/binding';
export { contrastiveLoss } from './models/loss';
export type { LossAndGrads } from './models/loss';
export { modelNames, resolveModelConfig } from './models/registry';
export { validateModelConfig } from './models/config';
export type { ModelConfig } from './models/config';

// Checkpoints
export { readSafetensors, readSafetensorsHeader, writeSafetensors, encodeSafetensors, toFloat32, float32ToFloat16, float32ToBFloat16 } from './util/safetensors';
export type { SafetensorsDtype, SafetensorsEntry, SafetensorsFile, SafetensorsInput } from './util/safetensors';
export { readModelFolder, writeModelFolder, isModelFolder } from './models/modelFolder';
export type { ModelMeta } from './models/modelFolder';

// Text
export { loadTokenizer, ClipTokenizer, WordPieceTokenizer, CLIP_START_ID, CLIP_END_ID, CLIP_VOCAB_SIZE, CLIP_CONTEXT_LENGTH } from './text/tokenizer';
export type { TextTokenizer, TokenBatch, TokenizerSpec } from './text/tokenizer';
export { parseReport, parseReportColumns, parseOpenIXml, sectionText, SECTION_NAMES } from './text/reportParser';
export type { SectionName, ReportSection, ParsedReport } from './text/reportParser';
export { splitSentences } from './text/sentenceSplitter';
export { SentenceSampler, DEFAULT_SAMPLER_OPTIONS } from './text/sentenceSampler';
export type { SamplerOptions, SamplerStats, PreparedReport, SamplingMode, SectionChoice } from './text/sentenceSampler';
export { loadPromptSet, promptSetFromObject, listPromptSets, canonicalLabel } from './text/prompts';
export type { PromptSet, LabelPrompts } from './text/prompts';

// Data
export { CHEXPERT_LABELS } from './data/sample';
export type { Sample, LabelValue, Split } from './data/sample';
export { getAdapter, listAdapters, registerAdapter } from './data/adapters';
export type { DatasetAdapter } from './data/adapters';
export { loadImage, decodeImage, decodeDicom, preprocessGray, CLIP_MEAN, CLIP_STD, CHEXZERO_MEAN, CHEXZERO_STD } from './data/images';
export type { Geometry, Normalize, AugmentOptions, PreprocessOptions } from './data/images';
export { DataLoader } from './data/DataLoader';
export { openSplit, openDataset, limitSource } from './data/sources';
export type { DataSource, OpenedDataset, OpenedSplit, OpenSplitOptions, SourceAdapter, SplitSource } from './data/sources';
export type { Batch, DataLoaderOptions } from './data/DataLoader';
export { writeShards, verifyShards, loadShards, ShardReader } from './data/shards';
export { generateSynthetic, synthesizeSamples, toMemorySource } from './data/synthetic';
export type { SyntheticOptions, SyntheticSample } from './data/synthetic';

// Evaluation
export { auroc, averagePrecision, rocCurve, prCurve, metricsAt, binaryMetrics, selectThreshold, macroMean, perLabelAuroc } from './eval/metrics';
export type { BinaryMetrics, ThresholdCriterion } from './eval/metrics';
export { bootstrapMetric, pairedBootstrap, percentileInterval } from './eval/bootstrap';
export { scoreCsv, scoreTables, formatPredictionsCsv } from './eval/score';
export type { ScoreResult, ScoreOptions } from './eval/score';
export { writeReportCard, renderReportHtml } from './eval/reportCard';
export { zeroShotProbabilities, ensembleProbabilities, ZeroShotClassifier, promptSetHash } from './eval/zeroShot';
export { scoreSplit } from './eval/scoreSplit';
export type { ScoreSplitOptions, ScoredSplit } from './eval/scoreSplit';
export type { ZeroShotEncoder, ZeroShotPromptSet } from './eval/zeroShot';
export { imageTextRetrieval, retrievalRanks, cosineSimilarities, selectKx200, classifyKx200, KX200_DEFAULT_LABELS } from './eval/retrieval';
export type { ImageTextRetrieval, RetrievalDirection, Kx200Result } from './eval/retrieval';
export { RetrievalEvaluation, retrievalTexts } from './eval/retrievalEval';
export type { RetrievalOptions, RetrievalReport } from './eval/retrievalEval';
export { compareEnsemble, averageLogits } from './eval/ensemble';
export type { EnsembleReport, EnsembleAverage } from './eval/ensemble';

// Pre-trained checkpoints (OpenAI, Hugging Face CLIPModel, open_clip/BiomedCLIP, own format)
export { loadPretrained, readCheckpointTensors } from './checkpoints/pretrained';
export type { LoadPretrainedOptions, PretrainedReport } from './checkpoints/pretrained';
export { detectCheckpoint } from './checkpoints/detect';
export type { CheckpointFormat } from './checkpoints/detect';
export { fromInternal, hfClipConfigJson } from './checkpoints/layouts';
export type { CheckpointLayout } from './checkpoints/layouts';
export { embedWithCheckpoint, convertCheckpoint } from './jobs/embed';
export type { EmbedOutput } from './jobs/embed';

// Training
export { Trainer } from './train/Trainer';
export type { TrainerOptions, TrainerEvents, StepEvent, StartEvent, CheckpointEvent, FitResult } from './train/Trainer';
export { DEFAULT_CONFIG, resolveTrainConfig, readConfigFile, mergeConfig, validateTrainConfig, configToYaml } from './train/config';
export type { TrainConfig } from './train/config';
export { lrAt } from './train/schedule';
export { readCheckpoint, findLatestCheckpoint, listCheckpoints } from './train/checkpoints';
export type { EvalMetrics, TrainerState } from './train/checkpoints';
export { attachReporter } from './train/reporter';
export { distributedEnv, launchWorkers, freePort } from './train/distributed';
export type { DistEnv, LaunchOptions, LaunchResult } from './train/distributed';
export type { DistributedSection } from './train/config';

// Jobs: what the CLI commands run, as library functions
export { runDemo, DEMO_DEFAULTS, defaultDemoDir } from './jobs/demo';
export type { DemoOptions, DemoResult, DemoLabelResult } from './jobs/demo';
export { planTraining } from './jobs/train';
export type { TrainingPlan } from './jobs/train';
export { prepareShards } from './jobs/prepare';
export type { PrepareOptions, PrepareResult } from './jobs/prepare';

// tfjs variant (loads @tensorflow/tfjs lazily, only when used)
export { TfClipModel, tfContrastiveLoss, useBackend, tfjsAvailable, tfjsNodeAvailable, tfjsWasmAvailable } from './tfjs';
export type { TfModelOptions, TfOptimizerOptions, TfStepOptions, TfStepResult, TfTrainBatch, TfLossResult, TfBackendName } from './tfjs';

// Experiments
export { runAblation } from './jobs/ablation';
export { runDoctor } from './jobs/doctor';
export type { DoctorCheck, DoctorReport, DoctorOptions, DoctorStatus } from './jobs/doctor';
export { TensorBoardWriter } from './util/tensorboard';
export type { TensorBoardWriterOptions } from './util/tensorboard';
export type { RunAblationOptions, AblationOutcome } from './jobs/ablation';
export { resolveAblationConfig, readAblationConfigFile, DEFAULT_ABLATION, QUICK_ABLATION, ABLATION_SETTINGS } from './experiments/ablation/config';
export type { AblationConfig } from './experiments/ablation/config';
export type { AblationResults } from './experiments/ablation/aggregate';

// Evaluation of checkpoints and inference
export { evaluateCheckpoint, manifestHash } from './jobs/evaluate';
export type { EvaluateOptions, EvaluateResult } from './jobs/evaluate';
export { probeCheckpoint } from './jobs/probe';
export type { ProbeJobOptions, ProbeJobResult } from './jobs/probe';
export { runProbe, DEFAULT_C_GRID, DEFAULT_FRACTIONS } from './eval/probe/protocol';
export type { ProbeResult, ProbeSplit } from './eval/probe/protocol';
export { fitLogistic, standardization } from './eval/probe/logistic';
export type { LogisticModel, LogisticFitOptions } from './eval/probe/logistic';
export { modelEncoder, modelLogitScale, alignPromptLabels, hashCheckpoint } from './eval/modelEncoder';
export { fitThresholds, readThresholds, writeThresholds } from './eval/thresholds';
export type { ThresholdsFile } from './eval/thresholds';
export { reliabilityBins, brierScore, calibrationSummary } from './eval/calibration';
export type { ReliabilityBins, CalibrationSummary, BinStrategy } from './eval/calibration';
export { fitCalibration, applyCalibration, fitTemperature, fitPlatt, probabilityLogit, readCalibration } from './eval/calibrationMap';
export type { CalibrationFile, CalibrationMethod, LabelMap } from './eval/calibrationMap';
export { subgroupAuroc } from './eval/subgroups';
export type { SubgroupReport, SubgroupAttribute } from './eval/subgroups';
export { ZeroShotModel } from './infer/zeroShotModel';
export { predict } from './jobs/predict';
export { EXIT_NOTHING_USEFUL, nothingUseful } from './jobs/outcome';
export type { PredictOptions, PredictResult } from './jobs/predict';
export { startServer } from './infer/server';
export type { ServeOptions, RunningServer } from './infer/server';
