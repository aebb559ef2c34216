"""mel-llm processing: feature extractor, processor and ASR pipeline, marked for Hub export with their Auto classes."""

from transformers import AutoFeatureExtractor, AutoProcessor

from modeling_mel_llm import MelLLMConfig

from .audio_loading import load_audio
from .feature_extraction_mel_llm import MelLLMFeatureExtractor
from .pipeline_mel_llm import MelLLMSpeechRecognitionPipeline, merge_overlapping_words
from .processing_mel_llm import ASR_INSTRUCTION, AUDIO_TOKEN, MelLLMProcessor


MelLLMFeatureExtractor.register_for_auto_class()
MelLLMProcessor.register_for_auto_class()
AutoFeatureExtractor.register(MelLLMConfig, MelLLMFeatureExtractor, exist_ok=True)
AutoProcessor.register(MelLLMConfig, MelLLMProcessor, exist_ok=True)

__all__ = [
    "ASR_INSTRUCTION",
    "AUDIO_TOKEN",
    "MelLLMFeatureExtractor",
    "MelLLMProcessor",
    "MelLLMSpeechRecognitionPipeline",
    "load_audio",
    "merge_overlapping_words",
]
