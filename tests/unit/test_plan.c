/* test_plan.c - the planner's scenario tables, run on the in-memory backend
 * (plan_sim.h): every scenario is run to completion and compared with its
 * expected end state, planned again (must be empty), and interrupted after
 * every step k (and, for small ones, after every step of the resume too),
 * resumed, and compared again: nothing lost, nothing duplicated. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "plan.h"
#include "plan_sim.h"
#include "tap.h"

/* ---- the scenario language ------------------------------------------------
 * Messages, space separated:
 *   F<id>/<uid>[:flags]   far message           (suffixes: @size ~date #)
 *   N<id>/<uid>[:flags]   near message (Maildir: uid 0 = no U=)
 *   n<id>/<uid>[:flags]   near file whose FMD5 says another folder
 *   S<far>/<near>[:flags] status record
 *   u<id>/<far>[:flags]   open upload intent for near message <id>, far UID
 *                         recorded (0: not)
 *   d<id>/<far>[:flags]   open download intent of far UID <far>
 * '#' gives a message the TUID marker 1000+id (a copy made by an intent).
 * Flags are Maildir letters (D F P R S T, keywords a-z).
 * Options: imap ro_far ro_near keep_far keep_near noexp_far noexp_near quick
 * allow uvfar uvnear maxsize=N mindate=N datefar datenear gempty=N gcount=N gpct=N
 * uidnext=N (datefar/datenear: mindate applies to that side's messages only) */

static plan_flags_t parse_flags(const char **pp)
{
    static const char sys[] = "DFPRST";
    plan_flags_t f = 0;
    const char *p = *pp, *q;
    for (; *p; p++) {
        if (*p >= 'a' && *p <= 'z')
            f |= PLAN_F_KEYWORD(*p - 'a');
        else if (*p && (q = strchr(sys, *p)))
            f |= 1u << (q - sys);
        else
            break;
    }
    *pp = p;
    return f;
}

static int setup(struct sim *s, const char *msgs, const char *opts)
{
    const char *p = msgs;
    uint32_t maxf = 0, maxn = 0, uidnext = 0;
    bool uvfar = false, uvnear = false;
    char tok[64];

    memset(s, 0, sizeof(*s));
    plan_options_init(&s->opts);
    s->crash_after = -1;
    s->next_tuid = 5000;
    for (const char *o = opts; o && *o;) {
        int n = 0;
        if (sscanf(o, "%63s%n", tok, &n) != 1)
            break;
        o += n;
        if (!strcmp(tok, "imap"))
            s->opts.near_is_maildir = false;
        else if (!strcmp(tok, "ro_far"))
            s->opts.far_readonly = true;
        else if (!strcmp(tok, "ro_near"))
            s->opts.near_readonly = true;
        else if (!strcmp(tok, "keep_far"))
            s->opts.propagate_far_deletes = false;
        else if (!strcmp(tok, "keep_near"))
            s->opts.propagate_near_deletes = false;
        else if (!strcmp(tok, "noexp_far"))
            s->opts.expunge_far = false;
        else if (!strcmp(tok, "noexp_near"))
            s->opts.expunge_near = false;
        else if (!strcmp(tok, "quick"))
            s->opts.quick = true;
        else if (!strcmp(tok, "allow"))
            s->opts.allow_mass_delete = true;
        else if (!strcmp(tok, "uvfar"))
            uvfar = true;
        else if (!strcmp(tok, "uvnear"))
            uvnear = true;
        else if (!strncmp(tok, "maxsize=", 8))
            s->opts.max_size = strtoull(tok + 8, NULL, 10);
        else if (!strncmp(tok, "mindate=", 8))
            s->opts.min_date = strtoll(tok + 8, NULL, 10);
        else if (!strcmp(tok, "datefar"))
            s->opts.min_date_sides |= 1u << PLAN_FAR;
        else if (!strcmp(tok, "datenear"))
            s->opts.min_date_sides |= 1u << PLAN_NEAR;
        else if (!strncmp(tok, "gempty=", 7))
            s->opts.guard_empty_min = (unsigned)atoi(tok + 7);
        else if (!strncmp(tok, "gcount=", 7))
            s->opts.guard_count = (unsigned)atoi(tok + 7);
        else if (!strncmp(tok, "gpct=", 5))
            s->opts.guard_percent = (unsigned)atoi(tok + 5);
        else if (!strncmp(tok, "uidnext=", 8))
            uidnext = (uint32_t)atoi(tok + 8);
        else
            return -1;
    }
    bool maildir = s->opts.near_is_maildir;
    while (*p) {
        char kind;
        int id, uid2, n = 0;
        plan_flags_t fl = 0;
        uint64_t size = 100;
        int64_t date = 10000;
        bool mark = false;

        while (*p == ' ')
            p++;
        if (!*p)
            break;
        kind = *p++;
        if (sscanf(p, "%d/%d%n", &id, &uid2, &n) != 2)
            return -1;
        p += n;
        if (*p == ':') {
            p++;
            fl = parse_flags(&p);
        }
        for (;;) {
            if (*p == '@')
                size = strtoull(p + 1, (char **)&p, 10);
            else if (*p == '~')
                date = strtoll(p + 1, (char **)&p, 10);
            else if (*p == '#')
                mark = (p++, true);
            else
                break;
        }
        if (*p && *p != ' ')
            return -1;
        struct sim_msg m = {id, (uint32_t)uid2, fl, size, date, true, mark ? 1000u + id : 0, 0};
        switch (kind) {
        case 'F':
            s->far.m[s->far.n++] = m;
            maxf = m.uid > maxf ? m.uid : maxf;
            break;
        case 'N':
        case 'n':
            m.trusted = kind == 'N';
            m.key = maildir ? ++s->next_key : (int)m.uid;
            s->near.m[s->near.n++] = m;
            maxn = m.uid > maxn ? m.uid : maxn;
            break;
        case 'S':
            s->st[s->nst++] = (struct plan_status_rec){(uint32_t)id, (uint32_t)uid2, fl};
            break;
        case 'u':
        case 'd': {
            int key = 0;
            for (size_t i = 0; i < s->near.n; i++)
                if (s->near.m[i].id == id)
                    key = s->near.m[i].key;
            s->in[s->nin] = (struct sim_intent){++s->next_intent,     kind == 'u' ? SIM_UL : SIM_DL,
                                                (uint32_t)uid2,       key,
                                                1000u + (uint32_t)id, fl};
            s->nin++;
            break;
        }
        default:
            return -1;
        }
    }
    s->far.uidvalidity = 1;
    s->far.uidnext = uidnext ? uidnext : maxf + 1;
    if (!maildir) {
        s->near.uidvalidity = 1;
        s->near.uidnext = maxn + 1;
    }
    if (s->nst || s->nin) {
        s->rec_uv_far = 1;
        s->rec_uv_near = maildir ? 0 : 1;
    }
    if (uvfar) {
        s->rec_uv_far = 1;
        s->far.uidvalidity = 2;
    }
    if (uvnear) {
        s->rec_uv_near = 1;
        s->near.uidvalidity = 2;
    }
    return 0;
}

