"""The success envelope (SPEC §3): ``{"data": …, "meta": {"request_id": …}}``."""

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Meta(BaseModel):
    request_id: str


class ListMeta(Meta):
    next_cursor: str | None = None
    total: int | None = None


class Envelope(BaseModel, Generic[T]):
    data: T
    meta: Meta


class ListEnvelope(BaseModel, Generic[T]):
    data: list[T]
    meta: ListMeta


class StrictInput(BaseModel):
    """Request bodies: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")
