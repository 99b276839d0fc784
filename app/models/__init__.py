"""ORM tables, one file per aggregate; importing this package registers them all."""

from app.models.company import Company, NumberSequence
from app.models.partner import Partner, PartnerLocation, PartnerTag, StageChange
from app.models.tag import Tag
from app.models.user import ApiToken, User

__all__ = [
    "ApiToken",
    "Company",
    "NumberSequence",
    "Partner",
    "PartnerLocation",
    "PartnerTag",
    "StageChange",
    "Tag",
    "User",
]
