/* plan_sim.h - an in-memory "memory backend" for the planner tests.
 *
 * Two mailboxes (far: IMAP with UIDs, UIDVALIDITY, UIDNEXT; near: a Maildir
 * whose files carry an optional U= and a trusted bit for FMD5, or a second
 * IMAP box), a status store (records + intents + recorded UIDVALIDITYs), and
 * sim_apply(), which executes a plan one step at a time in plan.h's order.
 * Every side effect and every status commit is one step; with crash_after = k
 * the run stops dead after step k, as kill -9 would, leaving exactly what had
 * been done.  A message's "id" is its content (Message-ID + body): ids are
 * what must end up exactly once on each side.
 *
 * Everything is in one plain struct (no pointers) so a state can be copied
 * with memcpy to replay a scenario from scratch for every k.  Header-only and
 * static, like tap.h, because tests/unit/meson.build compiles one file per
 * test.
 */
#ifndef OIMAP_PLAN_SIM_H
#define OIMAP_PLAN_SIM_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"

#define SIM_MAX 640
#define SIM_MAX_INTENTS 64

struct sim_msg {
    int id;       /* content identity */
    uint32_t uid; /* far: UID; near Maildir: U= (0 none); near IMAP: UID */
    plan_flags_t flags;
    uint64_t size;
    int64_t date;
    bool trusted;  /* near Maildir: FMD5 matches */
    uint32_t tuid; /* marker header carried by a copy, 0 none */
    int key;       /* near: stable identity (Maildir unique name) */
};

struct sim_box {
    struct sim_msg m[SIM_MAX];
    size_t n;
    uint32_t uidnext, uidvalidity;
};

enum { SIM_DL, SIM_UL };
struct sim_intent {
    int id;
    int kind;
    uint32_t far_uid; /* DL: source; UL: recorded APPENDUID, 0 none */
    int near_key;     /* UL: source */
    uint32_t tuid;
    plan_flags_t flags;
};

struct sim {
    struct sim_box far, near;
    struct plan_status_rec st[SIM_MAX];
    size_t nst;
    struct sim_intent in[SIM_MAX_INTENTS];
    size_t nin;
    uint32_t rec_uv_far, rec_uv_near;
    struct plan_options opts;
    int next_key, next_intent;
    uint32_t next_tuid;
    long steps, crash_after; /* crash_after < 0: never */
    int bad;                 /* apply found the plan inconsistent with the state */
    char why[160];
};

/* The planner's view of a sim, plus what maps it back. */
struct sim_view {
    struct plan_far_msg far[SIM_MAX];
    struct plan_near_msg near[SIM_MAX];
    int near_key[SIM_MAX];
    struct plan_intent in[SIM_MAX_INTENTS];
    int in_id[SIM_MAX_INTENTS];
    struct plan_input input;
    int lookups; /* how many intents needed a lookup */
};

static void sim_fail(struct sim *s, const char *why, long v)
{
    if (!s->bad)
        snprintf(s->why, sizeof(s->why), "%s (%ld)", why, v);
    s->bad++;
}

static struct sim_msg *sim_box_find(struct sim_box *b, uint32_t uid)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->m[i].uid == uid)
            return &b->m[i];
    return NULL;
}

static struct sim_msg *sim_near_by_key(struct sim *s, int key)
{
    for (size_t i = 0; i < s->near.n; i++)
        if (s->near.m[i].key == key)
            return &s->near.m[i];
    return NULL;
}

static void sim_box_remove(struct sim_box *b, struct sim_msg *m)
{
    size_t i = (size_t)(m - b->m);
    memmove(&b->m[i], &b->m[i + 1], (b->n - i - 1) * sizeof(*m));
    b->n--;
}

static struct sim_msg *sim_box_add(struct sim *s, struct sim_box *b)
{
    if (b->n >= SIM_MAX) {
        sim_fail(s, "box full", 0);
        return NULL;
    }
    memset(&b->m[b->n], 0, sizeof(b->m[0]));
    return &b->m[b->n++];
}