static void summary(const struct plan *p, int lookups, char *out, size_t len)
{
    if (p->error) {
        snprintf(out, len, "ERR %u", p->uidvalidity_changed);
        return;
    }
    snprintf(
        out, len, "dl=%zu ul=%zu pair=%zu fl=%zu xf=%zu xn=%zu rec=%zu drop=%zu held=%zu/%zu lk=%d",
        p->ndownloads, p->nuploads, p->npairs, p->nflags, p->nfar_deletes, p->nnear_deletes,
        p->nrecs, p->ndrop_intents, p->held[PLAN_FAR].count, p->held[PLAN_NEAR].count, lookups);
}

/* ---- running a scenario ---------------------------------------------------- */

struct scenario {
    const char *name;
    const char *msgs;
    const char *opts;
    const char *want_far, *want_near;
    const char *want_plan; /* summary of the first plan, NULL: not checked */
};

static long interrupted_runs, double_interrupted_runs;

/* Compare a finished state with the expectation; NULL or what is wrong. */
static const char *end_state_error(struct sim *s, const struct scenario *sc, char *buf, size_t len)
{
    char got[2048];
    const char *e;
    struct plan *p = NULL;
    size_t held;
    int lk = 0;

    sim_box_str(&s->far, got, sizeof(got));
    if (strcmp(got, sc->want_far)) {
        snprintf(buf, len, "far is '%s', want '%s'", got, sc->want_far);
        return buf;
    }
    sim_box_str(&s->near, got, sizeof(got));
    if (strcmp(got, sc->want_near)) {
        snprintf(buf, len, "near is '%s', want '%s'", got, sc->want_near);
        return buf;
    }
    /* Idempotence: planning again finds nothing to do. */
    struct sim *copy = malloc(sizeof(*copy));
    memcpy(copy, s, sizeof(*copy));
    copy->crash_after = copy->steps; /* any step would be a bug: stop at the first */
    int rc = sim_run(copy, &p, &lk);
    free(copy);
    if (rc < 0 || !p) {
        snprintf(buf, len, "replan failed: %d", rc);
        plan_free(&p);
        return buf;
    }
    if (plan_nactions(p) || lk) {
        summary(p, lk, got, sizeof(got));
        snprintf(buf, len, "replan not empty: %s", got);
        plan_free(&p);
        return buf;
    }
    held = p->held[PLAN_FAR].count + p->held[PLAN_NEAR].count;
    plan_free(&p);
    if ((e = sim_check_status(s, held)))
        return e;
    return NULL;
}

