"""Command-line tools beside the recipe: Phi-4-MM conversion, publishing, speaking from the command line, vocoder
training."""
