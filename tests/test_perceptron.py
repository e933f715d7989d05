"""Hand perceptron: eq. 2-3 numerically, what its RoPE promises, masking, pooling and permutations."""

from __future__ import annotations

import math

import pytest
import torch

from unihand.models.perceptron import HandPerceptron
from unihand.models.rope import rope_angles, split_3d

B, N, H, W, DV, D, HEADS = 2, 6, 3, 4, 16, 32, 2


def make(**kwargs: object) -> HandPerceptron:
    torch.manual_seed(0)
    return HandPerceptron(d_vision=DV, d_model=D, heads=HEADS, **kwargs).eval()  # type: ignore[arg-type]


def inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, N, H, W, DV, generator=g), torch.randn(B, D, generator=g)


def rotate(x: torch.Tensor, pos: torch.Tensor, groups: list[tuple[int, int]], base: float = 10000.0) -> torch.Tensor:
    """Reference RoPE (eq. 14) as complex rotations: channel group (axis, width) turned by pos[:, axis]."""
    parts, start = [], 0
    for axis, width in groups:
        z = torch.view_as_complex(x[..., start : start + width].unflatten(-1, (-1, 2)).contiguous())
        freq = base ** (-torch.arange(0, width, 2, dtype=torch.float32) / width)
        parts.append(torch.view_as_real(z * torch.polar(torch.ones(()), pos[:, axis, None] * freq)).flatten(-2))
        start += width
    return torch.cat(parts, dim=-1)