/* Resume after a crash; returns NULL or what is wrong. */
static const char *resume_and_check(struct sim *s, const struct scenario *sc, char *buf, size_t len)
{
    s->crash_after = -1;
    if (sim_run(s, NULL, NULL) != 0)
        return "resume failed";
    return end_state_error(s, sc, buf, len);
}

static void run_scenario(const struct scenario *sc)
{
    struct sim *init = malloc(sizeof(*init)), *s = malloc(sizeof(*s)), *s2 = malloc(sizeof(*s2));
    char buf[2400], got[200];
    const char *e;
    struct plan *p = NULL;
    int lk = 0;
    long k, k2, K, K2, bad = 0;

    if (setup(init, sc->msgs, sc->opts) != 0) {
        ok(0, "%s: scenario parses", sc->name);
        goto out;
    }
    /* 1. uninterrupted */
    memcpy(s, init, sizeof(*s));
    int rc = sim_run(s, &p, &lk);
    ok(rc == 0, "%s: runs (%d)", sc->name, rc);
    if (sc->want_plan && p) {
        summary(p, lk, got, sizeof(got));
        is_str(got, sc->want_plan, "%s: plan", sc->name);
    }
    plan_free(&p);
    e = end_state_error(s, sc, buf, sizeof(buf));
    ok(e == NULL, "%s: end state, then an empty plan", sc->name);
    if (e)
        printf("#   %s\n", e);
    K = s->steps;

    /* 2. interrupted after every step k, then resumed */
    for (k = 0; k < K; k++) {
        memcpy(s, init, sizeof(*s));
        s->crash_after = k;
        if (sim_run(s, NULL, NULL) != 1) {
            if (!bad++)
                printf("#   k=%ld: did not crash\n", k);
            continue;
        }
        interrupted_runs++;
        /* 2b. small scenarios: interrupt the resume too, at every step */
        if (K <= 40) {
            memcpy(s2, s, sizeof(*s));
            s2->crash_after = -1;
            s2->steps = 0;
            sim_run(s2, NULL, NULL);
            K2 = s2->steps;
            for (k2 = 0; k2 < K2; k2++) {
                memcpy(s2, s, sizeof(*s));
                s2->steps = 0;
                s2->crash_after = k2;
                if (sim_run(s2, NULL, NULL) != 1)
                    continue;
                double_interrupted_runs++;
                if ((e = resume_and_check(s2, sc, buf, sizeof(buf))) && !bad++)
                    printf("#   k=%ld then k2=%ld: %s\n", k, k2, e);
            }
        }
        if ((e = resume_and_check(s, sc, buf, sizeof(buf))) && !bad++)
            printf("#   crash after step %ld: %s\n", k, e);
    }
    ok(bad == 0, "%s: interrupted after each of %ld steps and resumed", sc->name, K);
out:
    free(init);
    free(s);
    free(s2);
}

