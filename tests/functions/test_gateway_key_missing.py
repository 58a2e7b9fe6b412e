"""An unfilled or unreadable gateway key secret is a configuration error the user must fix."""

from __future__ import annotations

import pytest
import urllib3

from cutouts.gateway import GatewayPermanentError
from cutouts.gateway_key import GatewayKeyMissing
from cutouts.outcomes import GATEWAY_ALARM_METRICS
from cutouts.pixazo import PixazoGateway


def _unreadable() -> str:
    raise GatewayKeyMissing("the secret has no value (ResourceNotFoundException)")


@pytest.mark.parametrize("provider", [_unreadable, lambda: ""], ids=["unreadable", "empty"])
def test_missing_gateway_key_is_a_permanent_error_that_alarms(provider):
    # Given a client whose key secret was never filled (the address is never contacted)
    client = PixazoGateway("http://192.0.2.1", "/m/v1/op", provider, urllib3.PoolManager(), 1.0)
    # When an image is submitted
    with pytest.raises(GatewayPermanentError) as caught:
        client.submit("https://example.invalid/img", "https://example.invalid/cb")
    # Then it fails at once with advice, and the auth alarm metric is counted for it
    assert caught.value.reason == "gateway-key-missing"
    assert "secret" in caught.value.what_to_do
    assert caught.value.reason in GATEWAY_ALARM_METRICS
