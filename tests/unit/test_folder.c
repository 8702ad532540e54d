/* test_folder.c - folderfilter / nametrans / folderincludes forms. */
#include "config.h"
#include "err.h"
#include "folder.h"
#include "log.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>

static struct folder_filter *filter(const char *text)
{
    struct config_expr e = {(char *)text, 1};
    struct folder_filter *f = NULL;
    int r = folder_filter_new(&e, "rc:1: [Repository R] folderfilter", &f);
    return r == 0 ? f : NULL;
}

static char *trans(const char *text, const char *name)
{
    struct config_expr e = {(char *)text, 1};
    struct folder_trans *t = NULL;
    if (folder_trans_new(&e, "rc:1: [Repository R] nametrans", &t) < 0)
        return NULL;
    char *out = folder_trans_apply(t, name);
    folder_trans_free(&t);
    return out;
}

int main(void)
{
    FILE *devnull = freopen("/dev/null", "w", stderr);
    (void)devnull;
    struct folder_filter *f;

    f = filter(NULL);
    ok(f && folder_filter_match(f, "anything"), "no filter accepts all");
    folder_filter_free(&f);

    f = filter("lambda folder: folder in ['INBOX', \"Sent\",\n  'Lists/dev']");
    ok(f != NULL, "in-list parses (multi-line)");
    ok(f && folder_filter_match(f, "INBOX") && folder_filter_match(f, "Lists/dev"), "in-list hits");
    ok(f && !folder_filter_match(f, "Trash"), "in-list miss");
    folder_filter_free(&f);
    ok(f == NULL, "free nulls");

    f = filter("lambda f: f not in ['[Gmail]/All Mail', '[Gmail]/Spam']");
    ok(f && !folder_filter_match(f, "[Gmail]/Spam") && folder_filter_match(f, "INBOX"), "not in");
    folder_filter_free(&f);

    f = filter("lambda f: not re.search(r'(^Trash$|Del)', f)");
    ok(f && !folder_filter_match(f, "Trash") && !folder_filter_match(f, "Deleted"),
       "not re.search");
    ok(f && folder_filter_match(f, "Trashy") && folder_filter_match(f, "INBOX"),
       "not re.search keeps");
    folder_filter_free(&f);

    f = filter("lambda f: re.match('Lists\\.\\d+', f)");
    ok(f && folder_filter_match(f, "Lists.42x") && !folder_filter_match(f, "My Lists.42"),
       "re.match anchored, \\d translated");
    folder_filter_free(&f);

    ok(filter("lambda f: f.startswith('INBOX')") == NULL, "unsupported form refused");
    ok(filter("lambda f: f in ['a'") == NULL, "unterminated list refused");
    ok(filter("f in ['a']") == NULL, "not a lambda refused");

    char *s;
    s = trans("lambda f: re.sub(r'^INBOX\\.', '', f)", "INBOX.Lists");
    is_str(s, "Lists", "re.sub strips prefix");
    free(s);
    s = trans("lambda f: re.sub('(a)(b)', r'\\2\\1', f)", "xabyab");
    is_str(s, "xbayba", "re.sub groups, every match");
    free(s);
    s = trans("lambda name: name", "INBOX");
    is_str(s, "INBOX", "identity");
    free(s);
    s = trans(NULL, "INBOX");
    is_str(s, "INBOX", "unset is identity");
    free(s);
    ok(trans("lambda f: {'a':'b'}.get(f, f)", "a") == NULL, "dict form refused for now");

    char **names;
    is_int(folder_parse_list("['Archive/2020', \"Lists/dev\"]", &names), 2, "folderincludes list");
    is_str(names[1], "Lists/dev", "second include");
    folder_names_free(names, 2);
    is_int(folder_parse_list("[]", &names), 0, "empty list");
    folder_names_free(names, 0);
    is_int(folder_parse_list("['a'] + x", &names), OIMAP_ECONFIG, "trailing junk refused");

    is_int(folder_filter_new_list("INBOX,Sent", &f), 0, "-f list");
    ok(folder_filter_match(f, "Sent") && !folder_filter_match(f, "Trash"), "-f list matches");
    folder_filter_free(&f);
    return tap_done();
}
