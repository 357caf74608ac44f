import torch
from torch import nn

from cjepa.model import ema_update, make_target


def _pair():
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
    target = make_target(online)
    with torch.no_grad():
        for p in online.parameters():
            p.add_(torch.randn_like(p))
    return online, target


def test_ema_update_math():
    online, target = _pair()
    before = [p.clone() for p in target.parameters()]
    ema_update(target, online, 0.9)
    for t, b, o in zip(target.parameters(), before, online.parameters()):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * o, rtol=0, atol=1e-6)


def test_ema_off_copies_exactly_and_one_freezes():
    online, target = _pair()
    before = [p.clone() for p in target.parameters()]
    ema_update(target, online, 1.0)
    assert all(torch.equal(t, b) for t, b in zip(target.parameters(), before))
    ema_update(target, online, 0.0)
    assert all(torch.equal(t, o) for t, o in zip(target.parameters(), online.parameters()))


def test_target_has_no_gradients_and_is_a_copy():
    online, target = _pair()
    assert not any(p.requires_grad for p in target.parameters())
    assert all(p.requires_grad for p in online.parameters())
    assert target[0].weight.data_ptr() != online[0].weight.data_ptr()
