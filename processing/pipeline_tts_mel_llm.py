"""Placeholder: replaced by the TTS pipeline."""


class MelLLMTextToSpeechPipeline: ...
