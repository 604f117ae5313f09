/*
 * tree.c - a radix tree from 64-bit indexes to non-zero 64-bit values.
 *
 * Modelled on the kernel's xarray: 64 slots a node, a bitmap of occupied
 * slots in every node so that searches skip empty subtrees in one step
 * (ctz), and nodes freed as soon as they empty.  Memory grows with the
 * entries, never with the largest index: a single entry at index 2^40
 * costs one node per level (7 nodes).  Runs of consecutive values (a huge
 * page's 512 entries) are stored and erased a leaf at a time.
 *
 * Invariants: a node's bitmap has a bit set exactly for its non-zero slots;
 * count == popcount(bitmap); no node in the tree is empty.
 *
 * Copy on write: a clone shares the root (tree_clone), nodes count their
 * holders (parents and tree roots, atomically: clones live in different
 * threads), and a write copies the shared nodes on its path (own_root,
 * own_child) before it changes them; a node held once is written in place,
 * as in chunks.c.  Lookups never copy.
 */
#include "internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tnode {
	uint64_t bitmap;
	atomic_uint refs;      /* parents (or tree roots) holding this node */
	uint8_t shift;         /* 0 for a leaf */
	uint64_t slots[64];
};

static struct tnode *child(const struct tnode *n, unsigned int off)
{
	return (struct tnode *)(uintptr_t)n->slots[off];
}

static struct tnode *node_new(unsigned int shift)
{
	struct tnode *n = calloc(1, sizeof(*n));
	if (n) {
		atomic_init(&n->refs, 1);
		n->shift = (uint8_t)shift;
	}
	return n;
}

static bool covers(unsigned int shift, uint64_t index)
{
	return shift >= 58 || index < (64ULL << shift);
}

void tree_init(struct tree *t)
{
	memset(t, 0, sizeof(*t));
}

