"""sealscope: a simulator of memfd F_SEAL_GUEST (RFC v2) and KVM guest_memfd."""
