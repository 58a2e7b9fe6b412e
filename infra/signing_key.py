"""The signing secret's first value, written once by a custom resource and never regenerated.

The secret itself (infra/secrets.py) has no GenerateSecretString: a change of generator settings,
or anything else in the template, can then never write a new value over a hand-rotated
``{current, previous}``. This custom resource gives it a first value when it has none
(cutouts/signing_key_seed.py) and leaves any value it finds, on every later deployment too.
"""

from __future__ import annotations

from aws_cdk import CustomResource, Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import StackConfig
from infra.functions import CutoutsFunction

SEED_HANDLER = "cutouts.handlers.signing_key_seed.handler"
RESOURCE_TYPE = "Custom::SigningKeySeed"


class SigningKeySeed(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StackConfig,
        code: lambda_.Code,
        layer: lambda_.ILayerVersion,
        secret: secretsmanager.ISecret,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = CutoutsFunction(
            self,
            "SigningKeySeed",
            config=config,
            code=code,
            layer=layer,
            handler=SEED_HANDLER,
            timeout=Duration.seconds(30),
            description="Cutouts: gives the callback signing secret its first value (deployments only)",
            environment={},
        )
        self.function.allow(
            "SeedSigningKey", ["secretsmanager:DescribeSecret", "secretsmanager:PutSecretValue"], [secret.secret_arn]
        )
        # Only the secret's ARN: no value and no generator settings, so nothing in the template
        # can ask for a new value. A replaced secret arrives as an Update naming an empty secret.
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=self.function.function.function_arn,
            resource_type=RESOURCE_TYPE,
            properties={"SecretId": secret.secret_arn},
        )