static void node_put(struct tnode *n)
{
	if (atomic_fetch_sub_explicit(&n->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (n->shift) {
		uint64_t b = n->bitmap;
		while (b) {
			int i = __builtin_ctzll(b);
			b &= b - 1;
			node_put(child(n, (unsigned int)i));
		}
	}
	free(n);
}

void tree_destroy(struct tree *t)
{
	if (t->root)
		node_put(t->root);
	tree_init(t);
}

/* a new node held once with n's bitmap, shift and slots as they are (children not
 * yet referenced: the callers share or copy them); NULL when out of memory */
static struct tnode *node_dup(const struct tnode *n)
{
	struct tnode *c = malloc(sizeof(*c));
	if (!c)
		return NULL;
	c->bitmap = n->bitmap;
	c->shift = n->shift;
	atomic_init(&c->refs, 1);
	memcpy(c->slots, n->slots, sizeof(c->slots));
	return c;
}

/* a copy of n held once, its children shared with n (NULL when out of memory) */
static struct tnode *node_copy(const struct tnode *n)
{
	struct tnode *c = node_dup(n);
	if (!c)
		return NULL;
	if (n->shift) {
		uint64_t b = n->bitmap;
		while (b) {
			int i = __builtin_ctzll(b);
			b &= b - 1;
			atomic_fetch_add_explicit(&child(n, (unsigned int)i)->refs, 1, memory_order_relaxed);
		}
	}
	return c;
}

static bool shared(const struct tnode *n)
{
	return atomic_load_explicit(&n->refs, memory_order_acquire) != 1;
}

/* n if held once, else a copy held once that replaces the holder's reference to n
 * (the caller stores it where n was); NULL when out of memory, n untouched */
static struct tnode *unshare(struct tnode *n)
{
	if (!shared(n))
		return n;
	struct tnode *c = node_copy(n);
	if (c)
		node_put(n);
	return c;
}

/* the root, this tree's own (copied if shared); NULL when out of memory */
static struct tnode *own_root(struct tree *t)
{
	struct tnode *c = unshare(t->root);
	if (c)
		t->root = c;
	return c;
}

/* child off of p (p this tree's own), made this tree's own too */
static struct tnode *own_child(struct tnode *p, unsigned int off)
{
	struct tnode *c = unshare(child(p, off));
	if (c)
		p->slots[off] = (uint64_t)(uintptr_t)c;
	return c;
}

/* a deep copy: every node new (the baseline ss_machine_clone_full) */
static struct tnode *node_clone(const struct tnode *n)
{
	struct tnode *c = node_dup(n);
	if (!c)
		return NULL;
	if (n->shift) {
		uint64_t b = n->bitmap;
		while (b) {
			int i = __builtin_ctzll(b);
			b &= b - 1;
			struct tnode *k = node_clone(child(n, (unsigned int)i));
			if (!k) {
				/* undo: free what was copied so far */
				c->bitmap &= ~(~0ULL << i);
				node_put(c);
				return NULL;
			}
			c->slots[i] = (uint64_t)(uintptr_t)k;
		}
	}
	return c;
}

int tree_clone(struct tree *dst, const struct tree *src, bool deep)
{
	*dst = *src;
	if (!src->root)
		return 0;
	if (!deep) {
		atomic_fetch_add_explicit(&src->root->refs, 1, memory_order_relaxed);
		return 0;
	}
	dst->root = node_clone(src->root);
	return dst->root ? 0 : -ENOMEM;
}

/* n's bytes but for the subtrees it shares with other (the node at the same
 * place of another tree, or NULL); a node held by k counts 1/k, and so on
 * down (div: the product of the holders above) */
static uint64_t node_owned(const struct tnode *n, const struct tnode *other, uint64_t div)
{
	if (n == other)
		return 0;
	unsigned int refs = atomic_load_explicit(&n->refs, memory_order_relaxed);
	div *= refs ? refs : 1;
	if (div > (1u << 20))
		div = 1u << 20;
	uint64_t b = sizeof(*n) / div;
	if (n->shift)
		for (uint64_t m = n->bitmap; m; m &= m - 1) {
			unsigned int i = (unsigned int)__builtin_ctzll(m);
			const struct tnode *o = other && other->shift == n->shift &&
						(other->bitmap & (1ULL << i)) ? child(other, i) : NULL;
			b += node_owned(child(n, i), o, div);
		}
	return b;
}

uint64_t tree_owned_bytes(const struct tree *t, const struct tree *beside)
{
	return t->root ? node_owned(t->root, beside ? beside->root : NULL, 1) : 0;
}

uint64_t tree_load(const struct tree *t, uint64_t index)
{
	const struct tnode *n = t->root;
	if (!n || !covers(n->shift, index))
		return 0;
	for (;;) {
		unsigned int off = (index >> n->shift) & 63;
		if (!(n->bitmap & (1ULL << off)))
			return 0;
		if (!n->shift)
			return n->slots[off];
		n = (const struct tnode *)(uintptr_t)n->slots[off];
	}
}

/* the leaf that holds index, made (with the nodes above it) if need be */
static struct tnode *leaf_for(struct tree *t, uint64_t index)
{
	if (!t->root) {
		unsigned int shift = 0;
		while (!covers(shift, index))
			shift += 6;
		t->root = node_new(shift);
		if (!t->root)
			return NULL;
		t->shift = shift;
		t->nodes++;
	}
	if (!own_root(t))
		return NULL;
	while (!covers(t->root->shift, index)) {
		struct tnode *r = node_new(t->root->shift + 6u);
		if (!r)
			return NULL;
		r->slots[0] = (uint64_t)(uintptr_t)t->root;
		r->bitmap = 1;
		t->root = r;
		t->shift = r->shift;
		t->nodes++;
	}
	struct tnode *n = t->root;
	while (n->shift) {
		unsigned int off = (index >> n->shift) & 63;
		if (!(n->bitmap & (1ULL << off))) {
			struct tnode *c = node_new(n->shift - 6u);
			if (!c)
				return NULL;
			n->slots[off] = (uint64_t)(uintptr_t)c;
			n->bitmap |= 1ULL << off;
			t->nodes++;
			n = c;
		} else if (!(n = own_child(n, off))) {
			return NULL;
		}
	}
	return n;
}

int tree_store(struct tree *t, uint64_t index, uint64_t value)
{
	struct tnode *n = leaf_for(t, index);
	if (!n)
		return -ENOMEM;
	unsigned int off = index & 63;
	if (!(n->bitmap & (1ULL << off)))
		t->count++;
	n->bitmap |= 1ULL << off;
	n->slots[off] = value;
	return 0;
}

/* entries [off, off + k) of a leaf, k in 1..64 - off */
static uint64_t leaf_mask(unsigned int off, unsigned int k)
{
	return (k == 64 ? ~0ULL : ((1ULL << k) - 1)) << off;
}

int tree_store_run(struct tree *t, uint64_t index, uint64_t n, uint64_t value)
{
	while (n) {
		struct tnode *leaf = leaf_for(t, index);
		if (!leaf)
			return -ENOMEM;
		unsigned int off = index & 63;
		unsigned int k = n < 64u - off ? (unsigned int)n : 64u - off;
		uint64_t mask = leaf_mask(off, k);
		t->count += (uint64_t)__builtin_popcountll(mask & ~leaf->bitmap);
		leaf->bitmap |= mask;
		for (unsigned int i = 0; i < k; i++)
			leaf->slots[off + i] = value + i;
		index += k;
		value += k;
		n -= k;
		if (!index)  /* wrapped */
			break;
	}
	return 0;
}

/* clear the entries of mask in the leaf that would hold index; nodes that
 * empty are freed.  The old value at index (0 if none). */
static uint64_t leaf_clear(struct tree *t, uint64_t index, uint64_t mask)
{
	struct tnode *path[12];
	unsigned int offs[12];
	int depth = 0;
	const struct tnode *r = t->root;
	if (!r || !covers(r->shift, index))
		return 0;
	while (r->shift) {  /* a look first: clearing nothing copies nothing */
		unsigned int off = (index >> r->shift) & 63;
		if (!(r->bitmap & (1ULL << off)))
			return 0;
		r = child(r, off);
	}
	if (!(r->bitmap & mask))
		return 0;
	struct tnode *n = own_root(t);
	while (n && n->shift) {
		unsigned int off = (index >> n->shift) & 63;
		path[depth] = n;
		offs[depth] = off;
		depth++;
		n = own_child(n, off);
	}
	if (!n) {  /* erasing cannot fail half way (as chunks.c) */
		fputs("sealscope: out of memory copying a shared tree node\n", stderr);
		abort();
	}
	uint64_t old = n->slots[index & 63];
	uint64_t b = n->bitmap & mask;
	t->count -= (uint64_t)__builtin_popcountll(b);
	n->bitmap &= ~b;
	while (b) {
		n->slots[__builtin_ctzll(b)] = 0;
		b &= b - 1;
	}
	if (n->bitmap)
		return old;
	free(n);  /* held once (owned): empty, no children */
	t->nodes--;
	while (depth > 0) {
		depth--;
		n = path[depth];
		n->bitmap &= ~(1ULL << offs[depth]);
		n->slots[offs[depth]] = 0;
		if (n->bitmap)
			return old;
		free(n);
		t->nodes--;
	}
	t->root = NULL;
	t->shift = 0;
	return old;
}

uint64_t tree_erase(struct tree *t, uint64_t index)
{
	return leaf_clear(t, index, 1ULL << (index & 63));
}

void tree_erase_run(struct tree *t, uint64_t index, uint64_t n)
{
	while (n) {
		unsigned int off = index & 63;
		unsigned int k = n < 64u - off ? (unsigned int)n : 64u - off;
		leaf_clear(t, index, leaf_mask(off, k));
		index += k;
		n -= k;
		if (!index)  /* wrapped */
			break;
	}
}

static uint64_t node_find(const struct tnode *n, uint64_t base, uint64_t *index, uint64_t max)
{
	unsigned int s = n->shift;
	uint64_t from = *index;
	unsigned int off = from > base ? (unsigned int)((from - base) >> s) : 0;
	if (off > 63)
		return 0;
	uint64_t b = n->bitmap & (~0ULL << off);
	while (b) {
		unsigned int i = (unsigned int)__builtin_ctzll(b);
		b &= b - 1;
		uint64_t cbase = base + ((uint64_t)i << s);
		if (cbase > max)
			return 0;
		if (!s) {
			*index = cbase;
			return n->slots[i];
		}
		uint64_t v = node_find((const struct tnode *)(uintptr_t)n->slots[i], cbase, index, max);
		if (v)
			return v;
	}
	return 0;
}

uint64_t tree_find(const struct tree *t, uint64_t *index, uint64_t max)
{
	if (!t->root || *index > max || !covers(t->root->shift, *index))
		return 0;
	return node_find(t->root, 0, index, max);
}

uint64_t tree_consecutive(const struct tree *t, uint64_t index, uint64_t value, uint64_t end)
{
	uint64_t n = 0;
	while (index + n < end) {
		uint64_t at = index + n;
		const struct tnode *nd = t->root;
		if (!nd || !covers(nd->shift, at))
			break;
		while (nd->shift) {
			unsigned int off = (at >> nd->shift) & 63;
			if (!(nd->bitmap & (1ULL << off)))
				return n;
			nd = (const struct tnode *)(uintptr_t)nd->slots[off];
		}
		unsigned int off = at & 63;
		while (off < 64 && index + n < end) {
			if (!(nd->bitmap & (1ULL << off)) || nd->slots[off] != value + n)
				return n;
			n++;
			off++;
		}
		if (index + n == 0)  /* wrapped */
			break;
	}
	return n;
}