static const struct scenario scenarios[] = {
    {"new on far", "F1/1:S F2/2", "",
     "1:S 2:", "1:S 2:", "dl=2 ul=0 pair=0 fl=0 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"new on near", "N1/0:S N2/0:F", "", "1:S 2:F", "1:S 2:F",
     "dl=0 ul=2 pair=0 fl=0 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"new on both sides", "F1/1:S N2/0:R", "", "1:S 2:R", "1:S 2:R",
     "dl=1 ul=1 pair=0 fl=0 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"deleted on near", "F1/1:S F2/2 N2/2 S1/1:S S2/2", "",
     "2:", "2:", "dl=0 ul=0 pair=0 fl=0 xf=1 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"deleted on far", "F2/2 N1/1:S N2/2 S1/1:S S2/2", "",
     "2:", "2:", "dl=0 ul=0 pair=0 fl=0 xf=0 xn=1 rec=0 drop=0 held=0/0 lk=0"},
    {"deleted on both sides", "F2/2 N2/2 S1/1:S S2/2", "",
     "2:", "2:", "dl=0 ul=0 pair=0 fl=0 xf=0 xn=0 rec=1 drop=0 held=0/0 lk=0"},
    {"flag changed on far", "F1/1:FS N1/1:S S1/1:S", "", "1:FS", "1:FS",
     "dl=0 ul=0 pair=0 fl=1 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"flag changed on near", "F1/1:S N1/1:RS S1/1:S", "", "1:RS", "1:RS",
     "dl=0 ul=0 pair=0 fl=1 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"both changed different flags: both changes kept", "F1/1:FS N1/1:R S1/1:S", "", "1:FR", "1:FR",
     "dl=0 ul=0 pair=0 fl=1 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"both changed the same flag alike", "F1/1 N1/1 S1/1:S", "",
     "1:", "1:", "dl=0 ul=0 pair=0 fl=1 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"far newly flagged, near deleted: copied back", "F1/1:FS F2/2 N2/2 S1/1:S S2/2", "",
     "1:FS 2:", "1:FS 2:", "dl=1 ul=0 pair=0 fl=0 xf=0 xn=0 rec=1 drop=0 held=0/0 lk=0"},
    {"far re-flagged \\Answered, near deleted: deletion wins", "F1/1:RS F2/2 N2/2 S1/1:S S2/2", "",
     "2:", "2:", "dl=0 ul=0 pair=0 fl=0 xf=1 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"near newly flagged, far deleted: copied back", "F2/2 N1/1:FS N2/2 S1/1:S S2/2", "",
     "1:FS 2:", "1:FS 2:", "dl=0 ul=1 pair=0 fl=0 xf=0 xn=0 rec=1 drop=0 held=0/0 lk=0"},
    {"UIDVALIDITY changed on far: nothing done", "F1/1 N1/1 N2/0 S1/1", "uvfar",
     "1:", "1: 2:", "ERR 1"},
    {"UIDVALIDITY changed on near (IMAP): nothing done", "F1/1 N1/1 N2/2 S1/1", "imap uvnear",
     "1:", "1: 2:", "ERR 2"},
    {"mass deletion held back",
     "F1/1 F2/2 F3/3 F4/4 F5/5 F6/6 F7/7 F8/8 F9/9 F10/10 "
     "N7/7 N8/8 N9/9 N10/10 S1/1 S2/2 S3/3 S4/4 S5/5 S6/6 S7/7 S8/8 S9/9 S10/10",
     "gcount=4", "1: 2: 3: 4: 5: 6: 7: 8: 9: 10:", "7: 8: 9: 10:",
     "dl=0 ul=0 pair=0 fl=0 xf=0 xn=0 rec=0 drop=0 held=6/0 lk=0"},
    {"mass deletion let through with the override",
     "F1/1 F2/2 F3/3 F4/4 F5/5 F6/6 F7/7 F8/8 "
     "F9/9 F10/10 N7/7 N8/8 N9/9 N10/10 S1/1 S2/2 S3/3 S4/4 S5/5 S6/6 S7/7 S8/8 S9/9 S10/10",
     "gcount=4 allow",
     "7: 8: 9: 10:", "7: 8: 9: 10:", "dl=0 ul=0 pair=0 fl=0 xf=6 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"half the folder deleted: below the guard",
     "F1/1 F2/2 F3/3 F4/4 F5/5 F6/6 F7/7 F8/8 "
     "F9/9 F10/10 N6/6 N7/7 N8/8 N9/9 N10/10 S1/1 S2/2 S3/3 S4/4 S5/5 S6/6 S7/7 S8/8 S9/9 "
     "S10/10",
     "gcount=4", "6: 7: 8: 9: 10:", "6: 7: 8: 9: 10:",
     "dl=0 ul=0 pair=0 fl=0 xf=5 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"far folder looks empty: held back", "N1/1 N2/2 N3/3 S1/1 S2/2 S3/3", "uidnext=4", "",
     "1: 2: 3:", "dl=0 ul=0 pair=0 fl=0 xf=0 xn=0 rec=0 drop=0 held=0/3 lk=0"},
    {"far folder emptied, override given", "N1/1 N2/2 N3/3 S1/1 S2/2 S3/3", "uidnext=4 allow", "",
     "", "dl=0 ul=0 pair=0 fl=0 xf=0 xn=3 rec=0 drop=0 held=0/0 lk=0"},
    {"readonly far: nothing written there", "F1/1:S F2/2:S F4/4 N1/1:FS N3/0 S1/1:S S2/2:S",
     "ro_far",
     "1:S 2:S 4:", "1:FS 3: 4:", "dl=1 ul=0 pair=0 fl=0 xf=0 xn=0 rec=1 drop=0 held=0/0 lk=0"},
    {"readonly near: nothing written there", "F1/1:FS F3/3 N1/1:S N2/2:S N4/0 S1/1:S S2/2:S",
     "ro_near",
     "1:FS 3: 4:", "1:S 2:S 4:", "dl=0 ul=1 pair=0 fl=0 xf=0 xn=0 rec=1 drop=0 held=0/0 lk=0"},
    {"maxsize: big messages stay where they are", "F1/1@500 F2/2@50 N3/0@500 N4/0@10",
     "maxsize=100",
     "1: 2: 4:", "2: 3: 4:", "dl=1 ul=1 pair=0 fl=0 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"maxage: old messages stay where they are", "F1/1~100 F2/2~5000 N3/0~100 N4/0~6000",
     "mindate=1000",
     "1: 2: 4:", "2: 3: 4:", "dl=1 ul=1 pair=0 fl=0 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"remote startdate: only old far messages stay", "F1/1~100 F2/2~5000 N3/0~100 N4/0~6000",
     "mindate=1000 datefar",
     "1: 2: 3: 4:", "2: 3: 4:", "dl=1 ul=2 pair=0 fl=0 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"local startdate: only old near messages stay", "F1/1~100 F2/2~5000 N3/0~100 N4/0~6000",
     "mindate=1000 datenear",
     "1: 2: 4:", "1: 2: 3: 4:", "dl=2 ul=1 pair=0 fl=0 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"file with U= delivered before a crash: paired, not downloaded",
     "F1/1:S F2/2:S N1/1:S N2/2:S S2/2:S", "", "1:S 2:S", "1:S 2:S",
     "dl=0 ul=0 pair=1 fl=0 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"recovered file: far flags win", "F1/1:FS N1/1:S", "", "1:FS", "1:FS",
     "dl=0 ul=0 pair=1 fl=1 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"file copied from another folder (FMD5): uploaded", "F1/1:S N1/1:S S1/1:S n2/1:F", "",
     "1:S 2:F", "1:S 2:F", "dl=0 ul=1 pair=0 fl=0 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"file copied inside the folder (same U=): the copy is uploaded", "F1/1 N1/1 N1/1 S1/1", "",
     "1: 1:", "1: 1:", "dl=0 ul=1 pair=0 fl=0 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"pending upload, APPENDUID lost: found by TUID, not appended again", "N1/0:S F1/5:S# u1/0:S",
     "", "1:S", "1:S", "dl=0 ul=0 pair=1 fl=0 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=1"},
    {"pending upload never appended: uploaded once", "N1/0:S u1/0:S", "", "1:S", "1:S",
     "dl=0 ul=1 pair=0 fl=0 xf=0 xn=0 rec=0 drop=1 held=0/0 lk=1"},
    {"pending upload with recorded far UID: no lookup", "N1/0:S F1/7:S# u1/7:S", "", "1:S", "1:S",
     "dl=0 ul=0 pair=1 fl=0 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"pending upload, file already renamed", "N1/7:S F1/7:S# u1/0:S", "", "1:S", "1:S",
     "dl=0 ul=0 pair=1 fl=0 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=1"},
    {"pending upload whose far copy is gone: uploaded again", "N1/0:S u1/9:S", "uidnext=10", "1:S",
     "1:S", "dl=0 ul=1 pair=0 fl=0 xf=0 xn=0 rec=0 drop=1 held=0/0 lk=0"},
    {"pending upload, flags changed on both sides since", "N1/0:R F1/5:SF# u1/0:S", "", "1:FR",
     "1:FR", "dl=0 ul=0 pair=1 fl=1 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=1"},
    {"pending download delivered before the crash", "F1/1:S N1/1:S d1/1:S", "", "1:S", "1:S",
     "dl=0 ul=0 pair=1 fl=0 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"pending download not delivered: downloaded once", "F1/1:S d1/1:S", "", "1:S", "1:S",
     "dl=1 ul=0 pair=0 fl=0 xf=0 xn=0 rec=0 drop=1 held=0/0 lk=0"},
    {"pending download, far deleted it meanwhile: copy kept", "N1/1:S d1/1:S", "uidnext=2", "1:S",
     "1:S", "dl=0 ul=1 pair=0 fl=0 xf=0 xn=0 rec=0 drop=1 held=0/0 lk=0"},
    {"quick: far flags not compared", "F1/1:FS N1/1:RS S1/1:S", "quick", "1:FRS", "1:RS",
     "dl=0 ul=0 pair=0 fl=1 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"expunge=no: far only marked \\Deleted", "F1/1:S F2/2 N2/2 S1/1:S S2/2", "noexp_far",
     "1:ST 2:", "2:", "dl=0 ul=0 pair=0 fl=0 xf=1 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"expunge=no on an IMAP near side", "F2/2 N1/1:S N2/2 S1/1:S S2/2", "imap noexp_near",
     "2:", "1:ST 2:", "dl=0 ul=0 pair=0 fl=0 xf=0 xn=1 rec=0 drop=0 held=0/0 lk=0"},
    {"new far message already \\Deleted: not copied", "F1/1:T F2/2", "",
     "1:T 2:", "2:", "dl=1 ul=0 pair=0 fl=0 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"sync_deletes=no on near: kept on far, not downloaded again", "F1/1:S F2/2 N2/2 S1/1:S S2/2",
     "keep_near", "1:S 2:", "2:", "dl=0 ul=0 pair=0 fl=0 xf=0 xn=0 rec=1 drop=0 held=0/0 lk=0"},
    {"sync_deletes=no on far: kept on near, not uploaded again", "F2/2 N1/1:S N2/2 S1/1:S S2/2",
     "keep_far", "2:", "1:S 2:", "dl=0 ul=0 pair=0 fl=0 xf=0 xn=0 rec=1 drop=0 held=0/0 lk=0"},
    {"keywords merge like flags", "F1/1:Sa N1/1:Sb S1/1:S", "", "1:Sab", "1:Sab",
     "dl=0 ul=0 pair=0 fl=1 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"offlineimap's Maildir, no status yet: nothing transferred", "F1/1:S F2/2 N1/1:S N2/2", "",
     "1:S 2:", "1:S 2:", "dl=0 ul=0 pair=2 fl=0 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"U= at or above UIDNEXT is not trusted", "F1/1 N1/1 N2/50 S1/1", "uidnext=10",
     "1: 2:", "1: 2:", "dl=0 ul=1 pair=0 fl=0 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"IMAP<->IMAP: new on both sides", "F1/1:S N2/1:F", "imap", "1:S 2:F", "1:S 2:F",
     "dl=1 ul=1 pair=0 fl=0 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"IMAP<->IMAP: flags and deletions through the UID map",
     "F1/10:S F2/11 F3/12 N1/20:S N2/21:F S10/20:S S11/21 S12/22", "imap", "1:S 2:F", "1:S 2:F",
     "dl=0 ul=0 pair=0 fl=1 xf=1 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"IMAP<->IMAP: pending download found by TUID", "F1/5:S N1/9:S# d1/5:S", "imap", "1:S", "1:S",
     "dl=0 ul=0 pair=1 fl=0 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=1"},
    {"IMAP<->IMAP: pending upload found by TUID", "F1/30:S# N1/9:S u1/0:S", "imap", "1:S", "1:S",
     "dl=0 ul=0 pair=1 fl=0 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=1"},
    {"IMAP->IMAP one-way migration (far readonly)", "F1/1:S F2/2:F F3/3 N9/7 N2/8:F S2/8:F",
     "imap ro_far",
     "1:S 2:F 3:", "1:S 2:F 3: 9:", "dl=2 ul=0 pair=0 fl=0 xf=0 xn=0 rec=0 drop=0 held=0/0 lk=0"},
    {"everything at once (Maildir)",
     "F1/1:S F2/2:FS F3/3 F5/5:S F6/6 N1/1:RS N2/2:S N4/4 N7/0:D N8/0 S1/1:S S2/2:S S3/3 S4/4 "
     "S6/6",
     "", "1:RS 2:FS 5:S 7:D 8:", "1:RS 2:FS 5:S 7:D 8:",
     "dl=1 ul=2 pair=0 fl=2 xf=2 xn=1 rec=0 drop=0 held=0/0 lk=0"},
    {"everything at once (IMAP<->IMAP)",
     "F1/1:S F2/2:FS F3/3 F5/5:S F6/6 N1/11:RS N2/12:S N4/14 N7/17:D N8/18 S1/11:S S2/12:S "
     "S3/13 S4/14 S6/16",
     "imap", "1:RS 2:FS 5:S 7:D 8:", "1:RS 2:FS 5:S 7:D 8:",
     "dl=1 ul=2 pair=0 fl=2 xf=2 xn=1 rec=0 drop=0 held=0/0 lk=0"},
};

