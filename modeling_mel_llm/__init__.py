"""mel-llm modeling: exports the config and model, and marks them for Hub export with their Auto classes."""

from transformers import AutoConfig, AutoModel, AutoModelForSpeechSeq2Seq, AutoModelForTextToWaveform

from .configuration_mel_llm import MelLLMConfig
from .mel_head import MelLossWeights
from .modeling_mel_llm import MelLLMForSpeechLM, MelLLMPreTrainedModel, MelLLMSpeechOutput


MelLLMConfig.register_for_auto_class()
MelLLMForSpeechLM.register_for_auto_class("AutoModelForSpeechSeq2Seq")
AutoConfig.register(MelLLMConfig.model_type, MelLLMConfig, exist_ok=True)
AutoModel.register(MelLLMConfig, MelLLMForSpeechLM, exist_ok=True)
AutoModelForSpeechSeq2Seq.register(MelLLMConfig, MelLLMForSpeechLM, exist_ok=True)
AutoModelForTextToWaveform.register(MelLLMConfig, MelLLMForSpeechLM, exist_ok=True)

__all__ = ["MelLLMConfig", "MelLLMForSpeechLM", "MelLLMPreTrainedModel", "MelLLMSpeechOutput", "MelLossWeights"]
