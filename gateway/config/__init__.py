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
    ClusterTlsConfig,
    DescriptorSourceConfig,
    DubboRouteConfig,
    EndpointConfig,
    ExposeConfig,
    FilterConfig,
    GatewayConfig,
    HashPolicyConfig,
    HeaderMatchConfig,
    HealthCheckConfig,
    KeepaliveConfig,
    ListenerConfig,
    ListenerLimitsConfig,
    ListenerTlsConfig,
    MeshConfig,
    OutlierDetectionConfig,
    QueryMatchConfig,
    RegistryConfig,
    RetryBudgetConfig,
    RetryConfig,
    RouteConfig,
    RouteFilterConfig,
    RouteMatchConfig,
    TlsCertificateConfig,
    TranscodeConfig,
    parse_address,
    parse_duration,
    split_address,
)

__all__ = [
    "MIB",
    "AdminConfig",
    "ClusterConfig",
    "ClusterTlsConfig",
    "ConfigError",
    "ConfigIssue",
    "DescriptorSourceConfig",
    "DubboRouteConfig",
    "EndpointConfig",
    "ExposeConfig",
    "FilterConfig",
    "GatewayConfig",
    "HashPolicyConfig",
    "HeaderMatchConfig",
    "HealthCheckConfig",
    "KeepaliveConfig",
    "ListenerConfig",
    "ListenerLimitsConfig",
    "ListenerTlsConfig",
    "LoadedConfig",
    "MeshConfig",
    "OutlierDetectionConfig",
    "QueryMatchConfig",
    "RegistryConfig",
    "RetryBudgetConfig",
    "RetryConfig",
    "RouteConfig",
    "RouteFilterConfig",
    "RouteMatchConfig",
    "TlsCertificateConfig",
    "TranscodeConfig",
    "load_config_file",
    "load_config_text",
    "parse_address",
    "parse_duration",
    "split_address",
]