/* ---- direct checks of the planner ----------------------------------------- */

static void test_errors(void)
{
    struct plan_far_msg far[2] = {{5, 0, 1, 0}, {5, 0, 1, 0}};
    struct plan_near_msg near[2] = {{5, 0, true, 1, 0}, {5, 0, true, 1, 0}};
    struct plan_status_rec st[2] = {{1, 1, 0}, {1, 2, 0}};
    struct plan_intent it = {PLAN_INTENT_UPLOAD, 0, 7, 0, false};
    struct plan_input in = {0};
    struct plan *p = NULL;

    plan_options_init(&in.opts);
    in.far = far;
    in.nfar = 2;
    is_int(plan_make(&in, &p), OIMAP_EPROTO, "duplicate far UID: EPROTO");
    ok(p == NULL, "no plan on error");
    in.nfar = 1;
    in.near = near;
    in.nnear = 2;
    is_int(plan_make(&in, &p), 0, "duplicate trusted U= in a Maildir: fine");
    is_int(p ? p->nuploads : 99, 1, "  and the second copy is uploaded");
    plan_free(&p);
    ok(p == NULL, "plan_free nulls");
    in.opts.near_is_maildir = false;
    is_int(plan_make(&in, &p), OIMAP_EPROTO, "duplicate near UID on IMAP: EPROTO");
    in.opts.near_is_maildir = true;
    in.status = st;
    in.nstatus = 2;
    is_int(plan_make(&in, &p), OIMAP_ESTATUS, "far UID twice in the status: ESTATUS");
    in.nstatus = 0;
    in.intents = &it;
    in.nintents = 1;
    is_int(plan_make(&in, &p), -EINVAL, "intent pointing past the listing: EINVAL");
    is_int(plan_make(NULL, &p), -EINVAL, "NULL input: EINVAL");
}

