"""mel-llm processing: feature extractor, processor, ASR/TTS pipelines and vocoders, marked for Hub export with their Auto classes."""

from transformers import AutoFeatureExtractor, AutoProcessor

from modeling_mel_llm import MelLLMConfig

from .audio_loading import load_audio
from .espeak_mel_llm import phonemize_words
from .feature_extraction_mel_llm import MelLLMFeatureExtractor
from .pipeline_mel_llm import MelLLMSpeechRecognitionPipeline, merge_overlapping_words
from .pipeline_tts_mel_llm import MelLLMTextToSpeechPipeline
from .processing_mel_llm import ASR_INSTRUCTION, AUDIO_TOKEN, TTS_INSTRUCTION, MelLLMProcessor
from .text_normalization_mel_llm import normalize_tts_text
from .vocoder_mel_llm import MelLLMGriffinLim, MelLLMHifiGan, load_vocoder


MelLLMFeatureExtractor.register_for_auto_class()
MelLLMProcessor.register_for_auto_class()
AutoFeatureExtractor.register(MelLLMConfig, MelLLMFeatureExtractor, exist_ok=True)
AutoProcessor.register(MelLLMConfig, MelLLMProcessor, exist_ok=True)

__all__ = [
    "ASR_INSTRUCTION",
    "AUDIO_TOKEN",
    "TTS_INSTRUCTION",
    "MelLLMFeatureExtractor",
    "MelLLMGriffinLim",
    "MelLLMHifiGan",
    "MelLLMProcessor",
    "MelLLMSpeechRecognitionPipeline",
    "MelLLMTextToSpeechPipeline",
    "load_audio",
    "load_vocoder",
    "merge_overlapping_words",
    "normalize_tts_text",
    "phonemize_words",
]
