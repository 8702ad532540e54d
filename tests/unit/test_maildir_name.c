/* test_maildir_name.c - the Maildir file/folder name codec. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "maildir_name.h"
#include "tests/unit/tap.h"

#define FMD5_INBOX "7e33429f656f1e6e9d79b29c3f82c57e"

static struct maildir_flags fl(const char *letters)
{
    struct maildir_flags f;
    if (maildir_flags_parse(letters, strlen(letters), &f) < 0)
        abort();
    return f;
}

static void test_parse_offlineimap(void)
{
    struct maildir_name n;
    const char *s = "1700000000_3.4242.myhost,U=1234,FMD5=" FMD5_INBOX ":2,FS";
    is_int(maildir_name_parse(s, ':', &n), 0, "offlineimap name parses");
    is_mem(n.unique, n.unique_len, "1700000000_3.4242.myhost", 24, "unique part");
    is_int(n.uid, 1234, "UID extracted");
    ok(n.has_fmd5, "FMD5 present");
    is_str(n.fmd5, FMD5_INBOX, "FMD5 value");
    ok(n.has_info, "info present");
    is_int(n.flags.std, MAILDIR_FLAG_F | MAILDIR_FLAG_S, "flags F S");
    ok(!n.has_size, "no size");

    /* The same with the Windows-compatible separator. */
    s = "1700000000_3.4242.myhost,U=7,FMD5=" FMD5_INBOX "!2,RS";
    is_int(maildir_name_parse(s, '!', &n), 0, "'!' separator parses");
    is_int(n.uid, 7, "UID with '!'");
    is_int(n.flags.std, MAILDIR_FLAG_R | MAILDIR_FLAG_S, "flags with '!'");
    /* Read with ':' the '!' name has no info and a broken FMD5 value. */
    is_int(maildir_name_parse(s, ':', &n), OIMAP_ENAME, "'!' name read with ':' is broken");

    /* Upper-case FMD5 is accepted and normalised. */
    is_int(maildir_name_parse("a,U=1,FMD5=7E33429F656F1E6E9D79B29C3F82C57E:2,", ':', &n), 0,
           "upper-case FMD5 accepted");
    is_str(n.fmd5, FMD5_INBOX, "FMD5 normalised to lower case");
    is_int(n.flags.std, 0, "empty flag list");
    ok(n.has_info, "empty info still info");
}

static void test_parse_others(void)
{
    struct maildir_name n;
    /* Dovecot */
    is_int(maildir_name_parse("1700000000.M1P2.host,S=1234,W=1300:2,S", ':', &n), 0, "dovecot");
    is_int(n.uid, 0, "dovecot: no UID");
    ok(n.has_size && n.size == 1234, "dovecot: S= size");
    ok(!n.has_fmd5, "dovecot: no FMD5");
    is_int(n.flags.std, MAILDIR_FLAG_S, "dovecot: flags");
    /* mbsync: U= without FMD5 */
    is_int(maildir_name_parse("1700000000.123_4.host,U=99:2,RS", ':', &n), 0, "mbsync");
    is_int(n.uid, 99, "mbsync: UID");
    ok(!n.has_fmd5, "mbsync: no FMD5");
    /* mutt / new/ files without info */
    is_int(maildir_name_parse("1700000000.R123456.host", ':', &n), 0, "new/ name without info");
    ok(!n.has_info && n.uid == 0, "no info, no UID");
    is_mem(n.unique, n.unique_len, "1700000000.R123456.host", 23, "whole name is unique");
    is_int(maildir_name_parse("1700000000.123_1.host:2,", ':', &n), 0, "mutt name");
    /* every standard flag and custom letters, duplicates tolerated */
    is_int(maildir_name_parse("x:2,DFPRSTacz", ':', &n), 0, "all flags");
    is_int(n.flags.std, MAILDIR_FLAG_ALL, "all six standard flags");
    is_int(n.flags.custom, (1u << 0) | (1u << 2) | (1u << 25), "custom a c z");
    is_int(maildir_name_parse("x:2,SSaa", ':', &n), 0, "duplicate letters tolerated");
    is_int(n.flags.std, MAILDIR_FLAG_S, "duplicate S once");
    is_int(maildir_name_parse("x:2,SQ", ':', &n), 0, "unknown upper-case letter kept");
    is_int(n.flags.upper, 1u << ('Q' - 'A'), "Q in upper mask");
    /* UID limits */
    is_int(maildir_name_parse("x,U=4294967295:2,", ':', &n), 0, "max UID");
    ok(n.uid == 4294967295u, "max UID value");
}