static struct plan_status_rec *sim_rec_find(struct sim *s, uint32_t f, uint32_t n)
{
    for (size_t i = 0; i < s->nst; i++)
        if (s->st[i].far_uid == f && s->st[i].near_uid == n)
            return &s->st[i];
    return NULL;
}

static void sim_rec_add(struct sim *s, uint32_t f, uint32_t n, plan_flags_t flags)
{
    if (s->nst >= SIM_MAX)
        return sim_fail(s, "status full", 0);
    s->st[s->nst++] = (struct plan_status_rec){f, n, flags};
}

static void sim_rec_del(struct sim *s, uint32_t f, uint32_t n)
{
    struct plan_status_rec *r = sim_rec_find(s, f, n);
    if (!r)
        return sim_fail(s, "no such record", (long)f);
    *r = s->st[--s->nst];
}

static struct sim_intent *sim_intent_find(struct sim *s, int id)
{
    for (size_t i = 0; i < s->nin; i++)
        if (s->in[i].id == id)
            return &s->in[i];
    return NULL;
}

static void sim_intent_del(struct sim *s, int id)
{
    struct sim_intent *it = sim_intent_find(s, id);
    if (!it)
        return sim_fail(s, "no such intent", id);
    *it = s->in[--s->nin];
}

static int sim_intent_add(struct sim *s, int kind, uint32_t far_uid, int near_key, uint32_t tuid,
                          plan_flags_t flags)
{
    if (s->nin >= SIM_MAX_INTENTS) {
        sim_fail(s, "intents full", 0);
        return 0;
    }
    s->in[s->nin++] = (struct sim_intent){++s->next_intent, kind, far_uid, near_key, tuid, flags};
    return s->next_intent;
}

/* Build the planner input (listings in reverse order, to prove the planner
 * sorts), then resolve lookups the way the executor would (read-only). */
static int sim_plan(struct sim *s, struct sim_view *v, struct plan **plan_r)
{
    size_t i, j;
    int rc;

    memset(v, 0, sizeof(*v));
    for (i = 0; i < s->far.n; i++) {
        const struct sim_msg *m = &s->far.m[s->far.n - 1 - i];
        v->far[i] = (struct plan_far_msg){m->uid, m->flags, m->size, m->date};
        /* quick: flags of messages the status knows are not fetched */
        for (j = 0; s->opts.quick && j < s->nst; j++)
            if (s->st[j].far_uid == m->uid)
                v->far[i].flags = 0xdead0000u;
    }
    for (i = 0; i < s->near.n; i++) {
        const struct sim_msg *m = &s->near.m[s->near.n - 1 - i];
        v->near[i] = (struct plan_near_msg){m->uid, m->flags, m->trusted, m->size, m->date};
        v->near_key[i] = m->key;
    }
    for (i = 0; i < s->nin; i++) {
        const struct sim_intent *it = &s->in[i];
        struct plan_intent *pi = &v->in[i];
        v->in_id[i] = it->id;
        pi->flags = it->flags;
        pi->near_idx = -1;
        if (it->kind == SIM_DL) {
            pi->kind = PLAN_INTENT_DOWNLOAD;
            pi->far_uid = it->far_uid;
        } else {
            pi->kind = PLAN_INTENT_UPLOAD;
            pi->far_uid = it->far_uid;
            for (j = 0; j < s->near.n; j++)
                if (v->near_key[j] == it->near_key)
                    pi->near_idx = (ptrdiff_t)j;
        }
    }
    v->input = (struct plan_input){
        .far = v->far,
        .nfar = s->far.n,
        .near = v->near,
        .nnear = s->near.n,
        .status = s->st,
        .nstatus = s->nst,
        .intents = v->in,
        .nintents = s->nin,
        .state = {s->rec_uv_far, s->far.uidvalidity, s->rec_uv_near, s->near.uidvalidity,
                  s->far.uidnext},
        .opts = s->opts,
    };
    if ((rc = plan_make(&v->input, plan_r)) < 0 || (*plan_r)->nlookups == 0)
        return rc;

    /* Lookups: search the side for the intent's TUID marker. */
    for (i = 0; i < (*plan_r)->nlookups; i++) {
        const struct plan_lookup *l = &(*plan_r)->lookups[i];
        struct plan_intent *pi = &v->in[l->intent];
        uint32_t tuid = s->in[l->intent].tuid;
        pi->resolved = true;
        if (l->side == PLAN_FAR) {
            pi->far_uid = 0;
            for (j = 0; j < s->far.n; j++)
                if (s->far.m[j].tuid == tuid)
                    pi->far_uid = s->far.m[j].uid;
        } else {
            pi->near_idx = -1;
            for (j = 0; j < s->near.n; j++)
                if (v->near[j].uid && s->near.m[s->near.n - 1 - j].tuid == tuid)
                    pi->near_idx = (ptrdiff_t)j;
        }
    }
    v->lookups = (int)(*plan_r)->nlookups;
    plan_free(plan_r);
    if ((rc = plan_make(&v->input, plan_r)) < 0)
        return rc;
    if ((*plan_r)->nlookups) {
        sim_fail(s, "lookups after lookups", 0);
        return -EINVAL;
    }
    return 0;
}

