"""The configuration file: TOML, validated into one frozen pydantic model tree.

``models`` holds the tables, ``access`` the API tokens and their scopes, ``catalogue`` the
``[[event_types]]``, ``load`` the root ``Config`` with reading, error lines and reload,
``references`` the ``env:``/``file:`` secrets.
"""

from hookd.config.access import SCOPES, Scope, Token
from hookd.config.catalogue import EventType, JsonSchema
from hookd.config.load import (
    Config,
    ConfigError,
    field_names,
    format_errors,
    key_path,
    load_server,
    plain_message,
    reload_config,
)
from hookd.config.models import (
    ENVELOPE_KEYS,
    OPERATORS,
    ApiWebhook,
    Auth,
    BasicAuth,
    BatchingConfig,
    BearerAuth,
    Condition,
    CustomField,
    DeliveryConfig,
    HeaderAuth,
    NoAuth,
    ServerConfig,
    StorageConfig,
    Trigger,
    Webhook,
    is_loopback,
    split_listen,
)
from hookd.config.references import inline_secrets, resolve_secret

__all__ = [
    "ENVELOPE_KEYS",
    "OPERATORS",
    "SCOPES",
    "ApiWebhook",
    "Auth",
    "BasicAuth",
    "BatchingConfig",
    "BearerAuth",
    "Condition",
    "Config",
    "ConfigError",
    "CustomField",
    "DeliveryConfig",
    "EventType",
    "HeaderAuth",
    "JsonSchema",
    "NoAuth",
    "Scope",
    "ServerConfig",
    "StorageConfig",
    "Token",
    "Trigger",
    "Webhook",
    "field_names",
    "format_errors",
    "inline_secrets",
    "is_loopback",
    "key_path",
    "load_server",
    "plain_message",
    "reload_config",
    "resolve_secret",
    "split_listen",
]
