"""The history screen's answer (GET /api/v1/history): one guest story in each design."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class HistoryOp(BaseModel):
    op: str
    args: dict[str, Any]
    note: str
    errno: str | None = Field(description="null: it succeeded")
    answer: str = Field(description="what it answered, in words")


class HistoryCell(BaseModel):
    design: str
    ops: list[HistoryOp]
    parts: bool = Field(description="differs from the design before (ops or answers)")
    note: str = ""


class HistoryChapter(BaseModel):
    key: str
    title: str
    cells: list[HistoryCell]
    parts: bool = Field(description="the designs do not all do and answer the same")


class HistoryDesign(BaseModel):
    key: str
    title: str
    when: str
    profile: str | None
    variants: list[str]
    available: bool = Field(description="false: reserved, not in this build")
    why: str | None = Field(description="the review argument that led here from the column before")


class History(BaseModel):
    story: str
    designs: list[HistoryDesign]
    chapters: list[HistoryChapter]