static void test_parse_broken(void)
{
    static const char *bad[] = {
        "",
        ".hidden",
        "a/b",
        ",U=1:2,S",
        ":2,S",
        "x,U=0:2,S",
        "x,U=:2,S",
        "x,U=12a:2,S",
        "x,U=-1",
        "x,U=4294967296:2,",
        "x,U=1,U=2:2,",
        "x,FMD5=abc:2,",
        "x,FMD5=" FMD5_INBOX "0:2,",
        "x,FMD5=zz33429f656f1e6e9d79b29c3f82c57e",
        "x,S=abc:2,",
        "x:1,S",
        "x:",
        "x:2",
        "x:2,S1",
        "x:2,S:2,S",
        "x:2,S,W=1",
    };
    struct maildir_name n;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        is_int(maildir_name_parse(bad[i], ':', &n), OIMAP_ENAME, "broken: '%s'", bad[i]);
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    is_int(maildir_name_parse(longname, ':', &n), OIMAP_ENAME, "longer than NAME_MAX");
}

static void test_format(void)
{
    char buf[300];
    struct maildir_flags f = fl("zTSaRPFD");
    int n = maildir_name_format(buf, sizeof(buf), "1_0.1.h", 42, FMD5_INBOX, ':', &f, true);
    is_str(buf, "1_0.1.h,U=42,FMD5=" FMD5_INBOX ":2,DFPRSTaz", "format orders flags");
    is_int(n, (int)strlen(buf), "format returns length");
    maildir_name_format(buf, sizeof(buf), "1_0.1.h", 42, FMD5_INBOX, '!', &f, true);
    is_str(buf, "1_0.1.h,U=42,FMD5=" FMD5_INBOX "!2,DFPRSTaz", "format with '!'");
    f = fl("SQ");
    maildir_name_format(buf, sizeof(buf), "u", 5, NULL, ':', &f, true);
    is_str(buf, "u,U=5:2,QS", "no FMD5, unknown letter kept in order");
    maildir_name_format(buf, sizeof(buf), "u", 0, FMD5_INBOX, ':', NULL, true);
    is_str(buf, "u:2,", "uid 0: no U=, no FMD5=");
    maildir_name_format(buf, sizeof(buf), "u", 0, NULL, ':', NULL, false);
    is_str(buf, "u", "no info");
    f = fl("S");
    is_int(maildir_name_format(buf, sizeof(buf), "u", 0, NULL, ':', &f, false), OIMAP_ENAME,
           "flags without info refused");
    is_int(maildir_name_format(buf, sizeof(buf), "a,b", 1, NULL, ':', NULL, true), OIMAP_ENAME,
           "unique with ',' refused");
    is_int(maildir_name_format(buf, sizeof(buf), "a:b", 1, NULL, ':', NULL, true), OIMAP_ENAME,
           "unique with ':' refused");
    is_int(maildir_name_format(buf, sizeof(buf), "a/b", 1, NULL, ':', NULL, true), OIMAP_ENAME,
           "unique with '/' refused");
    is_int(maildir_name_format(buf, sizeof(buf), "u", 1, "abc", ':', NULL, true), OIMAP_ENAME,
           "bad fmd5 refused");
    is_int(maildir_name_format(buf, 8, "1_0.1.h", 42, NULL, ':', NULL, true), -ENAMETOOLONG,
           "small buffer");

    /* Round trip of every flag combination (standard letters). */
    int bad = 0;
    for (unsigned m = 0; m <= MAILDIR_FLAG_ALL; m++) {
        struct maildir_flags in = {.std = (uint8_t)m, .custom = m * 0x10101u & 0x3ffffff};
        struct maildir_name p;
        maildir_name_format(buf, sizeof(buf), "t", m + 1, FMD5_INBOX, ':', &in, true);
        if (maildir_name_parse(buf, ':', &p) < 0 || !maildir_flags_equal(&p.flags, &in) ||
            p.uid != m + 1)
            bad++;
    }
    is_int(bad, 0, "format/parse round trip of 64 flag sets");
}

static void test_rewrite(void)
{
    char buf[300];
    struct maildir_flags f = fl("RS");
    maildir_name_with_flags(buf, sizeof(buf), "1.M1P2.host,S=12,W=14:2,S", ':', &f);
    is_str(buf, "1.M1P2.host,S=12,W=14:2,RS", "with_flags keeps dovecot fields");
    maildir_name_with_flags(buf, sizeof(buf), "1.R2.host", ':', &f);
    is_str(buf, "1.R2.host:2,RS", "with_flags adds info");
    f = fl("");
    maildir_name_with_flags(buf, sizeof(buf), "a,U=3:2,FS", ':', &f);
    is_str(buf, "a,U=3:2,", "with_flags clears");
    maildir_name_with_uid(buf, sizeof(buf), "1.M1P2.host,S=12,W=14:2,S", ':', 77, FMD5_INBOX);
    is_str(buf, "1.M1P2.host,U=77,FMD5=" FMD5_INBOX ",S=12,W=14:2,S", "with_uid adds U/FMD5");
    maildir_name_with_uid(buf, sizeof(buf), "a,U=3,FMD5=" FMD5_INBOX ",W=5!2,F", '!', 8,
                          FMD5_INBOX);
    is_str(buf, "a,U=8,FMD5=" FMD5_INBOX ",W=5!2,F", "with_uid replaces old UID");
    maildir_name_with_uid(buf, sizeof(buf), "a", ':', 9, NULL);
    is_str(buf, "a,U=9", "with_uid without info or FMD5");
    is_int(maildir_name_with_uid(buf, sizeof(buf), "a", ':', 0, NULL), OIMAP_ENAME,
           "with_uid 0 refused");
    is_int(maildir_name_with_flags(buf, sizeof(buf), ".x", ':', &f), OIMAP_ENAME,
           "with_flags on broken name refused");
}

