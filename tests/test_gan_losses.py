"""The shared adversarial losses (train.gan) and IMPA's G-side losses on hand-checkable stubs."""

import math

import numpy as np
import torch

from opsembed.train.gan import discriminator_loss, generator_adv_loss
from opsembed.train.impa_trainer import generator_losses


def test_discriminator_loss_is_nonsaturating_with_r1_on_reals():
    def critic(x, labels):                       # logit = label * sum of pixels; grad_x = label everywhere
        return x.flatten(1).sum(1) * labels.float()

    real, fake = torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)
    labels = torch.tensor([1, 3])
    out = discriminator_loss(critic, real, labels, fake, labels, r1_gamma=2.0)
    ln2 = math.log(2.0)
    assert math.isclose(out["d_real"].item(), ln2, rel_tol=1e-6)          # softplus(-0)
    assert math.isclose(out["d_fake"].item(), ln2, rel_tol=1e-6)          # softplus(0)
    assert math.isclose(out["r1"].item(), 0.5 * (4 * 1 + 4 * 9) / 2)      # 0.5 mean ||label * 1||^2 over 4 px
    assert math.isclose(out["d_total"].item(), 2 * ln2 + 2.0 * 10.0, rel_tol=1e-6)
    no_r1 = discriminator_loss(critic, real, labels, fake, labels, r1_gamma=0.0)
    assert no_r1["r1"].item() == 0.0 and math.isclose(no_r1["d_total"].item(), 2 * ln2, rel_tol=1e-6)
    assert math.isclose(generator_adv_loss(torch.tensor([0.0, 0.0])).item(), ln2, rel_tol=1e-6)


def test_impa_generator_losses_on_stub_networks():
    run = {"style": lambda y, n: n,                                      # s = the noise (B, 1)
           "generator": lambda x, s: x + s[:, :, None, None],            # adds the style to every pixel
           "style_encoder": lambda img: img.mean(dim=(1, 2, 3))[:, None],
           "discriminator": lambda img, y: torch.zeros(len(img))}
    x = torch.ones(2, 1, 2, 2)
    n1, n2 = torch.tensor([[1.0], [2.0]]), torch.zeros(2, 1)
    cfg = {"lambda_sty": 2.0, "lambda_cyc": 0.5, "lambda_id": 0.0}
    out = generator_losses(run, x, torch.tensor([0, 1]), n1, n2, cfg, ds_weight=0.4)
    # fake1 = 2, 3; E(fake1) - s1 = 1; fake1 - fake2 = 1, 2; G(fake1, E(x) = 1) - x = 2, 3
    expected = {"g_adv": math.log(2.0), "style": 1.0, "diversity": 1.5, "cycle": 2.5, "identity": 0.0}
    for key, value in expected.items():
        assert math.isclose(out[key].item(), value, rel_tol=1e-6), key
    assert math.isclose(out["g_total"].item(), math.log(2.0) + 2.0 * 1.0 - 0.4 * 1.5 + 0.5 * 2.5, rel_tol=1e-6)
    # identity: the controls restyled to the control label (id 7) with n1: style 7 + n1 -> G adds 8, 9
    run["style"] = lambda y, n: n + y[:, None].float()
    weighted = generator_losses(run, x, torch.tensor([0, 1]), n1, n2, {**cfg, "lambda_id": 0.5},
                                ds_weight=0.4, control=7)
    assert math.isclose(weighted["identity"].item(), 8.5, rel_tol=1e-6)
    plain = generator_losses(run, x, torch.tensor([0, 1]), n1, n2, cfg, ds_weight=0.4, control=7)
    assert plain["identity"].item() == 0.0                               # not computed at lambda_id 0
    assert math.isclose(weighted["g_total"].item() - plain["g_total"].item(),
                        0.5 * 8.5, rel_tol=1e-6)


def test_translate_shifts_each_image_by_its_own_offset_with_reflected_edges():
    from opsembed.train.gan import shifted_critic, translate
    x = torch.randn(16, 2, 5, 5)
    gen = torch.Generator().manual_seed(0)
    out = translate(x, 2, gen)
    offsets = set()
    for img, shifted in zip(x.numpy(), out.numpy()):
        padded = np.pad(img, ((0, 0), (2, 2), (2, 2)), mode="reflect")
        matches = [(dy, dx) for dy in range(5) for dx in range(5)
                   if np.array_equal(padded[:, dy:dy + 5, dx:dx + 5], shifted)]
        assert len(matches) == 1                                          # one whole-pixel offset, both channels
        offsets.add(matches[0])
    assert len(offsets) > 1                                               # drawn per image, not per batch
    assert torch.equal(translate(x, 0, gen), x)
    x.requires_grad_(True)
    translate(x, 1, gen).sum().backward()
    assert x.grad.sum() == x.numel()                                      # each output pixel is one input pixel
    critic = lambda images, labels: images.flatten(1).sum(1)
    assert shifted_critic(critic, 0, gen) is critic