/* Lookups stop the plan; UIDVALIDITY errors carry no action. */
static void test_lookup_and_uidvalidity(void)
{
    struct plan_far_msg far[1] = {{5, PLAN_F_SEEN, 10, 0}};
    struct plan_near_msg near[1] = {{0, PLAN_F_SEEN, true, 10, 0}};
    struct plan_intent it = {PLAN_INTENT_UPLOAD, 0, 0, PLAN_F_SEEN, false};
    struct plan_status_rec st[1] = {{5, 5, 0}};
    struct plan_input in = {
        .far = far, .nfar = 1, .near = near, .nnear = 1, .intents = &it, .nintents = 1};
    struct plan *p = NULL;

    plan_options_init(&in.opts);
    in.state.far_uidvalidity_recorded = in.state.far_uidvalidity = 9;
    is_int(plan_make(&in, &p), 0, "plan with an open upload intent");
    is_int(p->nlookups, 1, "one lookup");
    ok(p->lookups[0].side == PLAN_FAR && p->lookups[0].intent == 0, "search far for intent 0");
    is_int(plan_nactions(p), 0, "and nothing else before it is resolved");
    plan_free(&p);
    it.resolved = true;
    it.far_uid = 5;
    is_int(plan_make(&in, &p), 0, "resolved: planned");
    ok(p->npairs == 1 && p->pairs[0].far_uid == 5 && p->pairs[0].rename &&
           p->pairs[0].intent == 0 && p->ndownloads == 0 && p->nuploads == 0,
       "paired with far UID 5, file renamed, no transfer");
    plan_free(&p);

    in.nintents = 0;
    in.status = st;
    in.nstatus = 1;
    in.nfar = 0; /* a mass of deletions too: must not matter */
    in.state.far_uidvalidity = 10;
    in.opts.allow_mass_delete = true;
    is_int(plan_make(&in, &p), 0, "UIDVALIDITY change is planned, not failed");
    is_int(p->error, OIMAP_EUIDVALIDITY, "  error EUIDVALIDITY");
    is_int(p->uidvalidity_changed, 1u << PLAN_FAR, "  on the far side");
    is_int(plan_nactions(p) + p->nnear_deletes + p->nuploads, 0, "  and no action at all");
    plan_free(&p);
}