static void test_fmd5_unique(void)
{
    char out[MAILDIR_FMD5_LEN + 1];
    maildir_name_fmd5("INBOX", out);
    is_str(out, FMD5_INBOX, "fmd5 INBOX");
    maildir_name_fmd5("INBOX.Lists.dev", out);
    is_str(out, "6598ff54e558bf17e4705d90613c12f2", "fmd5 with sep '.'");
    maildir_name_fmd5("\xc3\x9c"
                      "n\xc3\xaf"
                      "code/\xc3\xbc",
                      out);
    is_str(out, "e7f3c61d0cfcf75b98d7a63152b1608c", "fmd5 of UTF-8 name");

    char buf[128];
    maildir_name_unique_fmt(buf, sizeof(buf), 1700000000, 5, 123, "a/b:c!d,e");
    is_str(buf, "1700000000_5.123.a\\057b\\072c\\041d\\054e", "unique: host sanitised");
    char a[128], b[128];
    maildir_name_unique(a, sizeof(a), 1000);
    maildir_name_unique(b, sizeof(b), 1000);
    ok(strcmp(a, b) != 0, "unique names differ for the same time");
    ok(strncmp(a, "1000_", 5) == 0, "unique starts with time_");
    struct maildir_name n;
    is_int(maildir_name_parse(a, ':', &n), 0, "generated unique parses");
    is_int(n.unique_len, strlen(a), "generated unique is all unique part");
}

static void folder_ok(const char *imap, const char *sep, const char *want)
{
    char buf[512], back[512];
    int n = maildir_name_folder_to_local(buf, sizeof(buf), imap, sep);
    ok(n >= 0 && strcmp(buf, want) == 0, "folder '%s' sep '%s' -> '%s' (got '%s', %d)", imap, sep,
       want, n >= 0 ? buf : "", n);
    n = maildir_name_folder_from_local(back, sizeof(back), want, sep);
    ok(n >= 0 && strcmp(back, imap) == 0, "local '%s' sep '%s' -> '%s'", want, sep, imap);
}

static void folder_bad(const char *imap, const char *sep)
{
    char buf[512];
    is_int(maildir_name_folder_to_local(buf, sizeof(buf), imap, sep), OIMAP_ENAME,
           "folder '%s' sep '%s' refused", imap, sep);
}

static void test_folders(void)
{
    folder_ok("INBOX", ".", "INBOX");
    folder_ok("INBOX/Lists/dev", ".", "INBOX.Lists.dev");
    folder_ok("INBOX/Lists/dev", "/", "INBOX/Lists/dev");
    folder_ok("Archive/2023", "-", "Archive-2023");
    folder_ok("\xc3\x9c"
              "ber/caf\xc3\xa9",
              ".",
              "\xc3\x9c"
              "ber.caf\xc3\xa9");
    folder_ok("Lists/tmp", ".", "Lists.tmp");
    folder_ok("...", "/", "...");
    folder_ok("", ".", "");

    static const char *bad[] = {"..", ".",    "../x",  "x/..", "a/../b", "/abs",
                                "x/", "a//b", "a/./b", "tmp",  "new",    "cur"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        folder_bad(bad[i], ".");
        folder_bad(bad[i], "/");
    }
    folder_bad("INBOX/tmp", "/");
    folder_bad("a/cur/b", "/");
    folder_bad("x", "");
    folder_bad("x", "a/b");
    char big[400];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    folder_bad(big, ".");
    char buf[8];
    is_int(maildir_name_folder_to_local(buf, sizeof(buf), "INBOX/Lists", "."), -ENAMETOOLONG,
           "folder: small buffer");
    char out[64];
    is_int(maildir_name_folder_from_local(out, sizeof(out), ".hidden", "."), OIMAP_ENAME,
           "local '.hidden' with sep '.' has no IMAP name");
    is_int(maildir_name_folder_from_local(out, sizeof(out), "a/cur", "/"), OIMAP_ENAME,
           "local path through cur refused");
}

int main(void)
{
    test_parse_offlineimap();
    test_parse_others();
    test_parse_broken();
    test_format();
    test_rewrite();
    test_fmd5_unique();
    test_folders();
    return tap_done();
}
