/* test_folder.c - folderfilter / nametrans / folderincludes through the evaluator. */
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

    f = filter("lambda f: f.startswith('INBOX') and f[:3] != 'Old'");
    ok(f && folder_filter_match(f, "INBOX.x") && !folder_filter_match(f, "Sent"), "startswith");
    folder_filter_free(&f);
    f = filter("lambda folder: folder not in ['[Gmail]/All Mail',\n"
               "                             '[Gmail]/Spam',\n"
               "                             '[Gmail]/Trash']");
    ok(f && !folder_filter_match(f, "[Gmail]/Trash") && folder_filter_match(f, "INBOX"),
       "not in, list over several lines");
    folder_filter_free(&f);
    f = filter("lambda f: re.search('I', f).start() == 0");
    ok(f && folder_filter_match(f, "INBOX"), "runtime error: filter works where it can");
    ok(f && !folder_filter_match(f, "Sent"), "runtime error: folder skipped, not accepted");
    folder_filter_free(&f);
    ok(filter("lambda f: os.system('true')") == NULL, "os.system refused");
    ok(filter("lambda a, b: a") == NULL, "two-argument folderfilter refused");
    ok(filter("['INBOX']") == NULL, "a list is not a folderfilter");
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
    s = trans("lambda f: {'[Gmail]/Sent Mail': 'sent', '[Gmail]/All Mail': 'archive'}.get(f, f)",
              "[Gmail]/Sent Mail");
    is_str(s, "sent", "Gmail dictionary map");
    free(s);
    s = trans("lambda f: {'sent': '[Gmail]/Sent Mail'}.get(f, f)", "Lists");
    is_str(s, "Lists", "dictionary default");
    free(s);
    s = trans("lambda f: 'INBOX' if f == '' else f.replace('.', '', 1)", "");
    is_str(s, "INBOX", "conditional, empty name");
    free(s);
    s = trans("lambda f: 'INBOX' if f == '' else f.replace('.', '', 1)", ".a.b");
    is_str(s, "a.b", "conditional, replace once");
    free(s);
    s = trans("lambda folder: re.sub('_', ' ', re.sub('^', '[Gmail]/', re.sub('sent', "
              "'Sent Mail', re.sub('spam', 'Spam', re.sub('trash', 'Trash', folder)))))",
              "sent");
    is_str(s, "[Gmail]/Sent Mail", "re.sub chain five deep");
    free(s);
    s = trans("lambda f: re.sub('a|ab', 'X', f)", "ab");
    is_str(s, "Xb", "alternation is leftmost-first as in Python (POSIX would say X)");
    free(s);
    s = trans("lambda f: re.sub('<.*?>', '', f)", "<a>x<b>");
    is_str(s, "x", "non-greedy repetition");
    free(s);
    ok(trans("lambda f: len(f)", "abc") == NULL, "non-string nametrans result refused");
    ok(trans("lambda f: f + 1", "abc") == NULL, "TypeError skips the folder");
    ok(trans("lambda f: __import__('os')", "abc") == NULL, "__import__ refused");

    struct config_expr id = {(char *)"lambda x: x", 1};
    struct folder_trans *t = NULL;
    is_int(folder_trans_new(&id, "rc:1: [R] nametrans", &t), 0, "identity lambda");
    ok(t && folder_trans_is_identity(t), "lambda x: x is the identity");
    folder_trans_free(&t);
    struct config_expr ren = {(char *)"lambda x: x.lower()", 1};
    is_int(folder_trans_new(&ren, "rc:1: [R] nametrans", &t), 0, "lower");
    ok(t && !folder_trans_is_identity(t), "lower is not the identity");
    folder_trans_free(&t);

    char **names;
    is_int(folder_parse_list("['Archive/2020', \"Lists/dev\"]", &names), 2, "folderincludes list");
    is_str(names[1], "Lists/dev", "second include");
    folder_names_free(names, 2);
    is_int(folder_parse_list("[]", &names), 0, "empty list");
    folder_names_free(names, 0);
    is_int(folder_parse_list("['a'] + x", &names), OIMAP_ECONFIG, "unknown name refused");
    is_int(folder_parse_list("['a', 'b'] + ['c']", &names), 3, "list expression");
    is_str(names[2], "c", "concatenated list");
    folder_names_free(names, 3);
    is_int(folder_parse_list("('INBOX',\n 'INBOX.Alerts',\n)", &names), 2, "tuple over lines");
    folder_names_free(names, 2);
    is_int(folder_parse_list("['a', 1]", &names), OIMAP_ECONFIG, "non-string item refused");
    is_int(folder_parse_list("'a'", &names), OIMAP_ECONFIG, "a string is not a list");
    is_int(folder_parse_list_at("[os.name]", "rc:3: [R] folderincludes", &names), OIMAP_ECONFIG,
           "logged variant refuses");

    is_int(folder_filter_new_list("INBOX,Sent", &f), 0, "-f list");
    ok(folder_filter_match(f, "Sent") && !folder_filter_match(f, "Trash"), "-f list matches");
    folder_filter_free(&f);

    /* foldersort: a cmp function, applied stably. */
    struct folder_sort *so = NULL;
    const char *fnames[] = {"INBOX", "Lists/dev", "Sent", "Lists", "Archive/2020"};
    size_t order[5];
    struct config_expr bylen = {(char *)"lambda x, y: len(x) - len(y)", 1};
    is_int(folder_sort_new(&bylen, "rc:1: [R] foldersort", &so), 0, "foldersort compiles");
    is_int(folder_sort_order(so, fnames, 5, order), 0, "foldersort sorts");
    ok(order[0] == 2 && order[1] == 0 && order[2] == 3 && order[3] == 1 && order[4] == 4,
       "by length, ties in their first order (stable)");
    folder_sort_free(&so);
    ok(so == NULL, "foldersort free nulls");
    struct config_expr rev = {(char *)"lambda x, y: (x < y) - (x > y)", 1};
    is_int(folder_sort_new(&rev, "rc:1: [R] foldersort", &so), 0, "reverse compiles");
    is_int(folder_sort_order(so, fnames, 5, order), 0, "reverse sorts");
    ok(order[0] == 2 && order[4] == 4, "reverse alphabetical");
    folder_sort_free(&so);
    struct config_expr bad = {(char *)"lambda x, y: x", 1};
    is_int(folder_sort_new(&bad, "rc:1: [R] foldersort", &so), 0, "string result compiles");
    is_int(folder_sort_order(so, fnames, 5, order), OIMAP_ECONFIG, "string result refused");
    ok(order[0] == 0 && order[1] == 1 && order[4] == 4, "refused sort leaves the order alone");
    folder_sort_free(&so);
    struct config_expr one = {(char *)"lambda x: x", 1};
    is_int(folder_sort_new(&one, "rc:1: [R] foldersort", &so), OIMAP_ECONFIG,
           "one-argument foldersort refused");
    is_int(folder_sort_new(NULL, "rc:1: [R] foldersort", &so), 0, "unset foldersort");
    ok(so == NULL, "unset foldersort is NULL");
    return tap_done();
}
