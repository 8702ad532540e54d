/* hdr_filter.c - drop named header fields from a message stream (see
 * hdr_filter.h).  A small state machine over the bytes; runs of kept bytes
 * are emitted as single segments. */
#include "hdr_filter.h"

#include <string.h>
#include <strings.h>

enum {
    HF_START,     /* at the start of a line of the header section */
    HF_NAME,      /* reading a field name into held */
    HF_NAME_LONG, /* a name too long to match: passed on, still a field? */
    HF_CR,        /* a CR opened the line: an empty CRLF line, or not */
    HF_KEEP,      /* the rest of a kept line */
    HF_DROP,      /* the rest of a dropped line */
    HF_BODY,      /* past the header section: everything is kept */
};

void hdr_filter_init(struct hdr_filter *f, const char *const *names, size_t n)
{
    memset(f, 0, sizeof *f);
    f->names = names;
    f->n_names = n;
    f->first_line = true;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(names[i]);
        if (l <= HDR_FILTER_NAME_MAX && l > f->name_max)
            f->name_max = l;
    }
    f->state = n ? HF_START : HF_BODY;
}

bool hdr_filter_active(const struct hdr_filter *f)
{
    return f->n_names > 0;
}

/* RFC 5322 field-name characters, as Python's parser takes them. */
static bool is_name_char(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e && c != ':';
}

static bool name_listed(const struct hdr_filter *f, const char *name, size_t len)
{
    for (size_t i = 0; i < f->n_names; i++)
        if (strlen(f->names[i]) == len && strncasecmp(f->names[i], name, len) == 0)
            return true;
    return false;
}

static int flush_held(struct hdr_filter *f, hdr_filter_emit_fn emit, void *arg)
{
    size_t n = f->n_held;
    f->n_held = 0;
    return n ? emit(arg, f->held, n) : 0;
}

/* A line that is not a field: the header section ends with it, except for
 * an mbox "From " line opening the message. */
static int not_a_field(struct hdr_filter *f, unsigned char c)
{
    bool from = f->first_line && c == ' ' && f->n_held == 4 && memcmp(f->held, "From", 4) == 0;
    f->drop_cont = false;
    return from ? HF_KEEP : HF_BODY;
}

/* One step: consume (and maybe emit) some bytes of in[i..len) in the
 * current state.  Returns the new index, or a negative code from emit. */
static long step(struct hdr_filter *f, const char *in, size_t i, size_t len,
                 hdr_filter_emit_fn emit, void *arg)
{
    unsigned char c = (unsigned char)in[i];
    int rc = 0;
    switch (f->state) {
    case HF_START:
        if (c == ' ' || c == '\t') {
            f->state = f->drop_cont ? HF_DROP : HF_KEEP;
        } else if (c == '\n') {
            f->state = HF_BODY; /* the empty line: kept, with the body */
        } else if (c == '\r') {
            f->held[0] = '\r';
            f->n_held = 1;
            f->state = HF_CR;
            return (long)i + 1;
        } else {
            f->state = HF_NAME;
        }
        return (long)i;
    case HF_CR:
        rc = flush_held(f, emit, arg);
        f->state = c == '\n' ? HF_BODY : not_a_field(f, c);
        return rc < 0 ? rc : (long)i;
    case HF_NAME:
        if (c == ':') {
            if (name_listed(f, f->held, f->n_held)) {
                f->dropped += f->n_held;
                f->n_held = 0;
                f->drop_cont = true;
                f->state = HF_DROP;
            } else {
                f->drop_cont = false;
                f->state = HF_KEEP;
                rc = flush_held(f, emit, arg);
            }
            return rc < 0 ? rc : (long)i;
        }
        if (is_name_char(c) && f->n_held < f->name_max) {
            f->held[f->n_held++] = (char)c;
            return (long)i + 1;
        }
        f->state = is_name_char(c) ? HF_NAME_LONG : not_a_field(f, c);
        rc = flush_held(f, emit, arg);
        return rc < 0 ? rc : (long)i;
    case HF_NAME_LONG: {
        size_t j = i;
        while (j < len && is_name_char((unsigned char)in[j]))
            j++;
        if (j > i && (rc = emit(arg, in + i, j - i)) < 0)
            return rc;
        if (j < len) {
            f->drop_cont = false;
            f->state = in[j] == ':' ? HF_KEEP : HF_BODY;
        }
        return (long)j;
    }
    case HF_KEEP:
    case HF_DROP: {
        const char *nl = memchr(in + i, '\n', len - i);
        size_t j = nl ? (size_t)(nl - in) + 1 : len;
        if (f->state == HF_KEEP)
            rc = emit(arg, in + i, j - i);
        else
            f->dropped += j - i;
        if (nl) {
            f->first_line = false;
            f->state = HF_START;
        }
        return rc < 0 ? rc : (long)j;
    }
    default: /* HF_BODY */
        rc = emit(arg, in + i, len - i);
        return rc < 0 ? rc : (long)len;
    }
}

int hdr_filter_feed(struct hdr_filter *f, const char *in, size_t len, hdr_filter_emit_fn emit,
                    void *arg)
{
    size_t i = 0;
    while (i < len) {
        long r = step(f, in, i, len, emit, arg);
        if (r < 0)
            return (int)r;
        i = (size_t)r;
    }
    return 0;
}

int hdr_filter_end(struct hdr_filter *f, hdr_filter_emit_fn emit, void *arg)
{
    if (f->state == HF_NAME || f->state == HF_CR)
        f->state = HF_BODY;
    return flush_held(f, emit, arg);
}
