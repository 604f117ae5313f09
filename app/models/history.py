"""The history screen's answer (GET /api/v1/history): one guest story in each design."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.models.common import examples

_OP = {
    "op": "vcpu_access",
    "args": {"vm_id": "0", "vcpu_id": 0, "gpa": 20480, "write": False, "private": False,
             "value": 0},
    "note": "the guest touches it shared: MAP_SHARED",
    "errno": None,
    "answer": "KVM_EXIT_MEM_MAP_SHARED",
}  # fmt: skip
_CELL = {"design": "rfc-v2", "ops": [_OP], "parts": False, "note": ""}
_CHAPTER = {"key": "to-shared", "title": "Convert the bounce buffer to shared",
            "cells": [_CELL], "parts": True}  # fmt: skip
_DESIGN = {"key": "rfc-v2", "title": "RFC v2 as posted", "when": "Nov 2021",
           "profile": "rfc-v2", "variants": [], "available": True, "why": None}  # fmt: skip


class HistoryOp(BaseModel):
    model_config = examples(_OP)
    op: str
    args: dict[str, Any]
    note: str
    errno: str | None = Field(description="null: it succeeded")
    answer: str = Field(description="what it answered, in words")


class HistoryCell(BaseModel):
    model_config = examples(_CELL)
    design: str
    ops: list[HistoryOp]
    parts: bool = Field(description="differs from the design before (ops or answers)")
    note: str = ""


class HistoryChapter(BaseModel):
    model_config = examples(_CHAPTER)
    key: str
    title: str
    cells: list[HistoryCell]
    parts: bool = Field(description="the designs do not all do and answer the same")


class HistoryDesign(BaseModel):
    model_config = examples(_DESIGN)
    key: str
    title: str
    when: str
    profile: str | None
    variants: list[str]
    available: bool = Field(description="false: reserved, not in this build")
    why: str | None = Field(description="the review argument that led here from the column before")


class History(BaseModel):
    model_config = examples(
        {"story": "bounce-buffer", "designs": [_DESIGN], "chapters": [_CHAPTER]}
    )
    story: str
    designs: list[HistoryDesign]
    chapters: list[HistoryChapter]
