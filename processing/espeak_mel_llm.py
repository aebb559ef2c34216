"""espeak-ng through ctypes, one engine per process: the corpus synthesiser (training/corpus/synthetic_speech.py)
and the TTS processor's phonemes (`phonemize_words`, for `MelLLMProcessor(tts_text_units="phonemes")`) share it.

The pip package `espeakng-loader` ships the shared library and its voice data. The engine is global and
**thread-unsafe**: never use it from two threads at once (worker processes each get their own).
"""

import ctypes
import functools
import threading
from pathlib import Path

import numpy as np


# espeak-ng constants (speak_lib.h).
AUDIO_OUTPUT_SYNCHRONOUS = 2  # synthesise inside espeak_Synth, handing samples to our callback
POS_CHARACTER = 1
ESPEAK_CHARS_AUTO = 0
ESPEAK_ENDPAUSE = 0x1000  # a short pause at the end of the text (trimmed downstream)
PARAM_RATE, PARAM_VOLUME, PARAM_PITCH, PARAM_RANGE = 1, 2, 3, 4
EE_OK = 0

EVENT_LIST_TERMINATED, EVENT_WORD = 0, 1


class _Event(ctypes.Structure):
    """espeak_EVENT (speak_lib.h): what the synthesiser reached, e.g. the start of a word, and when."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character offset into the text
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds from the start of the audio
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


# int callback(short *wav, int num_samples, espeak_EVENT *events); return 0 to continue synthesis.
_CALLBACK_TYPE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_state: dict = {}  # process-wide: the loaded library, its sample rate, the live callback, the current voice
_init_lock = threading.Lock()


def default_data_path() -> Path:
    """The voice data that `espeakng-loader` bundles (read-only: extra voices go in a copy, see `pseudo_accents`)."""
    import espeakng_loader

    return Path(espeakng_loader.get_data_path())


def load_espeak(data_path: str | Path | None = None) -> dict:
    """
    Load and initialise libespeak-ng once per process, from `data_path` (default: the bundled voice data); later
    calls return the same state. espeak-ng has one data folder per process, so asking for another one is an error.
    """
    with _init_lock:
        if _state:
            if data_path is not None and Path(data_path) != _state["data_path"]:
                raise RuntimeError(
                    f"espeak-ng already runs on {_state['data_path']} in this process and cannot switch to "
                    f"{data_path}; synthesise with other voice data in a fresh process."
                )
            return _state
        try:
            import espeakng_loader

            library = ctypes.CDLL(espeakng_loader.get_library_path())
            data_path = Path(data_path) if data_path is not None else default_data_path()
        except (ImportError, OSError, RuntimeError) as error:
            raise RuntimeError(
                "espeak-ng is unavailable: `pip install espeakng-loader` (it bundles libespeak-ng and its voice "
                f"data) on Linux, macOS or Windows. Cause: {error}"
            ) from error
        library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        library.espeak_SetSynthCallback.argtypes = [_CALLBACK_TYPE]
        library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        library.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        library.espeak_TextToPhonemes.restype = ctypes.c_char_p
        library.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        library.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        # Returns the output sample rate (22050 Hz), or -1 when the voice data cannot be read.
        rate = library.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_path).encode(), 0)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (returned {rate}) with the voice data at {data_path}")
        chunks: list[np.ndarray] = []
        word_events: list[tuple[int, float]] = []  # (text position, start in seconds) of each spoken word

        def on_audio(wav, num_samples, events) -> int:
            if num_samples > 0:  # copy now: the buffer is reused by the library after we return
                chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
            listed = ctypes.cast(events, ctypes.POINTER(_Event))
            index = 0
            while events and listed[index].type != EVENT_LIST_TERMINATED:
                if listed[index].type == EVENT_WORD:
                    word_events.append((listed[index].text_position, listed[index].audio_position / 1000.0))
                index += 1
            return 0

        callback = _CALLBACK_TYPE(on_audio)  # kept referenced in _state so it is never garbage-collected
        library.espeak_SetSynthCallback(callback)
        library.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        library.espeak_ng_SetRandSeed(0)  # espeak_Initialize seeds breath noise from time(): make it repeatable
        variants = {f.name for f in (data_path / "voices" / "!v").iterdir()}
        _state.update(
            library=library,
            data_path=data_path,
            rate=rate,
            callback=callback,
            chunks=chunks,
            word_events=word_events,
            voice=None,
            variants=variants,
        )
        return _state


def set_voice(state: dict, voice: str) -> None:
    """Switch the engine to `voice` ("en-us", "en-gb-scotland+f3", ...); loading a voice reads files, so only
    when it changes. Unknown voices and variants raise (espeak-ng would silently ignore a variant)."""
    if voice == state["voice"]:
        return
    variant = voice.partition("+")[2]
    if variant and variant not in state["variants"]:
        raise ValueError(f"espeak-ng has no voice variant {variant!r} (voices/!v/ in its data)")
    state["voice"] = None  # unknown until the call below succeeds
    if state["library"].espeak_SetVoiceByName(voice.encode()) != EE_OK:
        raise ValueError(f"espeak-ng has no voice {voice!r}")
    state["voice"] = voice


PHONEMES_ASCII = 0
PHONEMES_IPA_TIED = 0x02 | 0x80 | (ord("^") << 8)  # IPA, with "^" tying the letters of one phoneme ("t^ʃ", "a^ɪ")


@functools.lru_cache(maxsize=100_000)
def _word_phonemes(word: str, voice: str, phoneme_mode: int = PHONEMES_ASCII) -> str:
    state = load_espeak()
    set_voice(state, voice)
    library = state["library"]
    buffer = ctypes.create_string_buffer(word.encode())
    pointer = ctypes.c_void_p(ctypes.addressof(buffer))
    parts = []
    while pointer.value:  # espeak-ng advances the pointer clause by clause, to NULL at the end
        parts.append(library.espeak_TextToPhonemes(ctypes.byref(pointer), 0, phoneme_mode).decode())
    return "".join("".join(parts).split())


def phonemize_words(text: str, voice: str = "en-us") -> list[str]:
    """espeak-ng's own pronunciation of each whitespace-separated word of `text`, in its ASCII phoneme mnemonics
    ("hello" → "h@l'oU"): one entry per word, so word-level alignments carry over; any spelling gets one."""
    return [_word_phonemes(word, voice) for word in text.split()]


def ipa_words(text: str, voice: str = "en-us") -> list[str]:
    """`phonemize_words` in IPA with tied multi-letter phonemes ("child" → "t^ʃˈa^ɪld"): what neural voices such as
    Kokoro read (training/corpus/kokoro_speech.py)."""
    return [_word_phonemes(word, voice, PHONEMES_IPA_TIED) for word in text.split()]


__all__ = ["default_data_path", "ipa_words", "load_espeak", "phonemize_words", "set_voice"]
