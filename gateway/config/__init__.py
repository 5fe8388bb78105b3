"""The config file: its model, loading with places, and cross-section checks.

model.py         the YAML model (every model named ``*Config``), validated once
load.py          YAML -> GatewayConfig, each error with its path and line
references.py    checks that span sections (names that must exist or be unique)
cluster_name.py  what a route's ``cluster:`` names (static, xds:///, by interface)
issues.py        ConfigIssue and ConfigError, shared by the above
"""

from gateway.config.issues import ConfigError, ConfigIssue
from gateway.config.load import LoadedConfig, load_config_file, load_config_text
from gateway.config.model import (
    MIB,
    AdminConfig,
    ClusterConfig,
    DescriptorSourceConfig,
    DubboRouteConfig,
    EndpointConfig,
    FilterConfig,
    GatewayConfig,
    HashPolicyConfig,
    HeaderMatchConfig,
    ListenerConfig,
    ListenerLimitsConfig,
    MeshConfig,
    QueryMatchConfig,
    RetryConfig,
    RouteConfig,
    RouteMatchConfig,
    TranscodeConfig,
    parse_address,
    parse_duration,
    split_address,
)

__all__ = [
    "MIB",
    "AdminConfig",
    "ClusterConfig",
    "ConfigError",
    "ConfigIssue",
    "DescriptorSourceConfig",
    "DubboRouteConfig",
    "EndpointConfig",
    "FilterConfig",
    "GatewayConfig",
    "HashPolicyConfig",
    "HeaderMatchConfig",
    "ListenerConfig",
    "ListenerLimitsConfig",
    "LoadedConfig",
    "MeshConfig",
    "QueryMatchConfig",
    "RetryConfig",
    "RouteConfig",
    "RouteMatchConfig",
    "TranscodeConfig",
    "load_config_file",
    "load_config_text",
    "parse_address",
    "parse_duration",
    "split_address",
]
