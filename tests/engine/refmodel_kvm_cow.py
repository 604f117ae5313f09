"""The reference model's MAP_PRIVATE copies (engine_c/cow.c), beside the access model
(refmodel_kvm_access.py, whose `_host_page` makes them: a store through a private
mapping copies the file's page into `VMap.cow`, a frame like any other).

- The copies count as used frames (a copy needs a free one: ENOMEM).
- A truncate down drops the copies past the new end (truncate_pagecache:
  unmap_mapping_range(even_cows=1)).
- A punch keeps them (shmem_fallocate: even_cows=0), but its mmu notifier covers the
  range: a VM's mapping of a copy there goes, and its next fault maps the copy again.
- munmap drops the mapping and its copies (the access model's `vmaps`).
"""

from __future__ import annotations

from typing import Any

from tests.engine.refmodel import Inode, Model


class CowMixin(Model):
    vms: dict[str, Any]
    vmaps: dict[int, Any]

    def used_frames(self) -> int:
        return super().used_frames() + sum(len(v.cow) for v in self.vmaps.values())

    def _cow_truncated(self, ino: Inode, start: int) -> None:
        """truncate_pagecache: unmap_mapping_range(even_cows=1) drops the copies."""
        for v in self.vmaps.values():
            if v.ino is ino:
                v.cow = {i: p for i, p in v.cow.items() if i < start}

    def _cow_punched(self, ino: Inode, start: int, end: int) -> None:
        """shmem_fallocate: even_cows=0 keeps the copies, but the mmu notifier covers the
        range, so a VM's mapping of a copy there goes (its next fault maps it again)."""
        for vm in self.vms.values():
            for gfn, e in list(vm.mmu.items()):
                v = e.vmap
                ours = v is not None and v.ino is ino and v.cow.get(e.index) is e.page
                if ours and start <= e.index < end:
                    del vm.mmu[gfn]
