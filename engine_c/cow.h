/*
 * cow.h - MAP_PRIVATE copy-on-write (cow.c): a private mapping's copies of
 * its file's pages, in its cow tree (struct mapping, internal.h).
 * Included at the end of internal.h.
 */
#ifndef SS_COW_H
#define SS_COW_H

static inline bool map_is_private(const struct mapping *mp)
{
	return (mp->flags & SS_MAP_PRIVATE) && !(mp->flags & SS_MAP_SHARED);
}

/* cow.c: MAP_PRIVATE copies */
uint64_t cow_lookup(const struct mapping *mp, uint64_t index);      /* pfn + 1, 0: none */
bool cow_any(const struct mapping *mp, uint64_t start, uint64_t n);  /* copies in the range */
bool cow_pending(const struct ss_machine *m, uint64_t hva);  /* private, not copied yet */
/* a write fault through mp at file index: the copy's pfn (made now if none) */
int cow_break(struct ss_machine *m, struct mapping *mp, struct inode *in, uint64_t index,
	      uint64_t *pfn);
void cow_unmap(struct ss_machine *m, struct mapping *mp);            /* munmap */
void cow_truncate(struct ss_machine *m, struct inode *in, uint64_t from);  /* even_cows */
/* a punch of [start, end): VM mappings of the copies there go, the copies stay */
void cow_punch(struct ss_machine *m, struct inode *in, uint64_t start, uint64_t end);
int cow_clone(struct ss_machine *dst, const struct ss_machine *src, bool deep);
void cow_free_all(struct ss_machine *m);
uint64_t cow_bytes(const struct ss_machine *m, bool owned, const struct ss_machine *beside);
int cow_check(const struct ss_machine *m, uint64_t *ncow, char *msg, size_t len);

#endif /* SS_COW_H */
