"""The embedded speech corpus (espeak-ng voices, made-up accents) and the other training corpora (FSDD, manifests,
`datasets`)."""