/* Flag updates come sorted so equal stores group into one UID STORE. */
static void test_flag_groups(void)
{
    enum { N = 9 };
    struct plan_far_msg far[N];
    struct plan_near_msg near[N];
    struct plan_status_rec st[N];
    struct plan_input in = {
        .far = far, .nfar = N, .near = near, .nnear = N, .status = st, .nstatus = N};
    struct plan *p = NULL;
    size_t i, g, groups = 0;

    plan_options_init(&in.opts);
    for (i = 0; i < N; i++) {
        uint32_t uid = (uint32_t)(N - i); /* unsorted on purpose */
        far[i] = (struct plan_far_msg){uid, i % 3 == 0 ? PLAN_F_SEEN : PLAN_F_FLAGGED, 1, 0};
        near[i] = (struct plan_near_msg){uid, 0, true, 1, 0};
        st[i] = (struct plan_status_rec){uid, uid, 0};
    }
    is_int(plan_make(&in, &p), 0, "plan 9 flag changes");
    is_int(p->nflags, N, "9 updates");
    for (g = 0; g < p->nflags; g = plan_flags_group_end(p, PLAN_FAR, g))
        groups++;
    is_int(groups, 0 + 1, "no far store needed: one (empty) far group");
    plan_flags_sort(p, PLAN_NEAR);
    for (groups = 0, g = 0; g < p->nflags; g = plan_flags_group_end(p, PLAN_NEAR, g)) {
        size_t e = plan_flags_group_end(p, PLAN_NEAR, g);
        for (i = g + 1; i < e; i++)
            ok(p->flags[i].near_uid > p->flags[i - 1].near_uid, "UIDs ascend in a group");
        groups++;
    }
    is_int(groups, 2, "two near groups: +\\Seen and +\\Flagged");
    plan_free(&p);
}

