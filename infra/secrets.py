"""The two secrets: the gateway API key (filled by the user) and the callback signing key."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Aws, RemovalPolicy, Validations
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import StackConfig

SIGNING_KEY_CURRENT = "current"
SIGNING_KEY_PREVIOUS = "previous"


class Secrets(Construct):
    """Secrets Manager secrets; only their ARNs or names ever reach the template's environment."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig) -> None:
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY

        if config.gateway_key_secret_name:
            name = config.gateway_key_secret_name
            self.gateway_key = secretsmanager.Secret.from_secret_name_v2(self, "GatewayKey", name)
            # A name-imported secret's ARN ends in a random 6-character suffix.
            self.gateway_key_policy_arn = (
                f"arn:{Aws.PARTITION}:secretsmanager:{Aws.REGION}:{Aws.ACCOUNT_ID}:secret:{name}-??????"
            )
            # GetSecretValue accepts the name; the partial ARN of an imported secret is ambiguous.
            self.gateway_key_reference = name
        else:
            secret = secretsmanager.Secret(
                self,
                "GatewayKey",
                description="Cutouts: the image gateway API key. Put the key here as a plain string "
                "(aws secretsmanager put-secret-value --secret-id <arn> --secret-string <key>).",
                removal_policy=removal,
            )
            # Created with no value: the L2 construct would otherwise generate a random string that
            # looks like a key. Until the user puts the key, GetSecretValue fails and jobs are
            # reported as a configuration error instead of sending a made-up key to the gateway.
            secret.node.default_child.add_property_deletion_override("GenerateSecretString")  # type: ignore[union-attr]
            Validations.of(secret).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-SMG4",
                    reason="The gateway API key is issued by the vendor; it cannot be rotated by a Lambda. "
                    "Rotation is manual (README: new key in the vendor console, put-secret-value, "
                    "functions pick it up within the secret cache's lifetime, then revoke the old key).",
                )
            )
            self.gateway_key = secret
            self.gateway_key_policy_arn = secret.secret_arn
            self.gateway_key_reference = secret.secret_arn

        signing = secretsmanager.Secret(
            self,
            "SigningKey",
            description="Cutouts: HMAC key for callback URL tokens; JSON with 'current' and, "
            "during a rotation, 'next' (staged, verifies only) or 'previous' (retiring).",
            removal_policy=RemovalPolicy.DESTROY,
        )
        # No generator: CloudFormation would write a new value whenever its settings changed or the
        # secret were replaced, over a hand-rotated {current, previous}, and every outstanding
        # callback URL would stop verifying. The first value comes from a one-shot custom resource
        # that never overwrites one (infra/signing_key.py).
        signing.node.default_child.add_property_deletion_override("GenerateSecretString")  # type: ignore[union-attr]
        Validations.of(signing).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SMG4",
                reason="Rotated by procedure, not by a rotation Lambda: in-flight jobs hold callback URLs "
                "signed with the old key, so rotation stages the new key as 'next' (accepted, never used "
                "to sign), then moves it to 'current' and the old one to 'previous', and verification "
                "accepts both until the longest job age has passed (docs, rotation).",
            )
        )
        self.signing_key = signing
