"""API tokens and their scopes (SPEC §11): the entries of ``server.tokens``.

An entry is a plain string (a token with every scope, as before scopes existed) or a table
``{ token = "…", scopes = ["ingest", "read", "manage"] }``, so that the token a product's
ingest client holds cannot add a destination.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from hookd.config.references import _secret

Scope = Literal["ingest", "read", "manage"]
SCOPES: tuple[Scope, ...] = get_args(Scope)


class Token(BaseModel):
    """One API token and what it may do."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    token: SecretStr = Field(min_length=1)
    scopes: tuple[Scope, ...] = Field(strict=False)  # a TOML array arrives as a list

    _resolve = field_validator("token", mode="before")(_secret)

    @field_validator("scopes")
    @classmethod
    def _some(cls, value: tuple[Scope, ...]) -> tuple[Scope, ...]:
        if not value:
            raise ValueError(f"needs at least one scope of {', '.join(SCOPES)} (a plain string has every scope)")
        return tuple(dict.fromkeys(value))  # a scope named twice is still one scope

    @property
    def every_scope(self) -> bool:
        """True when the token may do everything."""
        return set(self.scopes) == set(SCOPES)


def token_entries(value: Any, info: ValidationInfo) -> Any:
    """``server.tokens`` before validation: a plain string becomes a token with every scope."""
    if not isinstance(value, list):
        return value
    return [{"token": v, "scopes": list(SCOPES)} if isinstance(v, str | SecretStr) else v for v in value]


def repeated_tokens(tokens: tuple[Token, ...]) -> list[str]:
    """A line per entry whose token an earlier entry already holds (naming places, never the value)."""
    first: dict[str, int] = {}
    out = []
    for i, t in enumerate(tokens):
        value = t.token.get_secret_value()
        if value in first:
            out.append(
                f"entry [{i}] repeats the token of entry [{first[value]}]; give each token once, with all its scopes"
            )
        else:
            first[value] = i
    return out
