import json
from urllib.parse import parse_qs, urlsplit

import pytest

from cutouts.callback_token import CallbackSigner, SigningKeyError, signing_keys_from_secret

CURRENT = "c" * 40
PREVIOUS = "p" * 40
JOB = "0123456789abcdef0123456789abcdef"


def signer(*keys: str) -> CallbackSigner:
    return CallbackSigner([k.encode() for k in keys])


def test_token_round_trips_through_the_callback_url():
    # Given a signer and the URL it gives the gateway
    s = signer(CURRENT)
    url = s.callback_url("https://api.example.com/", JOB, 2)
    # When the URL's parts are read back
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    # Then they verify
    assert parts.path == f"/callback/{JOB}"
    assert query["attempt"] == ["2"]
    assert s.verify(JOB, 2, query["token"][0])


def test_tampered_token_is_rejected():
    s = signer(CURRENT)
    token = s.token(JOB, 1)
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert not s.verify(JOB, 1, flipped)
    assert not s.verify(JOB, 1, token[:-1])
    assert not s.verify(JOB, 1, "")
    assert not s.verify(JOB, 1, "é" * 43)


def test_token_for_another_job_or_attempt_is_rejected():
    s = signer(CURRENT)
    token = s.token(JOB, 1)
    assert not s.verify("f" * 32, 1, token)
    assert not s.verify(JOB, 2, token)


def test_previous_key_is_accepted_during_rotation_and_new_tokens_use_current():
    old = signer(PREVIOUS)
    rotated = signer(
        *[k.decode() for k in signing_keys_from_secret(json.dumps({"current": CURRENT, "previous": PREVIOUS}))]
    )
    assert rotated.verify(JOB, 1, old.token(JOB, 1))
    assert rotated.token(JOB, 1) == signer(CURRENT).token(JOB, 1)


def test_token_from_a_different_key_is_rejected():
    assert not signer(CURRENT).verify(JOB, 1, signer("x" * 40).token(JOB, 1))


@pytest.mark.parametrize("secret", ["not json", "{}", '{"current": "short"}', '["a"]'])
def test_malformed_signing_secret_fails_loudly(secret):
    with pytest.raises(SigningKeyError):
        signing_keys_from_secret(secret)


def test_verification_compares_in_constant_time_against_every_key(monkeypatch):
    # Given a signer with a current and a previous key, and a spy on the comparison
    import cutouts.callback_token as module

    calls: list[tuple[bytes, bytes]] = []
    real = module.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(module.hmac, "compare_digest", spy)
    signer = module.CallbackSigner([b"c" * 40, b"p" * 40])
    good = signer.token("job", 1)
    # When a right token and a wrong one are verified
    assert signer.verify("job", 1, good) is True
    assert signer.verify("job", 1, good[:-3] + "xyz") is False
    # Then both went through hmac.compare_digest against every key, without stopping at the first match
    assert len(calls) == 4


NEXT = "n" * 40


def signer_from_secret(doc: dict[str, str]) -> CallbackSigner:
    return CallbackSigner(signing_keys_from_secret(json.dumps(doc)))


def test_next_key_verifies_but_never_signs():
    # Given step 1 of a rotation: a next key beside the current one
    staged = signer_from_secret({"current": CURRENT, "next": NEXT})
    # When tokens are made and checked
    # Then new tokens still use current, and a token made with next already verifies
    assert staged.token(JOB, 1) == signer(CURRENT).token(JOB, 1)
    assert staged.verify(JOB, 1, signer(NEXT).token(JOB, 1))


def test_rotation_never_rejects_a_genuine_callback_while_caches_disagree():
    # Given the three documents of a rotation, and functions whose caches hold any two adjacent ones
    step0 = {"current": CURRENT}
    step1 = {"current": CURRENT, "next": NEXT}
    step2 = {"current": NEXT, "previous": CURRENT}
    step3 = {"current": NEXT}
    for older, newer in ((step0, step1), (step1, step2), (step2, step3)):
        a, b = signer_from_secret(older), signer_from_secret(newer)
        # When either one signs a callback URL and the other receives the callback
        # Then it verifies
        assert b.verify(JOB, 3, a.token(JOB, 3)), (older, newer)
        assert a.verify(JOB, 3, b.token(JOB, 3)), (older, newer)


@pytest.mark.parametrize("role", ["next", "previous"])
@pytest.mark.parametrize("value", ["short", 42, ["x" * 40]])
def test_optional_key_that_is_too_short_or_not_text_fails_loudly(role, value):
    with pytest.raises(SigningKeyError, match=role):
        signing_keys_from_secret(json.dumps({"current": CURRENT, role: value}))
