"""Request bodies at the API edge (pydantic)."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, Field


class ReviewIn(BaseModel):
    label: Literal["good", "defect"] = Field(description="good: a false reject; defect: a confirmed defect")
    note: Optional[str] = Field(default=None, max_length=2000)


class ActivateIn(BaseModel):
    version: int = Field(ge=1, le=2 ** 31 - 1)
    line: str = ""


class RollbackIn(BaseModel):
    line: str = ""


class TrainIn(BaseModel):
    line: str = ""
    limit: int = Field(default=200, ge=1, le=10000)
    min_images: int = Field(default=10, ge=1, le=10000)
    activate: bool = False
    detector: str = "patchcore"
    image_size: int = Field(default=224, ge=32, le=1024)
    false_reject_rate: float = Field(default=0.01, gt=0, lt=0.5)
    seed: int = Field(default=0, ge=0, le=2 ** 32 - 1)   # numpy seeds are 32-bit


class KeyIn(BaseModel):
    role: Literal["operator", "engineer", "admin"]
    name: Optional[str] = Field(default=None, max_length=100)