/* One durable step; false once the simulated crash has happened. */
static bool sim_step(struct sim *s)
{
    if (s->crash_after >= 0 && s->steps >= s->crash_after)
        return false;
    s->steps++;
    return true;
}

#define STEP(s)                                                                                    \
    do {                                                                                           \
        if (!sim_step(s))                                                                          \
            return 1;                                                                              \
    } while (0)

/* Execute a plan in plan.h's order.  Returns 1 when it crashed, 0 when done. */
static int sim_apply(struct sim *s, const struct sim_view *v, const struct plan *p)
{
    bool maildir = s->opts.near_is_maildir;
    size_t i;

    if (p->error)
        return 0;
    if (p->record_uidvalidity) {
        STEP(s);
        s->rec_uv_far = s->far.uidvalidity;
        s->rec_uv_near = s->near.uidvalidity;
    }
    for (i = 0; i < p->ndrop_intents; i++) {
        STEP(s);
        sim_intent_del(s, v->in_id[p->drop_intents[i]]);
    }
    for (i = 0; i < p->nrecs; i++) {
        const struct plan_rec_update *r = &p->recs[i];
        struct plan_status_rec *sr;
        STEP(s);
        if (r->op == PLAN_REC_FORGET) {
            sim_rec_del(s, r->far_uid, r->near_uid);
        } else if (!(sr = sim_rec_find(s, r->far_uid, r->near_uid))) {
            sim_fail(s, "half: no record", (long)r->far_uid);
        } else {
            *sr = (struct plan_status_rec){r->op == PLAN_REC_KEEP_FAR ? r->far_uid : 0,
                                           r->op == PLAN_REC_KEEP_NEAR ? r->near_uid : 0, r->flags};
        }
    }
    for (i = 0; i < p->npairs; i++) {
        const struct plan_pair *pp = &p->pairs[i];
        struct sim_msg *nm = sim_near_by_key(s, v->near_key[pp->near_idx]);
        if (!nm || !sim_box_find(&s->far, pp->far_uid))
            sim_fail(s, "pair of missing message", (long)pp->far_uid);
        else if (nm->id != sim_box_find(&s->far, pp->far_uid)->id)
            sim_fail(s, "pair of different messages", (long)pp->far_uid);
        if (pp->rename) {
            STEP(s);
            if (nm) {
                nm->uid = pp->far_uid;
                nm->trusted = true;
            }
        }
        STEP(s);
        sim_rec_add(s, pp->far_uid, pp->near_uid, pp->flags);
        if (pp->intent >= 0)
            sim_intent_del(s, v->in_id[pp->intent]);
    }
    for (i = 0; i < p->ndownloads; i++) {
        const struct plan_download *d = &p->downloads[i];
        struct sim_msg *fm = sim_box_find(&s->far, d->far_uid), *nm;
        uint32_t tuid = ++s->next_tuid;
        int id;
        if (!fm) {
            sim_fail(s, "download of missing message", (long)d->far_uid);
            continue;
        }
        STEP(s);
        id = sim_intent_add(s, SIM_DL, d->far_uid, 0, tuid, d->flags);
        STEP(s);
        if (!(nm = sim_box_add(s, &s->near)))
            return 0;
        *nm = (struct sim_msg){fm->id,
                               maildir ? d->far_uid : s->near.uidnext++,
                               d->flags,
                               fm->size,
                               fm->date,
                               true,
                               maildir ? 0 : tuid,
                               0};
        nm->key = maildir ? ++s->next_key : (int)nm->uid;
        STEP(s);
        sim_rec_add(s, d->far_uid, nm->uid, d->flags);
        sim_intent_del(s, id);
    }
    for (i = 0; i < p->nuploads; i++) {
        const struct plan_upload *u = &p->uploads[i];
        int key = v->near_key[u->near_idx];
        struct sim_msg *nm = sim_near_by_key(s, key), *fm;
        struct sim_intent *it;
        uint32_t tuid = ++s->next_tuid, fu;
        int id;
        if (!nm) {
            sim_fail(s, "upload of missing message", (long)u->near_idx);
            continue;
        }
        STEP(s);
        id = sim_intent_add(s, SIM_UL, 0, key, tuid, u->flags);
        STEP(s);
        if (!(fm = sim_box_add(s, &s->far)))
            return 0;
        *fm =
            (struct sim_msg){nm->id, s->far.uidnext++, u->flags, nm->size, nm->date, true, tuid, 0};
        fu = fm->uid;
        STEP(s); /* record the APPENDUID */
        if ((it = sim_intent_find(s, id)))
            it->far_uid = fu;
        if (maildir) {
            STEP(s); /* rename to carry U= */
            nm = sim_near_by_key(s, key);
            nm->uid = fu;
            nm->trusted = true;
        }
        STEP(s);
        sim_rec_add(s, fu, maildir ? fu : sim_near_by_key(s, key)->uid, u->flags);
        sim_intent_del(s, id);
    }
    for (i = 0; i < p->nflags; i++) {
        const struct plan_flag_update *f = &p->flags[i];
        struct sim_msg *m;
        struct plan_status_rec *r;
        if (f->far_add || f->far_remove) {
            STEP(s);
            if (!(m = sim_box_find(&s->far, f->far_uid)))
                sim_fail(s, "store on missing far", (long)f->far_uid);
            else
                m->flags = (m->flags | f->far_add) & ~f->far_remove;
        }
        if (f->near_add || f->near_remove) {
            STEP(s);
            if (!(m = sim_near_by_key(s, v->near_key[f->near_idx])))
                sim_fail(s, "store on missing near", (long)f->near_idx);
            else
                m->flags = (m->flags | f->near_add) & ~f->near_remove;
        }
        STEP(s);
        if (!(r = sim_rec_find(s, f->far_uid, f->near_uid)))
            sim_fail(s, "flags: no record", (long)f->far_uid);
        else
            r->flags = f->synced;
    }
    for (i = 0; i < p->nfar_deletes; i++) {
        const struct plan_delete *d = &p->far_deletes[i];
        struct sim_msg *m;
        STEP(s);
        if (!(m = sim_box_find(&s->far, d->far_uid))) {
            sim_fail(s, "delete of missing far", (long)d->far_uid);
            continue;
        }
        m->flags |= PLAN_F_DELETED;
        if (d->expunge) {
            STEP(s);
            sim_box_remove(&s->far, m);
        }
        STEP(s);
        if (d->expunge)
            sim_rec_del(s, d->far_uid, d->near_uid);
        else if (sim_rec_find(s, d->far_uid, d->near_uid))
            *sim_rec_find(s, d->far_uid, d->near_uid) =
                (struct plan_status_rec){d->far_uid, 0, d->flags};
    }
    for (i = 0; i < p->nnear_deletes; i++) {
        const struct plan_delete *d = &p->near_deletes[i];
        struct sim_msg *m = sim_near_by_key(s, v->near_key[d->idx]);
        if (!m) {
            sim_fail(s, "delete of missing near", (long)d->idx);
            continue;
        }
        if (!maildir) {
            STEP(s);
            m->flags |= PLAN_F_DELETED;
        }
        if (d->expunge) {
            STEP(s);
            sim_box_remove(&s->near, m);
        }
        STEP(s);
        if (d->expunge)
            sim_rec_del(s, d->far_uid, d->near_uid);
        else if (sim_rec_find(s, d->far_uid, d->near_uid))
            *sim_rec_find(s, d->far_uid, d->near_uid) =
                (struct plan_status_rec){0, d->near_uid, d->flags};
    }
    return 0;
}