/* The guard with its default thresholds on a 300-message folder. */
static void test_default_guard(void)
{
    struct sim *s = malloc(sizeof(*s)), *t = malloc(sizeof(*t));
    struct plan *p = NULL;
    int i;

    setup(s, "", "");
    for (i = 1; i <= 300; i++) {
        s->far.m[s->far.n++] = (struct sim_msg){i, (uint32_t)i, 0, 10, 10, true, 0, 0};
        if (i > 200)
            s->near.m[s->near.n++] = (struct sim_msg){i, (uint32_t)i, 0, 10, 10, true, 0, i};
        s->st[s->nst++] = (struct plan_status_rec){(uint32_t)i, (uint32_t)i, 0};
    }
    s->far.uidnext = 301;
    s->rec_uv_far = 1;
    memcpy(t, s, sizeof(*t));
    is_int(sim_run(t, &p, NULL), 0, "200 of 300 deleted on near");
    ok(p->held[PLAN_FAR].count == 200 && p->held[PLAN_FAR].reason == PLAN_GUARD_MASS &&
           p->held[PLAN_FAR].folder_size == 300,
       "held back by default: MASS, 200 of 300");
    is_int(plan_nactions(p), 0, "nothing done");
    plan_free(&p);
    is_int(t->far.n, 300, "far untouched");

    /* 90 of 100 (not more than 100): let through by default. */
    memcpy(t, s, sizeof(*t));
    t->far.n = 100;
    t->nst = 100;
    t->near.n = 0;
    for (i = 91; i <= 100; i++)
        t->near.m[t->near.n++] = (struct sim_msg){i, (uint32_t)i, 0, 10, 10, true, 0, i};
    is_int(sim_run(t, &p, NULL), 0, "90 of 100 deleted on near");
    is_int(p->nfar_deletes, 90, "not more than 100: propagated");
    plan_free(&p);

    s->opts.allow_mass_delete = true;
    memcpy(t, s, sizeof(*t));
    struct scenario sc = {"override", "", "", "", "", NULL};
    char want[4096] = "", *o = want;
    for (i = 201; i <= 300; i++)
        o += sprintf(o, "%s%d:", i > 201 ? " " : "", i);
    sc.want_far = sc.want_near = want;
    is_int(sim_run(t, &p, NULL), 0, "with allow_mass_delete");
    is_int(p->nfar_deletes, 200, "200 deletions");
    plan_free(&p);
    ok(end_state_error(t, &sc, (char[512]){0}, 512) == NULL, "far now matches near");

    /* and the 200 deletions interrupted at every step */
    long bad = 0, K;
    memcpy(t, s, sizeof(*t));
    sim_run(t, NULL, NULL);
    K = t->steps;
    for (long k = 0; k < K; k++) {
        memcpy(t, s, sizeof(*t));
        t->crash_after = k;
        sim_run(t, NULL, NULL);
        interrupted_runs++;
        if (resume_and_check(t, &sc, (char[512]){0}, 512))
            bad++;
    }
    ok(bad == 0, "200 deletions interrupted after each of %ld steps, resumed", K);
    free(s);
    free(t);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* 100,000 messages, 1% changed: 250 new on far, 250 new on near, 250 flag
 * changes on each side, 100 deleted on each side. */
static void test_performance(void)
{
    enum { N = 100000 };
    struct plan_far_msg *far = malloc(sizeof(*far) * (N + 300));
    struct plan_near_msg *near = malloc(sizeof(*near) * (N + 300));
    struct plan_status_rec *st = malloc(sizeof(*st) * N);
    struct plan_input in = {.far = far, .near = near, .status = st};
    struct plan *p = NULL;
    size_t nf = 0, nn = 0, i;
    double best = 1e9;

    plan_options_init(&in.opts);
    for (i = 1; i <= N; i++) {
        uint32_t uid = (uint32_t)i;
        plan_flags_t fl = PLAN_F_SEEN;
        st[i - 1] = (struct plan_status_rec){uid, uid, fl};
        if (i % 1000 != 7)
            far[nf++] =
                (struct plan_far_msg){uid, i % 400 == 3 ? fl | PLAN_F_FLAGGED : fl, 5000, 0};
        if (i % 1000 != 9)
            near[nn++] = (struct plan_near_msg){uid, i % 400 == 5 ? fl | PLAN_F_ANSWERED : fl, true,
                                                5000, 0};
    }
    for (i = 0; i < 250; i++) {
        far[nf++] = (struct plan_far_msg){(uint32_t)(N + 1 + i), 0, 5000, 0};
        near[nn++] = (struct plan_near_msg){0, 0, true, 5000, 0};
    }
    in.nfar = nf;
    in.nnear = nn;
    in.nstatus = N;
    in.state.far_uidvalidity_recorded = in.state.far_uidvalidity = 1;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now_ms();
        int rc = plan_make(&in, &p);
        double t = now_ms() - t0;
        best = t < best ? t : best;
        if (rep == 0) {
            is_int(rc, 0, "plan 100,000 messages");
            is_int(p->ndownloads, 250, "250 downloads");
            is_int(p->nuploads, 250, "250 uploads");
            is_int(p->nflags, 500, "500 flag updates");
            is_int(p->nfar_deletes, 100, "100 far deletions");
            is_int(p->nnear_deletes, 100, "100 near deletions");
        }
        plan_free(&p);
    }
    printf("# planning 100,000 messages with 1%% changes: %.1f ms (best of 3)\n", best);
    ok(best < 2000, "planning 100,000 messages takes well under 2 s (%.1f ms)", best);
    free(far);
    free(near);
    free(st);
}

int main(void)
{
    size_t i;
    for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
        run_scenario(&scenarios[i]);
    test_errors();
    test_lookup_and_uidvalidity();
    test_flag_groups();
    test_default_guard();
    test_performance();
    printf("# %zu scenarios + the 300-message guard run: %ld runs interrupted once, %ld "
           "interrupted twice, each resumed and checked\n",
           sizeof(scenarios) / sizeof(scenarios[0]), interrupted_runs, double_interrupted_runs);
    return tap_done();
}
