"""Dependencies of the routers, as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from app.models.common import INT64_MAX, INT64_MIN
from app.registry import Registry
from app.settings import Settings


def registry(request: Request) -> Registry:
    """The app's registry. The API's routes take the Request and call this rather than
    depend on get_registry: a sub-dependency cost ~15 us a request (bench/api.py)."""
    reg: Registry = request.app.state.registry
    return reg


async def get_registry(request: Request) -> Registry:
    return registry(request)


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


RegistryDep = Annotated[Registry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionId = Annotated[str, Path(max_length=128, description="session id (a secret)")]
FdPath = Annotated[int, Path(ge=INT64_MIN, le=INT64_MAX, description="file descriptor")]
OwnerPath = Annotated[str, Path(max_length=64, description='owner id, e.g. "0"')]
MapPath = Annotated[int, Path(ge=INT64_MIN, le=INT64_MAX, description="map id from mmap")]
