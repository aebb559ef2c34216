"""Which weights train (full, LoRA, front end only, a range of LLM layers), and saving the result loadable.

LoRA follows the paper (Phi-4-MM's speech LoRA: r=320, alpha=640, dropout 0.01 on qkv/o/gate_up/down; alpha/r = 2
by default); the audio front end and projector train fully (`modules_to_save`). `train_layers` restricts training to
some LLM layers — the paper's layer ablation ("Freeze Lk–31" = `train_layers=[0..k-1]`).
"""

from pathlib import Path

from peft import LoraConfig, PeftModel, get_peft_model

from modeling_mel_llm import MelLLMForSpeechLM
from processing import MelLLMProcessor
from training.arguments import ModelArguments


AUDIO_MODULES = ["audio_frontend", "multi_modal_projector"]
FINETUNE_MODES = ("full", "lora", "frontend")


def decoder_layers(model: MelLLMForSpeechLM):
    """The backbone's list of transformer blocks (`model.layers` in every supported family)."""
    return model.language_model.get_decoder().layers


def lora_config(args: ModelArguments, extra_modules: tuple[str, ...] = ()) -> LoraConfig:
    return LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=list(args.lora_target_modules),
        layers_to_transform=list(args.train_layers) if args.train_layers is not None else None,
        layers_pattern="layers" if args.train_layers is not None else None,
        modules_to_save=[*AUDIO_MODULES, *extra_modules],
    )


def apply_finetuning(model: MelLLMForSpeechLM, args: ModelArguments):
    """Return the model to train: PEFT-wrapped for LoRA, or with the frozen parameters' `requires_grad` off."""
    if args.finetune not in FINETUNE_MODES:
        raise ValueError(f"finetune={args.finetune!r}; choose one of {FINETUNE_MODES}.")
    num_layers = len(decoder_layers(model))
    if args.train_layers is not None and not all(0 <= i < num_layers for i in args.train_layers):
        raise ValueError(f"train_layers={args.train_layers} must index the backbone's {num_layers} layers.")
    if args.finetune == "lora":
        # New modules train fully, as the front end does.
        head = tuple(name for name in ("mel_head", "speech_latent") if getattr(model, name) is not None)
        unified = (
            model.unified_frontend
        )  # TESU: its unit table trains with the LLM side; its encoders stay as they are
        units = ("unit_embeddings",) if unified is not None and unified.unit_embeddings is not None else ()
        return get_peft_model(model, lora_config(args, (*head, *units)))
    if args.finetune == "frontend":
        model.language_model.requires_grad_(False)
    elif args.train_layers is not None:
        keep = set(args.train_layers)
        for index, layer in enumerate(decoder_layers(model)):
            layer.requires_grad_(index in keep)
    return model


def save_trained_model(model, processor: MelLLMProcessor, output_dir: Path) -> MelLLMForSpeechLM:
    """
    Write `output_dir` as a plain Mel-LLM folder (LoRA merged) with its processor; for a PEFT model also write the
    unmerged adapter to `output_dir/adapter` (load it onto `output_dir/base`, saved before training).
    Returns the (merged) model.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(model, PeftModel):
        model.save_pretrained(output_dir / "adapter")
        model = model.merge_and_unload()
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    return model


def load_unmerged(output_dir: str | Path) -> PeftModel:
    """The base model of a LoRA run with its adapter applied, unmerged (for further PEFT training or swapping)."""
    output_dir = Path(output_dir)
    base = MelLLMForSpeechLM.from_pretrained(output_dir / "base")
    return PeftModel.from_pretrained(base, output_dir / "adapter")


__all__ = ["AUDIO_MODULES", "apply_finetuning", "decoder_layers", "load_unmerged", "lora_config", "save_trained_model"]
