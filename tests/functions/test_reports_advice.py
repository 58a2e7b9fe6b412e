"""A failure report's advice fits its cause: every reason the code can end a job with has its own.

The reasons are read from the code itself (functions/cutouts), so a new reason that nobody wrote
advice for fails here, as does advice left behind for a reason the code no longer produces.
"""

from __future__ import annotations

import ast
import re
import socket
from pathlib import Path

import pytest
from functions_kit import image_bytes

from cutouts import normalising, profiles, rendering
from cutouts.reports import ADVICE, GATEWAY_ADVICE, GENERIC_ADVICE, advice_for

IMAGING_ADVICE = {**profiles.ADVICE, **rendering.ADVICE, **normalising.ADVICE}

CODE = Path(__file__).resolve().parents[2] / "functions" / "cutouts"
REASON = re.compile(r"^[a-z]+(-[a-z]+)+$")

# Each reason the code produces, and words its advice must hold to fit the cause.
PINNED: dict[str, tuple[str, ...]] = {
    "empty-file": ("no bytes",),
    "unsupported-type": ("JPEG, PNG or WebP",),
    "too-large": ("maxImageBytes", "maxImagePixels"),
    "truncated-image": ("incomplete or corrupt",),
    "source-deleted": ("deleted",),
    "key-too-long": ("shorter",),
    "superseded": ("newer upload", "nothing to do"),
    "model-failed": ("model could not process",),
    "gateway-error-exhausted": ("system error", "maxAttempts"),
    "gateway-gave-up": ("429", "5xx", "maxReceives"),
    "gateway-unreachable": ("Nothing answered", "gatewayBaseUrl"),
    "bad-output": ("allowedMediaHosts",),
    "timed-out": ("maxAgeSeconds",),
    "dead-lettered": ("dead-letter queue", "retry --reason dead-lettered"),
    "reconcile-failed": ("reconcile function's logs",),
    "upload-loop": ("maxVersionsPerKeyPerDay", "loop", "next upload"),
    "gateway-bad-request": ("gatewayModelPath",),
    "gateway-unauthorized": ("valid key",),
    "gateway-insufficient-balance": ("top it up",),
    "gateway-forbidden": ("subscription",),
    "gateway-not-found": ("gatewayBaseUrl", "gatewayModelPath"),
    "gateway-key-missing": ("gateway key secret", "GatewayKeySecretArn"),
    "gateway-key-unreadable": ("Secrets Manager", "retry the failed jobs"),
    "gateway-rejected": ("unexpected 4xx", "gateway_error"),
    # output profiles and image work (their advice lives beside them: profiles, rendering, normalising)
    "unknown-profile": ("x-amz-meta-cutouts-profile",),
    "render-failed": ("profiles.json", "rerender"),
    "master-too-large": ("pixel cap", "rerender"),
    "master-undecodable": ("retry the job",),
    "unsupported-format": ("HEIC",),
    "prepare-failed": ("render dead-letter queue", "render function's logs", "retry the job"),
    "render-dead-lettered": ("render dead-letter queue", "rerender", "not paid again"),
    "too-many-pixels": ("oversize",),
    "undecodable": ("corrupt",),
}


def _text(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def reasons_in(tree: ast.AST) -> set[str]:
    """Every literal the code ends a job with, in each shape it is written in."""
    found: set[str | None] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            found |= {_text(k.value) for k in node.keywords if k.arg == "reason"}  # fail_job(..., reason="x")
            name, args = _callee(node), node.args
            if name in ("RejectedImage", "RenderError", "NormaliseError") and args:  # RejectedImage("x", message)
                found.add(_text(args[0]))
            if name == "GatewayPermanentError" and len(args) > 2:  # (message, status, "x", advice)
                found.add(_text(args[2]))
            if name == "mark_final" and len(args) > 3:  # mark_final(job, SUPERSEDED, now, "x", message)
                found.add(_text(args[3]))
        elif isinstance(node, ast.Tuple) and len(node.elts) == 2:  # ("x", "what to do"), as pixazo's tables
            reason, advice = map(_text, node.elts)
            if reason and REASON.match(reason) and advice and " " in advice:
                found.add(reason)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple):  # reason, message = "x", "..."
            target = node.targets[0]
            if isinstance(target, ast.Tuple) and isinstance(target.elts[0], ast.Name) and target.elts[0].id == "reason":
                found.add(_text(node.value.elts[0]))
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id.endswith("REASON") for t in node.targets
        ):  # LATE_REASON = "x"
            found.add(_text(node.value))
        elif isinstance(node, ast.arguments):  # def __init__(..., reason: str = "x")
            named = [*node.posonlyargs, *node.args][-len(node.defaults) :] if node.defaults else []
            pairs = [*zip(named, node.defaults, strict=True), *zip(node.kwonlyargs, node.kw_defaults, strict=True)]
            found |= {_text(default) for arg, default in pairs if arg.arg == "reason"}
    return {reason for reason in found if reason}


def code_reasons() -> set[str]:
    reasons: set[str] = set()
    for path in sorted(CODE.rglob("*.py")):
        reasons |= reasons_in(ast.parse(path.read_text(), str(path)))
    return reasons


def test_every_reason_the_code_produces_is_pinned_here():
    # Given the reasons read from functions/cutouts
    reasons = code_reasons()
    # Then they are exactly the pinned ones: a new reason needs its advice (and a line here)
    assert reasons - set(PINNED) == set(), "new reasons: give them advice in reports.ADVICE or pixazo.ADVICE"
    assert set(PINNED) - reasons == set(), "reasons the code no longer produces: drop them here"


def test_no_advice_is_left_for_a_reason_the_code_no_longer_produces():
    # Given the two advice tables (the pipeline's and the gateway provider's)
    advised = set(ADVICE) | set(GATEWAY_ADVICE) | set(IMAGING_ADVICE)
    # Then they advise exactly the reasons the code produces
    assert advised == code_reasons()


@pytest.mark.parametrize(("reason", "words"), sorted(PINNED.items()))
def test_each_reason_gets_advice_that_fits_its_cause(reason, words):
    # When the advice for a reason is looked up (as the report and the CLI's status do)
    advice = advice_for(reason)
    # Then it is its own, not the catch-all, and it names what fits the cause
    assert advice != GENERIC_ADVICE
    assert all(word in advice for word in words), advice


def test_a_reason_is_advised_in_one_table_only():
    # Then no reason has two pieces of advice that could drift apart
    assert set(ADVICE) & set(GATEWAY_ADVICE) == set()
    assert (set(ADVICE) | set(GATEWAY_ADVICE)) & set(IMAGING_ADVICE) == set()


def test_a_refused_connection_on_the_final_delivery_reports_the_gateway_unreachable(
    cutouts, lambda_context, monkeypatch
):
    from cutouts import runtime
    from cutouts.handlers import submit

    # Given a gateway address where nothing listens
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("CUTOUTS_GATEWAY_BASE_URL", f"http://127.0.0.1:{port}")
    runtime.settings.cache_clear()
    event = cutouts.sqs_event([cutouts.notification("uploads/far.jpg", image_bytes("JPEG", (40, 30)))], receive_count=6)
    # When the upload's last delivery meets a refused connection
    assert submit.handler(event, lambda_context) == {"batchItemFailures": []}
    # Then the report says the gateway was unreachable, and advises checking its address
    report = cutouts.report("failed/far.jpg.json")
    assert report["reason"] == "gateway-unreachable"
    assert "could not connect" in report["message"] and "gatewayBaseUrl" in report["what_to_do"]