/* One sync run: plan (with lookups) and apply.  Returns the plan through
 * plan_r when wanted; 1 if it crashed, 0 if it completed, < 0 on error. */
static int sim_run(struct sim *s, struct plan **plan_r, int *lookups_r)
{
    struct sim_view *v = malloc(sizeof(*v));
    struct plan *p = NULL;
    int rc;

    if (!v)
        return -ENOMEM;
    rc = sim_plan(s, v, &p);
    if (rc == 0)
        rc = sim_apply(s, v, p);
    if (lookups_r)
        *lookups_r = v->lookups;
    if (plan_r)
        *plan_r = p;
    else
        plan_free(&p);
    free(v);
    return rc;
}

/* ---- state as text ------------------------------------------------------- */

static void sim_flags_str(plan_flags_t f, char *out)
{
    static const char sys[] = "DFPRST";
    int i;
    for (i = 0; i < 32; i++)
        if (f & (1u << i))
            *out++ = i < 6 ? sys[i] : (char)('a' + i - 6);
    *out = 0;
}

static int sim_msg_cmp(const void *a, const void *b)
{
    const struct sim_msg *x = a, *y = b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return x->flags < y->flags ? -1 : x->flags > y->flags;
}

/* "id:flags id:flags ..." sorted by id: what a side holds, UIDs aside. */
static void sim_box_str(const struct sim_box *b, char *out, size_t len)
{
    struct sim_msg *m = malloc(sizeof(*m) * (b->n ? b->n : 1));
    size_t i, o = 0;
    char fl[40];
    memcpy(m, b->m, sizeof(*m) * b->n);
    qsort(m, b->n, sizeof(*m), sim_msg_cmp);
    out[0] = 0;
    for (i = 0; i < b->n && o + 48 < len; i++) {
        sim_flags_str(m[i].flags, fl);
        o += (size_t)snprintf(out + o, len - o, "%s%d:%s", i ? " " : "", m[i].id, fl);
    }
    free(m);
}

