"""The partner list filters as query parameters; the overview and its CSV read them too.

``PartnerFilter`` is their one declaration (types, bounds, descriptions): the same model is
the bulk stage change's ``filter`` body object.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.core.query import query_model_dependency
from app.partners.schemas import PartnerFilter

partner_filters = query_model_dependency(PartnerFilter, "partner_filters")

Filters = Annotated[PartnerFilter, Depends(partner_filters)]
