"""SimCLR learns: a linear probe on its encoder beats one on the same encoder at random initialisation.

The data has structure but its labels are never used in training: gratings
of four orientations, random frequencies, phases and colours, 32 pixels. The
colours are a nuisance the augmentations (colour jitter, greyscale) teach the
encoder to ignore; the orientation survives them (no flips here: a flip
swaps the diagonals). A small convolutional encoder (16-32-32 channels)
keeps the test to about 15 s on two shared cores; the loss, the projection
head and the batch augmentations are the plugin's own. 100 steps of batch
128 at a rate of 3e-3 take the probe from 0.68 to about 0.98 (batch 256 also
passes 0.95 in 60 steps, at twice the time; a rate of 1e-2 diverges).
"""

from __future__ import annotations

import math

import torch
from himl_ssl.augment import AugmentationConfig, augment_batch
from himl_ssl.heads import mlp_head
from himl_ssl.losses import nt_xent_loss
from torch import Tensor, nn

SIZE, ORIENTATIONS = 32, 4


def gratings(count: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``count`` gratings (N, 3, 32, 32) in [0, 1] and their orientation class."""
    label = torch.randint(0, ORIENTATIONS, (count,), generator=generator)
    angle = label.float() * math.pi / ORIENTATIONS + (torch.rand(count, generator=generator) - 0.5) * 0.3
    frequency = 2 + torch.rand(count, generator=generator) * 4
    phase = torch.rand(count, generator=generator) * 2 * math.pi
    ys, xs = torch.meshgrid(torch.linspace(0, 1, SIZE), torch.linspace(0, 1, SIZE), indexing="ij")
    along = xs[None] * torch.cos(angle)[:, None, None] + ys[None] * torch.sin(angle)[:, None, None]
    wave = ((torch.sin(2 * math.pi * frequency[:, None, None] * along + phase[:, None, None]) + 1) / 2)[:, None]
    light, dark = torch.rand(count, 3, 1, 1, generator=generator), torch.rand(count, 3, 1, 1, generator=generator)
    return light * wave + dark * (1 - wave), label


def small_encoder() -> nn.Sequential:
    def block(inputs: int, outputs: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(inputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs), nn.ReLU(), nn.MaxPool2d(2)
        )

    return nn.Sequential(block(3, 16), block(16, 32), block(32, 32), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def probe_accuracy(encoder: nn.Module) -> float:
    """Accuracy on held-out gratings of a linear classifier trained on the frozen encoder's standardised features."""
    generator = torch.Generator().manual_seed(5)
    encoder.eval()
    with torch.no_grad():
        train_x, train_y = gratings(1000, generator)
        test_x, test_y = gratings(500, generator)
        train_f, test_f = encoder(train_x), encoder(test_x)
    mean, std = train_f.mean(0), train_f.std(0) + 1e-6
    train_f, test_f = (train_f - mean) / std, (test_f - mean) / std
    head = nn.Linear(train_f.shape[1], ORIENTATIONS)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(300):
        optimizer.zero_grad()
        nn.functional.cross_entropy(head(train_f), train_y).backward()
        optimizer.step()
    with torch.no_grad():
        return float((head(test_f).argmax(1) == test_y).float().mean())


def test_a_probe_on_the_simclr_encoder_beats_a_random_encoder_by_a_wide_margin() -> None:
    torch.manual_seed(0)
    encoder = small_encoder()
    random_accuracy = probe_accuracy(encoder)
    encoder.train()
    projection = mlp_head(32, 64, 32)
    optimizer = torch.optim.Adam([*encoder.parameters(), *projection.parameters()], lr=3e-3)
    config = AugmentationConfig(crop_scale=(0.3, 1.0), blur_probability=0.0, flip_probability=0.0)
    generator = torch.Generator().manual_seed(1)
    for _ in range(100):
        images, _ = gratings(128, generator)  # the labels are thrown away
        views = torch.cat([augment_batch(images, config, SIZE), augment_batch(images, config, SIZE)])
        z1, z2 = projection(encoder(views)).chunk(2)
        loss = nt_xent_loss(z1, z2, temperature=0.2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    simclr_accuracy = probe_accuracy(encoder)
    print(f"linear probe: random encoder {random_accuracy:.3f}, SimCLR encoder {simclr_accuracy:.3f}")
    assert random_accuracy < 0.8
    assert simclr_accuracy > 0.95