/* The status must describe the sides exactly: no open intent, every full
 * record names two live copies of the same message, and no UID is recorded
 * twice.  held: deletions the guard holds back (their records name a message
 * gone from one side).  Returns NULL or what is wrong. */
static const char *sim_check_status(struct sim *s, size_t held)
{
    size_t i, j, half_missing = 0;
    if (s->bad)
        return s->why;
    if (s->nin)
        return "intent left open";
    for (i = 0; i < s->nst; i++) {
        const struct plan_status_rec *r = &s->st[i];
        struct sim_msg *f = r->far_uid ? sim_box_find(&s->far, r->far_uid) : NULL;
        struct sim_msg *n = r->near_uid ? sim_box_find(&s->near, r->near_uid) : NULL;
        if (r->far_uid && r->near_uid) {
            if (!f && !n)
                return "record of a missing message";
            if (!f || !n)
                half_missing++; /* only a held deletion may leave this */
            else if (f->id != n->id)
                return "record pairs different messages";
            else if (s->opts.near_is_maildir && !n->trusted)
                return "record pairs an untrusted file";
        }
        for (j = i + 1; j < s->nst; j++)
            if ((r->far_uid && r->far_uid == s->st[j].far_uid) ||
                (r->near_uid && r->near_uid == s->st[j].near_uid))
                return "UID recorded twice";
    }
    return half_missing == held ? NULL : "record of a message gone from one side";
}

#endif