def reference_cross(p: HandPerceptron, x: torch.Tensor, v: torch.Tensor, q_pos: torch.Tensor,
                    k_pos: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """Eq. 2-3 written out: softmax(Q K^T / sqrt(d_k)) V with explicit rotations, per head."""
    cross = p.layers[0].cross
    dh = D // HEADS
    groups = [(0, dh)] if p.rope == "1d" else list(zip(range(3), split_3d(dh)))
    heads = lambda t: t.unflatten(-1, (HEADS, dh)).transpose(1, 2)  # noqa: E731
    q = rotate(heads(cross.norm_q(cross.w_q(x))), q_pos, groups)
    k = rotate(heads(p.norm_k(p.w_k(v))), k_pos, groups)
    val = heads(p.norm_v(p.w_v(v)))
    scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
    scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    out = scores.softmax(-1) @ val
    return cross.w_o(out.transpose(1, 2).flatten(2))


@pytest.mark.parametrize("rope", ["3d", "1d"])
def test_forward_matches_equations(rope: str) -> None:
    p = make(layers=1, rope=rope)
    tokens, init = inputs()
    mask = torch.tensor([[True, False, True, True, True, True], [True] * N])
    valid = torch.ones(H, W, dtype=torch.bool)
    valid[-1] = False
    out = p(tokens, init, vision_mask=mask, token_valid=valid)
    assert out.shape == (B, N, D)

    q_pos = torch.stack([torch.arange(N + 1.0), torch.zeros(N + 1), torch.zeros(N + 1)], dim=-1)
    k_pos = torch.tensor([(t + 1.0, y, x) for t in range(N) for y in range(H) for x in range(W)])
    key_mask = (mask[:, :, None, None] & valid).reshape(B, -1)
    layer = p.layers[0]
    x = torch.cat([init[:, None], p.hand_tokens[:N].expand(B, -1, -1)], dim=1)
    x = x + reference_cross(p, x, tokens.reshape(B, N * H * W, DV), q_pos, k_pos, key_mask)
    x = x + layer.self_attn(layer.norm_self(x), rope_angles(torch.arange(N + 1.0), D // HEADS))
    x = x + layer.ffn(layer.norm_ffn(x))
    expected = p.norm_out(x[:, 1:]) * mask[..., None]
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    assert (out[0, 1] == 0).all()


def test_positions_documented() -> None:
    q = HandPerceptron.query_positions(3)
    assert q.tolist() == [[0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]]
    k = HandPerceptron.key_positions(N, H, W)
    tokens = torch.arange(N * H * W).reshape(N, H, W)
    for flat in (0, 7, 29, N * H * W - 1):
        t, y, x = (int(i) for i in (tokens == flat).nonzero()[0])
        assert k[flat].tolist() == [t + 1, y, x]


@pytest.mark.parametrize("rope", ["3d", "1d"])
def test_rope_scores_depend_only_on_relative_position(rope: str) -> None:
    """Attention logits Q K^T built by the module's own projections and angles."""
    p = make(rope=rope)
    cross = p.layers[0].cross
    g = torch.Generator().manual_seed(3)
    q_in, v_in = torch.randn(1, 5, D, generator=g), torch.randn(1, 7, DV, generator=g)
    q_pos = torch.randint(0, 12, (5, 3), generator=g).float()
    k_pos = torch.randint(0, 12, (7, 3), generator=g).float()

    def scores(qp: torch.Tensor, kp: torch.Tensor) -> torch.Tensor:
        return cross.queries(q_in, p.position_angles(qp)) @ p.keys(v_in, p.position_angles(kp)).transpose(-1, -2)

    base = scores(q_pos, k_pos)
    for axis in range(3):
        shift = torch.zeros(3)
        shift[axis] = 5.0
        # same shift of queries and keys along one axis: relative positions unchanged -> same scores
        torch.testing.assert_close(scores(q_pos + shift, k_pos + shift), base, rtol=1e-4, atol=1e-4)
        # keys alone shifted: relative positions change -> scores change along axes the encoding covers
        moved = scores(q_pos, k_pos + shift)
        covered = axis == 0 or rope == "3d"
        assert (moved - base).abs().max() > 1e-2 if covered else torch.allclose(moved, base, atol=1e-5)
    arbitrary = torch.tensor([7.0, -3.0, 11.0])
    torch.testing.assert_close(scores(q_pos + arbitrary, k_pos + arbitrary), base, rtol=1e-4, atol=1e-4)


def test_avg_pooling_is_linear_of_mean_over_valid_tokens() -> None:
    p = make(pooling="avg")
    tokens, init = inputs()
    valid = torch.zeros(H, W, dtype=torch.bool)
    valid[:2, :3] = True
    mask = torch.tensor([[True] * N, [True, True, False, True, True, True]])
    out = p(tokens, init, vision_mask=mask, token_valid=valid)
    expected = p.pool(tokens[:, :, :2, :3].mean((2, 3))) * mask[..., None]
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(p(tokens, torch.randn(B, D), mask, valid), out)  # a^1 unused here


def test_masked_frames_and_padding_are_ignored() -> None:
    p = make()
    tokens, init = inputs()
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[0, 2] = mask[1, 4] = False
    valid = torch.ones(1, 1, H, W, dtype=torch.bool)
    valid[..., :, -1] = False
    out = p(tokens, init, vision_mask=mask, token_valid=valid)
    changed = tokens.clone()
    changed[0, 2] = torch.randn(H, W, DV) * 10
    changed[1, 4] = torch.randn(H, W, DV) * 10
    changed[..., -1, :] = torch.randn(B, N, H, DV) * 10  # padding column
    torch.testing.assert_close(p(changed, init, vision_mask=mask, token_valid=valid), out)
    assert (out[0, 2] == 0).all() and (out[1, 4] == 0).all()
    # a visible frame does influence the others: attention spans all frames
    visible = tokens.clone()
    visible[0, 0] += 1.0
    assert (p(visible, init, mask, valid)[0, 3] - out[0, 3]).abs().max() > 1e-4

    none = p(tokens, init, vision_mask=torch.zeros(B, N, dtype=torch.bool))
    assert torch.isfinite(none).all() and (none == 0).all()


def test_init_token_anchors_hand_tokens_and_gets_gradients() -> None:
    p = make()
    tokens, init = inputs()
    init.requires_grad_(True)
    out = p(tokens, init)
    assert (p(tokens, init + 1.0) - out).abs().max() > 1e-4
    out.square().sum().backward()
    assert init.grad is not None and init.grad.abs().sum() > 0
    assert p.hand_tokens.grad is not None and p.hand_tokens.grad[:N].abs().sum() > 0
    assert (p.hand_tokens.grad[N:] == 0).all()


def test_permutations() -> None:
    tokens, init = inputs()
    perm_b = torch.tensor([1, 0])
    p3 = make(rope="3d")
    out3 = p3(tokens, init)
    torch.testing.assert_close(p3(tokens[perm_b], init[perm_b]), out3[perm_b])

    # shuffle the spatial tokens of every frame: 1D RoPE only sees time, 3D RoPE sees the layout
    g = torch.Generator().manual_seed(5)
    perm_s = torch.randperm(H * W, generator=g)
    shuffled = tokens.flatten(2, 3)[:, :, perm_s].reshape(B, N, H, W, DV)
    assert (p3(shuffled, init) - out3).abs().max() > 1e-3
    p1 = make(rope="1d")
    torch.testing.assert_close(p1(shuffled, init), p1(tokens, init), rtol=1e-4, atol=1e-5)
    pa = make(pooling="avg")
    torch.testing.assert_close(pa(shuffled, init), pa(tokens, init), rtol=1e-5, atol=1e-6)


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="pooling"):
        HandPerceptron(DV, pooling="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rope"):
        HandPerceptron(DV, rope="2d")  # type: ignore[arg-type]
    p = HandPerceptron(DV, d_model=D, heads=HEADS, max_frames=4)
    with pytest.raises(ValueError, match="max_frames=4"):
        p(*inputs())
