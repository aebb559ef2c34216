"""modeling_mel_llm.discrete_latent: MELD's posterior, code embeddings, prior, decoder and their objective."""

import pytest
import torch
from torch.nn import functional as F

from modeling_mel_llm.discrete_latent import (
    LatentLossWeights,
    MelLLMDiscreteLatent,
    MelLLMLatentEncoder,
    straight_through,
)


M, R, G, K, D = 6, 4, 2, 5, 8  # mel bins, frames per patch, groups, codes, hidden


def latent(seed: int = 0) -> MelLLMDiscreteLatent:
    torch.manual_seed(seed)
    return MelLLMDiscreteLatent(M, R, D, groups=G, codes=K, encoder_channels=12)


def batch(seed: int = 1, patches: int = 3):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(2, patches, D, generator=generator)
    targets = torch.randn(2, patches, R * M, generator=generator)
    logits = torch.randn(2, patches, G, K, generator=generator)
    stops = torch.tensor([[0] * (patches - 1) + [1], [0] * (patches - 2) + [1, -1]])
    return logits, hidden, targets, stops


def test_codes_of_a_clip_are_the_same_alone_or_padded_in_a_batch():
    module = latent()
    clip = torch.randn(1, 10, M)  # 2.5 patches: the last one partial
    alone, patch_mask = module.encode(clip, torch.ones(1, 10, dtype=torch.bool))
    padded = torch.cat([clip, torch.randn(1, 6, M)], 1)
    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[:, :10] = True
    batched, batched_mask = module.encode(padded, mask)
    assert alone.shape == (1, 3, G, K)
    assert patch_mask.tolist() == [[True, True, True]]
    assert batched_mask.tolist() == [[True, True, True, False]]
    torch.testing.assert_close(batched[:, :3], alone)


def test_groups_must_divide_the_patch():
    with pytest.raises(ValueError, match="latent_groups=3 must divide frames_per_patch=4"):
        MelLLMLatentEncoder(M, R, groups=3, codes=K, channels=4)


def test_straight_through_codes_are_one_hot_and_pass_gradients_to_the_logits():
    logits = torch.randn(3, G, K, requires_grad=True)
    codes = straight_through(logits)
    torch.testing.assert_close(codes.detach(), F.one_hot(logits.argmax(-1), K).float())
    (codes * torch.randn_like(codes)).sum().backward()
    assert logits.grad.abs().sum() > 0


def test_the_marginal_reconstruction_is_the_exact_expectation_over_codes():
    module = latent()
    logits, hidden, targets, stops = batch()
    _, terms = module.loss(logits, hidden, targets, stops, LatentLossWeights(), "marginal")
    q = logits.softmax(-1)
    sigma = module.log_sigma.exp()
    expected = torch.zeros(2, 3)
    for b in range(2):
        for p in range(3):
            for g in range(G):
                for k in range(K):
                    codes = torch.zeros(G, K)
                    codes[:, 0] = 1
                    codes[g] = F.one_hot(torch.tensor(k), K).float()
                    mean = module.decode(codes, hidden[b, p]).view(G, -1)[g]
                    target = targets[b, p].view(G, -1)[g]
                    nll = 0.5 * ((target - mean) / sigma).pow(2).sum() + mean.numel() * module.log_sigma
                    expected[b, p] += q[b, p, g, k] * nll
    valid = stops >= 0
    reference = expected[valid].sum() / valid.sum()
    torch.testing.assert_close(terms["reconstruction"], reference, rtol=1e-4, atol=1e-5)


def test_the_gumbel_estimate_averages_to_the_marginal_one():
    module = latent()
    logits, hidden, targets, stops = batch()
    weights = LatentLossWeights()
    exact = module.loss(logits, hidden, targets, stops, weights, "marginal")[1]["reconstruction"]
    torch.manual_seed(0)
    draws = [module.loss(logits, hidden, targets, stops, weights, "gumbel")[1]["reconstruction"] for _ in range(3000)]
    assert torch.stack(draws).std() > 0  # it does sample
    torch.testing.assert_close(torch.stack(draws).mean(), exact, rtol=0.02, atol=0.0)


def test_prior_minus_entropy_is_a_kl_divergence():
    module = latent()
    logits, hidden, targets, stops = batch()
    _, terms = module.loss(logits, hidden, targets, stops, LatentLossWeights())
    assert terms["prior"] - terms["entropy"] > 0
    with torch.no_grad():  # a prior equal to the posterior everywhere: KL 0
        module.prior_head.weight.zero_()
        module.prior_head.bias.copy_(torch.randn(G * K))
    same = module.prior_head.bias.view(G, K).expand(2, 3, G, K)
    _, terms = module.loss(same, hidden, targets, stops, LatentLossWeights())
    torch.testing.assert_close(terms["prior"], terms["entropy"])


def test_the_module_learns_to_encode_and_rebuild_mel_patches():
    """Jointly trained encoder, codebook and prior: the loss falls and the argmax codes rebuild the patches
    better than the mean patch does (the codes carry information)."""
    module = latent()
    generator = torch.Generator().manual_seed(3)
    frames = torch.randn(4, 4, R * M, generator=generator).repeat(1, 4, 1).reshape(4, 16 * R, M)  # 4 recurring patches
    mask = torch.ones(4, 16 * R, dtype=torch.bool)
    hidden = torch.zeros(4, 16, D)
    stops = torch.zeros(4, 16, dtype=torch.long)
    targets = frames.reshape(4, 16, R * M)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.03)
    losses = []
    for _ in range(150):
        logits, _ = module.encode(frames, mask)
        loss, _ = module.loss(logits, hidden, targets, stops, LatentLossWeights(), "marginal")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        codes = F.one_hot(module.encode(frames, mask)[0].argmax(-1), K).float()
        rebuilt = module.decode(codes, hidden)
    error = (rebuilt - targets).pow(2).mean()
    assert error < 0.6 * (targets - targets.mean((0, 1))).pow(2).mean()  # 0.49 of it here


def test_a_text_loss_on_the_code_embeddings_trains_the_encoder():
    module = latent()
    frames = torch.randn(2, 8, M)
    logits, _ = module.encode(frames, torch.ones(2, 8, dtype=torch.bool))
    embeddings = module.embed(straight_through(logits))  # what the LLM reads
    assert embeddings.shape == (2, 2, D)
    embeddings.pow(2).sum().backward()
    assert module.encoder.to_logits.weight.grad.abs().sum() > 0
    assert module.code_embeddings.grad.abs().sum() > 0


def test_sampling_draws_codes_from_the_prior_and_decodes_them():
    module = latent()
    hidden = torch.randn(3, D)
    step = module.sample(hidden, temperature=0)
    codes, patch, stop = step.codes, step.patch, step.stop_logit
    assert torch.equal(codes.argmax(-1), module.prior_logits(hidden).argmax(-1))
    assert patch.shape == (3, R * M)
    assert stop.shape == (3,)
    torch.testing.assert_close(patch, module.decode(codes, hidden))
    first = module.sample(hidden, 1.0, torch.Generator().manual_seed(0)).codes
    assert torch.equal(first, module.sample(hidden, 1.0, torch.Generator().manual_seed(0)).codes)


def test_bad_settings_are_refused():
    logits, hidden, targets, stops = batch()
    with pytest.raises(ValueError, match="latent_estimator='sum'"):
        latent().loss(logits, hidden, targets, stops, LatentLossWeights(), "sum")
    with pytest.raises(ValueError, match="entropy must be >= 0"):
        LatentLossWeights(entropy=-1)
