from datapipe_cdk import _toolchain
from datapipe_cdk.providers.google import GoogleProvider
from datapipe_cdk.providers.kafka import KafkaProvider
from datapipe_cdk.providers.kafka_connect import KafkaConnectProvider


def test_l1_provider_versions_match_the_toolchain_pins():
    pins = {p.source: p.version for p in _toolchain.PROVIDERS}
    for provider in (KafkaProvider, KafkaConnectProvider, GoogleProvider):
        assert pins[provider.SOURCE] == provider.VERSION, provider.SOURCE
