"""The spendgate service: an OpenAI/Anthropic-compatible gateway, the metering API and the admin API."""

from __future__ import annotations

from spendgate.server._app import create_app, uvicorn_options
from spendgate.server._identity import ApiKey, IdentityStore, Principal, Team, User

__all__ = ["ApiKey", "IdentityStore", "Principal", "Team", "User", "create_app", "uvicorn_options"]
