/* plan.c - the pure sync planner.  The rules are the contract in plan.h; the
 * comments here say how they are kept.
 *
 * Shape of the work (all O(n log n), a fixed number of allocations):
 *  1. sort (uid, index) keys of both listings; binary searches replace the
 *     per-message scans a naive three-way comparison would do;
 *  2. every status record claims the listing entries it names;
 *  3. open intents claim what their copies became (or are dropped);
 *  4. Maildir crash recovery claims unclaimed (far X, near U=X) couples;
 *  5. each claim ("work record") is classified: merge flags, or a side lost
 *     the message; losses go through the guard;
 *  6. whatever is still unclaimed is new: copied to the other side.
 */
#include "plan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

void plan_options_init(struct plan_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->near_is_maildir = true;
    opts->propagate_far_deletes = true;
    opts->propagate_near_deletes = true;
    opts->expunge_far = true;
    opts->expunge_near = true;
    opts->guard_empty_min = 1;
    opts->guard_count = 100;
    opts->guard_percent = 50;
}

/* A listing entry by UID; sorted by (uid, idx) so duplicates are adjacent
 * and the lowest index comes first (R3: it keeps a duplicated U=). */
struct key {
    uint32_t uid;
    uint32_t idx;
};

/* What became of a work record. */
enum wkind {
    W_NONE,      /* nothing to do */
    W_MERGE,     /* on both sides: flags */
    W_LOST_NEAR, /* gone from near, far has it: delete on far (guarded) */
    W_LOST_FAR,  /* gone from far, near has it: delete on near (guarded) */
};

/* A status record or a pairing found in this run, with its listing entries. */
struct wrec {
    uint32_t f, n;
    plan_flags_t base;
    ptrdiff_t fi, ni; /* listing indices, -1 if absent */
    bool from_status;
    enum wkind kind;
};

struct ctx {
    const struct plan_input *in;
    const struct plan_options *o;
    struct plan *p;
    struct key *fkeys, *nkeys;
    size_t nfk, nnk;
    uint8_t *fclaim, *nclaim;
    struct wrec *w;
    size_t nw, wcap;
    /* capacities of the growable output arrays */
    size_t cap_lookups, cap_drop, cap_recs, cap_pairs, cap_dl, cap_ul, cap_flags, cap_fdel,
        cap_ndel;
};

static bool grow(void **arr, size_t *cap, size_t elem)
{
    size_t ncap = *cap ? *cap * 2 : 16;
    void *na = realloc(*arr, ncap * elem);
    if (!na)
        return false;
    *arr = na;
    *cap = ncap;
    return true;
}

/* Append one element to a growable output array; NULL when out of memory. */
#define PUSH(arr, n, cap)                                                                          \
    (((n) < (cap) || grow((void **)&(arr), &(cap), sizeof(*(arr)))) ? &(arr)[(n)++] : NULL)

