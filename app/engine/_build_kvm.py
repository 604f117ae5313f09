"""cffi declarations of the KVM side of ``engine_c/sealscope.h`` (used by ``_build.py``)."""

CDEF_KVM = """
#define SS_HAZ_ZAP_MISSES ...
#define SS_HAZ_ALLOC_UNNOTIFIED ...
#define SS_HAZ_DEAD_OWNER ...
#define SS_T_EXIT ...
#define SS_T_ATTR ...
#define SS_T_SIGNAL ...
#define SS_T_MERGE ...
#define SS_T_HWPOISON_KEEP ...
#define SS_T_VM_DESTROY ...
#define SS_T_COW ...

#define SS_VM_DEFAULT ...
#define SS_VM_SW_PROTECTED ...
#define SS_VM_SNP ...
#define SS_VM_TDX ...
#define SS_MEM_LOG_DIRTY_PAGES ...
#define SS_MEM_READONLY ...
#define SS_MEM_GUEST_MEMFD ...
#define SS_MEM_FD ...
#define SS_MEMORY_ATTRIBUTE_PRIVATE ...
#define SS_MEMORY_EXIT_FLAG_PRIVATE ...
#define SS_EXIT_NONE ...
#define SS_EXIT_MMIO ...
#define SS_EXIT_MEMORY_ERROR ...
#define SS_EXIT_MEMORY_FAULT ...
#define SS_EXIT_MEM_MAP_SHARED ...
#define SS_EXIT_MEM_MAP_PRIVATE ...
#define SS_SIGBUS ...
#define SS_SIGSEGV ...
#define SS_VMM_TOP ...
#define SS_VMM_FLOOR ...
#define SS_USER_MEM_SLOTS ...
#define SS_MAX_VCPUS ...
#define SS_SRC_NONE ...
#define SS_SRC_PRIVATE ...
#define SS_SRC_SHARED_GMEM ...
#define SS_SRC_SHARED_HVA ...
#define SS_SRC_SHARED_FD ...
#define SS_SRC_UNMAPPED_HVA ...
#define SS_SRC_CLOSED ...
#define SS_SRC_POISONED ...

enum ss_kvm_rule {
    SS_R_NONE, SS_R_NO_VM, SS_R_VM_TYPE, SS_R_NO_IOCTL, SS_R_TOO_MANY, SS_R_GMEM_FLAGS,
    SS_R_GMEM_SIZE, SS_R_SLOT_ID, SS_R_REGION_FLAGS, SS_R_SIZE_ALIGN, SS_R_GPA_ALIGN,
    SS_R_UADDR, SS_R_GMEM_OFFSET, SS_R_AS_ID, SS_R_GPA_WRAP, SS_R_TOO_BIG,
    SS_R_DELETE_NONE, SS_R_IMMUTABLE, SS_R_MODIFY, SS_R_OVERLAP, SS_R_MAX_GFN, SS_R_BADF,
    SS_R_NOT_GMEM, SS_R_OTHER_VM, SS_R_GMEM_RANGE, SS_R_GMEM_BOUND, SS_R_RFC_NOT_MEMFD,
    SS_R_RFC_OWNER, SS_R_ATTR_FLAGS, SS_R_ATTR_UNSUPPORTED, SS_R_ATTR_RANGE,
    SS_R_ATTR_ALIGN, SS_R_NO_VCPU, SS_R_VCPUS, SS_R_RUN_HVA, SS_R_RUN_NO_PRIVATE_FD,
    SS_R_RUN_LOCKED, SS_R_RUN_COW, SS_R_NO_MAPPING, SS_R_VMM_FULL, SS_R_NOMEM,
    SS_R_PREFAULT_FLAGS, SS_R_PREFAULT_RANGE, SS_R_PREFAULT_NOT_YET, SS_R_PREFAULT_NOSLOT,
    SS_R_PREFAULT_FAULT, SS_R_NOT_COCO, SS_R_LAUNCH_DONE, SS_R_LAUNCH_NO_VCPU,
    SS_R_POPULATE_RANGE, SS_R_POPULATE_SLOT, SS_R_POPULATE_CLOSED, SS_R_POPULATE_SHARED,
    SS_R_POPULATE_EXISTS, SS_R_MF_PFN, SS_R_MF_NOT_GMEM, SS_R_MF_AGAIN, SS_R_RUN_HWPOISON,
    SS_R_CONTENT_MODE, SS_R_CONVERT_BUSY, SS_R_NO_PIN, SS_R_PIN_RANGE, SS_R_PIN_FAULT,
    SS_R_PIN_HWPOISON, SS_R_PIN_MAX, SS_R_VM_CLOSED, SS_R_RUN_HVA_HWPOISON, SS_R_PIN_READONLY,
    SS_R__COUNT,
    ...
};

struct ss_cap {
    const char *name;
    int64_t value;
    ...;
};

struct ss_region {
    uint32_t slot, flags;
    uint64_t guest_phys_addr, memory_size, userspace_addr;
    uint64_t guest_memfd_offset;
    uint32_t guest_memfd;
    int32_t fd, private_fd;
    ...;
};

struct ss_access {
    uint64_t gpa;
    int write;
    int private_;
    uint8_t value;
    ...;
};

struct ss_access_result {
    int exit_reason;
    uint64_t exit_flags, exit_gpa, exit_size;
    int exit_type;
    int exit_errno;
    int backing;
    int fd;
    uint64_t index, pfn;
    int order;
    uint8_t value;
    ...;
};

struct ss_vm_info {
    int id;
    int type;
    int nvcpus;
    int nslots;
    uint64_t nattr_runs;
    uint64_t attr_bytes;
    int closed;
    ...;
};

struct ss_vm_memslot {
    uint32_t slot, flags;
    uint64_t guest_phys_addr, memory_size, userspace_addr;
    uint64_t guest_memfd_offset;
    int guest_memfd;
    int gmem_closed;
    int gmem_only;
    int fd, private_fd;
    ...;
};

struct ss_attr_run {
    uint64_t start, end;
    uint64_t attributes;
    ...;
};

struct ss_gfn_source {
    uint64_t start, end;
    int source;
    uint32_t slot;
    uint64_t attributes;
    int fd;
    uint64_t index;
    int mapped;
    uint64_t pfn;
    int order;
    ...;
};

int ss_kvm_rule(const struct ss_machine *m);
int ss_vm_create(struct ss_machine *m, uint64_t type, const char *name);
int ss_vm_caps(const struct ss_machine *m, int vm, struct ss_cap *out, int max);
int ss_vm_gmem_create(struct ss_machine *m, int vm, uint64_t size, uint64_t flags);
int ss_vm_set_memory_region(struct ss_machine *m, int vm, const struct ss_region *r);
int ss_vm_set_memory_attributes(struct ss_machine *m, int vm, uint64_t address,
                                uint64_t size, uint64_t attributes, uint64_t flags);
int ss_vcpu_create(struct ss_machine *m, int vm);
int ss_vcpu_access(struct ss_machine *m, int vm, int vcpu, const struct ss_access *a,
                   struct ss_access_result *out);
int ss_mapping_access(struct ss_machine *m, int map_id, uint64_t offset, int write,
                      uint8_t value, int *signal, uint8_t *value_out);
int ss_mapping_addr(const struct ss_machine *m, int map_id, uint64_t *addr);
int ss_vcpu_pre_fault(struct ss_machine *m, int vm, int vcpu, uint64_t *gpa, uint64_t *size,
                      uint64_t flags);
int ss_vm_info(const struct ss_machine *m, int vm, struct ss_vm_info *out);
int ss_vm_close(struct ss_machine *m, int vm);
int ss_vm_memslots(const struct ss_machine *m, int vm, struct ss_vm_memslot *out, int max);
int ss_vm_attr_runs(const struct ss_machine *m, int vm, uint64_t start, uint64_t end,
                    struct ss_attr_run *out, int max);
int ss_vm_gfn_sources(const struct ss_machine *m, int vm, uint64_t start, uint64_t end,
                      struct ss_gfn_source *out, int max, uint64_t *next);
struct ss_gfn_span {
    uint64_t start, end;
};
int ss_vm_poisoned_gfns(const struct ss_machine *m, int vm, uint64_t start, uint64_t end,
                        struct ss_gfn_span *out, int max);

#define SS_CB_RMP_ASSIGN ...
#define SS_CB_RMP_RECLAIM ...
#define SS_CB_SEPT_ADD ...
#define SS_CB_SEPT_REMOVE ...
#define SS_CB_DIRECT_MAP_REMOVE ...
#define SS_CB_DIRECT_MAP_RESTORE ...
#define SS_LIFE_ALLOCATED ...
#define SS_LIFE_ZEROED ...
#define SS_LIFE_PREPARED ...
#define SS_LIFE_HWPOISON ...
#define SS_LAUNCH_NONE ...
#define SS_LAUNCH_INIT ...
#define SS_LAUNCH_DONE ...
struct ss_launch_info {
    int state;
    uint64_t pages;
    int have_digest;
    uint8_t digest[48];
    ...;
};
int ss_vm_launch_update(struct ss_machine *m, int vm, uint64_t gpa, const uint8_t *src,
                        uint64_t len, uint64_t *done);
int ss_vm_launch_finish(struct ss_machine *m, int vm);
int ss_memory_failure(struct ss_machine *m, uint64_t pfn);
int ss_frame_poisoned(const struct ss_machine *m, uint64_t pfn);
int ss_gmem_set_attributes(struct ss_machine *m, int fd, uint64_t offset, uint64_t size,
                           uint64_t attributes, uint64_t flags, uint64_t *error_offset);
int ss_gmem_attr_runs(const struct ss_machine *m, int fd, uint64_t start, uint64_t end,
                      struct ss_attr_run *out, int max);
int ss_vm_launch_info(const struct ss_machine *m, int vm, struct ss_launch_info *out);
#define SS_MAX_PINS ...
#define SS_PIN_MAX_PAGES ...
struct ss_pin_info {
    int map_id;
    uint64_t offset;
    uint64_t npages;
    ...;
};
int ss_mapping_pin(struct ss_machine *m, int map_id, uint64_t offset, uint64_t length,
                   int write, int *signal, int *pin_id);
int ss_mapping_unpin(struct ss_machine *m, int pin_id);
int ss_pin_info(const struct ss_machine *m, int pin_id, struct ss_pin_info *out, uint64_t *pfns,
                int max);
"""
