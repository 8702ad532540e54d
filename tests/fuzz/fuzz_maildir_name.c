/* fuzz_maildir_name.c - libFuzzer target for the Maildir name codec.
 *
 * Input: first byte selects the separators, the rest is a NUL-free name.
 * Checks the invariants the repository relies on: a parsed name can be
 * rewritten and re-parsed to the same identity (UID, flags), and a folder
 * name that is accepted never leaves localfolders. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maildir_name.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_folder(const char *in, const char *sep)
{
    char local[1024], back[1024];
    int n = maildir_name_folder_to_local(local, sizeof(local), in, sep);
    if (n < 0)
        return;
    /* Accepted: no component on disk may be empty, "." or "..". */
    assert(local[0] != '/');
    for (const char *p = local; *p;) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        assert(len > 0);
        assert(!(len == 1 && p[0] == '.'));
        assert(!(len == 2 && p[0] == '.' && p[1] == '.'));
        if (!e)
            break;
        p = e + 1;
    }
    (void)maildir_name_folder_from_local(back, sizeof(back), local, sep);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 600)
        return 0;
    char infosep = (data[0] & 1) ? '!' : ':';
    static const char *seps[] = {".", "/", "-", ".."};
    const char *sep = seps[(data[0] >> 1) & 3];
    char *s = malloc(size);
    if (!s)
        return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    if (strlen(s) != size - 1) {
        free(s);
        return 0;
    }

    struct maildir_name n, m;
    char buf[600];
    if (maildir_name_parse(s, infosep, &n) == 0) {
        assert(n.unique_len > 0);
        struct maildir_flags f = {.std = MAILDIR_FLAG_S | MAILDIR_FLAG_D, .custom = 5};
        if (maildir_name_with_flags(buf, sizeof(buf), s, infosep, &f) >= 0) {
            assert(maildir_name_parse(buf, infosep, &m) == 0);
            assert(m.uid == n.uid && maildir_flags_equal(&m.flags, &f));
        }
        if (maildir_name_with_uid(buf, sizeof(buf), s, infosep, 4242,
                                  "0123456789abcdef0123456789abcdef") >= 0) {
            assert(maildir_name_parse(buf, infosep, &m) == 0);
            assert(m.uid == 4242 && m.has_fmd5);
            assert(maildir_flags_equal(&m.flags, &n.flags));
        }
    }
    char fl[64];
    struct maildir_flags pf;
    if (maildir_flags_parse(s, strlen(s), &pf) == 0)
        assert(maildir_flags_format(fl, sizeof(fl), &pf) >= 0);
    check_folder(s, sep);
    free(s);
    return 0;
}