static int key_cmp(const void *a, const void *b)
{
    const struct key *x = a, *y = b;
    if (x->uid != y->uid)
        return x->uid < y->uid ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static ptrdiff_t key_find(const struct key *keys, size_t n, uint32_t uid)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (keys[mid].uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && keys[lo].uid == uid ? (ptrdiff_t)keys[lo].idx : -1;
}

static int build_keys(struct ctx *c)
{
    const struct plan_input *in = c->in;
    size_t i, j;

    c->fkeys = malloc((in->nfar ? in->nfar : 1) * sizeof(*c->fkeys));
    c->nkeys = malloc((in->nnear ? in->nnear : 1) * sizeof(*c->nkeys));
    c->fclaim = calloc(in->nfar + 1, 1);
    c->nclaim = calloc(in->nnear + 1, 1);
    if (!c->fkeys || !c->nkeys || !c->fclaim || !c->nclaim)
        return -ENOMEM;

    for (i = 0; i < in->nfar; i++) {
        if (in->far[i].uid == 0)
            return OIMAP_EPROTO;
        c->fkeys[i] = (struct key){in->far[i].uid, (uint32_t)i};
    }
    c->nfk = in->nfar;
    qsort(c->fkeys, c->nfk, sizeof(*c->fkeys), key_cmp);
    for (i = 1; i < c->nfk; i++)
        if (c->fkeys[i].uid == c->fkeys[i - 1].uid)
            return OIMAP_EPROTO; /* a server listed one UID twice */

    /* Near entries that can be found by UID.  Maildir: only trusted U= below
     * far_uidnext (a U= at or above it cannot belong to this UIDVALIDITY). */
    /* The bound never distrusts a UID the status knows (a stale UIDNEXT
     * must not make paired files look deleted). */
    uint32_t bound = in->state.far_uidnext;
    for (i = 0; bound && i < in->nstatus; i++)
        if (in->status[i].far_uid >= bound)
            bound = in->status[i].far_uid + 1;
    for (i = 0, j = 0; i < in->nnear; i++) {
        const struct plan_near_msg *m = &in->near[i];
        if (m->uid == 0)
            continue;
        if (c->o->near_is_maildir && (!m->uid_trusted || (bound && m->uid >= bound)))
            continue;
        c->nkeys[j++] = (struct key){m->uid, (uint32_t)i};
    }
    qsort(c->nkeys, j, sizeof(*c->nkeys), key_cmp);
    /* Duplicates: IMAP cannot have them; Maildir can (a file copied inside
     * the folder): the first keeps the UID, the others become new mail. */
    c->nnk = 0;
    for (i = 0; i < j; i++) {
        if (c->nnk && c->nkeys[c->nnk - 1].uid == c->nkeys[i].uid) {
            if (!c->o->near_is_maildir)
                return OIMAP_EPROTO;
            continue;
        }
        c->nkeys[c->nnk++] = c->nkeys[i];
    }
    return 0;
}

/* Status UIDs must be unique per side; checked with one sorted scratch array. */
static int check_status(struct ctx *c)
{
    const struct plan_input *in = c->in;
    struct key *k;
    size_t i, n, side;
    int rc = 0;

    if (!in->nstatus)
        return 0;
    k = malloc(in->nstatus * sizeof(*k));
    if (!k)
        return -ENOMEM;
    for (side = 0; side < 2 && rc == 0; side++) {
        for (i = 0, n = 0; i < in->nstatus; i++) {
            uint32_t u = side == 0 ? in->status[i].far_uid : in->status[i].near_uid;
            if (in->status[i].far_uid == 0 && in->status[i].near_uid == 0) {
                rc = OIMAP_ESTATUS;
                break;
            }
            if (u)
                k[n++] = (struct key){u, (uint32_t)i};
        }
        qsort(k, n, sizeof(*k), key_cmp);
        for (i = 1; i < n && rc == 0; i++)
            if (k[i].uid == k[i - 1].uid)
                rc = OIMAP_ESTATUS;
    }
    free(k);
    return rc;
}

static ptrdiff_t find_far(struct ctx *c, uint32_t uid)
{
    return uid ? key_find(c->fkeys, c->nfk, uid) : -1;
}

static ptrdiff_t find_near(struct ctx *c, uint32_t uid)
{
    return uid ? key_find(c->nkeys, c->nnk, uid) : -1;
}

/* The near UID a pairing records: Maildir stores the far UID. */
static uint32_t pair_near_uid(struct ctx *c, uint32_t far_uid, size_t ni)
{
    return c->o->near_is_maildir ? far_uid : c->in->near[ni].uid;
}

static int add_pair(struct ctx *c, size_t fi, size_t ni, plan_flags_t base, ptrdiff_t intent)
{
    const struct plan_near_msg *nm = &c->in->near[ni];
    uint32_t f = c->in->far[fi].uid;
    struct plan_pair *pp = PUSH(c->p->pairs, c->p->npairs, c->cap_pairs);
    if (!pp)
        return -ENOMEM;
    pp->far_uid = f;
    pp->near_uid = pair_near_uid(c, f, ni);
    pp->near_idx = ni;
    pp->flags = base;
    pp->rename = c->o->near_is_maildir && !(nm->uid == f && nm->uid_trusted);
    pp->intent = intent;
    c->fclaim[fi] = c->nclaim[ni] = 1;
    c->w[c->nw++] =
        (struct wrec){f, pp->near_uid, base, (ptrdiff_t)fi, (ptrdiff_t)ni, false, W_NONE};
    return 0;
}

static int drop_intent(struct ctx *c, size_t i)
{
    size_t *d = PUSH(c->p->drop_intents, c->p->ndrop_intents, c->cap_drop);
    if (!d)
        return -ENOMEM;
    *d = i;
    return 0;
}

/* R2, first half: can every intent be resolved from the listings alone?
 * Returns 1 when lookups were planned (and nothing else may be). */
static int intents_lookups(struct ctx *c)
{
    const struct plan_input *in = c->in;
    size_t i;

    for (i = 0; i < in->nintents; i++) {
        const struct plan_intent *it = &in->intents[i];
        enum plan_side side;
        if (it->resolved || (it->kind == PLAN_INTENT_UPLOAD && it->far_uid))
            continue; /* looked up, or the APPENDUID was recorded */
        /* An upload's copy is found by its TUID on far.  (Not by the U= of
         * the source file: that may be the U= it had before, when it was
         * uploaded because its old pairing was forgotten.)  A download's
         * copy in a Maildir is named by the far UID; elsewhere by TUID. */
        if (it->kind == PLAN_INTENT_UPLOAD)
            side = PLAN_FAR;
        else if (c->o->near_is_maildir)
            continue;
        else
            side = PLAN_NEAR;
        struct plan_lookup *l = PUSH(c->p->lookups, c->p->nlookups, c->cap_lookups);
        if (!l)
            return -ENOMEM;
        l->intent = i;
        l->side = side;
    }
    return c->p->nlookups ? 1 : 0;
}

/* R2, second half: pair or drop every intent. */
static int intents_resolve(struct ctx *c)
{
    const struct plan_input *in = c->in;
    size_t i;
    int rc;

    for (i = 0; i < in->nintents; i++) {
        const struct plan_intent *it = &in->intents[i];
        ptrdiff_t fi, ni;

        if (it->kind == PLAN_INTENT_UPLOAD) {
            ni = it->near_idx;
            fi = find_far(c, it->far_uid);
        } else {
            fi = find_far(c, it->far_uid);
            ni = it->resolved ? it->near_idx : find_near(c, it->far_uid);
        }
        /* Pair only a copy whose source is still there and that nothing else
         * claims; anything else is left to the ordinary rules (keep, copy). */
        if (fi >= 0 && ni >= 0 && !c->fclaim[fi] && !c->nclaim[ni])
            rc = add_pair(c, (size_t)fi, (size_t)ni, it->flags, (ptrdiff_t)i);
        else
            rc = drop_intent(c, i);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int push_rec(struct ctx *c, const struct wrec *w, enum plan_rec_op op)
{
    struct plan_rec_update *r = PUSH(c->p->recs, c->p->nrecs, c->cap_recs);
    if (!r)
        return -ENOMEM;
    r->far_uid = w->f;
    r->near_uid = w->n;
    r->op = op;
    r->flags = w->base;
    return 0;
}

/* R4: per-flag three-way merge, readonly sides left alone. */
static int merge_flags(struct ctx *c, const struct wrec *w)
{
    const struct plan_options *o = c->o;
    plan_flags_t B = w->base;
    plan_flags_t F = (o->quick && w->from_status) ? B : c->in->far[w->fi].flags;
    plan_flags_t N = c->in->near[w->ni].flags;
    plan_flags_t merged = B ^ ((F ^ B) | (N ^ B));
    plan_flags_t far2 = o->far_readonly ? F : merged;
    plan_flags_t near2 = o->near_readonly ? N : merged;
    plan_flags_t synced;

    if (far2 == near2)
        synced = far2;
    else if (o->far_readonly && !o->near_readonly)
        synced = F; /* what far keeps, so near's change is not reverted later */
    else if (o->near_readonly && !o->far_readonly)
        synced = N;
    else
        synced = B;
    if (far2 == F && near2 == N && synced == B)
        return 0;
    struct plan_flag_update *u = PUSH(c->p->flags, c->p->nflags, c->cap_flags);
    if (!u)
        return -ENOMEM;
    u->far_uid = w->f;
    u->near_uid = w->n;
    u->near_idx = (size_t)w->ni;
    u->far_add = far2 & ~F;
    u->far_remove = F & ~far2;
    u->near_add = near2 & ~N;
    u->near_remove = N & ~near2;
    u->synced = synced;
    return 0;
}

/* R3/R5: classify every work record; returns counts of losses per side. */
static int classify(struct ctx *c, size_t *lost_near_r, size_t *lost_far_r)
{
    const struct plan_options *o = c->o;
    size_t i;
    int rc;

    *lost_near_r = *lost_far_r = 0;
    for (i = 0; i < c->nw; i++) {
        struct wrec *w = &c->w[i];
        bool hf = w->fi >= 0, hn = w->ni >= 0;

        if (w->f && w->n && hf && hn) {
            w->kind = W_MERGE;
            if ((rc = merge_flags(c, w)) < 0)
                return rc;
        } else if (w->f && w->n && hf) {
            /* R5 exception: a copy newly \Flagged on far is copied back. */
            plan_flags_t F = o->quick ? w->base : c->in->far[w->fi].flags;
            if ((F & PLAN_F_FLAGGED) && !(w->base & PLAN_F_FLAGGED) && !o->near_readonly) {
                c->fclaim[w->fi] = 0;
                if ((rc = push_rec(c, w, PLAN_REC_FORGET)) < 0)
                    return rc;
            } else {
                w->kind = W_LOST_NEAR;
                (*lost_near_r)++;
            }
        } else if (w->f && w->n && hn) {
            if ((c->in->near[w->ni].flags & PLAN_F_FLAGGED) && !(w->base & PLAN_F_FLAGGED) &&
                !o->far_readonly) {
                c->nclaim[w->ni] = 0;
                if ((rc = push_rec(c, w, PLAN_REC_FORGET)) < 0)
                    return rc;
            } else {
                w->kind = W_LOST_FAR;
                (*lost_far_r)++;
            }
        } else if (!hf && !hn) {
            /* Gone from both (or a half record whose one side went). */
            if ((rc = push_rec(c, w, PLAN_REC_FORGET)) < 0)
                return rc;
        }
        /* else: a half record whose side still has the message: nothing. */
    }
    return 0;
}

static enum plan_guard guard_check(const struct plan_options *o, size_t lost, size_t listed_gone,
                                   size_t listed_keep)
{
    if (o->allow_mass_delete || lost == 0)
        return PLAN_GUARD_NONE;
    if (listed_gone == 0 && o->guard_empty_min && lost >= o->guard_empty_min)
        return PLAN_GUARD_EMPTY;
    if (o->guard_percent < 100 && lost > o->guard_count &&
        (uint64_t)lost * 100 > (uint64_t)o->guard_percent * listed_keep)
        return PLAN_GUARD_MASS;
    return PLAN_GUARD_NONE;
}

/* R6 then R5: emit deletions (or half records) for the losses the guard lets
 * through. */
static int emit_losses(struct ctx *c, size_t lost_near, size_t lost_far)
{
    const struct plan_options *o = c->o;
    const struct plan_input *in = c->in;
    struct plan *p = c->p;
    enum plan_guard gfar = guard_check(o, lost_near, in->nnear, in->nfar);
    enum plan_guard gnear = guard_check(o, lost_far, in->nfar, in->nnear);
    size_t i;
    int rc;

    if (gfar != PLAN_GUARD_NONE)
        p->held[PLAN_FAR] = (struct plan_held){lost_near, in->nfar, gfar};
    if (gnear != PLAN_GUARD_NONE)
        p->held[PLAN_NEAR] = (struct plan_held){lost_far, in->nnear, gnear};

    for (i = 0; i < c->nw; i++) {
        const struct wrec *w = &c->w[i];
        struct plan_delete *d;

        if (w->kind == W_LOST_NEAR && gfar == PLAN_GUARD_NONE) {
            if (o->far_readonly || !o->propagate_near_deletes) {
                rc = push_rec(c, w, PLAN_REC_KEEP_FAR);
                if (rc < 0)
                    return rc;
                continue;
            }
            if (!(d = PUSH(p->far_deletes, p->nfar_deletes, c->cap_fdel)))
                return -ENOMEM;
            *d = (struct plan_delete){w->f, w->n, (size_t)w->fi, o->expunge_far,
                                      w->base | PLAN_F_DELETED};
        } else if (w->kind == W_LOST_FAR && gnear == PLAN_GUARD_NONE) {
            if (o->near_readonly || !o->propagate_far_deletes) {
                rc = push_rec(c, w, PLAN_REC_KEEP_NEAR);
                if (rc < 0)
                    return rc;
                continue;
            }
            if (!(d = PUSH(p->near_deletes, p->nnear_deletes, c->cap_ndel)))
                return -ENOMEM;
            *d = (struct plan_delete){w->f, w->n, (size_t)w->ni,
                                      o->near_is_maildir || o->expunge_near,
                                      w->base | PLAN_F_DELETED};
        }
    }
    return 0;
}

/* R7: is a new message copied to side dst?  Counts the reason when not. */
static bool copy_ok(struct ctx *c, enum plan_side dst, plan_flags_t flags, uint64_t size,
                    int64_t date)
{
    const struct plan_options *o = c->o;
    struct plan_skipped *s = &c->p->skipped[dst];

    if (dst == PLAN_FAR ? o->far_readonly : o->near_readonly)
        s->readonly++;
    else if (flags & PLAN_F_DELETED)
        s->deleted++;
    else if (o->max_size && size > o->max_size)
        s->size++;
    else if (o->min_date && date < o->min_date &&
             (!o->min_date_sides ||
              (o->min_date_sides & (1u << (dst == PLAN_FAR ? PLAN_NEAR : PLAN_FAR)))))
        s->age++;
    else
        return true;
    return false;
}

static int emit_new(struct ctx *c)
{
    const struct plan_input *in = c->in;
    struct plan *p = c->p;
    size_t k, i;

    for (k = 0; k < c->nfk; k++) { /* ascending far UID */
        const struct plan_far_msg *m;
        i = c->fkeys[k].idx;
        m = &in->far[i];
        if (c->fclaim[i] || !copy_ok(c, PLAN_NEAR, m->flags, m->size, m->date))
            continue;
        struct plan_download *d = PUSH(p->downloads, p->ndownloads, c->cap_dl);
        if (!d)
            return -ENOMEM;
        *d = (struct plan_download){i, m->uid, m->flags, m->size};
    }
    for (i = 0; i < in->nnear; i++) {
        const struct plan_near_msg *m = &in->near[i];
        if (c->nclaim[i] || !copy_ok(c, PLAN_FAR, m->flags, m->size, m->date))
            continue;
        struct plan_upload *u = PUSH(p->uploads, p->nuploads, c->cap_ul);
        if (!u)
            return -ENOMEM;
        *u = (struct plan_upload){i, m->uid, m->flags, m->size};
    }
    return 0;
}

static int del_far_cmp(const void *a, const void *b)
{
    const struct plan_delete *x = a, *y = b;
    return x->far_uid < y->far_uid ? -1 : x->far_uid > y->far_uid;
}

static int del_idx_cmp(const void *a, const void *b)
{
    const struct plan_delete *x = a, *y = b;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

#define CMP3(a, b)                                                                                 \
    do {                                                                                           \
        if ((a) != (b))                                                                            \
            return (a) < (b) ? -1 : 1;                                                             \
    } while (0)

static int flags_far_cmp(const void *a, const void *b)
{
    const struct plan_flag_update *x = a, *y = b;
    CMP3(x->far_add, y->far_add);
    CMP3(x->far_remove, y->far_remove);
    CMP3(x->far_uid, y->far_uid);
    return 0;
}

static int flags_near_cmp(const void *a, const void *b)
{
    const struct plan_flag_update *x = a, *y = b;
    CMP3(x->near_add, y->near_add);
    CMP3(x->near_remove, y->near_remove);
    CMP3(x->near_uid, y->near_uid);
    CMP3(x->near_idx, y->near_idx);
    return 0;
}

void plan_flags_sort(struct plan *plan, enum plan_side side)
{
    if (plan->nflags)
        qsort(plan->flags, plan->nflags, sizeof(*plan->flags),
              side == PLAN_FAR ? flags_far_cmp : flags_near_cmp);
}

size_t plan_flags_group_end(const struct plan *plan, enum plan_side side, size_t start)
{
    const struct plan_flag_update *f = plan->flags;
    size_t e = start + 1;
    if (start >= plan->nflags)
        return plan->nflags;
    while (e < plan->nflags &&
           (side == PLAN_FAR
                ? f[e].far_add == f[start].far_add && f[e].far_remove == f[start].far_remove
                : f[e].near_add == f[start].near_add && f[e].near_remove == f[start].near_remove))
        e++;
    return e;
}

static int plan_validate(const struct plan_input *in)
{
    size_t i;
    if ((in->nfar && !in->far) || (in->nnear && !in->near) || (in->nstatus && !in->status) ||
        (in->nintents && !in->intents))
        return -EINVAL;
    if (in->nfar > UINT32_MAX || in->nnear > UINT32_MAX)
        return -EINVAL;
    for (i = 0; i < in->nintents; i++) {
        const struct plan_intent *it = &in->intents[i];
        if (it->near_idx < -1 || (it->near_idx >= 0 && (size_t)it->near_idx >= in->nnear))
            return -EINVAL;
        if (it->kind != PLAN_INTENT_UPLOAD && it->kind != PLAN_INTENT_DOWNLOAD)
            return -EINVAL;
    }
    return 0;
}

static int plan_run(struct ctx *c)
{
    const struct plan_input *in = c->in;
    const struct plan_folder_state *st = &in->state;
    struct plan *p = c->p;
    size_t i, lost_near, lost_far;
    int rc;

    /* R1 before anything else: a changed UIDVALIDITY plans nothing at all. */
    if (st->far_uidvalidity_recorded && st->far_uidvalidity &&
        st->far_uidvalidity_recorded != st->far_uidvalidity)
        p->uidvalidity_changed |= 1u << PLAN_FAR;
    if (st->near_uidvalidity_recorded && st->near_uidvalidity &&
        st->near_uidvalidity_recorded != st->near_uidvalidity)
        p->uidvalidity_changed |= 1u << PLAN_NEAR;
    if (p->uidvalidity_changed) {
        p->error = OIMAP_EUIDVALIDITY;
        return 0;
    }
    p->record_uidvalidity = (!st->far_uidvalidity_recorded && st->far_uidvalidity) ||
                            (!st->near_uidvalidity_recorded && st->near_uidvalidity);

    if ((rc = build_keys(c)) < 0 || (rc = check_status(c)) < 0)
        return rc;

    /* Work records: every status record, plus at most one pairing per far
     * message found in this run. */
    c->wcap = in->nstatus + in->nfar;
    c->w = malloc((c->wcap ? c->wcap : 1) * sizeof(*c->w));
    if (!c->w)
        return -ENOMEM;
    for (i = 0; i < in->nstatus; i++) {
        const struct plan_status_rec *s = &in->status[i];
        ptrdiff_t fi = find_far(c, s->far_uid), ni = find_near(c, s->near_uid);
        if (fi >= 0)
            c->fclaim[fi] = 1;
        if (ni >= 0)
            c->nclaim[ni] = 1;
        c->w[c->nw++] = (struct wrec){s->far_uid, s->near_uid, s->flags, fi, ni, true, W_NONE};
    }

    /* R2: intents first; lookups stop the planning here. */
    if ((rc = intents_lookups(c)) != 0) {
        if (rc < 0)
            return rc;
        p->record_uidvalidity = false;
        return 0;
    }
    if ((rc = intents_resolve(c)) < 0)
        return rc;

    /* R3 Maildir crash recovery: far X and an unclaimed near U=X. */
    if (c->o->near_is_maildir) {
        for (i = 0; i < c->nfk; i++) {
            size_t fi = c->fkeys[i].idx;
            ptrdiff_t ni;
            if (c->fclaim[fi])
                continue;
            ni = find_near(c, c->fkeys[i].uid);
            if (ni >= 0 && !c->nclaim[ni] &&
                (rc = add_pair(c, fi, (size_t)ni, in->near[ni].flags, -1)) < 0)
                return rc;
        }
    }

    if ((rc = classify(c, &lost_near, &lost_far)) < 0 ||
        (rc = emit_losses(c, lost_near, lost_far)) < 0 || (rc = emit_new(c)) < 0)
        return rc;

    if (p->nfar_deletes)
        qsort(p->far_deletes, p->nfar_deletes, sizeof(*p->far_deletes), del_far_cmp);
    if (p->nnear_deletes)
        qsort(p->near_deletes, p->nnear_deletes, sizeof(*p->near_deletes), del_idx_cmp);
    plan_flags_sort(p, PLAN_FAR);
    return 0;
}

int plan_make(const struct plan_input *in, struct plan **plan_r)
{
    struct ctx c;
    int rc;

    *plan_r = NULL;
    if (!in || plan_validate(in) < 0)
        return -EINVAL;
    memset(&c, 0, sizeof(c));
    c.in = in;
    c.o = &in->opts;
    c.p = calloc(1, sizeof(*c.p));
    if (!c.p)
        return -ENOMEM;
    rc = plan_run(&c);
    free(c.fkeys);
    free(c.nkeys);
    free(c.fclaim);
    free(c.nclaim);
    free(c.w);
    if (rc < 0) {
        plan_free(&c.p);
        return rc;
    }
    *plan_r = c.p;
    return 0;
}

void plan_free(struct plan **plan)
{
    struct plan *p = *plan;
    if (!p)
        return;
    free(p->lookups);
    free(p->drop_intents);
    free(p->recs);
    free(p->pairs);
    free(p->downloads);
    free(p->uploads);
    free(p->flags);
    free(p->far_deletes);
    free(p->near_deletes);
    free(p);
    *plan = NULL;
}

size_t plan_nactions(const struct plan *p)
{
    return (p->record_uidvalidity ? 1 : 0) + p->ndrop_intents + p->nrecs + p->npairs +
           p->ndownloads + p->nuploads + p->nflags + p->nfar_deletes + p->nnear_deletes;
}
