"""The accounting providers, one module each, and their registry: adding a provider is a
module with a ``SPEC`` and its entry here."""

from __future__ import annotations

from app.accounting.providers import economic, fortnox, visma, xero
from app.accounting.providers.base import ProviderSpec

REGISTRY: dict[str, ProviderSpec] = {
    spec.name: spec for spec in (economic.SPEC, fortnox.SPEC, xero.SPEC, visma.SPEC)
}
